// Streaming calls over RabbitMQ (docs/wire-contract.md, "Streams"): each kind end to end on the real
// broker, flow control, headers and trailers, deadlines and cancellation from either side, and a
// peer that vanishes. Hand-written descriptors; the generated-code round trip is in test/streams.
import { describe, expect, it } from "vitest";
import { Code, StatusError, currentCallContext, type HandlerContext } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";
import { brokerProxy } from "../support/tcp-proxy.js";
import { rpcTestBed, sleep, streamService, type Echo } from "./fixture.js";

const bed = rpcTestBed("streams-test");
const { queues, closables } = bed;

async function serve(handlers: object, options: Parameters<typeof serveAmqp>[3] = {}) {
  const service = streamService();
  queues.push(service.amqp!.requestQueue);
  const server = await serveAmqp(bed.serverConn, service, handlers, options);
  closables.push(server);
  return { service, server };
}

function client(options: ConstructorParameters<typeof AmqpRpcTransport>[1] = {}) {
  const transport = new AmqpRpcTransport(bed.clientConn, options);
  closables.push(transport);
  return transport;
}

/** Retries `assertion` until it holds (bounds how long a test waits; never a timing assertion). */
async function settles(assertion: () => void, limitMs = 10_000): Promise<void> {
  const until = Date.now() + limitMs;
  for (;;) {
    try {
      assertion();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await sleep(20);
    }
  }
}

