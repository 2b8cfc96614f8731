// What the runtime declares on the broker, read back from the broker itself (rabbitmqctl, read-only):
// nothing RabbitMQ 4.x refuses (no global QoS, no transient non-exclusive queues), and the quorum
// delivery limit (20 by default from 4.0) reconciled with the consumer's own retry count.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AmqpConnection, EventConsumer, EventPublisher, serveAmqp } from "@grabbit/runtime/amqp";
import { Janitor, countdown, orderEvent } from "./fixtures.js";
import { echoService } from "../amqp-rpc/fixture.js";

const run = promisify(execFile);

let conn: AmqpConnection;
const janitor = new Janitor();
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ name: "grabbit-declarations-test" });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await janitor.cleanup();
});
afterAll(async () => {
  await conn.close();
});

interface QueueRow {
  name: string;
  durable: boolean;
  auto_delete: boolean;
  /** rabbitmqctl prints the owner of an exclusive queue here, "" (or false) for a shared one. */
  exclusive: boolean | string;
  arguments: [string, string, unknown][];
}

/** The broker's own view of the queues (rabbitmqctl reads; it changes nothing). */
async function listQueues(names: string[]): Promise<Map<string, QueueRow>> {
  const { stdout } = await run(
    "rabbitmqctl",
    [
      "-q",
      "list_queues",
      "name",
      "durable",
      "auto_delete",
      "exclusive",
      "arguments",
      "--formatter",
      "json",
    ],
    { timeout: 30_000 },
  );
  const rows = JSON.parse(stdout) as QueueRow[];
  return new Map(rows.filter((r) => names.includes(r.name)).map((r) => [r.name, r]));
}

function args(row: QueueRow | undefined): Record<string, unknown> {
  return Object.fromEntries((row?.arguments ?? []).map(([k, , v]) => [k, v]));
}

describe("declarations RabbitMQ 4.x accepts", () => {
  it("declares every queue durable, shared and quorum, with exactly these arguments, and no global QoS", async () => {
    const exchange = janitor.exchange("decl");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("decl", [100]);
    const consumer = new EventConsumer(conn, {
      queue,
      queueType: "quorum",
      retry: { delaysMs: [100], maxAttempts: 3 },
    });
    await consumer.on(event, () => {}).start();
    closers.push(() => consumer.close());
    const rpcQueue = janitor.queue("rpc"); // its .dlq is cleaned up too
    const server = await serveAmqp(
      conn,
      echoService(rpcQueue),
      { echo: (o: unknown) => o },
      { queueType: "quorum" },
    );
    closers.push(() => server.close());

    const names = [queue, `${queue}.dlq`, `${queue}.retry.100`, rpcQueue, `${rpcQueue}.dlq`];
    const rows = await listQueues(names);
    expect([...rows.keys()].sort()).toEqual([...names].sort());
    for (const row of rows.values()) {
      // 4.x refuses transient non-exclusive queues; quorum queues can be neither exclusive nor auto-delete.
      expect({
        name: row.name,
        durable: row.durable,
        auto_delete: row.auto_delete,
        exclusive: row.exclusive !== "" && row.exclusive !== false,
      }).toEqual({ name: row.name, durable: true, auto_delete: false, exclusive: false });
      expect(args(row)["x-queue-type"]).toBe("quorum");
    }
    expect(args(rows.get(queue))).toEqual({
      "x-queue-type": "quorum",
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": `${queue}.dlq`,
    });
    expect(args(rows.get(`${queue}.retry.100`))).toEqual({
      "x-queue-type": "quorum",
      "x-message-ttl": 100,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": queue,
      "x-dead-letter-strategy": "at-least-once",
      "x-overflow": "reject-publish",
    });
    expect(args(rows.get(rpcQueue))).toEqual({ "x-queue-type": "quorum" });

    // Per-consumer prefetch only: 4.x removed global QoS (basic.qos with global set).
    const { stdout } = await run(
      "rabbitmqctl",
      ["-q", "list_channels", "prefetch_count", "global_prefetch_count", "--formatter", "json"],
      { timeout: 30_000 },
    );
    const channels = JSON.parse(stdout) as {
      prefetch_count: number;
      global_prefetch_count: number;
    }[];
    expect(channels.length).toBeGreaterThan(0);
    expect(channels.filter((c) => c.global_prefetch_count !== 0)).toEqual([]);
  });

  it("gives every retry the consumer allows even under a quorum delivery limit smaller than the retry count", async () => {
    // Retries ack the delivery and publish a copy through the retry queue, so the broker's delivery
    // count starts again with each attempt: a limit (4.x defaults to 20) only catches a message that
    // crashes or loses its consumer that many times in a row, never cuts maxAttempts short.
    const exchange = janitor.exchange("limit");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("limit", [30]);
    const consumer = new EventConsumer(conn, {
      queue,
      queueType: "quorum",
      deliveryLimit: 1,
      retry: { delaysMs: [30], maxAttempts: 4 },
    });
    const attempts: number[] = [];
    const all = countdown(4);
    await consumer
      .on(event, (_o, d) => {
        attempts.push(d.attempt);
        all.hit();
        throw new Error("still failing");
      })
      .start();
    closers.push(() => consumer.close());
    const pub = new EventPublisher(conn, event);
    closers.push(() => pub.close());
    await pub.publish({ id: "1", region: "eu", amount: 1 });
    await all.done;
    const dead = await janitor.next(`${queue}.dlq`);
    expect(attempts).toEqual([1, 2, 3, 4]);
    expect(String(dead.properties.headers?.["x-grabbit-error"])).toMatch(
      /still failing.*gave up after 4 attempts/,
    );
    expect(args((await listQueues([queue])).get(queue))["x-delivery-limit"]).toBe(1);
  });
});
