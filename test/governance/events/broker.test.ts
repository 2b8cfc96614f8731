// The proof by running it: an old and a new version of an event contract, each generated with this
// repo's generator (real buf, ts-proto, protoc-gen-grabbit) and type-checked; the checker's verdict
// for `--events backward` (new consumers reading old data); then the old producer code publishes through
// the shared RabbitMQ and the new consumer code reads. Where the checker said "safe", the consumer
// decodes the event with its values; where it said "breaks", the consumer cannot decode it and the
// runtime dead-letters it with the reason in `x-grabbit-error`.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { AMQP_URL, uniqueName } from "../../support/broker.js";
import { bufGenerate, grabbitTemplate, protoModule, typeCheck } from "../../support/buf.js";
import { grabbit } from "../helpers.js";
import { parse } from "./support.js";

const EXCHANGE = uniqueName("grabbit-test-events-compat");

const file = (placed: string, noted: string, extra = "") => `syntax = "proto3";

package compat.v1;

import "grabbit/v1/options.proto";

// Changed compatibly for new consumers (a field widened, one added).
message OrderPlaced {
  option (grabbit.v1.event) = { exchange: "${EXCHANGE}" routing_key: "order.placed" };
  string id = 1;
${placed}
}

// Changed incompatibly: the note became a message.
message OrderNoted {
  option (grabbit.v1.event) = { exchange: "${EXCHANGE}" routing_key: "order.noted" };
  string id = 1;
${noted}
}
${extra}`;

const OLD = file("  int32 total = 2;", "  string note = 2;");
const NEW = file(
  "  int64 total = 2;\n  string carrier = 3;",
  "  Note note = 2;",
  "\nmessage Note {\n  string text = 1;\n}\n",
);

interface Publisher<T> {
  publish(event: T): Promise<void>;
  close(): Promise<void>;
}
interface Consumer<T> {
  start(handler: (event: T) => Promise<void> | void): Promise<void>;
  close(): Promise<void>;
}
type Ctor<T> = new (connection: AmqpConnection, options?: object) => T;
interface Generated {
  OrderPlacedPublisher: Ctor<Publisher<Record<string, unknown>>>;
  OrderNotedPublisher: Ctor<Publisher<Record<string, unknown>>>;
  OrderPlacedConsumer: Ctor<Consumer<Record<string, unknown>>>;
  OrderNotedConsumer: Ctor<Consumer<Record<string, unknown>>>;
}

let oldDir: string;
let newDir: string;
let oldCode: Generated;
let newCode: Generated;
let connection: AmqpConnection;
let raw: amqp.ChannelModel;
const queues: string[] = [];
const stops: (() => Promise<void>)[] = [];

async function generated(dir: string, check: string): Promise<Generated> {
  const g = bufGenerate(dir, grabbitTemplate());
  expect(g.stderr).toBe("");
  const out = join(dir, "gen");
  writeFileSync(join(out, "check.ts"), check);
  expect(typeCheck(out, { files: ["check.ts"] })).toBe("");
  return (await import(pathToFileURL(join(out, "compat/v1/orders.grabbit.ts")).href)) as Generated;
}

beforeAll(async () => {
  oldDir = protoModule({ "compat/v1/orders.proto": OLD });
  newDir = protoModule({ "compat/v1/orders.proto": NEW });
  // The generated code type-checks with the values each side uses.
  oldCode = await generated(
    oldDir,
    `import { OrderPlacedPublisher, OrderNotedPublisher } from "./compat/v1/orders.grabbit.js";
import type { AmqpConnection } from "@grabbit/runtime/amqp";
export const publish = (c: AmqpConnection) => Promise.all([new OrderPlacedPublisher(c).publish({ id: "1", total: 1234 }), new OrderNotedPublisher(c).publish({ id: "2", note: "good" })]);
`,
  );
  newCode = await generated(
    newDir,
    `import { OrderPlacedConsumer, OrderNotedConsumer } from "./compat/v1/orders.grabbit.js";
import type { AmqpConnection } from "@grabbit/runtime/amqp";
export const consume = (c: AmqpConnection) => [
  new OrderPlacedConsumer(c, { queue: "q" }).start((e) => void [e.total.toFixed(), e.carrier.length]),
  new OrderNotedConsumer(c, { queue: "q" }).start((e) => void e.note?.text.length),
];
`,
  );
  connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "events-compat-proof" });
  raw = await amqp.connect(AMQP_URL);
}, 240_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  if (raw) {
    const ch = await raw.createChannel();
    for (const q of queues)
      for (const name of [q, `${q}.dlq`]) await ch.deleteQueue(name).catch(() => {});
    await ch.deleteExchange(EXCHANGE).catch(() => {});
    await raw.close().catch(() => {});
  }
  await connection?.close();
});

