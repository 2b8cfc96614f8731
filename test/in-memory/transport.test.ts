// The in-memory transport with generated code and no broker: a generated client calls a generated
// service's handlers in this process, through client and server interceptors, with deadlines,
// cancellation, errors with details, response metadata and the three kinds of stream.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import {
  Code,
  createInMemoryTransport,
  currentCallContext,
  StatusError,
  type HandlerContext,
  type Interceptor,
  type Metadata,
} from "@grabbit/runtime";
import { generateModule, protoModule, typeCheck } from "../support/buf.js";

const proto = `syntax = "proto3";
package ledger.v1;
import "grabbit/v1/options.proto";

message Entry { string account = 1; int64 cents = 2; }
message Balance { string account = 1; int64 cents = 2; int32 entries = 3; }
message Query { string account = 1; int32 count = 2; }

service Ledger {
  option (grabbit.v1.service) = { transports: [TRANSPORT_GRPC] };
  rpc Get(Query) returns (Balance);
  rpc Hold(Query) returns (Balance);
  rpc History(Query) returns (stream Entry);
  rpc Post(stream Entry) returns (Balance);
  rpc Mirror(stream Entry) returns (stream Entry);
}
`;

let out: string;
let g: any; // the generated ledger.v1 code (its types are checked in "type-checks" below)

beforeAll(async () => {
  const dir = protoModule({ "ledger/v1/ledger.proto": proto });
  const result = generateModule(dir);
  expect(result.stderr).toBe("");
  out = result.out;
  g = await import(pathToFileURL(join(out, "ledger/v1/ledger.grabbit.ts")).href);
});

/** Resolves when the handler side reaches a point, so tests wait for events, not for time. */
function probe<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function* entries(...items: { account: string; cents: number }[]) {
  for (const item of items) yield item;
}

/** Handlers that record what they saw; `hold` waits for its signal. */
function ledger() {
  const seen: { ctx?: HandlerContext; held?: unknown; stopped?: boolean; inContext?: boolean } = {};
  const holding = probe<void>();
  const handlers = {
    get(query: { account: string }, ctx: HandlerContext) {
      seen.ctx = ctx;
      seen.inContext = currentCallContext() === ctx;
      ctx.responseHeaders["x-served-by"] = "memory";
      ctx.responseMetadata["x-entries"] = "3";
      (query as { account: string }).account = "mutated by the handler";
      return { account: "acct-1", cents: 1250, entries: 3 };
    },
    async hold(_query: unknown, ctx: HandlerContext) {
      holding.resolve();
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
      );
      seen.held = ctx.signal.reason;
      return { account: "late", cents: 0, entries: 0 };
    },
    async *history(query: { account: string; count: number }, ctx: HandlerContext) {
      try {
        for (let i = 1; i <= query.count; i++) {
          await Promise.resolve();
          seen.inContext = currentCallContext() === ctx;
          yield { account: query.account, cents: i };
        }
      } finally {
        seen.stopped = true;
      }
    },
    async post(stream: AsyncIterable<{ account: string; cents: number }>) {
      let cents = 0;
      let count = 0;
      let account = "";
      for await (const entry of stream) {
        account = entry.account;
        cents += Number(entry.cents);
        count++;
      }
      return { account, cents, entries: count };
    },
    async *mirror(stream: AsyncIterable<{ account: string; cents: number }>) {
      for await (const entry of stream)
        yield { account: entry.account.toUpperCase(), cents: -Number(entry.cents) };
    },
  };
  return { handlers, seen, holding };
}

