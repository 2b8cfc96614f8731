// Typed publish/consume round trips over every exchange kind, and the events wire contract.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  type DeliveryContext,
} from "@grabbit/runtime/amqp";
import { Code, UnroutableError } from "@grabbit/runtime";
import {
  Janitor,
  OrderCancelled,
  OrderCreated,
  countdown,
  orderEvent,
  type Order,
} from "./fixtures.js";

let conn: AmqpConnection;
const janitor = new Janitor();
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ name: "grabbit-events-test" });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await janitor.cleanup();
});
afterAll(async () => {
  await conn.close();
});

function consumer(
  queue: string,
  opts: Partial<ConstructorParameters<typeof EventConsumer>[1]> = {},
): EventConsumer {
  const c = new EventConsumer(conn, {
    queue,
    queueType: "classic",
    retry: { delaysMs: [50] },
    ...opts,
  });
  closers.push(() => c.close());
  return c;
}

function publisher(event: ReturnType<typeof orderEvent>): EventPublisher<Order> {
  const p = new EventPublisher(conn, event);
  closers.push(() => p.close());
  return p;
}

describe("events round trip", () => {
  it("topic: a filter binds only the matching routing keys, and the wire carries the contract", async () => {
    const exchange = janitor.exchange("topic");
    const event = orderEvent(exchange, "topic");
    const qEu = janitor.queue("eu", [50]);
    const qAll = janitor.queue("all", [50]);
    const eu: [Order, DeliveryContext][] = [];
    const all: Order[] = [];
    const euDone = countdown(2);
    const allDone = countdown(3);
    await consumer(qEu)
      .on(
        event,
        (o, d) => {
          eu.push([o, d]);
          euDone.hit();
        },
        { region: "eu.west" },
      )
      .start();
    await consumer(qAll)
      .on(event, (o) => {
        all.push(o);
        allDone.hit();
      })
      .start();
    const pub = publisher(event);
    await pub.publish(
      { id: "1", region: "eu.west", amount: 5 },
      {
        metadata: { traceparent: "00-abc-def-01", "x-grabbit-attempt": "9", "rpc-status": "7" },
        messageId: "fixed-id",
      },
    );
    await pub.publish({ id: "2", region: "us", amount: 6 });
    await pub.publish({ id: "3", region: "eu.west", amount: 7 });
    await euDone.done;
    await allDone.done;
    expect(eu.map(([o]) => o.id).sort()).toEqual(["1", "3"]);
    expect(all.map((o) => o.id).sort()).toEqual(["1", "2", "3"]);
    const [first, d] = eu.find(([o]) => o.id === "1")!;
    expect(first).toEqual({ id: "1", region: "eu.west", amount: 5 });
    expect(d.messageId).toBe("fixed-id");
    expect(d.typeName).toBe("test.v1.OrderCreated");
    // The '.' inside a value is escaped so it stays one routing-key word.
    expect(d.routingKey).toBe("order.eu%2Ewest.created");
    expect(d.exchange).toBe(exchange);
    expect(d.attempt).toBe(1);
    expect(d.redelivered).toBe(false);
    // Reserved names are never taken from metadata.
    expect(d.metadata).toEqual({ traceparent: "00-abc-def-01" });
    expect(typeof d.timestamp).toBe("number");
    expect(Math.abs(d.timestamp! - Date.now())).toBeLessThan(24 * 3600 * 1000);
  });

  it("wire properties: content type, type, UUID message id, timestamp, persistence", async () => {
    const exchange = janitor.exchange("wire");
    const event = orderEvent(exchange, "topic", "order.created");
    const transient = { ...orderEvent(exchange, "topic", "order.created"), persistent: false };
    const ch = await janitor.channel();
    await ch.assertExchange(exchange, "topic", { durable: true });
    const q = janitor.queue("raw");
    await ch.assertQueue(q, { durable: true });
    await ch.bindQueue(q, exchange, "#");
    await publisher(event).publish(
      { id: "1", region: "", amount: 1 },
      { metadata: { authorization: "Bearer t" } },
    );
    await publisher(transient).publish(
      { id: "2", region: "", amount: 1 },
      { expirationMs: 60000, priority: 3 },
    );
    const [m1, m2] = await janitor.drain(q);
    expect(m1!.fields.routingKey).toBe("order.created");
    expect(m1!.properties.contentType).toBe("application/x-protobuf");
    expect(m1!.properties.type).toBe("test.v1.OrderCreated");
    expect(m1!.properties.messageId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(m1!.properties.deliveryMode).toBe(2);
    expect(typeof m1!.properties.timestamp).toBe("number");
    expect(m1!.properties.headers).toMatchObject({ authorization: "Bearer t" });
    expect(OrderCreated.decode(m1!.content)).toEqual({ id: "1", region: "", amount: 1 });
    expect(m2!.properties.deliveryMode).toBe(1);
    expect(m2!.properties.expiration).toBe("60000");
    expect(m2!.properties.priority).toBe(3);
  });

  it("direct: every placeholder needs a filter value, and only that key is delivered", async () => {
    const exchange = janitor.exchange("direct");
    const event = orderEvent(exchange, "direct", "{region}");
    const q = janitor.queue("direct", [50]);
    const got: string[] = [];
    const done = countdown(1);
    expect(() => new EventConsumer(conn, { queue: q }).on(event, () => {})).toThrow(
      /needs a value for "region"/,
    );
    const c = consumer(q).on(
      event,
      (o) => {
        got.push(o.id);
        done.hit();
      },
      { region: "eu" },
    );
    await c.start();
    const pub = publisher(event);
    await expect(pub.publish({ id: "us-1", region: "us", amount: 0 })).rejects.toBeInstanceOf(
      UnroutableError,
    );
    await pub.publish({ id: "eu-1", region: "eu", amount: 0 });
    await done.done;
    expect(got).toEqual(["eu-1"]);
  });

  it("fanout: every bound queue gets every event whatever the routing key", async () => {
    const exchange = janitor.exchange("fanout");
    const event = orderEvent(exchange, "fanout", "order.{region}");
    const qa = janitor.queue("fa", [50]);
    const qb = janitor.queue("fb", [50]);
    const done = countdown(4);
    const seen: string[] = [];
    for (const q of [qa, qb]) {
      await consumer(q)
        .on(event, (o) => {
          seen.push(`${q}:${o.id}`);
          done.hit();
        })
        .start();
    }
    const pub = publisher(event);
    await Promise.all([
      pub.publish({ id: "1", region: "x", amount: 0 }),
      pub.publish({ id: "2", region: "y", amount: 0 }),
    ]);
    await done.done;
    expect(seen.sort()).toEqual([`${qa}:1`, `${qa}:2`, `${qb}:1`, `${qb}:2`].sort());
  });

  it("headers: placeholders travel as headers and bindings match all filter values", async () => {
    const exchange = janitor.exchange("headers");
    const event = orderEvent(exchange, "headers", "order.{region}.{id}");
    const q = janitor.queue("hdr", [50]);
    const got: [string, DeliveryContext][] = [];
    const done = countdown(2);
    await consumer(q)
      .on(
        event,
        (o, d) => {
          got.push([o.id, d]);
          done.hit();
        },
        { region: "eu" },
      )
      .start();
    const pub = publisher(event);
    await pub.publish({ id: "a", region: "eu", amount: 0 }, { metadata: { tenant: "t1" } });
    await expect(pub.publish({ id: "b", region: "us", amount: 0 })).rejects.toBeInstanceOf(
      UnroutableError,
    );
    await pub.publish({ id: "c", region: "eu", amount: 0 });
    await done.done;
    expect(got.map(([id]) => id).sort()).toEqual(["a", "c"]);
    // Routing headers are not user metadata.
    expect(got.find(([id]) => id === "a")![1].metadata).toEqual({ tenant: "t1" });
  });

  it("several event types share one queue and are dispatched by the type property", async () => {
    const exchange = janitor.exchange("multi");
    const created = orderEvent(exchange, "topic", "order.created", OrderCreated);
    const cancelled = orderEvent(exchange, "topic", "order.cancelled", OrderCancelled);
    const q = janitor.queue("multi", [50]);
    const seen: string[] = [];
    const done = countdown(2);
    await consumer(q)
      .on(created, (o) => {
        seen.push(`created:${o.id}`);
        done.hit();
      })
      .on(cancelled, (o) => {
        seen.push(`cancelled:${o.id}`);
        done.hit();
      })
      .start();
    await publisher(cancelled).publish({ id: "7", region: "", amount: 0 });
    await publisher(created).publish({ id: "8", region: "", amount: 0 });
    await done.done;
    expect(seen.sort()).toEqual(["cancelled:7", "created:8"]);
  });

  it("publishing to an exchange nobody declared rejects NOT_FOUND and the publisher keeps working", async () => {
    const exchange = janitor.exchange("missing");
    const event = orderEvent(exchange, "topic", "x");
    const pub = new EventPublisher(conn, event, { declareExchange: false });
    closers.push(() => pub.close());
    await expect(pub.publish({ id: "1", region: "", amount: 0 })).rejects.toMatchObject({
      code: Code.NOT_FOUND,
    });
    const ch = await janitor.channel();
    await ch.assertExchange(exchange, "topic", { durable: true });
    const q = janitor.queue("late");
    await ch.assertQueue(q, { durable: true });
    await ch.bindQueue(q, exchange, "x");
    await pub.publish({ id: "2", region: "", amount: 0 });
    expect(await janitor.messageCount(q)).toBe(1);
  });

  it("an exchange that exists with another kind fails the publish with FAILED_PRECONDITION", async () => {
    const exchange = janitor.exchange("kind");
    const ch = await janitor.channel();
    await ch.assertExchange(exchange, "fanout", { durable: true });
    const errors: Error[] = [];
    conn.on("error", (e) => errors.push(e));
    const pub = new EventPublisher(conn, orderEvent(exchange, "topic", "x"));
    closers.push(() => pub.close());
    await expect(pub.publish({ id: "1", region: "", amount: 0 })).rejects.toMatchObject({
      code: Code.FAILED_PRECONDITION,
    });
    conn.removeAllListeners("error");
    expect(conn.connected).toBe(true);
  });
});
