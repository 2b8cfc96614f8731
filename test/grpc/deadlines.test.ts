// Deadlines and cancellation: the client's deadline reaches the handler as ctx.deadline and aborts
// ctx.signal when it passes; an AbortSignal cancels the call on both sides. The tests wait for
// events (probes), never assert durations.
import { afterEach, describe, expect, it } from "vitest";
import { Code, StatusError, type HandlerContext } from "@grabbit/runtime";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import {
  collect,
  fromArray,
  Probe,
  startHarness,
  statusOf,
  TestService,
  testHandlers,
  type Harness,
  type Req,
} from "./fixtures.js";

const M = TestService.methods;
let h: Harness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("deadlines", () => {
  it("sends the deadline: the handler sees it as ctx.deadline", async () => {
    h = await startHarness();
    const before = Date.now();
    const res = await h.client.unary(M.echo, {}, { timeoutMs: 30_000 });
    // The wire carries a relative timeout; allow generous slack for a noisy machine.
    expect(res.deadline).toBeGreaterThan(before + 20_000);
    expect(res.deadline).toBeLessThan(before + 40_000);
  });

  it("takes an absolute deadline", async () => {
    h = await startHarness();
    const deadline = new Date(Date.now() + 60_000);
    const res = await h.client.unary(M.echo, {}, { deadline });
    expect(res.deadline).toBeGreaterThan(deadline.getTime() - 10_000);
    expect(res.deadline).toBeLessThan(deadline.getTime() + 10_000);
  });

  it("fails with DEADLINE_EXCEEDED and aborts the handler's signal", async () => {
    h = await startHarness();
    await h.client.unary(M.echo, {}); // connect first: the deadline should not be spent on setup
    const err = await statusOf(h.client.unary(M.wait, {}, { timeoutMs: 1000 }));
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    const ctx = await h.probes.waitStarted.promise;
    expect(ctx.deadline).toBeTypeOf("number");
    const reason = await h.probes.waitAborted.promise;
    expect(reason).toBeInstanceOf(StatusError);
    expect((reason as StatusError).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("uses the method's timeout when the call sets none", async () => {
    h = await startHarness();
    await h.client.unary(M.echo, {});
    const err = await statusOf(h.client.unary(M.waitShort, {}));
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect((await h.probes.waitStarted.promise).deadline).toBeTypeOf("number");
  });

  it("uses the transport's timeout when neither call nor method sets one", async () => {
    h = await startHarness({ client: { timeoutMs: 200 } });
    expect((await statusOf(h.client.unary(M.wait, {}))).code).toBe(Code.DEADLINE_EXCEEDED);
    // ...and a call's own timeout overrides it.
    const res = await h.client.unary(M.echo, {}, { timeoutMs: 60_000 });
    expect(res.deadline! - Date.now()).toBeGreaterThan(30_000);
  });

  it("applies deadlines to streams", async () => {
    h = await startHarness();
    async function* never(): AsyncIterable<Req> {
      yield { n: 1 };
      await new Promise(() => {});
    }
    expect((await statusOf(h.client.clientStream(M.sum, never(), { timeoutMs: 200 }))).code).toBe(
      Code.DEADLINE_EXCEEDED,
    );
    expect(
      (await statusOf(collect(h.client.bidiStream(M.chat, never(), { timeoutMs: 200 })))).code,
    ).toBe(Code.DEADLINE_EXCEEDED);
  });
});

describe("deadline propagation", () => {
  it("a handler passing ctx.signal downstream sees the downstream call fail with DEADLINE_EXCEEDED", async () => {
    h = await startHarness(); // the downstream service
    const downstream = h.client;
    const downstreamError = new Probe<StatusError>();
    const { handlers } = testHandlers();
    const front = new GrpcServer().add(TestService, {
      ...handlers,
      async wait(_req: Req, ctx: HandlerContext) {
        try {
          return await downstream.unary(M.wait, {}, { signal: ctx.signal, deadline: ctx.deadline });
        } catch (err) {
          downstreamError.resolve(err as StatusError);
          throw err;
        }
      },
    });
    const port = await front.listen();
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    try {
      // Connect both hops first, so that the deadline is not spent on connection setup.
      await client.unary(M.echo, {});
      await downstream.unary(M.echo, {});
      expect((await statusOf(client.unary(M.wait, {}, { timeoutMs: 1000 }))).code).toBe(
        Code.DEADLINE_EXCEEDED,
      );
      expect((await downstreamError.promise).code).toBe(Code.DEADLINE_EXCEEDED);
      // The downstream handler was stopped too.
      expect(((await h.probes.waitAborted.promise) as StatusError).code).toBeOneOf([
        Code.DEADLINE_EXCEEDED,
        Code.CANCELLED,
      ]);
    } finally {
      client.close();
      await front.close({ graceMs: 1000 });
    }
  });

  it("a signal aborted with a StatusError reason rejects with that status", async () => {
    h = await startHarness();
    const controller = new AbortController();
    const call = h.client.unary(M.wait, {}, { signal: controller.signal });
    await h.probes.waitStarted.promise;
    controller.abort(new StatusError(Code.UNAVAILABLE, "upstream went away"));
    const err = await statusOf(call);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.rawMessage).toBe("upstream went away");
  });
});

describe("cancellation", () => {
  it("cancels a unary call: CANCELLED on the client, signal aborted on the server", async () => {
    h = await startHarness();
    const controller = new AbortController();
    const call = h.client.unary(M.wait, {}, { signal: controller.signal });
    await h.probes.waitStarted.promise;
    controller.abort();
    const err = await statusOf(call);
    expect(err.code).toBe(Code.CANCELLED);
    const reason = await h.probes.waitAborted.promise;
    expect((reason as StatusError).code).toBe(Code.CANCELLED);
  });

  it("does not start a call whose signal is already aborted", async () => {
    h = await startHarness();
    const signal = AbortSignal.abort();
    expect((await statusOf(h.client.unary(M.echo, {}, { signal }))).code).toBe(Code.CANCELLED);
    expect(
      (await statusOf(collect(h.client.serverStream(M.count, { n: 1 }, { signal })))).code,
    ).toBe(Code.CANCELLED);
    expect(
      (await statusOf(h.client.clientStream(M.sum, fromArray<Req>([]), { signal }))).code,
    ).toBe(Code.CANCELLED);
  });

  it("cancels a server stream mid-way; the server generator is stopped", async () => {
    h = await startHarness();
    const controller = new AbortController();
    const err = await statusOf(
      (async () => {
        let n = 0;
        for await (const _ of h!.client.serverStream(
          M.count,
          { n: 1_000_000 },
          { signal: controller.signal },
        )) {
          if (++n === 10) controller.abort();
        }
      })(),
    );
    expect(err.code).toBe(Code.CANCELLED);
    expect(await h.probes.countStopped.promise).toBe(true);
  });

  it("cancels a bidi stream", async () => {
    h = await startHarness();
    const controller = new AbortController();
    async function* slow(): AsyncIterable<Req> {
      yield { text: "one", n: 1 };
      await new Promise<void>((resolve) =>
        controller.signal.addEventListener("abort", () => resolve()),
      );
      yield { text: "late", n: 2 };
    }
    const got: string[] = [];
    const err = await statusOf(
      (async () => {
        for await (const r of h!.client.bidiStream(M.chat, slow(), { signal: controller.signal })) {
          got.push(r.text!);
          controller.abort();
        }
      })(),
    );
    expect(got).toEqual(["re: one"]);
    expect(err.code).toBe(Code.CANCELLED);
  });
});

describe("transport construction", () => {
  it("accepts channel options", async () => {
    h = await startHarness();
    const t = new GrpcTransport(h.address, {
      channelOptions: { "grpc.max_receive_message_length": 1024 * 1024 },
    });
    try {
      expect((await t.unary(M.echo, { text: "ok" })).text).toBe("ok");
    } finally {
      t.close();
    }
  });
});
