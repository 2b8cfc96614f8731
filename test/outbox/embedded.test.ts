// The development default: PGlite (PostgreSQL in WebAssembly) persisted to a folder, no server.
// Events written before a "restart" of the service are still there after it and get delivered, and
// the idempotent consumer works on the same embedded database.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AmqpConnection, EventConsumer } from "@grabbit/runtime/amqp";
import {
  Outbox,
  OutboxRelay,
  idempotent,
  installIdempotency,
  openDatabase,
} from "@grabbit/runtime/outbox";
import { Janitor, countdown, orderEvent, type Order } from "../amqp/fixtures.js";
import { until } from "./support.js";

const janitor = new Janitor();
const dir = mkdtempSync(join(tmpdir(), "grabbit-pglite-"));
afterAll(async () => {
  await janitor.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe("embedded outbox (PGlite)", () => {
  it("keeps events across a restart of the service and delivers them once the relay runs", {
    timeout: 240_000,
  }, async () => {
    const outbox = new Outbox({ partitions: 4 });
    const exchange = janitor.exchange("embedded");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const total = 200;

    // First life of the service: the broker is never reached, the events only go to the outbox.
    const first = await openDatabase(`file:${dir}`);
    expect(first.kind).toBe("pglite");
    await outbox.install(first);
    await first.query("CREATE TABLE orders (id text PRIMARY KEY)");
    for (let i = 0; i < total; i++) {
      await first.transaction(async (tx) => {
        await tx.query("INSERT INTO orders (id) VALUES ($1)", [`o-${i}`]);
        await outbox.add(tx, event, { id: `o-${i}`, region: i % 2 ? "eu" : "us", amount: i });
      });
    }
    await expect(
      first.transaction(async (tx) => {
        await outbox.add(tx, event, { id: "rolled-back", region: "eu", amount: -1 });
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    await first.close();

    // Second life: same folder, now with a broker, a relay and an idempotent consumer.
    const db = await openDatabase(`file:${dir}`);
    expect(await outbox.counts(db)).toEqual({ pending: total, sent: 0, failed: 0 });
    await installIdempotency(db);
    await db.query("CREATE TABLE applied (id text NOT NULL, amount int NOT NULL)");
    const conn = await AmqpConnection.connect({ name: "grabbit-embedded-test" });
    const queue = janitor.queue("embedded", [50]);
    const all = countdown(total);
    const consumer = new EventConsumer(conn, {
      queue,
      queueType: "classic",
      retry: { delaysMs: [50] },
    });
    await consumer
      .on(
        event,
        idempotent<Order>(
          db,
          async (o, _d, tx) => {
            await tx.query("INSERT INTO applied (id, amount) VALUES ($1, $2)", [o.id, o.amount]);
            all.hit();
          },
          { consumer: "embedded" },
        ),
      )
      .start();
    const relay = new OutboxRelay(db, conn, outbox, { pollMs: 20 }).start();
    await all.done;
    await until(async () => (await outbox.counts(db)).pending === 0, "outbox drained");
    await relay.close();
    await consumer.close();
    await conn.close();
    const { rows } = await db.query(
      "SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, min(amount)::int AS lo FROM applied",
    );
    expect(rows[0]).toEqual({ n: total, d: total, lo: 0 });
    expect(relay.stats.sent).toBe(total);
    await db.close();
  });
});