async function* texts(items: string[], gapMs = 0): AsyncGenerator<Echo> {
  for (const text of items) {
    if (gapMs) await sleep(gapMs);
    yield { text, delayMs: 0 };
  }
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const handlers = {
  async *count(req: Echo, ctx: HandlerContext) {
    for (let i = 1; i <= req.delayMs; i++) yield { text: `${req.text}${i}`, delayMs: i };
    ctx.responseMetadata["x-total"] = String(req.delayMs);
  },
  async sum(requests: AsyncIterable<Echo>, ctx: HandlerContext) {
    let total = 0;
    const seen: string[] = [];
    for await (const r of requests) {
      total += r.delayMs;
      seen.push(r.text);
    }
    ctx.responseMetadata["x-count"] = String(seen.length);
    return { text: seen.join(","), delayMs: total };
  },
  async *chat(requests: AsyncIterable<Echo>) {
    for await (const r of requests) yield { text: r.text.toUpperCase(), delayMs: r.delayMs };
  },
  echo(req: Echo) {
    return req;
  },
};

describe("every call kind over RabbitMQ", () => {
  it("server streaming: every message in order, then the trailers", async () => {
    const { service } = await serve(handlers);
    const t = client();
    let trailers: Record<string, string> | undefined;
    const out = await collect(
      t.serverStream(
        service.methods.count,
        { text: "n", delayMs: 500 },
        { onTrailers: (m) => (trailers = m) },
      ),
    );
    expect(out.map((m) => m.delayMs)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(out[499]!.text).toBe("n500");
    expect(trailers).toMatchObject({ "x-total": "500" });
  });

  it("client streaming: all requests reach the handler, one response comes back", async () => {
    const { service } = await serve(handlers);
    const t = client();
    const items = Array.from({ length: 300 }, (_, i) => ({ text: String(i), delayMs: i }));
    let trailers: Record<string, string> | undefined;
    const res = await t.clientStream(
      service.methods.sum,
      (async function* () {
        yield* items;
      })(),
      { onTrailers: (m) => (trailers = m) },
    );
    expect(res.delayMs).toBe((299 * 300) / 2);
    expect(res.text.split(",")).toEqual(items.map((i) => i.text));
    expect(trailers).toMatchObject({ "x-count": "300" });
  });

  it("bidi: responses interleave with requests, in order", async () => {
    const { service } = await serve(handlers);
    const t = client();
    const out = await collect(t.bidiStream(service.methods.chat, texts(["a", "b", "c", "d"], 5)));
    expect(out.map((m) => m.text)).toEqual(["A", "B", "C", "D"]);
  });

  it("unary still works beside streams on one server", async () => {
    const { service } = await serve(handlers);
    const t = client();
    await expect(t.unary(service.methods.echo, { text: "hi", delayMs: 0 })).resolves.toEqual({
      text: "hi",
      delayMs: 0,
    });
  });

  it("headers: sendHeaders arrives before the first message; responseHeaders go with the first message", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { service } = await serve({
      async *count(req: Echo, ctx: HandlerContext) {
        ctx.sendHeaders({ "x-early": "yes" });
        expect(() => ctx.sendHeaders()).toThrow(/already sent/);
        await gate;
        yield req;
      },
      async *chat(requests: AsyncIterable<Echo>, ctx: HandlerContext) {
        ctx.responseHeaders["x-lazy"] = "1";
        for await (const r of requests) yield r;
      },
    });
    const t = client();
    let headers: Record<string, string> | undefined;
    const it = t
      .serverStream(
        service.methods.count,
        { text: "x", delayMs: 0 },
        { onHeaders: (m) => (headers = m) },
      )
      [Symbol.asyncIterator]();
    const first = it.next();
    await settles(() => expect(headers).toEqual({ "x-early": "yes" }));
    release();
    await expect(first).resolves.toMatchObject({ value: { text: "x" } });
    let lazy: Record<string, string> | undefined;
    await collect(
      t.bidiStream(service.methods.chat, texts(["q"]), { onHeaders: (m) => (lazy = m) }),
    );
    expect(lazy).toEqual({ "x-lazy": "1" });
  });

  it("an error from the handler mid-stream ends it with that status after the messages sent", async () => {
    const { service } = await serve({
      async *count() {
        yield { text: "1", delayMs: 0 };
        throw new StatusError(Code.FAILED_PRECONDITION, "no more", {
          metadata: { "x-why": "test" },
        });
      },
    });
    const t = client();
    const got: Echo[] = [];
    let trailers: Record<string, string> | undefined;
    const err = await (async () => {
      try {
        for await (const m of t.serverStream(
          service.methods.count,
          { text: "", delayMs: 0 },
          { onTrailers: (m) => (trailers = m) },
        ))
          got.push(m);
      } catch (e) {
        return e;
      }
    })();
    expect(got).toHaveLength(1);
    expect(err).toMatchObject({
      code: Code.FAILED_PRECONDITION,
      message: expect.stringContaining("no more"),
    });
    expect(trailers).toMatchObject({ "x-why": "test" });
  });

  it("a missing streaming method answers UNIMPLEMENTED", async () => {
    const { service } = await serve({ echo: handlers.echo });
    const t = client();
    await expect(
      collect(t.serverStream(service.methods.count, { text: "", delayMs: 1 })),
    ).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
  });
});

describe("flow control", () => {
  it("a reader that does not read holds the server to its window", async () => {
    let produced = 0;
    const { service } = await serve({
      async *count() {
        for (let i = 0; i < 10_000; i++) {
          produced++;
          yield { text: "x".repeat(100), delayMs: i };
        }
      },
    });
    const t = client({ streamWindow: 16 });
    const it = t
      .serverStream(service.methods.count, { text: "", delayMs: 0 })
      [Symbol.asyncIterator]();
    await it.next();
    await sleep(300);
    // The window, plus the message the generator made while waiting for credit.
    expect(produced).toBeLessThanOrEqual(16 + 2);
    for (let i = 0; i < 100; i++) await it.next();
    expect(produced).toBeLessThanOrEqual(101 + 16 + 2);
    await it.return!();
  });
});

describe("cancellation and deadlines", () => {
  it("the caller's abort mid-stream aborts the handler's signal", async () => {
    let aborted: unknown;
    const { service } = await serve({
      async *count(_req: Echo, ctx: HandlerContext) {
        ctx.signal.addEventListener("abort", () => (aborted = ctx.signal.reason));
        for (let i = 0; ; i++) {
          yield { text: "", delayMs: i };
          await sleep(10);
        }
      },
    });
    const t = client();
    const ac = new AbortController();
    const got: Echo[] = [];
    await expect(
      (async () => {
        for await (const m of t.serverStream(
          service.methods.count,
          { text: "", delayMs: 0 },
          { signal: ac.signal },
        )) {
          got.push(m);
          if (got.length === 3) ac.abort();
        }
      })(),
    ).rejects.toMatchObject({ code: Code.CANCELLED });
    await settles(() => expect(aborted).toMatchObject({ code: Code.CANCELLED }));
  });

  it("breaking out of the loop cancels the call on the server", async () => {
    let aborted = false;
    const { service } = await serve({
      async *count(_req: Echo, ctx: HandlerContext) {
        ctx.signal.addEventListener("abort", () => (aborted = true));
        for (let i = 0; ; i++) yield { text: "", delayMs: i };
      },
    });
    const t = client();
    for await (const m of t.serverStream(service.methods.count, { text: "", delayMs: 0 }))
      if (m.delayMs === 5) break;
    await settles(() => expect(aborted).toBe(true));
  });

  it("the server ends a client stream early: the client's sending stops", async () => {
    let pulled = 0;
    const { service } = await serve({
      async sum(requests: AsyncIterable<Echo>) {
        for await (const r of requests)
          if (r.delayMs === 3) throw new StatusError(Code.ABORTED, "enough");
        return { text: "", delayMs: 0 };
      },
    });
    const t = client();
    const endless = (async function* () {
      for (let i = 0; ; i++) {
        pulled++;
        yield { text: "", delayMs: i };
        await sleep(1);
      }
    })();
    await expect(t.clientStream(service.methods.sum, endless)).rejects.toMatchObject({
      code: Code.ABORTED,
    });
    const after = pulled;
    await sleep(100);
    expect(pulled - after).toBeLessThanOrEqual(1);
  });

  it("a deadline mid-stream ends the call DEADLINE_EXCEEDED on both sides", async () => {
    let aborted: unknown;
    const { service } = await serve({
      async *count(_req: Echo, ctx: HandlerContext) {
        ctx.signal.addEventListener("abort", () => (aborted = ctx.signal.reason));
        for (let i = 0; ; i++) {
          yield { text: "", delayMs: i };
          await sleep(20);
        }
      },
    });
    const t = client();
    const got: Echo[] = [];
    await expect(
      (async () => {
        for await (const m of t.serverStream(
          service.methods.count,
          { text: "", delayMs: 0 },
          { timeoutMs: 300 },
        ))
          got.push(m);
      })(),
    ).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(got.length).toBeGreaterThan(0);
    await settles(() => expect(aborted).toMatchObject({ code: Code.DEADLINE_EXCEEDED }));
  });

  it("a cancelled unary call aborts its handler on the server", async () => {
    let aborted: unknown;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const { service } = await serve({
      async echo(req: Echo, ctx: HandlerContext) {
        started();
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener("abort", () => {
            aborted = ctx.signal.reason;
            resolve();
          }),
        );
        return req;
      },
    });
    const t = client();
    const ac = new AbortController();
    const call = t.unary(
      service.methods.echo,
      { text: "", delayMs: 0 },
      { signal: ac.signal, timeoutMs: 60_000 },
    );
    await running;
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: Code.CANCELLED });
    await settles(() => expect(aborted).toMatchObject({ code: Code.CANCELLED }));
  });

  it("the handler's call context is current inside a streaming handler", async () => {
    const { service } = await serve({
      async *count(req: Echo) {
        yield { text: currentCallContext()?.metadata["x-who"] ?? "none", delayMs: 0 };
        yield req;
      },
    });
    const t = client();
    const out = await collect(
      t.serverStream(
        service.methods.count,
        { text: "r", delayMs: 0 },
        { metadata: { "x-who": "me" } },
      ),
    );
    expect(out[0]!.text).toBe("me");
  });
});

