// Faults through a TCP proxy: connections cut mid-burst, a broker that refuses for a while.
// Nothing accepted by publish() may vanish: each message is confirmed (and then consumable) or
// reported to its caller.
import { describe, expect, it } from "vitest";
import { AmqpConnection, EventConsumer, EventPublisher, Publisher } from "@grabbit/runtime/amqp";
import { StatusError } from "@grabbit/runtime";
import { countdown, faultHarness, orderEvent } from "./fixtures.js";

const { janitor, closers, proxied } = faultHarness("grabbit-fault-test", {
  initialDelayMs: 10,
  maxDelayMs: 100,
});

describe("faults", () => {
  it("a connection cut mid-burst loses nothing: every message is confirmed and consumed, or reported", async () => {
    const { proxy, conn } = await proxied();
    const q = janitor.queue("burst");
    const ch = await janitor.channel();
    await ch.assertQueue(q, { durable: true });
    const p = new Publisher(conn, { maxInFlight: 500, timeoutMs: 60_000 });
    closers.push(() => p.close());
    const total = 3000;
    let confirmed = 0;
    let failed = 0;
    const confirmedIds = new Set<string>();
    const cutAt = 400;
    const results = Array.from({ length: total }, (_, i) => {
      const id = `m-${i}`;
      return p.publish("", q, Buffer.from(id), { messageId: id, deliveryMode: 2 }).then(
        () => {
          confirmed++;
          confirmedIds.add(id);
          // Cut while most of the burst is still in flight or queued.
          if (confirmed === cutAt) proxy.cutAll();
        },
        (err) => {
          expect(err).toBeInstanceOf(StatusError);
          failed++;
        },
      );
    });
    await Promise.all(results);
    expect(confirmed + failed).toBe(total);
    // The cut really hit unconfirmed messages, and they were sent again.
    expect(p.stats.resent).toBeGreaterThan(0);
    const seen = new Set((await janitor.drain(q)).map((m) => m.properties.messageId as string));
    for (const id of confirmedIds) expect(seen.has(id)).toBe(true);
    // With a minute to spare and a proxy that lets us back in, nothing should even have failed.
    expect(failed).toBe(0);
  });

  it("a consumer resumes after the broker refused connections for a while, and keeps its retries", async () => {
    const { proxy, conn } = await proxied();
    const direct = await AmqpConnection.connect({ name: "grabbit-fault-publisher" });
    closers.push(() => direct.close());
    const exchange = janitor.exchange("resume");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("resume", [50]);
    const got: string[] = [];
    const first = countdown(1);
    const rest = countdown(2);
    const consumer = new EventConsumer(conn, {
      queue,
      queueType: "quorum",
      retry: { delaysMs: [50] },
    });
    closers.push(() => consumer.close());
    await consumer
      .on(event, (o, d) => {
        if (o.id === "c" && d.attempt === 1) throw new Error("fail once");
        // At-least-once: "a" may come again if the cut beat its ack; count each event once.
        if (got.includes(`${o.id}@${d.attempt}`)) return;
        got.push(`${o.id}@${d.attempt}`);
        if (o.id === "a") first.hit();
        else rest.hit();
      })
      .start();
    const pub = new EventPublisher(direct, event);
    closers.push(() => pub.close());
    await pub.publish({ id: "a", region: "eu", amount: 0 });
    await first.done;

    let failures = 0;
    const refusedTwice = new Promise<void>((resolve) =>
      conn.on("reconnecting", () => {
        if (++failures === 3) resolve();
      }),
    );
    proxy.refuse(true);
    proxy.cutAll();
    // Published while the consumer is away: it must get them once it is back.
    await pub.publish({ id: "b", region: "eu", amount: 0 });
    await pub.publish({ id: "c", region: "eu", amount: 0 });
    await refusedTwice;
    expect(conn.connected).toBe(false);
    proxy.refuse(false);
    await rest.done;
    expect(got.sort()).toEqual(["a@1", "b@1", "c@2"].sort());
    expect(await janitor.messageCount(`${queue}.dlq`)).toBe(0);
  });

  it("publisher and consumer on a connection cut repeatedly: every event is handled at least once", async () => {
    const { proxy, conn } = await proxied();
    const exchange = janitor.exchange("churn");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("churn", [50]);
    const total = 500;
    const handled = new Set<string>();
    const all = countdown(total);
    const errors: Error[] = [];
    const consumer = new EventConsumer(conn, {
      queue,
      queueType: "classic",
      prefetch: 20,
      retry: { delaysMs: [50] },
      onError: (e) => errors.push(e),
    });
    closers.push(() => consumer.close());
    await consumer
      .on(event, (o) => {
        if (!handled.has(o.id)) {
          handled.add(o.id);
          all.hit();
          if (handled.size === 100 || handled.size === 300) proxy.cutAll();
        }
      })
      .start();
    const pub = new EventPublisher(conn, event, { timeoutMs: 60_000 });
    closers.push(() => pub.close());
    const outcomes = await Promise.allSettled(
      Array.from({ length: total }, (_, i) =>
        pub.publish({ id: String(i), region: "eu", amount: i }),
      ),
    );
    const rejected = outcomes.filter((o) => o.status === "rejected").length;
    expect(rejected).toBe(0);
    await all.done;
    expect(handled.size).toBe(total);
    // Lost connections are routine: they must not surface as consumer errors.
    expect(errors).toEqual([]);
  });

  it("a broker that stays down: every accepted message is confirmed before the cut or rejected UNAVAILABLE", async () => {
    const { proxy, conn } = await proxied();
    const q = janitor.queue("outage");
    const ch = await janitor.channel();
    await ch.assertQueue(q, { durable: true });
    const p = new Publisher(conn, { maxInFlight: 300, timeoutMs: 4000 });
    closers.push(() => p.close());
    const total = 1500;
    const confirmedIds: string[] = [];
    const codes = new Map<number, number>();
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        p.publish("", q, Buffer.from(String(i)), { messageId: `o-${i}` }).then(
          () => {
            confirmedIds.push(`o-${i}`);
            if (confirmedIds.length === 200) {
              proxy.refuse(true);
              proxy.cutAll();
            }
          },
          (err: StatusError) => codes.set(err.code, (codes.get(err.code) ?? 0) + 1),
        ),
      ),
    );
    const rejected = [...codes.values()].reduce((a, b) => a + b, 0);
    expect(confirmedIds.length + rejected).toBe(total);
    expect(rejected).toBeGreaterThan(0);
    expect([...codes.keys()]).toEqual([14]); // UNAVAILABLE only
    const inQueue = new Set((await janitor.drain(q)).map((m) => m.properties.messageId as string));
    for (const id of confirmedIds) expect(inQueue.has(id)).toBe(true);
    expect(p.pending).toBe(0);
  });
});
