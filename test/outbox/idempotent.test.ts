// The idempotent consumer on PostgreSQL: copies of a message_id are applied once, also when two
// competing consumers get them at the same moment; a failing handler leaves no trace and is retried.
import { describe, expect, it } from "vitest";
import { EventConsumer, EventPublisher, Publisher } from "@grabbit/runtime/amqp";
import { idempotent, installIdempotency, purgeProcessed } from "@grabbit/runtime/outbox";
import { countdown, orderEvent, type Order } from "../amqp/fixtures.js";
import { uniqueTable, until, outboxTestContext } from "./support.js";

const ctx = outboxTestContext("grabbit-idempotent-test");
const { janitor, closers, tables } = ctx;

async function tablesFor(): Promise<{
  processed: string;
  applied: string;
  count(): Promise<{ n: number; d: number }>;
}> {
  const processed = uniqueTable("processed");
  const applied = uniqueTable("applied");
  tables.push(processed, applied);
  await installIdempotency(ctx.db, { table: processed });
  await ctx.db.query(`CREATE TABLE ${applied} (id text NOT NULL)`);
  return {
    processed,
    applied,
    async count() {
      const { rows } = await ctx.db.query(
        `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM ${applied}`,
      );
      return rows[0] as { n: number; d: number };
    },
  };
}

function publisher(event: ReturnType<typeof orderEvent>): EventPublisher<Order> {
  const p = new EventPublisher(ctx.conn, event);
  closers.push(() => p.close());
  return p;
}

describe("idempotent consumer", () => {
  it("applies copies of one message_id once, also with two competing consumers receiving them at once", async () => {
    const t = await tablesFor();
    const exchange = janitor.exchange("idem");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("idem", [50]);
    const total = 300;
    const copies = 3;
    let duplicates = 0;
    const seen = countdown(total * copies);
    for (let i = 0; i < 2; i++) {
      const c = new EventConsumer(ctx.conn, {
        queue,
        queueType: "classic",
        prefetch: 32,
        retry: { delaysMs: [50] },
      });
      closers.push(() => c.close());
      await c
        .on(
          event,
          idempotent<Order>(
            ctx.db,
            async (o, _d, tx) => {
              await tx.query(`INSERT INTO ${t.applied} (id) VALUES ($1)`, [o.id]);
              seen.hit();
            },
            {
              consumer: "idem-test",
              table: t.processed,
              onDuplicate: () => {
                duplicates++;
                seen.hit();
              },
            },
          ),
        )
        .start();
    }
    const pub = publisher(event);
    // Copies back to back: they sit next to each other in the queue, so the two consumers race on them.
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        Array.from({ length: copies }, () =>
          pub.publish({ id: `o-${i}`, region: "eu", amount: i }, { messageId: `m-${i}` }),
        ),
      ).flat(),
    );
    await seen.done;
    await until(async () => (await t.count()).n === total, "all applied");
    expect(await t.count()).toEqual({ n: total, d: total });
    expect(duplicates).toBe(total * (copies - 1));
    const { rows } = await ctx.db.query(
      `SELECT count(*)::int AS n FROM ${t.processed} WHERE consumer = 'idem-test'`,
    );
    expect(rows[0].n).toBe(total);
  });

  it("a handler that fails rolls its id back with its writes, so the retry applies the message once", async () => {
    const t = await tablesFor();
    const exchange = janitor.exchange("idem-fail");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("idem-fail", [50]);
    const attempts: number[] = [];
    const done = countdown(1);
    const c = new EventConsumer(ctx.conn, {
      queue,
      queueType: "classic",
      retry: { delaysMs: [50] },
    });
    closers.push(() => c.close());
    await c
      .on(
        event,
        idempotent<Order>(
          ctx.db,
          async (o, d, tx) => {
            attempts.push(d.attempt);
            await tx.query(`INSERT INTO ${t.applied} (id) VALUES ($1)`, [o.id]);
            if (d.attempt === 1) throw new Error("downstream hiccup");
            done.hit();
          },
          { consumer: "idem-fail", table: t.processed },
        ),
      )
      .start();
    await publisher(event).publish(
      { id: "x", region: "eu", amount: 1 },
      { messageId: "only-once" },
    );
    await done.done;
    await until(async () => (await t.count()).n === 1, "applied");
    expect(attempts).toEqual([1, 2]);
    expect(await t.count()).toEqual({ n: 1, d: 1 });
    // Different consumers keep separate records: the same id is new to another consumer name.
    const fresh = await ctx.db.query(
      `INSERT INTO ${t.processed} (consumer, message_id) VALUES ('other', 'only-once') ON CONFLICT DO NOTHING RETURNING 1`,
    );
    expect(fresh.rows).toHaveLength(1);
    expect(await purgeProcessed(ctx.db, 60_000, { table: t.processed })).toBe(0);
    expect(await purgeProcessed(ctx.db, -60_000, { table: t.processed })).toBe(2);
  });

  it("dead-letters a message without message_id instead of applying it unguarded", async () => {
    const t = await tablesFor();
    const exchange = janitor.exchange("idem-noid");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("idem-noid", [50]);
    const c = new EventConsumer(ctx.conn, {
      queue,
      queueType: "classic",
      retry: { delaysMs: [50] },
    });
    closers.push(() => c.close());
    await c
      .on(
        event,
        idempotent<Order>(ctx.db, async () => {}, { consumer: "noid", table: t.processed }),
      )
      .start();
    // A raw publish that leaves message_id out, as a foreign publisher might.
    const raw = new Publisher(ctx.conn);
    closers.push(() => raw.close());
    await raw.publish(
      exchange,
      "order.eu",
      event.type.encode({ id: "n", region: "eu", amount: 0 }),
      {
        contentType: "application/x-protobuf",
        type: event.type.typeName,
        messageId: "",
      },
    );
    const dead = await janitor.next(`${queue}.dlq`);
    expect(String(dead.properties.headers?.["x-grabbit-error"])).toMatch(/without message_id/);
    expect(await t.count()).toEqual({ n: 0, d: 0 });
  });
});