describe("a peer that vanishes", () => {
  it("the client's connection dies mid-stream: the server's handler is aborted", async () => {
    let aborted: unknown;
    const { service } = await serve({
      async *count(_req: Echo, ctx: HandlerContext) {
        ctx.signal.addEventListener("abort", () => (aborted = ctx.signal.reason));
        for (let i = 0; ; i++) {
          yield { text: "", delayMs: i };
          await sleep(5);
        }
      },
    });
    const conn = await AmqpConnection.connect({ urls: AMQP_URL, name: "streams-doomed-client" });
    const t = new AmqpRpcTransport(conn, { keepaliveMs: 200 });
    const it = t
      .serverStream(service.methods.count, { text: "", delayMs: 0 })
      [Symbol.asyncIterator]();
    await it.next();
    await conn.close();
    await settles(() => expect(aborted).toBeInstanceOf(StatusError), 5_000);
  });

  it("the server's connection dies mid-stream: the client gets UNAVAILABLE", async () => {
    const service = streamService();
    queues.push(service.amqp!.requestQueue);
    const proxy = await brokerProxy();
    const conn = await AmqpConnection.connect({ urls: proxy.url, name: "streams-doomed-server" });
    const server = await serveAmqp(
      conn,
      service,
      {
        async *count() {
          for (let i = 0; ; i++) {
            yield { text: "", delayMs: i };
            await sleep(5);
          }
        },
      },
      { closeTimeoutMs: 100 },
    );
    try {
      const t = client({ keepaliveMs: 200 });
      const it = t
        .serverStream(service.methods.count, { text: "", delayMs: 0 })
        [Symbol.asyncIterator]();
      await it.next();
      proxy.refuse(true);
      proxy.cutAll(); // as a server process killed: its socket closes, the broker drops its inbox
      await expect(
        (async () => {
          for (;;) {
            const r = await it.next();
            if (r.done) return "done";
          }
        })(),
      ).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    } finally {
      await server.close();
      await conn.close();
      await proxy.stop();
    }
  });
});

describe("a stream nobody serves", () => {
  it("fails UNAVAILABLE once the transport's timeout passes without a server accepting it, and outlives that timeout once accepted", async () => {
    const service = streamService();
    queues.push(service.amqp!.requestQueue);
    const ch = await bed.admin.createChannel();
    await ch.assertQueue(service.amqp!.requestQueue, { durable: true }); // a queue, no server
    await ch.close();
    const t = client({ timeoutMs: 300 });
    await expect(
      collect(t.serverStream(service.methods.count, { text: "", delayMs: 1 })),
    ).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      message: expect.stringContaining("no server accepted the stream"),
    });
    const served = await serve({
      async *count() {
        for (let i = 0; i < 5; i++) {
          await sleep(150);
          yield { text: "", delayMs: i };
        }
      },
    });
    const out = await collect(
      client({ timeoutMs: 300 }).serverStream(served.service.methods.count, {
        text: "",
        delayMs: 0,
      }),
    );
    expect(out).toHaveLength(5);
  });
});
