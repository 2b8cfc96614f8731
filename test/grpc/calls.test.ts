// The four call kinds over a real grpc-js server on loopback, with metadata both ways.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@grabbit/runtime";
import {
  collect,
  fromArray,
  startHarness,
  statusOf,
  TestService,
  type Harness,
  type Req,
  type Res,
} from "./fixtures.js";

const M = TestService.methods;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("unary", () => {
  it("round-trips a message and request metadata", async () => {
    const res = await h.client.unary(
      M.echo,
      { text: "hi", n: 7 },
      { metadata: { "x-trace": "abc", "x-data-bin": Buffer.from([1, 2, 250]).toString("base64") } },
    );
    expect(res.text).toBe("hi");
    expect(res.n).toBe(7);
    expect(res.metadata?.["x-trace"]).toBe("abc");
    // Binary metadata travels as real binary and comes back to handlers as base64.
    expect(res.metadata?.["x-data-bin"]).toBe(Buffer.from([1, 2, 250]).toString("base64"));
    expect(res.peer).toMatch(/127\.0\.0\.1/);
    expect(res.deadline).toBeNull();
    // HTTP/2 and gRPC protocol headers are not user metadata.
    expect(res.metadata?.["content-type"]).toBeUndefined();
    expect(res.metadata?.["te"]).toBeUndefined();
  });

  it("does not send or surface protocol headers as metadata", async () => {
    let seen: Record<string, string> | undefined;
    const res = await h.client.unary(
      M.echo,
      {},
      {
        metadata: { "Content-Type": "text/plain", "grpc-timeout": "1n" },
        onResponseMetadata: (md) => (seen = md),
      },
    );
    expect(res.metadata?.["grpc-timeout"]).toBeUndefined();
    expect(seen).toBeDefined();
    expect(
      Object.keys(seen!).filter((k) =>
        ["content-type", "date", "grpc-status", "grpc-message"].includes(k),
      ),
    ).toEqual([]);
  });

  it("reports response metadata (headers and trailers)", async () => {
    let seen: Record<string, string> | undefined;
    await h.client.unary(M.echo, { text: "meta" }, { onResponseMetadata: (md) => (seen = md) });
    expect(seen?.["x-echo"]).toBe("meta");
  });

  it("answers UNIMPLEMENTED for a method without a handler", async () => {
    const err = await statusOf(h.client.unary(M.missing, {}));
    expect(err.code).toBe(Code.UNIMPLEMENTED);
  });

  it("runs many calls concurrently on one channel", async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => h.client.unary(M.echo, { n: i })),
    );
    expect(results.map((r) => r.n)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });
});

describe("connection", () => {
  it("connects ahead of the first call with ready()", async () => {
    await h.client.ready();
  });

  it("ready() rejects with UNAVAILABLE when nothing listens", async () => {
    const { GrpcTransport } = await import("@grabbit/runtime/grpc");
    const dead = new GrpcTransport("127.0.0.1:1");
    try {
      expect((await statusOf(dead.ready(300))).code).toBe(Code.UNAVAILABLE);
    } finally {
      dead.close();
    }
  });
});

describe("closed transport", () => {
  it("fails calls with UNAVAILABLE after close()", async () => {
    const { GrpcTransport } = await import("@grabbit/runtime/grpc");
    const t = new GrpcTransport(h.address);
    expect((await t.unary(M.echo, { text: "before" })).text).toBe("before");
    t.close();
    expect((await statusOf(t.unary(M.echo, {}))).code).toBe(Code.UNAVAILABLE);
    expect((await statusOf(collect(t.serverStream(M.count, { n: 1 })))).code).toBe(
      Code.UNAVAILABLE,
    );
    expect((await statusOf(t.clientStream(M.sum, fromArray<Req>([])))).code).toBe(Code.UNAVAILABLE);
  });
});

describe("long deadlines", () => {
  it("sends a deadline beyond ~24.8 days as none (grpc-js servers would read it as passed)", async () => {
    const res = await h.client.unary(M.echo, {}, { timeoutMs: 40 * 24 * 3600 * 1000 });
    expect(res.deadline).toBeNull();
    const near = await h.client.unary(M.echo, {}, { timeoutMs: 20 * 24 * 3600 * 1000 });
    expect(near.deadline).toBeGreaterThan(Date.now() + 19 * 24 * 3600 * 1000);
  });
});

