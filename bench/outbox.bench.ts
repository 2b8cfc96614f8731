// Outbox relay throughput vs direct confirmed publishing, same broker, same event, same queue.
// outbox_relay: an OutboxRelay on PostgreSQL draining N rows already in the outbox (claim, read,
//   publish with confirms, mark sent) vs EventPublisher publishing the same N events with confirms.
// The ratio is the price of durability across crashes. Rounds alternate direct, relay, strict so
// that load from neighbours hits all three alike; each figure is the median of its rounds.
// outbox_relay_strict_order: the same with strictOrder (one row in flight per partition), the price
//   of keeping each key's order even when a row in the middle fails.
import amqp from "amqplib";
import { type Order, orderType } from "../test/support/messages.js";
import type { EventDesc } from "../runtime/src/index.js";
import { AmqpConnection, EventPublisher } from "../runtime/src/amqp/index.js";
import { Outbox, OutboxRelay, openDatabase } from "../runtime/src/outbox/index.js";
import { figure, median, type Figure } from "./figure.js";

type Tick = Order;
const TickType = orderType("bench.v1.OutboxTick");

const AMQP = process.env.AMQP_URL ?? "amqp://127.0.0.1";
const PG = process.env.GRABBIT_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const n = quick ? 2_000 : 20_000;
  const suffix = Math.random().toString(16).slice(2, 10);
  const event: EventDesc<Tick> = {
    type: TickType,
    exchange: `grabbit-bench-outbox-${suffix}`,
    exchangeKind: "topic",
    routingKeyTemplate: "tick.{region}",
    routingFields: ["region"],
    persistent: true,
    routingValues: (t: Tick) => ({ region: t.region }),
  };
  const queue = `grabbit-bench-outbox-${suffix}`;
  const admin = await amqp.connect(AMQP);
  const ch = await admin.createChannel();
  await ch.assertExchange(event.exchange, "topic", { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, event.exchange, "#");
  const db = await openDatabase(PG);
  const outbox = new Outbox({ table: `bench_outbox_${suffix}` });
  const conn = await AmqpConnection.connect({ urls: AMQP, name: "grabbit-bench-outbox" });
  const tick = (i: number): Tick => ({ id: `t-${i}`, region: `r${i % 8}`, amount: i });
  try {
    await outbox.install(db);
    // Direct: the baseline.
    const publisher = new EventPublisher(conn, event);
    const direct = async (): Promise<number> => {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: n }, (_, i) => publisher.publish(tick(i))));
      const ms = performance.now() - t0;
      await ch.purgeQueue(queue);
      return ms;
    };

    // Outbox: rows written first (not timed), then the relay drains them.
    const drain = async (strictOrder: boolean): Promise<number> => {
      for (let i = 0; i < n; i += 500) {
        await db.transaction(async (tx) => {
          for (let j = i; j < Math.min(n, i + 500); j++) await outbox.add(tx, event, tick(j));
        });
      }
      const relay = new OutboxRelay(db, conn, outbox, {
        pollMs: 5,
        batchSize: 1000,
        partitionsPerClaim: outbox.partitions,
        strictOrder,
      });
      const start = performance.now();
      relay.start();
      // Done when the relay has marked every row: its own count, not a count(*) query every 5 ms,
      // which competed with the relay for PostgreSQL and was timed as the relay's.
      while (relay.stats.sent < n) await new Promise((r) => setTimeout(r, 5));
      const ms = performance.now() - start;
      await relay.close();
      const pending = (await outbox.counts(db)).pending;
      if (pending !== 0)
        throw new Error(
          `the relay counted ${relay.stats.sent} rows sent, yet ${pending} are pending`,
        );
      await ch.purgeQueue(queue);
      return ms;
    };
    const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3));
    const times = { direct: [] as number[], relay: [] as number[], strict: [] as number[] };
    await direct(); // warm-up: JIT, the exchange declared
    for (let r = 0; r < rounds; r++) {
      times.direct.push(await direct());
      times.relay.push(await drain(false));
      times.strict.push(await drain(true));
    }
    await publisher.close();
    const directMs = median(times.direct);
    const relayMs = median(times.relay);
    const strictMs = median(times.strict);
    const rate = (ms: number) => n / (ms / 1000);
    const f = figure(
      rate(relayMs),
      rate(directMs),
      "msg/s",
      "higher-is-better",
      "EventPublisher, direct confirmed publish",
    );
    const strict = figure(
      rate(strictMs),
      rate(directMs),
      "msg/s",
      "higher-is-better",
      "EventPublisher, direct confirmed publish",
    );
    return {
      outbox_relay: {
        ...f,
        note: `${n} events; relay on PostgreSQL, batch 1000, batches pipelined (medians of ${rounds} rounds)`,
      },
      outbox_relay_strict_order: {
        ...strict,
        note: `${n} events over 8 keys; strictOrder: one row in flight per partition`,
      },
    };
  } finally {
    await conn.close().catch(() => {});
    await outbox.uninstall(db).catch(() => {});
    await db.close().catch(() => {});
    await ch.deleteQueue(queue).catch(() => {});
    await ch.deleteExchange(event.exchange).catch(() => {});
    await admin.close().catch(() => {});
  }
}
