// The call context on gRPC: inside a handler (of every call kind, with and without interceptors,
// traced or not) currentCallContext() is the handler's context, also in the body of an async
// generator; the calls it makes to a second server inherit its deadline, cancellation and
// authorization/trace headers, unless they say `inherit: false`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Code,
  currentCallContext,
  StatusError,
  type CallOptions,
  type HandlerContext,
  type Interceptor,
  type ServiceDesc,
} from "@grabbit/runtime";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { startSdk, type Sdk } from "../telemetry/sdk.js";
import { collect, fromArray, jsonMethod, Probe, statusOf, type Req, type Res } from "./fixtures.js";

// The second server: reports what reached it.
const DOWN = "test.v1.Downstream";
const Downstream = {
  typeName: DOWN,
  transports: ["grpc"],
  methods: {
    inspect: jsonMethod(DOWN, "Inspect", "unary"),
    inspectShort: jsonMethod(DOWN, "InspectShort", "unary", 1000),
    inspectList: jsonMethod(DOWN, "InspectList", "server_streaming"),
    inspectSum: jsonMethod(DOWN, "InspectSum", "client_streaming"),
    inspectChat: jsonMethod(DOWN, "InspectChat", "bidi_streaming"),
    hold: jsonMethod(DOWN, "Hold", "unary"),
  },
} satisfies ServiceDesc;
const D = Downstream.methods;

function view(ctx: HandlerContext): Res {
  return { metadata: ctx.metadata, deadline: ctx.deadline ?? null };
}

/** One Hold call in progress, by request text: its context, how it ended, and its release. */
interface Hold {
  started: Probe<HandlerContext>;
  aborted: Probe<unknown>;
  release: Probe<void>;
}
const holds = new Map<string, Hold>();

const downstreamHandlers = {
  async inspect(_req: Req, ctx: HandlerContext): Promise<Res> {
    return view(ctx);
  },
  async inspectShort(_req: Req, ctx: HandlerContext): Promise<Res> {
    return view(ctx);
  },
  async *inspectList(_req: Req, ctx: HandlerContext): AsyncIterable<Res> {
    yield view(ctx);
  },
  async inspectSum(reqs: AsyncIterable<Req>, ctx: HandlerContext): Promise<Res> {
    for await (const _ of reqs);
    return view(ctx);
  },
  async *inspectChat(reqs: AsyncIterable<Req>, ctx: HandlerContext): AsyncIterable<Res> {
    for await (const _ of reqs) yield view(ctx);
  },
  async hold(req: Req, ctx: HandlerContext): Promise<Res> {
    const hold = holds.get(req.text!)!;
    hold.started.resolve(ctx);
    const aborted = new Promise<"aborted">((resolve) =>
      ctx.signal.addEventListener("abort", () => resolve("aborted"), { once: true }),
    );
    if ((await Promise.race([aborted, hold.release.promise])) === "aborted") {
      hold.aborted.resolve(ctx.signal.reason);
      throw ctx.signal.reason;
    }
    return { text: "released" };
  },
};

// The first server: its handlers call the second one and return what it saw, and whether
// currentCallContext() was their own context where they looked.
const UP = "test.v1.Upstream";
const Upstream = {
  typeName: UP,
  transports: ["grpc"],
  methods: {
    relay: jsonMethod(UP, "Relay", "unary"),
    relayList: jsonMethod(UP, "RelayList", "server_streaming"),
    relaySum: jsonMethod(UP, "RelaySum", "client_streaming"),
    relayChat: jsonMethod(UP, "RelayChat", "bidi_streaming"),
    relayHold: jsonMethod(UP, "RelayHold", "unary"),
  },
} satisfies ServiceDesc;
const U = Upstream.methods;

let downstream: GrpcTransport;

/** Calls the second server the way `how` says (a call kind, or options to test), from inside a handler. */
async function callDownstream(how: string | undefined): Promise<Res> {
  switch (how) {
    case "server":
      return (await collect(downstream.serverStream(D.inspectList, {})))[0]!;
    case "client":
      return downstream.clientStream(D.inspectSum, fromArray<Req>([{}]));
    case "bidi":
      return (await collect(downstream.bidiStream(D.inspectChat, fromArray<Req>([{}]))))[0]!;
    case "short":
      return downstream.unary(D.inspectShort, {});
    case "noinherit":
      return downstream.unary(D.inspect, {}, { inherit: false });
    case "override":
      return downstream.unary(D.inspect, {}, { metadata: { authorization: "Bearer mine" } });
    default:
      return downstream.unary(D.inspect, {});
  }
}

/** What the second server saw, with what the first knew: its own deadline and whether the context was its own. */
function relayed(seen: Res, ctx: HandlerContext, same: boolean): Res {
  return {
    ...seen,
    values: {
      same,
      upstreamDeadline: ctx.deadline ?? null,
      upstreamTraceparent: ctx.metadata["traceparent"] ?? null,
    },
  };
}