describe("unary calls", () => {
  it("reach the handler with the call's metadata, deadline and peer, through the codec both ways", async () => {
    const { handlers, seen } = ledger();
    const client = new g.LedgerClient(createInMemoryTransport(g.LedgerService, handlers));
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    const query = { account: "acct-1", count: 0 };
    const balance = await client.get(query, {
      metadata: { "X-Request-Id": "r1", "rpc-status": "forged" },
      timeoutMs: 60_000,
      onHeaders: (m: Metadata) => (headers = m),
      onTrailers: (m: Metadata) => (trailers = m),
    });
    expect(balance).toEqual({ account: "acct-1", cents: 1250, entries: 3 });
    expect(query.account).toBe("acct-1"); // the handler got a decoded copy, as over a wire
    expect(seen.ctx!.metadata).toEqual({ "x-request-id": "r1" }); // reserved names never cross
    expect(seen.ctx!.deadline).toBeGreaterThan(Date.now());
    expect(seen.ctx).toMatchObject({ transport: "grpc", peer: "in-memory" });
    expect(seen.inContext).toBe(true);
    expect(headers).toEqual({ "x-served-by": "memory" });
    expect(trailers).toEqual({ "x-entries": "3" });
  });

  it("answers a method the handlers leave out UNIMPLEMENTED, and a descriptor it does not serve too", async () => {
    const client = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, { get: ledger().handlers.get }),
    );
    await expect(client.hold({ account: "a", count: 0 })).rejects.toMatchObject({
      code: Code.UNIMPLEMENTED,
      rawMessage: "/ledger.v1.Ledger/Hold is not implemented by this server",
    });
    const other = createInMemoryTransport(
      { typeName: "x.v1.X", transports: ["grpc"], methods: {} },
      {},
    );
    await expect(new g.LedgerClient(other).get({ account: "a", count: 0 })).rejects.toMatchObject({
      code: Code.UNIMPLEMENTED,
    });
  });

  it("gives the caller a handler's status, message, metadata and details, and UNKNOWN for anything else thrown", async () => {
    const detail = {
      typeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
      value: new Uint8Array([10, 4, 115, 116, 111, 112]),
    };
    const transport = createInMemoryTransport(g.LedgerService, {
      get(_q: unknown, ctx: HandlerContext) {
        ctx.responseMetadata["x-trailer"] = "t";
        throw new StatusError(Code.FAILED_PRECONDITION, "account frozen", {
          metadata: { "x-reason": "audit" },
          details: [detail],
        });
      },
      hold() {
        throw new RangeError("cents out of range");
      },
    });
    const client = new g.LedgerClient(transport);
    const err = await client.get({ account: "a", count: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect(err).toMatchObject({
      code: Code.FAILED_PRECONDITION,
      rawMessage: "account frozen",
      metadata: { "x-trailer": "t", "x-reason": "audit" },
    });
    expect((err as StatusError).details.map((d) => [d.typeUrl, [...d.value]])).toEqual([
      [detail.typeUrl, [...detail.value]],
    ]);
    await expect(client.hold({ account: "a", count: 0 })).rejects.toMatchObject({
      code: Code.UNKNOWN,
      rawMessage: "cents out of range",
    });
  });
});

describe("the transport itself", () => {
  it("serves several services, shows the transport name it is given, and refuses calls once closed", async () => {
    const seen: string[] = [];
    const see: Interceptor = (next) => (req) => {
      seen.push(`${req.side}:${req.transport}`);
      return next(req);
    };
    let ctxTransport: string | undefined;
    const other = { typeName: "x.v1.Other", transports: ["amqp"], methods: {} } as const;
    const transport = createInMemoryTransport(
      other,
      {},
      { transport: "amqp", peer: "tester", interceptors: [see], clientInterceptors: [see] },
    ).add(g.LedgerService, {
      get(_q: unknown, ctx: HandlerContext) {
        ctxTransport = `${ctx.transport}/${ctx.peer}`;
        return { account: "a", cents: 0, entries: 0 };
      },
    });
    const client = new g.LedgerClient(transport);
    await client.get({ account: "a", count: 0 });
    expect(ctxTransport).toBe("amqp/tester");
    expect(seen).toEqual(["client:amqp", "server:amqp"]);
    await client.close();
    await expect(client.get({ account: "a", count: 0 })).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
    });
  });
});

describe("interceptors", () => {
  /** A client interceptor that sends a bearer token, and a server one that checks it and names the caller. */
  const bearer =
    (token: string): Interceptor =>
    (next) =>
    (req) => {
      req.metadata.authorization = `Bearer ${token}`;
      return next(req);
    };
  const IDENTITY = Symbol("identity");
  const checkToken: Interceptor = (next) => (req) => {
    if (req.metadata.authorization !== "Bearer good")
      throw new StatusError(Code.UNAUTHENTICATED, "a valid bearer token is required");
    req.values.set(IDENTITY, "alice");
    return next(req);
  };

  it("run client-side then server-side, first listed outermost, and values reach the handler", async () => {
    const order: string[] = [];
    const trace =
      (name: string): Interceptor =>
      (next) =>
      async (req) => {
        order.push(`${name}:${req.side}>`);
        const res = await next(req);
        order.push(`<${name}`);
        return res;
      };
    let identity: unknown;
    const transport = createInMemoryTransport(
      g.LedgerService,
      {
        get(_q: unknown, ctx: HandlerContext) {
          identity = ctx.values.get(IDENTITY);
          return { account: "a", cents: 1, entries: 1 };
        },
      },
      {
        clientInterceptors: [trace("c1"), bearer("good"), trace("c2")],
        interceptors: [trace("s1"), checkToken, trace("s2")],
      },
    );
    await new g.LedgerClient(transport).get({ account: "a", count: 0 });
    expect(identity).toBe("alice");
    expect(order).toEqual([
      "c1:client>",
      "c2:client>",
      "s1:server>",
      "s2:server>",
      "<s2",
      "<s1",
      "<c2",
      "<c1",
    ]);
  });

  it("can refuse a call before the handler runs", async () => {
    let ran = false;
    const transport = createInMemoryTransport(
      g.LedgerService,
      {
        get() {
          ran = true;
          return { account: "a", cents: 1, entries: 1 };
        },
      },
      { clientInterceptors: [bearer("stolen")], interceptors: [checkToken] },
    );
    await expect(
      new g.LedgerClient(transport).get({ account: "a", count: 0 }),
    ).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    expect(ran).toBe(false);
  });

  it("see the call's deadline on both sides", async () => {
    const deadlines: (number | undefined)[] = [];
    const see: Interceptor = (next) => (req) => {
      deadlines.push(req.deadline);
      return next(req);
    };
    const transport = createInMemoryTransport(g.LedgerService, ledger().handlers, {
      clientInterceptors: [see],
      interceptors: [see],
    });
    const deadline = Date.now() + 120_000;
    await new g.LedgerClient(transport).get({ account: "a", count: 0 }, { deadline });
    expect(deadlines).toEqual([deadline, deadline]);
  });
});

