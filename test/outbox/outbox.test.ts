// The outbox on PostgreSQL: events exist only if their transaction committed, the relay sends them
// per the wire contract and marks them after the confirm, order per key holds with two relays,
// failures are retried and then given up visibly, a broker that is down costs the service nothing.
import { describe, expect, it } from "vitest";
import { AmqpConnection, EventConsumer } from "@grabbit/runtime/amqp";
import { Outbox, OutboxRelay, idempotent, installIdempotency } from "@grabbit/runtime/outbox";
import { brokerProxy } from "../support/tcp-proxy.js";
import { countdown, orderEvent, type Order } from "../amqp/fixtures.js";
import { uniqueTable, until, outboxTestContext } from "./support.js";

const ctx = outboxTestContext("grabbit-outbox-test");
const { janitor, closers, tables } = ctx;

async function newOutbox(partitions = 16): Promise<Outbox> {
  const outbox = new Outbox({ table: uniqueTable("outbox"), partitions });
  tables.push(outbox.table, outbox.partitionTable);
  await outbox.install(ctx.db);
  return outbox;
}

function relay(
  outbox: Outbox,
  options: ConstructorParameters<typeof OutboxRelay>[3] = {},
  connection = ctx.conn,
): OutboxRelay {
  const r = new OutboxRelay(ctx.db, connection, outbox, { pollMs: 20, ...options });
  closers.push(() => r.close());
  return r;
}

/** A queue bound to the event's exchange, for every key unless a pattern is given. */
async function boundQueue(exchange: string, prefix: string, pattern = "#"): Promise<string> {
  const q = janitor.queue(prefix);
  const ch = await janitor.channel();
  await ch.assertExchange(exchange, "topic", { durable: true });
  await ch.assertQueue(q, { durable: true });
  await ch.bindQueue(q, exchange, pattern);
  await ch.close();
  return q;
}