/** Per relayHold call: A's signal aborted, and how A's own downstream call ended. */
const relays = new Map<string, { upstreamAborted: Probe<void>; outcome: Probe<string> }>();

const upstreamHandlers = {
  async relay(req: Req, ctx: HandlerContext): Promise<Res> {
    const before = currentCallContext() === ctx;
    const seen = await callDownstream(req.text);
    return relayed(seen, ctx, before && currentCallContext() === ctx);
  },
  async *relayList(req: Req, ctx: HandlerContext): AsyncIterable<Res> {
    // The generator's body runs on the server's next() calls: the context must be there too.
    await Promise.resolve();
    const seen = await callDownstream(req.text);
    yield relayed(seen, ctx, currentCallContext() === ctx);
    yield relayed(await callDownstream(req.text), ctx, currentCallContext() === ctx);
  },
  async relaySum(reqs: AsyncIterable<Req>, ctx: HandlerContext): Promise<Res> {
    let how: string | undefined;
    for await (const r of reqs) how = r.text;
    return relayed(await callDownstream(how), ctx, currentCallContext() === ctx);
  },
  async *relayChat(reqs: AsyncIterable<Req>, ctx: HandlerContext): AsyncIterable<Res> {
    for await (const r of reqs)
      yield relayed(await callDownstream(r.text), ctx, currentCallContext() === ctx);
  },
  async relayHold(req: Req, ctx: HandlerContext): Promise<Res> {
    const [id, mode] = req.text!.split(":") as [string, string | undefined];
    const relay = relays.get(id)!;
    ctx.signal.addEventListener("abort", () => relay.upstreamAborted.resolve(), { once: true });
    const options: CallOptions | undefined = mode === "noinherit" ? { inherit: false } : undefined;
    try {
      relay.outcome.resolve((await downstream.unary(D.hold, { text: id }, options)).text ?? "");
    } catch (err) {
      relay.outcome.resolve(err instanceof StatusError ? Code[err.code] : String(err));
    }
    return {};
  },
};

/** A server interceptor that checks the context is already there for interceptors. */
const contextSeen = new Set<string>();
const recordContext: Interceptor = (next) => async (req) => {
  if (currentCallContext()?.method === req.method) contextSeen.add(req.method.name);
  return next(req);
};

const CALLER: Record<string, string> = {
  authorization: "Bearer caller",
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  "x-private": "not inherited",
};

let downServer: GrpcServer;
beforeAll(async () => {
  downServer = new GrpcServer().add(Downstream, downstreamHandlers);
  downstream = new GrpcTransport(`127.0.0.1:${await downServer.listen()}`);
});
afterAll(async () => {
  downstream.close();
  await downServer.close({ graceMs: 1000 });
});

function newHold(id: string): Hold {
  const hold = {
    started: new Probe<HandlerContext>(),
    aborted: new Probe<unknown>(),
    release: new Probe<void>(),
  };
  holds.set(id, hold);
  return hold;
}

function newRelay(id: string) {
  const relay = { upstreamAborted: new Probe<void>(), outcome: new Probe<string>() };
  relays.set(id, relay);
  return relay;
}

/** The trace id of a W3C traceparent. */
function traceId(traceparent: unknown): string | undefined {
  return typeof traceparent === "string" ? traceparent.split("-")[1] : undefined;
}

/**
 * The second server saw the caller's authorization and trace (only those headers) and the first's
 * deadline. Without an SDK the traceparent passes through as it came; with one, each hop's span
 * puts its own in, of the same trace.
 */
function expectInherited(res: Res, traced: boolean): void {
  expect(res.values?.["same"]).toBe(true);
  expect(res.metadata?.["authorization"]).toBe(CALLER.authorization);
  if (traced) {
    expect(traceId(res.metadata?.["traceparent"])).toBe(
      traceId(res.values?.["upstreamTraceparent"]),
    );
    expect(res.metadata?.["traceparent"]).not.toBe(res.values?.["upstreamTraceparent"]);
  } else {
    expect(res.metadata?.["traceparent"]).toBe(CALLER.traceparent);
  }
  expect(res.metadata?.["x-private"]).toBeUndefined();
  const upstreamDeadline = res.values?.["upstreamDeadline"] as number;
  expect(upstreamDeadline).toBeTypeOf("number");
  // The same deadline, give or take grpc-timeout's rounding and the hop's transit.
  expect(Math.abs(res.deadline! - upstreamDeadline)).toBeLessThan(5000);
}