describe("deadlines and cancellation", () => {
  it("end a call DEADLINE_EXCEEDED at its deadline and abort the handler's signal with it", async () => {
    const { handlers, seen } = ledger();
    const client = new g.LedgerClient(createInMemoryTransport(g.LedgerService, handlers));
    await expect(client.hold({ account: "a", count: 0 }, { timeoutMs: 20 })).rejects.toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
    });
    await expect.poll(() => seen.held).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });

  it("do not run a handler whose deadline has passed already", async () => {
    let ran = false;
    const client = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, {
        get: () => ((ran = true), { account: "", cents: 0, entries: 0 }),
      }),
    );
    await expect(
      client.get({ account: "a", count: 0 }, { deadline: Date.now() - 1 }),
    ).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(ran).toBe(false);
  });

  it("end a call CANCELLED when the caller aborts, and the handler's signal says so", async () => {
    const { handlers, seen, holding } = ledger();
    const client = new g.LedgerClient(createInMemoryTransport(g.LedgerService, handlers));
    const controller = new AbortController();
    const call = client.hold({ account: "a", count: 0 }, { signal: controller.signal });
    await holding.promise;
    controller.abort(new Error("user closed the page"));
    await expect(call).rejects.toMatchObject({
      code: Code.CANCELLED,
      rawMessage: "the call was cancelled: user closed the page",
    });
    await expect.poll(() => seen.held).toMatchObject({ code: Code.CANCELLED });
  });

  it("carry a handler's deadline and token into the calls it makes (call context)", async () => {
    let inner: HandlerContext | undefined;
    const downstream = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, {
        get(_q: unknown, ctx: HandlerContext) {
          inner = ctx;
          return { account: "down", cents: 0, entries: 0 };
        },
      }),
    );
    const upstream = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, {
        get: () => downstream.get({ account: "x", count: 0 }),
      }),
    );
    const deadline = Date.now() + 90_000;
    await upstream.get(
      { account: "a", count: 0 },
      { deadline, metadata: { authorization: "Bearer t", "x-other": "no" } },
    );
    expect(inner!.deadline).toBe(deadline);
    expect(inner!.metadata).toEqual({ authorization: "Bearer t" });
  });
});

