// The relay is killed with SIGKILL in the middle of delivering, then started again: every event is
// consumed (nothing lost) and applied once (the idempotent consumer drops the copies).
import { describe, expect, it } from "vitest";
import { EventConsumer } from "@grabbit/runtime/amqp";
import { Outbox, idempotent, installIdempotency } from "@grabbit/runtime/outbox";
import { AMQP_URL } from "../support/broker.js";
import { orderEvent, type Order } from "../amqp/fixtures.js";
import { PG_URL, runChild, uniqueTable, until, type Child, outboxTestContext } from "./support.js";

const CHILD = "test/outbox/relay-child.ts";
const PARTITIONS = 8;
const TOTAL = 4000;

const children: Child[] = [];
const ctx = outboxTestContext("grabbit-crash-test", () => {
  for (const c of children.splice(0)) c.kill9();
});
const { janitor, closers, tables } = ctx;

interface Setup {
  outbox: Outbox;
  applied: string;
  dups: string;
  queue: string;
  ids: Set<string>;
  relay(env: Record<string, string>): Child;
  appliedCounts(): Promise<{ n: number; d: number }>;
  duplicates(): Promise<number>;
}

/** Writes TOTAL events to a fresh outbox and starts an idempotent consumer on their queue. */
async function setup(): Promise<Setup> {
  const outbox = new Outbox({ table: uniqueTable("crash_outbox"), partitions: PARTITIONS });
  const processed = uniqueTable("crash_processed");
  const applied = uniqueTable("crash_applied");
  const dups = uniqueTable("crash_dups");
  tables.push(outbox.table, outbox.partitionTable, processed, applied, dups);
  await outbox.install(ctx.db);
  await installIdempotency(ctx.db, { table: processed });
  await ctx.db.query(`CREATE TABLE ${applied} (message_id text NOT NULL, order_id text NOT NULL)`);
  await ctx.db.query(`CREATE TABLE ${dups} (message_id text NOT NULL)`);

  const exchange = janitor.exchange("crash");
  const event = orderEvent(exchange, "topic", "order.{region}");
  const queue = janitor.queue("crash", [50]);
  const consumer = new EventConsumer(ctx.conn, {
    queue,
    queueType: "classic",
    prefetch: 64,
    retry: { delaysMs: [50] },
  });
  closers.push(() => consumer.close());
  await consumer
    .on(
      event,
      idempotent<Order>(
        ctx.db,
        async (o, d, tx) => {
          await tx.query(`INSERT INTO ${applied} (message_id, order_id) VALUES ($1, $2)`, [
            d.messageId,
            o.id,
          ]);
        },
        {
          consumer: "crash-test",
          table: processed,
          onDuplicate: (d, tx) =>
            tx.query(`INSERT INTO ${dups} (message_id) VALUES ($1)`, [d.messageId]).then(() => {}),
        },
      ),
    )
    .start();

  const ids = new Set<string>();
  const regions = ["eu", "us", "ap", "sa", "af"];
  for (let i = 0; i < TOTAL; i += 100) {
    await ctx.db.transaction(async (tx) => {
      for (let j = i; j < i + 100; j++)
        ids.add(
          await outbox.add(tx, event, {
            id: `o-${j}`,
            region: regions[j % regions.length]!,
            amount: j,
          }),
        );
    });
  }
  return {
    outbox,
    applied,
    dups,
    queue,
    ids,
    relay(env) {
      const child = runChild(CHILD, {
        PG_URL,
        RELAY_AMQP_URL: AMQP_URL,
        OUTBOX_TABLE: outbox.table,
        PARTITIONS: String(PARTITIONS),
        BATCH: "50",
        ...env,
      });
      children.push(child);
      return child;
    },
    async appliedCounts() {
      const { rows } = await ctx.db.query(
        `SELECT count(*)::int AS n, count(DISTINCT message_id)::int AS d FROM ${applied}`,
      );
      return rows[0] as { n: number; d: number };
    },
    async duplicates() {
      const { rows } = await ctx.db.query(`SELECT count(*)::int AS n FROM ${dups}`);
      return (rows[0] as { n: number }).n;
    },
  };
}

