// Consumer semantics: acks, retries through TTL queues, dead-lettering with reasons, concurrency,
// queue types and shutdown.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  type EventConsumerOptions,
} from "@grabbit/runtime/amqp";
import { Code, StatusError } from "@grabbit/runtime";
import {
  Janitor,
  OrderCancelled,
  UNDECODABLE,
  countdown,
  deferred,
  orderEvent,
} from "./fixtures.js";

let conn: AmqpConnection;
const janitor = new Janitor();
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ name: "grabbit-consumer-test" });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await janitor.cleanup();
});
afterAll(async () => {
  await conn.close();
});

const DELAYS = [50, 100];

/** A few broker round trips (no timers): time enough for a stop() that did not wait to have finished. */
async function roundTrips(queue: string): Promise<void> {
  const ch = await janitor.channel();
  for (let i = 0; i < 3; i++) await ch.checkQueue(queue);
  await ch.close();
}

function setup(opts: Partial<EventConsumerOptions> = {}) {
  const exchange = janitor.exchange("c");
  const event = orderEvent(exchange, "topic", "order.{region}");
  const queue = janitor.queue("c", opts.retry?.delaysMs ?? DELAYS);
  const consumer = new EventConsumer(conn, {
    queue,
    queueType: "classic",
    retry: { delaysMs: DELAYS, maxAttempts: 3 },
    ...opts,
  });
  const pub = new EventPublisher(conn, event);
  closers.push(
    () => pub.close(),
    () => consumer.close(),
  );
  return { exchange, event, queue, consumer, pub };
}