describe("streams", () => {
  it("server streaming: every message in order, run in the handler's call context, trailers at the end", async () => {
    const { handlers, seen } = ledger();
    const client = new g.LedgerClient(createInMemoryTransport(g.LedgerService, handlers));
    let trailers: Metadata | undefined;
    const got: unknown[] = [];
    for await (const entry of client.history(
      { account: "a", count: 3 },
      { onTrailers: (m: Metadata) => (trailers = m) },
    ))
      got.push(entry);
    expect(got).toEqual([1, 2, 3].map((cents) => ({ account: "a", cents })));
    expect(seen.inContext).toBe(true);
    expect(trailers).toEqual({});
  });

  it("a caller that stops reading cancels the handler: its signal aborts and its generator is closed", async () => {
    const { handlers, seen } = ledger();
    let signal: AbortSignal | undefined;
    const client = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, {
        history(query: { account: string; count: number }, ctx: HandlerContext) {
          signal = ctx.signal;
          return handlers.history(query, ctx);
        },
      }),
    );
    for await (const entry of client.history({ account: "a", count: 1000 })) {
      expect(entry.cents).toBe(1);
      break;
    }
    expect(signal!.aborted).toBe(true);
    expect(signal!.reason).toMatchObject({ code: Code.CANCELLED });
    await expect.poll(() => seen.stopped).toBe(true);
  });

  it("client streaming: the handler reads every request and answers once", async () => {
    const client = new g.LedgerClient(createInMemoryTransport(g.LedgerService, ledger().handlers));
    const balance = await client.post(
      entries({ account: "b", cents: 5 }, { account: "b", cents: 7 }),
    );
    expect(balance).toEqual({ account: "b", cents: 12, entries: 2 });
  });

  it("a request stream that throws cancels the call on both sides", async () => {
    let handlerSaw: unknown;
    const client = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, {
        async post(stream: AsyncIterable<unknown>) {
          try {
            for await (const _ of stream);
          } catch (err) {
            handlerSaw = err;
            throw err;
          }
          return { account: "", cents: 0, entries: 0 };
        },
      }),
    );
    async function* broken() {
      yield { account: "b", cents: 1 };
      throw new Error("disk full");
    }
    await expect(client.post(broken())).rejects.toMatchObject({
      code: Code.CANCELLED,
      rawMessage: "/ledger.v1.Ledger/Post: the request stream failed: disk full",
    });
    expect(handlerSaw).toMatchObject({ code: Code.CANCELLED });
  });

  it("bidi: responses come as the requests go, and an error after some messages ends the stream with it", async () => {
    const client = new g.LedgerClient(createInMemoryTransport(g.LedgerService, ledger().handlers));
    const got: unknown[] = [];
    for await (const entry of client.mirror(
      entries({ account: "c", cents: 1 }, { account: "d", cents: 2 }),
    ))
      got.push(entry);
    expect(got).toEqual([
      { account: "C", cents: -1 },
      { account: "D", cents: -2 },
    ]);

    const failing = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, {
        async *mirror(stream: AsyncIterable<{ account: string }>) {
          for await (const entry of stream) {
            yield { account: entry.account, cents: 0 };
            throw new StatusError(Code.RESOURCE_EXHAUSTED, "one is enough", {
              metadata: { "x-limit": "1" },
            });
          }
        },
      }),
    );
    const seen: unknown[] = [];
    const err = await (async () => {
      for await (const entry of failing.mirror(
        entries({ account: "e", cents: 1 }, { account: "f", cents: 1 }),
      ))
        seen.push(entry);
    })().catch((e: unknown) => e);
    expect(seen).toEqual([{ account: "e", cents: 0 }]);
    expect(err).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      rawMessage: "one is enough",
      metadata: { "x-limit": "1" },
    });
  });

  it("a stream's deadline ends it DEADLINE_EXCEEDED and aborts the handler", async () => {
    let reason: unknown;
    const client = new g.LedgerClient(
      createInMemoryTransport(g.LedgerService, {
        async *history(_q: unknown, ctx: HandlerContext) {
          yield { account: "a", cents: 1 };
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
          );
          reason = ctx.signal.reason;
        },
      }),
    );
    const got: unknown[] = [];
    const err = await (async () => {
      for await (const entry of client.history({ account: "a", count: 0 }, { timeoutMs: 30 }))
        got.push(entry);
    })().catch((e: unknown) => e);
    expect(got).toHaveLength(1);
    expect(err).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    await expect.poll(() => reason).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });
});

describe("with the generated types", () => {
  it("type-checks: a typed handlers object and a generated client over createInMemoryTransport", () => {
    writeFileSync(
      join(out, "usage.ts"),
      `import { createInMemoryTransport, type Interceptor } from "@grabbit/runtime";
import { LedgerClient, LedgerService, type LedgerHandlers } from "./ledger/v1/ledger.grabbit.js";
import type { Balance } from "./ledger/v1/ledger.js";

const handlers: Partial<LedgerHandlers> = {
  get: (query) => ({ account: query.account, cents: 0, entries: 0 }),
  async *history(query) { yield { account: query.account, cents: 1 }; },
};
const audit: Interceptor = (next) => (req) => next(req);
export const client = new LedgerClient(createInMemoryTransport(LedgerService, handlers, { interceptors: [audit], clientInterceptors: [audit] }));
export const balance: Promise<Balance> = client.get({ account: "a", count: 0 });
// @ts-expect-error a misspelt method is refused
createInMemoryTransport(LedgerService, { gte: () => ({ account: "", cents: 0, entries: 0 }) });
`,
    );
    const diagnostics = typeCheck(out, { files: ["usage.ts"] });
    expect(
      diagnostics
        .split("\n")
        .filter((line) => line.includes("usage.ts") || line.includes("grabbit.ts")),
    ).toEqual([]);
  });
});