async function stopChild(child: Child): Promise<void> {
  child.proc.kill("SIGTERM");
  expect(await child.exited).toBe(0);
}

async function appliedIds(s: Setup): Promise<Set<string>> {
  const { rows } = await ctx.db.query(`SELECT DISTINCT message_id FROM ${s.applied}`);
  return new Set(rows.map((r: { message_id: string }) => r.message_id));
}

describe("relay crash", () => {
  it("kill -9 mid-delivery, another relay takes over after the lease: nothing lost, nothing applied twice", async () => {
    const s = await setup();
    const first = s.relay({ RELAY_ID: "crash-a", LEASE_MS: "1500" });
    // Kill once part of the outbox is out: well inside the run, rows in flight.
    await until(async () => (await s.outbox.counts(ctx.db)).sent >= TOTAL / 5, "a fifth sent");
    first.kill9();
    expect(await first.exited).toBe("SIGKILL");
    const atKill = await s.outbox.counts(ctx.db);
    expect(atKill.pending).toBeGreaterThan(0);

    // A different relay id: it must wait for the dead relay's leases to run out, then send the rest.
    const second = s.relay({ RELAY_ID: "crash-b", LEASE_MS: "1500" });
    await until(
      async () => (await s.outbox.counts(ctx.db)).pending === 0,
      "outbox drained by the second relay",
    );
    await until(async () => (await s.appliedCounts()).d === TOTAL, "every event applied");
    await stopChild(second);

    const counts = await s.appliedCounts();
    expect(counts).toEqual({ n: TOTAL, d: TOTAL });
    expect(await appliedIds(s)).toEqual(s.ids);
    expect(await janitor.messageCount(`${s.queue}.dlq`)).toBe(0);
    const dups = await s.duplicates();
    console.log(
      `FIGURES crash-external: events=${TOTAL} sent-before-kill=${atKill.sent} pending-at-kill=${atKill.pending} applied=${counts.n} duplicates-caught=${dups}`,
    );
  });

  it("a crash after the confirm and before the mark re-sends those events, and the consumer drops every copy", async () => {
    const s = await setup();
    const crashAfter = Math.floor(TOTAL / 3);
    const first = s.relay({ RELAY_ID: "crash-c", CRASH_AFTER: String(crashAfter) });
    expect(await first.exited).toBe("SIGKILL");
    expect(first.lines.some((l) => l.startsWith("crashing after"))).toBe(true);
    const atKill = await s.outbox.counts(ctx.db);
    // Confirmed but never marked: the broker has them, the outbox still says pending.
    expect(atKill.sent).toBeLessThan(crashAfter);

    // Same relay id: it takes its own leases back at once and re-sends the unmarked rows.
    const second = s.relay({ RELAY_ID: "crash-c" });
    await until(
      async () => (await s.outbox.counts(ctx.db)).pending === 0,
      "outbox drained after restart",
    );
    await until(async () => (await s.appliedCounts()).d === TOTAL, "every event applied");
    await until(
      async () => (await s.duplicates()) >= crashAfter - atKill.sent,
      "the copies reached the consumer",
    );
    await stopChild(second);

    const counts = await s.appliedCounts();
    expect(counts).toEqual({ n: TOTAL, d: TOTAL });
    expect(await appliedIds(s)).toEqual(s.ids);
    const dups = await s.duplicates();
    // At least every row confirmed-but-unmarked at the crash came twice and was dropped.
    expect(dups).toBeGreaterThanOrEqual(crashAfter - atKill.sent);
    expect(dups).toBeGreaterThan(0);
    console.log(
      `FIGURES crash-window: events=${TOTAL} confirmed-at-crash=${crashAfter}+ marked-at-crash=${atKill.sent} applied=${counts.n} duplicates-caught=${dups}`,
    );
  });
});