for (const config of [
  { name: "without interceptors", server: {} },
  { name: "with interceptors", server: { interceptors: [recordContext] } },
  { name: "with an OpenTelemetry SDK registered (the traced paths)", server: {}, sdk: true },
]) {
  describe(`call context, ${config.name}`, () => {
    let server: GrpcServer;
    let client: GrpcTransport;
    let sdk: Sdk | undefined;
    const options = (): CallOptions => ({ timeoutMs: 60_000, metadata: { ...CALLER } });
    const traced = config.sdk === true;

    beforeAll(async () => {
      if (config.sdk) sdk = startSdk();
      server = new GrpcServer(config.server).add(Upstream, upstreamHandlers);
      client = new GrpcTransport(`127.0.0.1:${await server.listen()}`);
    });
    afterAll(async () => {
      client.close();
      await server.close({ graceMs: 1000 });
      await sdk?.shutdown();
    });

    it("a unary handler's calls of every kind inherit deadline and headers", async () => {
      for (const how of ["unary", "server", "client", "bidi"]) {
        expectInherited(await client.unary(U.relay, { text: how }, options()), traced);
      }
      if (config.server.interceptors) expect(contextSeen.has("Relay")).toBe(true);
    });

    it("in a server-streaming handler's generator body, across its awaits", async () => {
      const replies = await collect(client.serverStream(U.relayList, {}, options()));
      expect(replies).toHaveLength(2);
      for (const reply of replies) expectInherited(reply, traced);
    });

    it("in a client-streaming handler", async () => {
      expectInherited(
        await client.clientStream(U.relaySum, fromArray<Req>([{ text: "bidi" }]), options()),
        traced,
      );
    });

    it("in a bidi handler's generator body, between the requests it reads", async () => {
      const replies = await collect(
        client.bidiStream(
          U.relayChat,
          fromArray<Req>([{ text: "unary" }, { text: "server" }]),
          options(),
        ),
      );
      expect(replies).toHaveLength(2);
      for (const reply of replies) expectInherited(reply, traced);
    });

    it("the called method's own shorter timeout still applies under the inherited deadline", async () => {
      const res = await client.unary(U.relay, { text: "short" }, options());
      expect(res.deadline! < (res.values?.["upstreamDeadline"] as number) - 30_000).toBe(true);
    });

    it("the call's own headers win over the inherited ones", async () => {
      const res = await client.unary(U.relay, { text: "override" }, options());
      expect(res.metadata?.["authorization"]).toBe("Bearer mine");
      if (!traced) expect(res.metadata?.["traceparent"]).toBe(CALLER.traceparent);
    });

    it("inherit: false: neither the deadline nor the headers", async () => {
      const res = await client.unary(U.relay, { text: "noinherit" }, options());
      expect(res.values?.["same"]).toBe(true);
      expect(res.deadline).toBeNull();
      expect(res.metadata?.["authorization"]).toBeUndefined();
      // With an SDK the trace still continues: that is the handler's active span, not inheritance.
      if (!traced) expect(res.metadata?.["traceparent"]).toBeUndefined();
    });

    it("cancelling the first call cancels the second", async () => {
      const id = `cancel-${config.name}`;
      const hold = newHold(id);
      const relay = newRelay(id);
      const controller = new AbortController();
      const call = client.unary(
        U.relayHold,
        { text: id },
        { ...options(), signal: controller.signal },
      );
      await hold.started.promise;
      controller.abort();
      expect((await statusOf(call)).code).toBe(Code.CANCELLED);
      // The second server's handler sees its signal abort: the cancellation crossed both hops.
      expect(StatusError.from(await hold.aborted.promise).code).toBe(Code.CANCELLED);
      expect(await relay.outcome.promise).toBe("CANCELLED");
    });

    it("the first call's deadline ends the second", async () => {
      const id = `deadline-${config.name}`;
      const hold = newHold(id);
      const relay = newRelay(id);
      const call = client.unary(
        U.relayHold,
        { text: id },
        { timeoutMs: 300, metadata: { ...CALLER } },
      );
      expect((await statusOf(call)).code).toBe(Code.DEADLINE_EXCEEDED);
      expect(StatusError.from(await hold.aborted.promise).code).toBe(Code.DEADLINE_EXCEEDED);
      expect(await relay.outcome.promise).toBe("DEADLINE_EXCEEDED");
    });

    it("inherit: false: the second call outlives the cancelled first", async () => {
      const id = `noinherit-${config.name}`;
      const hold = newHold(id);
      const relay = newRelay(id);
      const controller = new AbortController();
      const call = client.unary(
        U.relayHold,
        { text: `${id}:noinherit` },
        { ...options(), signal: controller.signal },
      );
      await hold.started.promise;
      controller.abort();
      expect((await statusOf(call)).code).toBe(Code.CANCELLED);
      // Once the first handler knows it was cancelled, an inherited call would have been cancelled
      // with it (synchronously, from the same abort); this one still answers when released.
      await relay.upstreamAborted.promise;
      hold.release.resolve();
      expect(await relay.outcome.promise).toBe("released");
    });

    it("outside a handler nothing is inherited", async () => {
      expect(currentCallContext()).toBeUndefined();
      const res = await downstream.unary(D.inspect, {});
      expect(res.deadline).toBeNull();
      expect(res.metadata?.["authorization"]).toBeUndefined();
    });
  });
}
