// The low-level confirmed Publisher: confirms, returns, the in-flight window, back-pressure,
// timeouts and cancellation.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AmqpConnection, Publisher } from "@grabbit/runtime/amqp";
import { Code, StatusError, UnroutableError } from "@grabbit/runtime";
import { brokerProxy } from "../support/tcp-proxy.js";
import { Janitor } from "./fixtures.js";

let conn: AmqpConnection;
const janitor = new Janitor();
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ name: "grabbit-publisher-test" });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await janitor.cleanup();
});
afterAll(async () => {
  await conn.close();
});

async function queue(prefix: string): Promise<string> {
  const q = janitor.queue(prefix);
  const ch = await janitor.channel();
  await ch.assertQueue(q, { durable: true });
  await ch.close();
  return q;
}

function publisher(options?: ConstructorParameters<typeof Publisher>[1], on = conn): Publisher {
  const p = new Publisher(on, options);
  closers.push(() => p.close());
  return p;
}

describe("Publisher", () => {
  it("resolves on confirm and the message is in the queue", async () => {
    const q = await queue("p");
    const p = publisher();
    await p.publish("", q, new TextEncoder().encode("hello"), {
      messageId: "m1",
      headers: { a: "b" },
    });
    const [m] = await janitor.drain(q);
    expect(m!.content.toString()).toBe("hello");
    expect(m!.properties.messageId).toBe("m1");
    expect(m!.properties.headers).toMatchObject({ a: "b" });
  });

  it("rejects a mandatory message nobody receives with UnroutableError, but not a non-mandatory one", async () => {
    const p = publisher();
    const err = await p
      .publish("", "grabbit-no-such-queue-x", new Uint8Array([1]), {})
      .catch((e) => e);
    expect(err).toBeInstanceOf(UnroutableError);
    expect(err).toBeInstanceOf(StatusError);
    expect(err.routingKey).toBe("grabbit-no-such-queue-x");
    await expect(
      p.publish("", "grabbit-no-such-queue-x", new Uint8Array([1]), {}, { mandatory: false }),
    ).resolves.toBeUndefined();
    // Only the returned one failed: interleaved routable messages still resolve.
    const q = await queue("mixed");
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        p.publish("", i % 2 ? q : "grabbit-no-such-queue-x", new Uint8Array([i]), {
          messageId: "same-id",
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? "fulfilled" : "rejected")),
    );
    expect(await janitor.messageCount(q)).toBe(10);
  });

  it("never holds more than maxInFlight messages in the window; the rest wait their turn", async () => {
    const q = await queue("window");
    const p = publisher({ maxInFlight: 4 });
    let maxSeen = 0;
    const all: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      all.push(p.publish("", q, new Uint8Array([i])));
      maxSeen = Math.max(maxSeen, p.inWindow);
      expect(p.pending).toBe(all.length); // nothing settles synchronously
    }
    expect(p.inWindow).toBe(4);
    expect(p.pending).toBe(200);
    await Promise.all(all);
    expect(maxSeen).toBe(4);
    expect(p.pending).toBe(0);
    expect(await janitor.messageCount(q)).toBe(200);
  });

  it("bounds the window by bytes too; a message larger than the bound goes alone", async () => {
    const q = await queue("window-bytes");
    const p = publisher({ maxInFlight: 1000, maxInFlightBytes: 2500 });
    let maxSeen = 0;
    const all: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      all.push(p.publish("", q, new Uint8Array(1000).fill(i)));
      maxSeen = Math.max(maxSeen, p.inWindow);
    }
    // Two 1000-byte bodies fit in 2500 bytes, a third does not.
    expect(p.inWindow).toBe(2);
    const big = p.publish("", q, new Uint8Array(10_000));
    await Promise.all(all);
    expect(maxSeen).toBe(2);
    await big;
    expect(await janitor.messageCount(q)).toBe(51);
  });

  it("waits for 'drain' when the channel buffer is full and still delivers everything", async () => {
    const q = await queue("drain");
    const p = publisher({ maxInFlight: 5000 });
    // One small message is one buffered frame; amqplib's channel buffer says stop at 1024.
    const body = new Uint8Array(64).fill(7);
    const n = 3000;
    await Promise.all(Array.from({ length: n }, () => p.publish("", q, body, { deliveryMode: 1 })));
    expect(p.stats.drainWaits).toBeGreaterThan(0);
    expect(p.stats.published).toBe(n);
    expect(await janitor.messageCount(q)).toBe(n);
  });

  it("while disconnected, publish waits for a session and fails UNAVAILABLE when its timeout passes", async () => {
    const proxy = await brokerProxy();
    closers.push(() => proxy.stop());
    const own = await AmqpConnection.connect({
      urls: proxy.url,
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    closers.push(() => own.close());
    const q = await queue("down");
    const p = publisher({}, own);
    await p.publish("", q, new Uint8Array([0]));
    const lost = new Promise((r) => own.once("disconnected", r));
    proxy.refuse(true);
    proxy.cutAll();
    await lost;
    const err = await p.publish("", q, new Uint8Array([1]), {}, { timeoutMs: 100 }).catch((e) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect(err.code).toBe(Code.UNAVAILABLE);
    // Mixed timeouts expire in deadline order, whatever the order they were published in.
    const order: number[] = [];
    await Promise.all(
      [300, 100, 200, 100].map((t, i) =>
        p.publish("", q, new Uint8Array([10 + i]), {}, { timeoutMs: t }).catch(() => order.push(t)),
      ),
    );
    expect(order).toEqual([100, 100, 200, 300]);
    // A publish with time to spare goes through once the broker is back.
    const later = p.publish("", q, new Uint8Array([2]), {}, { timeoutMs: 60_000 });
    proxy.refuse(false);
    await later;
    const bodies = (await janitor.drain(q)).map((m) => m.content[0]);
    expect(bodies).toEqual([0, 2]);
  });

  it("an aborted publish rejects CANCELLED", async () => {
    const q = await queue("abort");
    const p = publisher({ maxInFlight: 1 });
    const ac = new AbortController();
    const first = p.publish("", q, new Uint8Array([1]));
    const second = p.publish("", q, new Uint8Array([2]), {}, { signal: ac.signal }); // waits for the window
    ac.abort();
    await expect(second).rejects.toMatchObject({ code: Code.CANCELLED });
    await first;
    expect((await janitor.drain(q)).map((m) => m.content[0])).toEqual([1]);
  });

  it("close() waits for outstanding confirms and refuses new messages", async () => {
    const q = await queue("closing");
    const p = new Publisher(conn);
    const sent = Array.from({ length: 100 }, (_, i) => p.publish("", q, new Uint8Array([i])));
    let settledBeforeClose = 0;
    for (const s of sent) void s.then(() => settledBeforeClose++);
    await p.close();
    expect(settledBeforeClose).toBe(100);
    await expect(p.publish("", q, new Uint8Array([0]))).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
    });
    expect(await janitor.messageCount(q)).toBe(100);
  });

  it("a message the broker refuses at channel level is rejected, not re-sent forever; the others still go", async () => {
    const q = await queue("forged");
    const p = publisher();
    const results = await Promise.allSettled([
      p.publish("", q, new Uint8Array([1])),
      p.publish("", q, new Uint8Array([2]), { userId: "someone-else" }),
      p.publish("", q, new Uint8Array([3])),
    ]);
    expect(results[1]).toMatchObject({
      status: "rejected",
      reason: { code: Code.PERMISSION_DENIED },
    });
    expect(results[0]!.status).toBe("fulfilled");
    expect(results[2]!.status).toBe("fulfilled");
    const bodies = (await janitor.drain(q)).map((m) => m.content[0]).sort();
    // At-least-once: a message in flight when the channel closed may have been stored and re-sent.
    expect(new Set(bodies)).toEqual(new Set([1, 3]));
  });
});