/** The next message of a queue, consumed (the test's timeout bounds the wait). */
async function next(queue: string): Promise<amqp.ConsumeMessage> {
  const ch = await raw.createChannel();
  return new Promise((resolve) => {
    void ch.consume(queue, (m) => {
      if (!m) return;
      ch.ack(m);
      void ch.close().catch(() => {});
      resolve(m);
    });
  });
}

describe("old producers, new consumers, through the real broker", () => {
  it("the checker says which event is safe to read with the new code and which breaks", async () => {
    const r = parse(
      await grabbit(newDir, [
        "breaking",
        ".",
        "--against",
        oldDir,
        "--events",
        "backward",
        "--format",
        "json",
      ]),
      newDir,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(100);
    const verdict = Object.fromEntries(
      r.events.map((e) => [e.event, e.incompatible.length ? "breaks" : "safe"]),
    );
    expect(verdict).toEqual({ "compat.v1.OrderNoted": "breaks", "compat.v1.OrderPlaced": "safe" });
    expect(
      r.changes.filter((c) => c.breaking).map((c) => [c.event, c.rule, c.directions.join("+")]),
    ).toEqual([["compat.v1.OrderNoted", "EVENT_FIELD_TYPE_CHANGED", "BACKWARD+FORWARD"]]);
    // The widening is listed as a FORWARD finding, not failing a backward check.
    expect(r.changes.find((c) => c.event === "compat.v1.OrderPlaced")).toMatchObject({
      breaking: false,
      directions: ["FORWARD"],
      rollout: "consumers-first",
    });
  });

  it("safe: the new consumer decodes what the old producer wrote", async () => {
    const queue = uniqueName("grabbit-test-compat-placed");
    queues.push(queue);
    const got: Record<string, unknown>[] = [];
    let done!: () => void;
    const received = new Promise<void>((r) => (done = r));
    const consumer = new newCode.OrderPlacedConsumer(connection, { queue, queueType: "classic" });
    stops.push(() => consumer.close());
    await consumer.start((e) => {
      got.push(e);
      done();
    });
    const publisher = new oldCode.OrderPlacedPublisher(connection);
    stops.push(() => publisher.close());
    await publisher.publish({ id: "order-1", total: 1234 });
    await received;
    expect(got).toEqual([{ id: "order-1", total: 1234, carrier: "" }]);
  });

  it("breaks: the new consumer cannot decode it, and the runtime dead-letters it with the reason", async () => {
    const queue = uniqueName("grabbit-test-compat-noted");
    queues.push(queue);
    const handled: unknown[] = [];
    const consumer = new newCode.OrderNotedConsumer(connection, { queue, queueType: "classic" });
    stops.push(() => consumer.close());
    await consumer.start((e) => void handled.push(e));
    const dead = next(`${queue}.dlq`);
    const publisher = new oldCode.OrderNotedPublisher(connection);
    stops.push(() => publisher.close());
    // The old wire form: a string where the new code expects a message ("g" is 0x67, a tag no message has).
    await publisher.publish({ id: "order-2", note: "good" });
    const m = await dead;
    expect(m.properties.type).toBe("compat.v1.OrderNoted");
    expect(String(m.properties.headers?.["x-grabbit-error"])).toMatch(
      /^cannot decode compat\.v1\.OrderNoted: /,
    );
    expect(handled).toEqual([]);
  });
});