describe("outbox on PostgreSQL", () => {
  it("keeps the deprecated relay stop() as an alias of close(): both names settle one shutdown", async () => {
    const r = relay(await newOutbox()).start();
    const closing = r.close();
    expect(r.stop()).toBe(closing);
    await closing;
  });

  it("stores events only when the business transaction commits, and relays them per the wire contract", async () => {
    const outbox = await newOutbox();
    const exchange = janitor.exchange("ob");
    const event = orderEvent(exchange, "topic", "order.{region}.created");
    const q = await boundQueue(exchange, "ob");
    const business = uniqueTable("orders");
    tables.push(business);
    await ctx.db.query(`CREATE TABLE ${business} (id text PRIMARY KEY)`);

    const committedId = await ctx.db.transaction(async (tx) => {
      await tx.query(`INSERT INTO ${business} (id) VALUES ($1)`, ["o-1"]);
      return outbox.add(
        tx,
        event,
        { id: "o-1", region: "eu", amount: 7 },
        { metadata: { traceparent: "00-abc-def-01", "x-grabbit-error": "reserved, dropped" } },
      );
    });
    await expect(
      ctx.db.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${business} (id) VALUES ($1)`, ["o-2"]);
        await outbox.add(tx, event, { id: "o-2", region: "eu", amount: 8 });
        throw new Error("business rule failed");
      }),
    ).rejects.toThrow("business rule failed");
    expect(await outbox.counts(ctx.db)).toEqual({ pending: 1, sent: 0, failed: 0 });

    const confirmed: string[][] = [];
    const r = relay(outbox, { onConfirmed: (ids) => confirmed.push(ids) });
    expect(await r.runOnce()).toBe(1);
    expect(confirmed).toEqual([[committedId]]);
    expect(await outbox.counts(ctx.db)).toEqual({ pending: 0, sent: 1, failed: 0 });

    const [msg, ...more] = await janitor.drain(q);
    expect(more).toHaveLength(0);
    expect(msg!.fields.routingKey).toBe("order.eu.created");
    expect(msg!.properties.messageId).toBe(committedId);
    expect(msg!.properties.type).toBe("test.v1.OrderCreated");
    expect(msg!.properties.contentType).toBe("application/x-protobuf");
    expect(msg!.properties.deliveryMode).toBe(2);
    expect(typeof msg!.properties.timestamp).toBe("number");
    expect(Math.abs(msg!.properties.timestamp - Date.now() / 1000)).toBeLessThan(600);
    expect(msg!.properties.headers).toEqual({ traceparent: "00-abc-def-01" });
    expect(event.type.decode(msg!.content)).toEqual({ id: "o-1", region: "eu", amount: 7 });
  });

  it("two relays on one outbox send every event exactly once and keep the order of each key", async () => {
    const outbox = await newOutbox(8);
    const exchange = janitor.exchange("order");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const q = await boundQueue(exchange, "order");
    const keys = ["eu", "us", "ap", "sa", "af", "oc", "an", "me", "ca", "mx"];
    const perKey = 150;
    // Writers interleave keys in many small transactions, as concurrent requests would.
    for (let i = 0; i < perKey; i++) {
      await ctx.db.transaction(async (tx) => {
        for (const region of keys)
          await outbox.add(tx, event, { id: `${region}-${i}`, region, amount: i });
      });
    }
    const a = relay(outbox, { partitionsPerClaim: 1, batchSize: 40 }).start();
    const b = relay(outbox, { partitionsPerClaim: 1, batchSize: 40 }).start();
    const total = keys.length * perKey;
    await until(async () => (await outbox.counts(ctx.db)).sent === total, "all rows sent");
    expect(a.stats.sent + b.stats.sent).toBe(total);
    // Both took part: the partitions were really shared, not held by one relay.
    expect(a.stats.sent).toBeGreaterThan(0);
    expect(b.stats.sent).toBeGreaterThan(0);
    await until(async () => (await janitor.messageCount(q)) === total, "all messages in the queue");
    const got = (await janitor.drain(q)).map((m) => event.type.decode(m.content));
    // Exactly once in the normal case: no row was sent by both relays.
    expect(got).toHaveLength(total);
    expect(new Set(got.map((o) => o.id)).size).toBe(total);
    for (const region of keys) {
      const seq = got.filter((o) => o.region === region).map((o) => o.amount);
      expect(seq).toEqual(Array.from({ length: perKey }, (_, i) => i));
    }
  });

  it("rounds of one relay run one at a time: concurrent runOnce() calls send each row once", async () => {
    const outbox = await newOutbox(4);
    const exchange = janitor.exchange("rounds");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const q = await boundQueue(exchange, "rounds");
    await ctx.db.transaction(async (tx) => {
      for (let i = 0; i < 400; i++)
        await outbox.add(tx, event, { id: `r-${i}`, region: `k${i % 4}`, amount: i });
    });
    const r = relay(outbox, { partitionsPerClaim: 4, batchSize: 100 });
    const sent = await Promise.all(Array.from({ length: 6 }, () => r.runOnce()));
    expect(sent.reduce((a, b) => a + b, 0)).toBe(400);
    await until(async () => (await janitor.messageCount(q)) >= 400, "all in the queue");
    expect(await janitor.messageCount(q)).toBe(400);
  });

  it("one round pipelines its batches: a backlog of many batches goes in one runOnce, each row once, in key order, failures apart", async () => {
    const outbox = await newOutbox(4);
    const exchange = janitor.exchange("pipe");
    const event = orderEvent(exchange, "topic", "order.{region}");
    // Keys k0..k3 are routed; "zz" is not, so its rows come back unroutable from the middle of batches.
    const q = await boundQueue(exchange, "pipe", "order.k0");
    const ch = await janitor.channel();
    for (const key of ["order.k1", "order.k2", "order.k3"]) await ch.bindQueue(q, exchange, key);
    await ch.close();
    const n = 230;
    await ctx.db.transaction(async (tx) => {
      for (let i = 0; i < n; i++)
        await outbox.add(tx, event, {
          id: `p-${i}`,
          region: i % 50 === 7 ? "zz" : `k${i % 4}`,
          amount: i,
        });
    });
    const lost = Array.from({ length: n }, (_, i) => i).filter((i) => i % 50 === 7).length;
    const confirmed: string[] = [];
    const r = relay(outbox, {
      partitionsPerClaim: 4,
      batchSize: 20,
      onConfirmed: (ids) => confirmed.push(...ids),
    });
    expect(await r.runOnce()).toBe(n - lost);
    // Several batches, each marked with its own UPDATE, in one round.
    expect(r.stats.rounds).toBeGreaterThan(5);
    expect(r.stats.failedAttempts).toBe(lost);
    expect(await outbox.counts(ctx.db)).toEqual({ pending: lost, sent: n - lost, failed: 0 });
    expect(new Set(confirmed).size).toBe(n - lost);
    await until(
      async () => (await janitor.messageCount(q)) >= n - lost,
      "all routed rows in the queue",
    );
    const got = (await janitor.drain(q)).map((m) => event.type.decode(m.content));
    expect(got).toHaveLength(n - lost);
    for (const region of ["k0", "k1", "k2", "k3"]) {
      const seq = got.filter((o) => o.region === region).map((o) => o.amount);
      expect(seq).toEqual([...seq].sort((a, b) => a - b));
      expect(seq.length).toBeGreaterThan(0);
    }
    // Nothing left that is due: the next round sends nothing (the unroutable rows wait for their retry).
    expect(await r.runOnce()).toBe(0);
  });

  it("a relay stalled mid-round by a broker outage keeps its lease: another relay does not send its rows", {
    timeout: 120_000,
  }, async () => {
    const outbox = await newOutbox(2);
    const exchange = janitor.exchange("stall");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const q = await boundQueue(exchange, "stall");
    await ctx.db.transaction(async (tx) => {
      for (let i = 0; i < 100; i++)
        await outbox.add(tx, event, { id: `s-${i}`, region: `k${i % 5}`, amount: i });
    });
    const proxy = await brokerProxy();
    closers.push(() => proxy.stop());
    const stalledConn = await AmqpConnection.connect({
      urls: proxy.url,
      name: "grabbit-outbox-stalled",
      reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    });
    closers.push(() => stalledConn.close());
    const a = relay(outbox, { leaseMs: 1500, partitionsPerClaim: 2 }, stalledConn);
    // The round claims its partitions, then finds the broker gone and waits for it, renewing its lease.
    const round = a.runOnce();
    proxy.refuse(true);
    proxy.cutAll();
    await until(
      async () =>
        (
          await ctx.db.query(
            `SELECT count(*)::int AS n FROM ${outbox.partitionTable} WHERE owner = $1`,
            [a.id],
          )
        ).rows[0].n === 2,
      "relay A holds both partitions",
    );
    const b = relay(outbox, { leaseMs: 1500, partitionsPerClaim: 2 }).start();
    // Several lease lengths: without renewal the healthy relay would take the partitions over.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    expect(b.stats.sent).toBe(0);
    proxy.refuse(false);
    expect(await round).toBe(100);
    await until(async () => (await outbox.counts(ctx.db)).pending === 0, "all marked");
    expect(b.stats.sent).toBe(0);
    await until(async () => (await janitor.messageCount(q)) >= 100, "all in the queue");
    expect(await janitor.messageCount(q)).toBe(100);
  });

  it("wake() ends the poll wait: a relay polling once a day still sends a new event at once", async () => {
    const outbox = await newOutbox(2);
    const exchange = janitor.exchange("wake");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const q = await boundQueue(exchange, "wake");
    const r = relay(outbox, { pollMs: 86_400_000 }).start();
    for (let i = 0; i < 3; i++) {
      // Let the relay find nothing and go to sleep, then write and wake it.
      await until(async () => (await outbox.counts(ctx.db)).pending === 0, "idle");
      await new Promise((resolve) => setTimeout(resolve, 50));
      await ctx.db.transaction((tx) =>
        outbox.add(tx, event, { id: `w-${i}`, region: "eu", amount: i }),
      );
      r.wake();
      await until(
        async () => (await janitor.messageCount(q)) === i + 1,
        `event ${i} delivered after wake()`,
        30_000,
      );
    }
    // The queue can hold the third copy before the relay has marked its row and counted it.
    await until(() => r.stats.sent >= 3, "the relay counts the third event");
    expect(r.stats.sent).toBe(3);
    expect(await janitor.messageCount(q)).toBe(3);
  });

  it("retries an event the broker cannot route, holds back its key meanwhile, then gives up visibly", async () => {
    const outbox = await newOutbox(4);
    const exchange = janitor.exchange("noroute");
    const event = orderEvent(exchange, "topic", "order.{region}");
    await ctx.db.transaction(async (tx) => {
      await outbox.add(tx, event, { id: "first", region: "eu", amount: 1 });
      await outbox.add(tx, event, { id: "second", region: "eu", amount: 2 });
    });
    const errors: Error[] = [];
    const r = relay(outbox, {
      retryDelayMs: { initial: 50, max: 50 },
      maxAttempts: 3,
      onError: (e) => errors.push(e),
    });
    // Nothing is bound: "first" comes back unroutable and "second" must not overtake it.
    expect(await r.runOnce()).toBe(0);
    const { rows } = await ctx.db.query(
      `SELECT message_id, attempts, last_error, sent_at FROM ${outbox.table} ORDER BY id`,
    );
    expect(rows[0].attempts).toBe(1);
    expect(rows[0].last_error).toMatch(/unroutable|NO_ROUTE/i);
    expect(rows[0].sent_at).toBeNull();
    expect(rows[1].sent_at).toBeNull();
    expect(errors[0]!.message).toMatch(/will be retried/);

    // The binding appears: the next attempt delivers both, in order.
    const q = await boundQueue(exchange, "late");
    r.start();
    await until(
      async () => (await outbox.counts(ctx.db)).pending === 0,
      "both sent after the binding appeared",
    );
    expect((await janitor.drain(q)).map((m) => event.type.decode(m.content).id)).toEqual([
      "first",
      "second",
    ]);

    // With no binding at all, after maxAttempts the row is marked failed and kept with its reason.
    const lost = orderEvent(janitor.exchange("nobody"), "topic", "x.{region}");
    await ctx.db.transaction((tx) =>
      outbox.add(tx, lost, { id: "orphan", region: "eu", amount: 0 }),
    );
    await until(async () => (await outbox.counts(ctx.db)).failed === 1, "row given up");
    const failed = await ctx.db.query(
      `SELECT attempts, last_error FROM ${outbox.table} WHERE failed_at IS NOT NULL`,
    );
    expect(failed.rows[0].attempts).toBe(3);
    expect(r.stats.gaveUp).toBe(1);
    expect(errors.some((e) => /failed for good after 3 attempts/.test(e.message))).toBe(true);
  });

  it("strictOrder keeps a key's order when a row in the middle comes back unroutable; by default later rows overtake it", async () => {
    const ids = async (strictOrder: boolean) => {
      const outbox = await newOutbox(1);
      const exchange = janitor.exchange(strictOrder ? "strict" : "batch");
      const event = orderEvent(exchange, "topic", "order.{region}");
      // One queue, bound at first for eu only: the us event in the middle is unroutable.
      const q = await boundQueue(exchange, "order", "order.eu");
      await ctx.db.transaction(async (tx) => {
        for (const [id, region] of [
          ["first", "eu"],
          ["second", "us"],
          ["third", "eu"],
        ] as const) {
          await outbox.add(tx, event, { id, region, amount: 1 }, { orderingKey: "customer-7" });
        }
      });
      const r = relay(outbox, {
        strictOrder,
        retryDelayMs: { initial: 50, max: 50 },
        onError: () => {},
      });
      await r.runOnce();
      const firstRound = (await janitor.drain(q)).map((m) => event.type.decode(m.content).id);
      // The route appears; the retry sends what is left.
      const ch = await janitor.channel();
      await ch.bindQueue(q, exchange, "order.us");
      await ch.close();
      r.start();
      await until(
        async () => (await outbox.counts(ctx.db)).pending === 0,
        "all sent once us is bound",
      );
      await until(
        async () => (await janitor.messageCount(q)) === 3 - firstRound.length,
        "the rest in the queue",
      );
      return [
        ...firstRound,
        ...(await janitor.drain(q)).map((m) => event.type.decode(m.content).id),
      ];
    };
    expect(await ids(true)).toEqual(["first", "second", "third"]);
    expect(await ids(false)).toEqual(["first", "third", "second"]);
  });

  it("a row whose exchange the broker refuses holds back the later rows of its key, until it is given up", async () => {
    const outbox = await newOutbox(1);
    const good = janitor.exchange("good");
    const clash = janitor.exchange("clash");
    const q = await boundQueue(good, "good");
    // The clashing exchange exists as direct; the event declares topic: the broker refuses (406).
    const ch = await janitor.channel();
    await ch.assertExchange(clash, "direct", { durable: true });
    await ch.close();
    const ok = orderEvent(good, "topic", "order.{region}");
    const refused = orderEvent(clash, "topic", "order.{region}");
    await ctx.db.transaction(async (tx) => {
      await outbox.add(tx, ok, { id: "first", region: "eu", amount: 1 }, { orderingKey: "k" });
      await outbox.add(
        tx,
        refused,
        { id: "second", region: "eu", amount: 2 },
        { orderingKey: "k" },
      );
      await outbox.add(tx, ok, { id: "third", region: "eu", amount: 3 }, { orderingKey: "k" });
    });
    const r = relay(outbox, {
      retryDelayMs: { initial: 50, max: 50 },
      maxAttempts: 2,
      onError: () => {},
    });
    expect(await r.runOnce()).toBe(1);
    expect((await janitor.drain(q)).map((m) => ok.type.decode(m.content).id)).toEqual(["first"]);
    r.start();
    await until(async () => (await outbox.counts(ctx.db)).failed === 1, "the refused row given up");
    await until(async () => (await janitor.messageCount(q)) === 1, "third sent after it");
    expect((await janitor.drain(q)).map((m) => ok.type.decode(m.content).id)).toEqual(["third"]);
  });

  it("keeps accepting writes while the broker is down and delivers all of them once it is back", async () => {
    const outbox = await newOutbox();
    const processed = uniqueTable("processed");
    const applied = uniqueTable("applied");
    tables.push(processed, applied);
    await installIdempotency(ctx.db, { table: processed });
    await ctx.db.query(`CREATE TABLE ${applied} (id text NOT NULL)`);
    const exchange = janitor.exchange("down");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const queue = janitor.queue("down", [50]);

    // The consumer talks to the broker directly; only the relay's connection goes through the proxy.
    const total = 300;
    const all = countdown(total);
    const consumer = new EventConsumer(ctx.conn, {
      queue,
      queueType: "classic",
      retry: { delaysMs: [50] },
    });
    closers.push(() => consumer.close());
    await consumer
      .on(
        event,
        idempotent<Order>(
          ctx.db,
          async (o, _d, tx) => {
            await tx.query(`INSERT INTO ${applied} (id) VALUES ($1)`, [o.id]);
            all.hit();
          },
          { consumer: "down-test", table: processed },
        ),
      )
      .start();

    const proxy = await brokerProxy();
    closers.push(() => proxy.stop());
    const relayConn = await AmqpConnection.connect({
      urls: proxy.url,
      name: "grabbit-outbox-relay",
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    closers.push(() => relayConn.close());
    const r = relay(outbox, { batchSize: 50 }, relayConn).start();

    await ctx.db.transaction((tx) =>
      outbox.add(tx, event, { id: "before", region: "eu", amount: 0 }),
    );
    await until(async () => all.count === 1, "the first event");

    proxy.refuse(true);
    proxy.cutAll();
    await until(() => !relayConn.connected, "relay disconnected");
    // The service goes on: every transaction commits with its event, none waits for the broker.
    for (let i = 1; i < total; i++) {
      await ctx.db.transaction(async (tx) => {
        await outbox.add(tx, event, { id: `during-${i}`, region: i % 2 ? "eu" : "us", amount: i });
      });
    }
    expect((await outbox.counts(ctx.db)).pending).toBe(total - 1);
    expect(all.count).toBe(1);

    proxy.refuse(false);
    await all.done;
    await until(async () => (await outbox.counts(ctx.db)).pending === 0, "outbox drained");
    // The handler counts before its transaction commits: wait for the commits, then count rows.
    await until(
      async () =>
        (await ctx.db.query(`SELECT count(*)::int AS n FROM ${applied}`)).rows[0].n >= total,
      "all applied",
    );
    const { rows } = await ctx.db.query(
      `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM ${applied}`,
    );
    expect(rows[0]).toEqual({ n: total, d: total });
    expect(r.stats.sent).toBe(total);
    expect(await janitor.messageCount(`${queue}.dlq`)).toBe(0);
  });
});
