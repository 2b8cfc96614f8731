// Publisher.publishMany (one promise per batch) and the delivery-tag ledger that matches confirms
// without a callback per message: a batch resolves once every message is confirmed, reports each
// failure by index, and survives a connection cut like single publishes do.
import { describe, expect, it } from "vitest";
import { Publisher, PublishManyError } from "@grabbit/runtime/amqp";
import { Code, UnroutableError } from "@grabbit/runtime";
import { ConfirmLedger } from "../../runtime/src/amqp/confirm-ledger.js";
import { faultHarness } from "./fixtures.js";

const { janitor, closers, proxied } = faultHarness("grabbit-publish-many-test", {
  initialDelayMs: 10,
  maxDelayMs: 100,
});

async function queue(prefix: string): Promise<string> {
  const q = janitor.queue(prefix);
  const ch = await janitor.channel();
  await ch.assertQueue(q, { durable: true });
  await ch.close();
  return q;
}

describe("ConfirmLedger", () => {
  it("finds items by delivery tag: single confirms in any order, multiple confirms up to a tag", () => {
    const ledger = new ConfirmLedger<string>();
    for (const x of ["a", "b", "c", "d", "e"]) ledger.add(x);
    const seen: string[] = [];
    ledger.confirm(3, false, (x) => seen.push(x));
    ledger.confirm(1, false, (x) => seen.push(x));
    ledger.confirm(3, false, (x) => seen.push(x)); // twice: ignored
    expect(seen).toEqual(["c", "a"]);
    expect([...ledger]).toEqual(["b", "d", "e"]);
    ledger.confirm(4, true, (x) => seen.push(x));
    expect(seen).toEqual(["c", "a", "b", "d"]);
    expect(ledger.size).toBe(1);
    ledger.add("f"); // tag 6
    ledger.confirm(99, false, (x) => seen.push(x)); // never written: ignored
    ledger.confirm(6, false, (x) => seen.push(x));
    expect(ledger.drain()).toEqual(["e"]);
    expect(seen.slice(4)).toEqual(["f"]);
    expect(ledger.size).toBe(0);
  });
});

describe("Publisher.publishMany", () => {
  it("resolves once every message of the batch is confirmed; they arrive in order with their own message ids", async () => {
    const q = await queue("many");
    const { conn } = await proxied();
    const p = new Publisher(conn, { maxInFlight: 100 });
    closers.push(() => p.close());
    const n = 1000;
    await p.publishMany(
      Array.from({ length: n }, (_, i) => ({
        exchange: "",
        routingKey: q,
        content: Buffer.from(`m-${i}`),
        properties: i === 0 ? { messageId: "first" } : {},
      })),
    );
    expect(p.pending).toBe(0);
    const got = await janitor.drain(q);
    expect(got.map((m) => m.content.toString())).toEqual(
      Array.from({ length: n }, (_, i) => `m-${i}`),
    );
    expect(got[0]!.properties.messageId).toBe("first");
    expect(new Set(got.map((m) => m.properties.messageId)).size).toBe(n);
    await expect(p.publishMany([])).resolves.toBeUndefined();
  });

  it("rejects with every failure by index after the whole batch settled; the rest are delivered", async () => {
    const q = await queue("partial");
    const { conn } = await proxied();
    const p = new Publisher(conn);
    closers.push(() => p.close());
    const messages = Array.from({ length: 10 }, (_, i) => ({
      exchange: "",
      routingKey: i % 3 === 1 ? "grabbit-no-such-queue-many" : q,
      content: new Uint8Array([i]),
    }));
    const err = await p.publishMany(messages).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishManyError);
    const e = err as PublishManyError;
    expect(e.failed).toBe(3);
    expect(e.errors).toHaveLength(10);
    e.errors.forEach((x, i) => {
      if (i % 3 === 1) expect(x).toBeInstanceOf(UnroutableError);
      else expect(x).toBeUndefined();
    });
    expect(p.pending).toBe(0);
    expect((await janitor.drain(q)).map((m) => m.content[0])).toEqual([0, 2, 3, 5, 6, 8, 9]);
    // Refused before anything is queued: an oversized body, a closed publisher.
    const small = new Publisher(conn, { maxMessageBytes: 4 });
    await expect(
      small.publishMany([
        { exchange: "", routingKey: q, content: new Uint8Array(1) },
        { exchange: "", routingKey: q, content: new Uint8Array(5) },
      ]),
    ).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
    await small.close();
    await expect(
      small.publishMany([{ exchange: "", routingKey: q, content: new Uint8Array(1) }]),
    ).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(await janitor.messageCount(q)).toBe(0);
  });

  it("a connection cut mid-batch loses nothing: the unconfirmed messages are sent again and the batch resolves", async () => {
    const q = await queue("cut");
    const { proxy, conn } = await proxied();
    const p = new Publisher(conn, { maxInFlight: 500, timeoutMs: 60_000 });
    closers.push(() => p.close());
    const total = 3000;
    const cutAfter = 400;
    // Cut once the first messages are confirmed, while most of the batch is in flight or queued.
    const watch = setInterval(() => {
      if (p.pending <= total - cutAfter) {
        clearInterval(watch);
        proxy.cutAll();
      }
    }, 1);
    closers.push(async () => clearInterval(watch));
    await p.publishMany(
      Array.from({ length: total }, (_, i) => ({
        exchange: "",
        routingKey: q,
        content: Buffer.from(`m-${i}`),
        properties: { messageId: `m-${i}`, deliveryMode: 2 },
      })),
    );
    expect(p.stats.resent).toBeGreaterThan(0);
    const seen = new Set((await janitor.drain(q)).map((m) => m.properties.messageId as string));
    for (let i = 0; i < total; i++) expect(seen.has(`m-${i}`)).toBe(true);
  });
});
