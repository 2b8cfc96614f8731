// Hostile deliveries at the event consumer: random bodies, content types, type names and headers
// (wrong types, nested tables, reserved names with nonsense values, huge values), published raw so
// nothing in grabbit's publisher tidies them first. Each one must end exactly where the rules say:
// handled and acked, or in the DLQ with a reason; the consumer reports no error and keeps consuming.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import {
  AmqpConnection,
  EventConsumer,
  HEADER_ERROR,
  republishableHeaders,
} from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";
import { Janitor, OrderCreated, orderEvent, type Order } from "../amqp/fixtures.js";
import { runs, tally } from "./support.js";

const MAX_BYTES = 4096;
let conn: AmqpConnection;
const janitor = new Janitor();
const errors: Error[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({
    urls: AMQP_URL,
    name: "hostile-consumer-test",
    onError: (e) => errors.push(e),
  });
});
afterAll(async () => {
  await conn.close();
  await janitor.cleanup();
});

const headerValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string({ maxLength: 40 }),
    fc.integer(),
    // amqplib sends integral doubles as int64, so keep those in range. No NaN or infinities: RabbitMQ
    // (Erlang has no such floats) closes the publisher's connection with INTERNAL_ERROR on them.
    fc.double({ min: -1e15, max: 1e15, noNaN: true }),
    fc.constantFrom(2 ** 53 + 0.5, -0, 1e-300),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    fc.array(tie("value"), { maxLength: 4 }),
    // Tables whose keys include "!", which amqplib's encoder would take for a type tag.
    fc.dictionary(
      fc.oneof(fc.constant("!"), fc.string({ minLength: 1, maxLength: 10 })),
      tie("value"),
      { maxKeys: 4 },
    ),
  ),
})).value;

/** Names grabbit reads or writes, so random values land where parsing happens. */
const nastyName = fc.constantFrom(
  "x-grabbit-attempt",
  "x-grabbit-original-exchange",
  "x-grabbit-original-routing-key",
  "x-grabbit-original-user-id",
  "x-grabbit-error",
  "x-death",
  "authorization",
  "traceparent",
  "rpc-status",
  "region",
);

const headers = fc.dictionary(
  fc.oneof(nastyName, fc.string({ minLength: 1, maxLength: 30 })),
  headerValue,
  { maxKeys: 8 },
);
/** 25-50 KB of headers: under amqplib's 64 KB header table, far over anything sensible. */
const hugeHeaders = fc
  .integer({ min: 20_000, max: 40_000 })
  .map((n) => ({ "x-huge": "h".repeat(n), authorization: `Bearer ${"a".repeat(n / 4)}` }));

const body = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  // Valid events, some of which the handler refuses (negative amount).
  fc
    .record({
      id: fc.string({ maxLength: 20 }),
      region: fc.string({ maxLength: 10 }),
      amount: fc.integer({ min: -5, max: 1_000_000 }),
    })
    .map((o) => OrderCreated.encode(o)),
  // Over the consumer's maxMessageBytes.
  fc.integer({ min: MAX_BYTES + 1, max: MAX_BYTES * 4 }).map((n) => new Uint8Array(n).fill(0x08)),
);

const delivery = fc.record({
  body,
  contentType: fc.oneof(
    { weight: 6, arbitrary: fc.constant("application/x-protobuf") },
    fc.constant(undefined),
    fc.constantFrom("application/json", "text/plain", "APPLICATION/X-PROTOBUF", ""),
    fc.string({ maxLength: 40 }),
  ),
  type: fc.oneof(
    { weight: 6, arbitrary: fc.constant(OrderCreated.typeName) },
    fc.constant(undefined),
    fc.constantFrom("test.v1.OrderCancelled", ""),
    fc.string({ maxLength: 60 }),
  ),
  headers: fc.oneof({ weight: 5, arbitrary: headers }, { weight: 1, arbitrary: hugeHeaders }),
});

type Spec = typeof delivery extends fc.Arbitrary<infer S> ? S : never;

/** The fate the consumer's rules give a delivery: "ok", or the start of the DLQ reason. */
function expectedFate(d: Spec): string {
  if (d.body.length > MAX_BYTES) return "the message body is";
  if (d.contentType !== "application/x-protobuf") return "unsupported content_type";
  if (d.type === undefined || d.type === "") return "the message has no type property";
  if (d.type !== OrderCreated.typeName) return "no handler for message type";
  let order: Order;
  try {
    order = OrderCreated.decode(d.body);
  } catch {
    return "cannot decode";
  }
  return order.amount < 0 ? "[INVALID_ARGUMENT] negative amount" : "ok";
}