describe("server streaming", () => {
  it("delivers every message in order, then response trailers", async () => {
    let seen: Record<string, string> | undefined;
    const out = await collect(
      h.client.serverStream(M.count, { n: 500 }, { onResponseMetadata: (md) => (seen = md) }),
    );
    expect(out.map((r) => r.n)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(seen?.["x-count"]).toBe("500");
  });

  it("delivers an empty stream", async () => {
    expect(await collect(h.client.serverStream(M.count, { n: 0 }))).toEqual([]);
  });

  it("cancels the call when the consumer stops early (the server generator is closed)", async () => {
    const local = await startHarness();
    try {
      const got: Res[] = [];
      for await (const r of local.client.serverStream(M.count, { n: 1_000_000 })) {
        got.push(r);
        if (got.length === 3) break;
      }
      expect(got.map((r) => r.n)).toEqual([0, 1, 2]);
      // The handler's generator did not run to completion: it was stopped (finally ran first).
      expect(await local.probes.countStopped.promise).toBe(true);
    } finally {
      await local.close();
    }
  });

  it("is lazy: no call until iteration starts", async () => {
    const stream = h.client.serverStream(M.count, { n: 2 });
    expect(typeof stream[Symbol.asyncIterator]).toBe("function");
    expect((await collect(stream)).length).toBe(2);
  });
});

describe("client streaming", () => {
  it("sends a stream (with back-pressure) and gets one answer", async () => {
    const reqs: Req[] = Array.from({ length: 2000 }, (_, i) => ({ n: i, text: "x".repeat(100) }));
    let seen: Record<string, string> | undefined;
    const res = await h.client.clientStream(M.sum, fromArray(reqs), {
      metadata: { "x-who": "summer" },
      onResponseMetadata: (md) => (seen = md),
    });
    expect(res.n).toBe((1999 * 2000) / 2);
    expect(res.metadata?.["x-who"]).toBe("summer");
    expect(seen?.["x-count"]).toBe("2000");
  });

  it("handles an empty request stream", async () => {
    expect((await h.client.clientStream(M.sum, fromArray<Req>([]))).n).toBe(0);
  });

  it("fails the call with the request stream's own error", async () => {
    async function* broken(): AsyncIterable<Req> {
      yield { n: 1 };
      throw new Error("producer broke");
    }
    const err = await statusOf(h.client.clientStream(M.sum, broken()));
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.rawMessage).toBe("producer broke");
  });
});

describe("bidi streaming", () => {
  it("interleaves requests and responses", async () => {
    // Each request is sent only after the previous answer arrived: proves real interleaving.
    let answered: (() => void) | undefined;
    async function* requests(): AsyncIterable<Req> {
      for (let i = 0; i < 5; i++) {
        yield { text: `m${i}`, n: i };
        await new Promise<void>((resolve) => (answered = resolve));
      }
    }
    const out: Res[] = [];
    let seen: Record<string, string> | undefined;
    for await (const r of h.client.bidiStream(M.chat, requests(), {
      onResponseMetadata: (md) => (seen = md),
    })) {
      out.push(r);
      answered?.();
    }
    expect(out.map((r) => r.text)).toEqual(["re: m0", "re: m1", "re: m2", "re: m3", "re: m4"]);
    expect(seen?.["x-chat"]).toBe("done");
  });

  it("carries a handler's StatusError and trailers mid-stream", async () => {
    const out: Res[] = [];
    const err = await statusOf(
      (async () => {
        for await (const r of h.client.bidiStream(
          M.chat,
          fromArray<Req>([
            { text: "a", n: 1 },
            { text: "boom", n: 2 },
            { text: "c", n: 3 },
          ]),
        ))
          out.push(r);
      })(),
    );
    expect(out.map((r) => r.text)).toEqual(["re: a"]);
    expect(err.code).toBe(Code.ABORTED);
    expect(err.rawMessage).toBe("chat aborted");
    expect(err.metadata["x-last"]).toBe("2");
  });

  it("carries many messages both ways", async () => {
    const reqs = Array.from({ length: 1000 }, (_, i) => ({ text: String(i), n: i }));
    const out = await collect(h.client.bidiStream(M.chat, fromArray(reqs)));
    expect(out.length).toBe(1000);
    expect(out[999]?.text).toBe("re: 999");
  });
});