describe("EventConsumer", () => {
  it("keeps the deprecated stop() as an alias of close(): both names settle one shutdown", async () => {
    const { event, consumer } = setup();
    await consumer.on(event, () => {}).start();
    const closing = consumer.close();
    expect(consumer.stop()).toBe(closing);
    await closing;
  });

  it("retries a failing handler through the retry queue with the attempt counted, then acks", async () => {
    const { event, queue, consumer, pub } = setup();
    const attempts: number[] = [];
    const done = countdown(3);
    let routingKeys: string[] = [];
    await consumer
      .on(event, (_o, d) => {
        attempts.push(d.attempt);
        routingKeys.push(`${d.exchange}/${d.routingKey}`);
        done.hit();
        if (d.attempt < 3) throw new Error("transient");
      })
      .start();
    await pub.publish({ id: "1", region: "eu", amount: 1 });
    await done.done;
    await consumer.close();
    expect(attempts).toEqual([1, 2, 3]);
    // Retried deliveries still report where the event was published.
    expect(new Set(routingKeys)).toEqual(new Set([`${event.exchange}/order.eu`]));
    expect(await janitor.messageCount(queue)).toBe(0);
    expect(await janitor.messageCount(`${queue}.dlq`)).toBe(0);
  });

  it("dead-letters after maxAttempts, keeping body, properties and headers plus the reason", async () => {
    const { event, queue, consumer, pub } = setup();
    let calls = 0;
    await consumer
      .on(event, () => {
        calls++;
        throw new Error("database is down");
      })
      .start();
    await pub.publish(
      { id: "42", region: "eu", amount: 9 },
      { messageId: "m-42", metadata: { traceparent: "tp" } },
    );
    const dead = await janitor.next(`${queue}.dlq`);
    expect(calls).toBe(3);
    expect(event.type.decode(dead.content)).toEqual({ id: "42", region: "eu", amount: 9 });
    expect(dead.properties.messageId).toBe("m-42");
    expect(dead.properties.type).toBe("test.v1.OrderCreated");
    expect(dead.properties.contentType).toBe("application/x-protobuf");
    expect(dead.properties.deliveryMode).toBe(2);
    const h = dead.properties.headers!;
    expect(h["traceparent"]).toBe("tp");
    expect(String(h["x-grabbit-error"])).toContain("database is down");
    expect(Number(h["x-grabbit-attempts"])).toBe(3);
    expect(String(h["x-grabbit-original-exchange"])).toBe(event.exchange);
    expect(String(h["x-grabbit-original-routing-key"])).toBe("order.eu");
    expect(h["x-death"]).toBeUndefined();
  });

  it("the last delay repeats when attempts outnumber delays", async () => {
    const { event, queue, consumer, pub } = setup({ retry: { delaysMs: [30], maxAttempts: 4 } });
    const attempts: number[] = [];
    await consumer
      .on(event, (_o, d) => {
        attempts.push(d.attempt);
        throw new Error("nope");
      })
      .start();
    await pub.publish({ id: "1", region: "eu", amount: 0 });
    const dead = await janitor.next(`${queue}.dlq`);
    expect(attempts).toEqual([1, 2, 3, 4]);
    expect(Number(dead.properties.headers!["x-grabbit-attempts"])).toBe(4);
  });

  it("INVALID_ARGUMENT and FAILED_PRECONDITION are permanent: straight to the DLQ", async () => {
    const { event, queue, consumer, pub } = setup();
    let calls = 0;
    await consumer
      .on(event, (o) => {
        calls++;
        throw new StatusError(
          o.region === "a" ? Code.INVALID_ARGUMENT : Code.FAILED_PRECONDITION,
          `bad order ${o.id}`,
        );
      })
      .start();
    await pub.publish({ id: "1", region: "a", amount: 0 });
    const first = await janitor.next(`${queue}.dlq`);
    await pub.publish({ id: "2", region: "b", amount: 0 });
    const second = await janitor.next(`${queue}.dlq`);
    expect(calls).toBe(2);
    expect(String(first.properties.headers!["x-grabbit-error"])).toContain("bad order 1");
    expect(Number(first.properties.headers!["x-grabbit-attempts"])).toBe(1);
    expect(String(second.properties.headers!["x-grabbit-error"])).toContain("bad order 2");
  });

  it("poison messages go to the DLQ with the reason without calling a handler", async () => {
    const { event, queue, consumer, exchange } = setup();
    let calls = 0;
    await consumer.on(event, () => void calls++).start();
    const ch = await janitor.channel();
    const base = {
      contentType: "application/x-protobuf",
      type: "test.v1.OrderCreated",
      messageId: "poison",
    };
    ch.publish(exchange, "order.x", UNDECODABLE, base);
    const undecodable = await janitor.next(`${queue}.dlq`);
    ch.publish(
      exchange,
      "order.x",
      Buffer.from(event.type.encode({ id: "1", region: "", amount: 0 })),
      { ...base, type: "test.v1.Unknown" },
    );
    const unknownType = await janitor.next(`${queue}.dlq`);
    ch.publish(
      exchange,
      "order.x",
      Buffer.from(event.type.encode({ id: "1", region: "", amount: 0 })),
      { ...base, contentType: "application/json" },
    );
    const wrongContent = await janitor.next(`${queue}.dlq`);
    ch.publish(
      exchange,
      "order.x",
      Buffer.from(event.type.encode({ id: "1", region: "", amount: 0 })),
      { contentType: "application/x-protobuf" },
    );
    const noType = await janitor.next(`${queue}.dlq`);
    expect(calls).toBe(0);
    expect(String(undecodable.properties.headers!["x-grabbit-error"])).toMatch(
      /cannot decode test\.v1\.OrderCreated/,
    );
    expect(undecodable.content.equals(UNDECODABLE)).toBe(true);
    expect(String(unknownType.properties.headers!["x-grabbit-error"])).toMatch(
      /no handler for message type test\.v1\.Unknown/,
    );
    expect(String(wrongContent.properties.headers!["x-grabbit-error"])).toMatch(
      /unsupported content_type "application\/json"/,
    );
    expect(String(noType.properties.headers!["x-grabbit-error"])).toMatch(/no type/);
    expect(String(noType.properties.headers!["x-grabbit-original-routing-key"])).toBe("order.x");
    expect(await janitor.messageCount(queue)).toBe(0);
  });

  it("a known type registered on another queue is still a wrong type here", async () => {
    const { event, queue, consumer, exchange } = setup();
    await consumer.on(event, () => {}).start();
    const other = new EventPublisher(
      conn,
      orderEvent(exchange, "topic", "order.{region}", OrderCancelled),
    );
    closers.push(() => other.close());
    await other.publish({ id: "1", region: "eu", amount: 0 });
    const dead = await janitor.next(`${queue}.dlq`);
    expect(String(dead.properties.headers!["x-grabbit-error"])).toContain("test.v1.OrderCancelled");
  });

  it("never runs more handlers at once than `concurrency`, and reaches it", async () => {
    const { event, consumer, pub } = setup({ prefetch: 10, concurrency: 3 });
    let running = 0;
    let max = 0;
    const total = 30;
    const done = countdown(total);
    const threeRunning = deferred();
    const gate = deferred();
    await consumer
      .on(event, async () => {
        running++;
        max = Math.max(max, running);
        if (running === 3) threeRunning.resolve();
        await gate.promise;
        running--;
        done.hit();
      })
      .start();
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        pub.publish({ id: String(i), region: "eu", amount: i }),
      ),
    );
    await threeRunning.promise;
    gate.resolve();
    await done.done;
    expect(max).toBe(3);
  });

  it("stop() waits for in-flight handlers and their acks, and hands back unhandled what comes meanwhile", async () => {
    const { event, queue, consumer, pub } = setup();
    const started = deferred();
    const release = deferred();
    let finished = false;
    const handled: string[] = [];
    await consumer
      .on(event, async (order) => {
        handled.push(order.id);
        started.resolve();
        await release.promise;
        finished = true;
      })
      .start();
    await pub.publish({ id: "1", region: "eu", amount: 0 });
    await started.promise;
    let stopResolved = false;
    const stopped = consumer.close().then(() => {
      stopResolved = true;
      return finished;
    });
    // Published after stop(): delivered to the still-subscribed consumer or not, never handled.
    await pub.publish({ id: "2", region: "eu", amount: 0 });
    await roundTrips(queue);
    expect(stopResolved).toBe(false);
    release.resolve();
    expect(await stopped).toBe(true);
    expect(handled).toEqual(["1"]);
    // The first was acked; the second went back to the queue with the channel.
    expect(await janitor.messageCount(queue)).toBe(1);
  });

  it("connection.close() drains consumers first: an in-flight handler finishes and is acked", async () => {
    const own = await AmqpConnection.connect({ name: "grabbit-close-test" });
    const exchange = janitor.exchange("close");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("close", DELAYS);
    const consumer = new EventConsumer(own, {
      queue,
      queueType: "classic",
      retry: { delaysMs: DELAYS },
    });
    const started = deferred();
    const release = deferred();
    const events: string[] = [];
    await consumer
      .on(event, async () => {
        started.resolve();
        await release.promise;
        events.push("handler done");
      })
      .start();
    const pub = new EventPublisher(own, event);
    await pub.publish({ id: "1", region: "eu", amount: 0 });
    await started.promise;
    const closed = own.close().then(() => events.push("connection closed"));
    await roundTrips(queue);
    expect(events).toEqual([]);
    release.resolve();
    await closed;
    expect(events).toEqual(["handler done", "connection closed"]);
    expect(await janitor.messageCount(queue)).toBe(0);
    await expect(pub.publish({ id: "2", region: "eu", amount: 0 })).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
    });
  });

  it("queueType auto is quorum on this broker, and retry/DLQ queues share the type", async () => {
    for (const [requested, expected] of [
      ["auto", "quorum"],
      ["classic", "classic"],
      ["quorum", "quorum"],
    ] as const) {
      const { event, queue, consumer } = setup({ queueType: requested });
      await consumer.on(event, () => {}).start();
      expect(consumer.type).toBe(expected);
      // Re-declaring with the other type must fail if the queue really has the expected type.
      // Every other argument as declared, so the type is the only difference.
      const other =
        expected === "quorum" ? { "x-queue-type": "classic" } : { "x-queue-type": "quorum" };
      const strategy =
        expected === "quorum"
          ? { "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" }
          : {};
      const argsOf: Record<string, Record<string, unknown>> = {
        [queue]: {
          ...other,
          "x-dead-letter-exchange": "",
          "x-dead-letter-routing-key": `${queue}.dlq`,
        },
        [`${queue}.dlq`]: other,
        [`${queue}.retry.50`]: {
          ...other,
          "x-message-ttl": 50,
          "x-dead-letter-exchange": "",
          "x-dead-letter-routing-key": queue,
          ...strategy,
        },
      };
      for (const [q, args] of Object.entries(argsOf)) {
        const ch = await janitor.channel();
        const err = await ch
          .assertQueue(q, { durable: true, arguments: args })
          .catch((e: Error) => e);
        expect(String(err)).toMatch(/inequivalent arg 'x-queue-type'/);
      }
      await consumer.close();
    }
  });

  it("quorum queues retry and dead-letter too", async () => {
    const { event, queue, consumer, pub } = setup({ queueType: "quorum" });
    const attempts: number[] = [];
    await consumer
      .on(event, (_o, d) => {
        attempts.push(d.attempt);
        throw new Error("always");
      })
      .start();
    await pub.publish({ id: "q", region: "eu", amount: 0 });
    const dead = await janitor.next(`${queue}.dlq`);
    expect(attempts).toEqual([1, 2, 3]);
    expect(Number(dead.properties.headers!["x-grabbit-attempts"])).toBe(3);
  });

  it("start() rejects FAILED_PRECONDITION when the queue exists with another type, and can be retried", async () => {
    const { event, queue, consumer } = setup({ queueType: "quorum" });
    const ch = await janitor.channel();
    await ch.assertQueue(queue, { durable: true });
    const errors: Error[] = [];
    conn.on("error", (e) => errors.push(e));
    await expect(consumer.on(event, () => {}).start()).rejects.toMatchObject({
      code: Code.FAILED_PRECONDITION,
    });
    conn.removeAllListeners("error");
    expect(conn.connected).toBe(true);
    await ch.deleteQueue(queue);
    await consumer.start();
    expect(consumer.type).toBe("quorum");
  });

  it("re-subscribes when the broker cancels the consumer (queue deleted under it)", async () => {
    const { event, queue, consumer, pub } = setup();
    const got: string[] = [];
    const done = countdown(1);
    await consumer
      .on(event, (o) => {
        got.push(o.id);
        done.hit();
      })
      .start();
    const ch = await janitor.channel();
    await ch.deleteQueue(queue);
    // Wait (by broker round trips) until the consumer has declared its queue again and subscribed.
    for (;;) {
      const probe = await janitor.channel();
      const q = await probe.checkQueue(queue).catch(() => undefined);
      await probe.close().catch(() => {});
      if (q && q.consumerCount > 0) break;
    }
    await pub.publish({ id: "after", region: "eu", amount: 0 });
    await done.done;
    expect(got).toEqual(["after"]);
  });

  it("the work queue dead-letters to the DLQ: rejected messages and those past the delivery limit are kept", async () => {
    const { event, queue, consumer, pub } = setup({ queueType: "quorum", deliveryLimit: 2 });
    await consumer.on(event, () => {}).start();
    await consumer.close();
    const ch = await janitor.channel();
    // Rejected without requeue by some other client: kept.
    await pub.publish({ id: "rejected", region: "eu", amount: 0 });
    const m1 = await ch.get(queue);
    expect(m1).not.toBe(false);
    ch.nack(m1 as never, false, false);
    const d1 = await janitor.next(`${queue}.dlq`);
    expect(event.type.decode(d1.content).id).toBe("rejected");
    expect(d1.properties.headers!["x-death"]?.[0]?.reason).toBe("rejected");
    // Returned to the queue on every delivery (as a crashing consumer would): dead-lettered at the limit.
    await pub.publish({ id: "crashy", region: "eu", amount: 0 });
    for (;;) {
      const m = await ch.get(queue);
      if (m === false) break;
      ch.nack(m, false, true);
    }
    const d2 = await janitor.next(`${queue}.dlq`);
    expect(event.type.decode(d2.content).id).toBe("crashy");
  });
});