describe("event consumer under hostile deliveries", () => {
  it("a message whose copy cannot be encoded (headers near 64 KB) still reaches the DLQ, without its headers", async () => {
    const exchange = janitor.exchange("hostile-big");
    const queue = janitor.queue("hostile-big");
    const consumer = new EventConsumer(conn, { queue, queueExpiresMs: 600_000 });
    consumer.on(orderEvent(exchange), () => {});
    await consumer.start();
    const ch = await janitor.channel();
    // Fits the 64 KB header table when sent; the copy adds the reason and does not.
    ch.sendToQueue(queue, Buffer.from("x"), {
      messageId: "big",
      contentType: "text/plain",
      headers: { "x-pad": "p".repeat(65_400) },
    });
    const dead = await janitor.next(`${queue}.dlq`);
    expect(dead.properties.messageId).toBe("big");
    expect(String(dead.properties.headers?.[HEADER_ERROR])).toMatch(
      /^unsupported content_type "text\/plain".*; its headers could not be copied and were dropped/,
    );
    expect(dead.properties.headers?.["x-pad"]).toBeUndefined();
    await consumer.close();
    expect(errors).toEqual([]);
  });

  it("every delivery is handled or dead-lettered with the reason the rules give; nothing crashes", async () => {
    const exchange = janitor.exchange("hostile");
    const queue = janitor.queue("hostile", [50]);
    const handled = new Map<string, Order>();
    const consumer = new EventConsumer(conn, {
      queue,
      queueExpiresMs: 600_000,
      maxMessageBytes: MAX_BYTES,
      retry: { maxAttempts: 2, delaysMs: [50] },
      prefetch: 64,
    });
    consumer.on(orderEvent(exchange), (o, d) => {
      if (o.amount < 0) throw new StatusError(Code.INVALID_ARGUMENT, "negative amount");
      handled.set(d.messageId!, o);
    });
    await consumer.start();
    const ch = await janitor.channel();
    const dlq = new Map<string, string>();
    await ch.consume(`${queue}.dlq`, (m) => {
      if (!m) return;
      dlq.set(String(m.properties.messageId), String(m.properties.headers?.[HEADER_ERROR]));
      ch.ack(m);
    });

    let seq = 0;
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(delivery, { minLength: 1, maxLength: 25 }), async (batch) => {
        const ids: [string, Spec][] = [];
        for (const d of batch) {
          const id = `m${seq++}`;
          ids.push([id, d]);
          ch.sendToQueue(queue, Buffer.from(d.body), {
            messageId: id,
            ...(d.contentType !== undefined ? { contentType: d.contentType } : {}),
            ...(d.type !== undefined ? { type: d.type } : {}),
            // Sent as the tables they are (amqplib reads a "!" key as a type tag): what another client sends.
            headers: republishableHeaders(d.headers),
          });
        }
        sent += batch.length;
        // Wait until every id has an outcome (bounded by the test timeout, not asserted on time).
        const until = Date.now() + 30_000;
        while (!ids.every(([id]) => handled.has(id) || dlq.has(id))) {
          if (Date.now() > until) {
            const lost = ids
              .filter(([id]) => !handled.has(id) && !dlq.has(id))
              .map(([id, d]) => ({
                id,
                ...d,
                body: d.body.length,
                headers: JSON.stringify(d.headers).slice(0, 300),
              }));
            throw new Error(
              `no outcome for ${JSON.stringify(lost)}; consumer errors: ${errors.map((e) => e.message).join("; ")}`,
            );
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        for (const [id, d] of ids) {
          const want = expectedFate(d);
          if (want === "ok") {
            expect(dlq.get(id)).toBeUndefined();
            expect(handled.get(id)).toEqual(OrderCreated.decode(d.body));
          } else {
            expect(handled.has(id)).toBe(false);
            expect(dlq.get(id)).toContain(want);
          }
        }
      }),
      { ...runs(100), endOnFailure: true },
    );
    await consumer.close();
    const outcomes = { handled: handled.size, deadLettered: dlq.size };
    tally("consumer deliveries", sent, outcomes);
    expect(handled.size + dlq.size).toBe(sent);
    expect(errors).toEqual([]);
  });
});
