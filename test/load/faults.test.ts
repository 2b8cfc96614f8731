// Load with faults: 100,000 events through a confirmed publisher and two competing idempotent
// consumers (one of them in a child process that is killed with SIGKILL and started again), while
// every broker connection goes through a TcpProxy that cuts them all several times and refuses new
// ones for a while. RPC calls run through the same proxy at the same time.
//
// Counted at the end: every event applied exactly once (none lost, none applied twice), duplicates
// caught by the idempotency table, RPC outcomes (a reply or UNAVAILABLE / DEADLINE_EXCEEDED, none
// hanging). Nothing is asserted on time; the limits only stop a broken run. Figures are printed as
// "FIGURES ..." lines for RELIABILITY.md.
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import {
  AmqpConnection,
  AmqpRpcTransport,
  EventConsumer,
  EventPublisher,
  Publisher,
  serveAmqp,
} from "@grabbit/runtime/amqp";
import { idempotent, installIdempotency, type Database } from "@grabbit/runtime/outbox";
import { AMQP_URL } from "../support/broker.js";
import { brokerProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { Janitor, orderEvent, type Order } from "../amqp/fixtures.js";
import { echoService, sleep } from "../amqp-rpc/fixture.js";
import { PG_URL, pgDatabase, runChild, uniqueTable, until, type Child } from "../outbox/support.js";

const TOTAL = Number(process.env.GRABBIT_LOAD_EVENTS ?? 100_000);
const CHUNK = 5_000;
const QUEUE_TYPE = (process.env.GRABBIT_LOAD_QUEUE_TYPE ?? "quorum") as "quorum" | "classic";
const RPC_DEADLINE_MS = 3_000;
/** A call not settled this long after its deadline is counted as hung (the thing that must not happen). */
const HANG_MS = RPC_DEADLINE_MS + 30_000;

let db: Database;
let proxy: TcpProxy;
const janitor = new Janitor();
const closers: (() => Promise<unknown>)[] = [];
const tables: string[] = [];
const children: Child[] = [];
let rpcQueue: string | undefined;

beforeAll(async () => {
  db = await pgDatabase(16);
  proxy = await brokerProxy();
});
afterAll(async () => {
  for (const c of children) c.kill9();
  for (const c of closers.reverse()) await c().catch(() => {});
  await proxy.stop();
  await janitor.cleanup();
  if (rpcQueue) {
    const admin = await amqp.connect(AMQP_URL);
    const ch = await admin.createChannel();
    await ch.deleteQueue(rpcQueue).catch(() => {});
    await ch.deleteQueue(`${rpcQueue}.dlq`).catch(() => {});
    await admin.close();
  }
  for (const t of tables) await db.query(`DROP TABLE IF EXISTS ${t}`);
  await db.close();
});

async function proxied(name: string): Promise<{ conn: AmqpConnection; sessions: () => number }> {
  const conn = await AmqpConnection.connect({
    urls: proxy.url,
    name,
    reconnect: { initialDelayMs: 20, maxDelayMs: 250 },
    connectTimeoutMs: 60_000,
  });
  let sessions = 1;
  conn.on("connected", () => sessions++);
  closers.push(() => conn.close());
  return { conn, sessions: () => sessions };
}

/** Progress on stderr with GRABBIT_LOAD_DEBUG=1, to see where a stuck run is stuck. */
function debug(text: string): void {
  if (process.env.GRABBIT_LOAD_DEBUG)
    process.stderr.write(`load: ${new Date().toISOString()} ${text}\n`);
}

type RpcOutcome = "ok" | "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "hung" | string;

describe("load with faults", () => {
  it(`${TOTAL} events and RPC calls through cuts, a refusal window and a killed consumer: none lost, none applied twice, no call hangs`, {
    timeout: 900_000,
  }, async () => {
    const started = Date.now();
    const processed = uniqueTable("load_processed");
    const applied = uniqueTable("load_applied");
    const dups = uniqueTable("load_dups");
    tables.push(processed, applied, dups);
    await installIdempotency(db, { table: processed });
    await db.query(`CREATE TABLE ${applied} (message_id text NOT NULL, who text NOT NULL)`);
    await db.query(`CREATE TABLE ${dups} (message_id text NOT NULL, who text NOT NULL)`);
    const exchange = janitor.exchange("load");
    const event = orderEvent(exchange, "topic", "load.{region}");
    const queue = janitor.queue("load", [100]);

    // Consumer 1, in this process.
    const c1 = await proxied("grabbit-load-parent");
    const consumer = new EventConsumer(c1.conn, {
      queue,
      queueType: QUEUE_TYPE,
      prefetch: 64,
      concurrency: 12,
      retry: { delaysMs: [100] },
    });
    closers.push(() => consumer.close());
    await consumer
      .on(
        event,
        idempotent<Order>(
          db,
          async (_o, d, tx) => {
            await tx.query(`INSERT INTO ${applied} (message_id, who) VALUES ($1, 'parent')`, [
              d.messageId,
            ]);
          },
          {
            consumer: "load",
            table: processed,
            onDuplicate: (d, tx) =>
              tx
                .query(`INSERT INTO ${dups} (message_id, who) VALUES ($1, 'parent')`, [d.messageId])
                .then(() => {}),
          },
        ),
      )
      .start();

    // Consumer 2, in a child process; killed and replaced once.
    const childEnv = (who: string) => ({
      WHO: who,
      PG_URL,
      CHILD_AMQP_URL: proxy.url,
      EXCHANGE: exchange,
      QUEUE: queue,
      QUEUE_TYPE,
      APPLIED_TABLE: applied,
      DUPS_TABLE: dups,
      PROCESSED_TABLE: processed,
    });
    const startChild = async (who: string): Promise<Child> => {
      const child = runChild("test/load/consumer-child.ts", childEnv(who));
      children.push(child);
      await until(() => child.lines.includes("ready"), `${who} ready`);
      return child;
    };
    let child = await startChild("child-1");

    // RPC server and client, both through the proxy.
    const service = echoService();
    rpcQueue = service.amqp!.requestQueue;
    const serverConn = await proxied("grabbit-load-rpc-server");
    const server = await serveAmqp(
      serverConn.conn,
      service,
      { echo: async (req: { text: string }) => ({ text: req.text, delayMs: 0 }) },
      { queueType: "classic" },
    );
    closers.push(() => server.close());
    const clientConn = await proxied("grabbit-load-rpc-client");
    // Fail-fast (the default) answers UNAVAILABLE while disconnected; waitForReady holds calls until
    // the connection is back or their deadline passes (DEADLINE_EXCEEDED). Calls alternate.
    const failFast = new AmqpRpcTransport(clientConn.conn, { timeoutMs: RPC_DEADLINE_MS });
    const patient = new AmqpRpcTransport(clientConn.conn, {
      timeoutMs: RPC_DEADLINE_MS,
      waitForReady: true,
    });
    closers.push(
      () => failFast.close(),
      () => patient.close(),
    );

    const appliedCount = async (): Promise<number> =>
      (await db.query(`SELECT count(*)::int AS n FROM ${applied}`)).rows[0].n;

    // ---- RPC load, until the events are all in ----
    const rpc = new Map<RpcOutcome, number>();
    let rpcCalls = 0;
    let loadDone = false;
    const rpcOne = (i: number): Promise<RpcOutcome> => {
      let timer: NodeJS.Timeout | undefined;
      const watchdog = new Promise<RpcOutcome>(
        (resolve) => (timer = setTimeout(() => resolve("hung"), HANG_MS)),
      );
      const transport = i % 2 === 0 ? failFast : patient;
      const call = transport.unary(service.methods.echo, { text: `c${i}`, delayMs: 0 }).then(
        (r): RpcOutcome => (r.text === `c${i}` ? "ok" : "wrong reply"),
        (err): RpcOutcome =>
          err instanceof StatusError
            ? err.code === Code.UNAVAILABLE
              ? "UNAVAILABLE"
              : err.code === Code.DEADLINE_EXCEEDED
                ? "DEADLINE_EXCEEDED"
                : `code ${err.code}`
            : String(err),
      );
      return Promise.race([call, watchdog]).finally(() => clearTimeout(timer));
    };
    const rpcLoop = (async () => {
      while (!loadDone) {
        const batch = await Promise.all(Array.from({ length: 25 }, () => rpcOne(rpcCalls++)));
        for (const o of batch) rpc.set(o, (rpc.get(o) ?? 0) + 1);
        await sleep(10);
      }
    })();

    // ---- faults, each triggered by progress, never by the clock ----
    const pubConn = await proxied("grabbit-load-publisher");
    const shared = new Publisher(pubConn.conn, { maxInFlight: 2000, timeoutMs: 120_000 });
    closers.push(() => shared.close());
    const publisher = new EventPublisher(pubConn.conn, event, { publisher: shared });
    let confirmed = 0;
    const faults: string[] = [];
    // A fault hits live connections only: one that is still reconnecting from the last would not notice.
    const proxiedConns = [pubConn, c1, clientConn, serverConn];
    const allUp = () =>
      until(() => proxiedConns.every((c) => c.conn.connected), "every proxied connection up");
    const cut = async (why: string) => {
      await allUp();
      proxy.cutAll();
      faults.push(`cut (${why})`);
      debug(faults.at(-1)!);
    };
    let killedChild: Child | undefined;
    const faultLoop = (async () => {
      await until(() => confirmed >= TOTAL * 0.2, "20% published", 600_000);
      await cut("20% published");
      await until(() => confirmed >= TOTAL * 0.5, "50% published", 600_000);
      await cut("50% published");
      await until(() => confirmed >= TOTAL * 0.8, "80% published", 600_000);
      await allUp();
      proxy.refuse(true);
      proxy.cutAll();
      debug("refusing");
      await until(
        () => !pubConn.conn.connected && !c1.conn.connected,
        "publisher and consumer disconnected",
      );
      // Longer than the RPC deadline, so calls waiting for the connection run out of time; an
      // outage has no progress to wait for, so this one pause is fixed.
      await sleep(RPC_DEADLINE_MS + 1000);
      proxy.refuse(false);
      faults.push(
        `refused new connections for ${(RPC_DEADLINE_MS + 1000) / 1000} s (80% published)`,
      );
      debug(faults.at(-1)!);
      await until(async () => (await appliedCount()) >= TOTAL * 0.35, "35% applied", 600_000);
      await cut("35% applied");
      await until(async () => (await appliedCount()) >= TOTAL * 0.5, "50% applied", 600_000);
      killedChild = child;
      child.kill9();
      expect(await child.exited).toBe("SIGKILL");
      faults.push("consumer child-1 killed with SIGKILL (50% applied)");
      debug(faults.at(-1)!);
      child = await startChild("child-2");
      // Cuts that land while connections are still reconnecting and running their session setups.
      await until(async () => (await appliedCount()) >= TOTAL * 0.6, "60% applied", 600_000);
      await allUp();
      for (let k = 0; k < 4; k++) {
        proxy.cutAll();
        await sleep(Math.random() * 100);
      }
      faults.push("4 cuts in a burst, 0-100 ms apart, hitting reconnects and setups (60% applied)");
      debug(faults.at(-1)!);
      await until(async () => (await appliedCount()) >= TOTAL * 0.7, "70% applied", 600_000);
      await cut("70% applied");
      await until(async () => (await appliedCount()) >= TOTAL * 0.85, "85% applied", 600_000);
      await cut("85% applied");
    })();
    // Awaited below; this only keeps a failure from being reported as unhandled before that.
    faultLoop.catch(() => {});

    const watch = setInterval(() => {
      const state = proxiedConns
        .map((c) => `${c.conn.connected ? "up" : "down"}/${c.sessions()}`)
        .join(" ");
      debug(
        `connections ${state}; publisher pending=${shared.pending} window=${shared.inWindow} ${JSON.stringify(shared.stats)} confirmed=${confirmed}`,
      );
    }, 5000);
    closers.push(async () => clearInterval(watch));

    // ---- publish everything; a publish that fails is published again with the same message_id ----
    let publishFailures = 0;
    let todo = Array.from({ length: TOTAL }, (_, i) => i);
    const publishStarted = Date.now();
    for (let round = 0; todo.length > 0; round++) {
      // Each round is bounded by the publish timeout; a run that cannot publish at all must end.
      if (round === 5) throw new Error(`${todo.length} events could not be published in 5 rounds`);
      const failed: number[] = [];
      for (let from = 0; from < todo.length; from += CHUNK) {
        const chunk = todo.slice(from, from + CHUNK);
        const outcomes = await Promise.allSettled(
          chunk.map((i) =>
            publisher
              .publish({ id: `e-${i}`, region: `r${i % 7}`, amount: i }, { messageId: `load-${i}` })
              .then(() => confirmed++),
          ),
        );
        outcomes.forEach((o, k) => {
          if (o.status === "rejected") failed.push(chunk[k]!);
        });
        debug(`published ${confirmed}, failed ${failed.length}`);
      }
      publishFailures += failed.length;
      todo = failed;
    }
    const publishMs = Date.now() - publishStarted;

    await faultLoop;
    debug("faults done");
    await until(async () => (await appliedCount()) >= TOTAL, "every event applied", 600_000);
    debug("all applied");
    // Let redeliveries still in flight land, then stop both consumers cleanly before counting.
    await until(async () => (await janitor.messageCount(queue)) === 0, "queue empty", 600_000);
    loadDone = true;
    await rpcLoop;
    debug("rpc loop done");
    await consumer.close();
    child.proc.kill("SIGTERM");
    expect(await child.exited).toBe(0);
    const totalMs = Date.now() - started;

    // After the faults: the RPC path is whole again.
    await until(
      () => clientConn.conn.connected && serverConn.conn.connected,
      "RPC connections back",
    );
    const after = await Promise.all(Array.from({ length: 50 }, (_, i) => rpcOne(1_000_000 + i)));

    // ---- the accounting ----
    const { rows } = await db.query(
      `SELECT count(*)::int AS n, count(DISTINCT message_id)::int AS d FROM ${applied}`,
    );
    const byWho = Object.fromEntries(
      (
        await db.query(`SELECT who, count(*)::int AS n FROM ${applied} GROUP BY who ORDER BY who`)
      ).rows.map((r: { who: string; n: number }) => [r.who, r.n]),
    );
    const dupRows = (await db.query(`SELECT count(*)::int AS n FROM ${dups}`)).rows[0].n as number;
    const missing = (
      await db.query(
        `SELECT count(*)::int AS n FROM generate_series(0, $1::int - 1) g(i) WHERE NOT EXISTS (SELECT 1 FROM ${applied} a WHERE a.message_id = 'load-' || g.i)`,
        [TOTAL],
      )
    ).rows[0].n as number;
    const dead = await janitor.messageCount(`${queue}.dlq`);
    const rpcSummary = Object.fromEntries([...rpc.entries()].sort());

    console.log(
      `FIGURES load: events=${TOTAL} queue=${QUEUE_TYPE} faults=${faults.length} [${faults.join("; ")}] ` +
        `lost=${missing} applied=${rows[0].n} applied-twice=${rows[0].n - rows[0].d} duplicates-caught=${dupRows} dead-lettered=${dead} ` +
        `by-consumer=${JSON.stringify(byWho)} publish-failures-republished=${publishFailures} publisher-resent=${shared.stats.resent} ` +
        `sessions={publisher:${pubConn.sessions()},consumer:${c1.sessions()},rpc-client:${clientConn.sessions()},rpc-server:${serverConn.sessions()}} ` +
        `publish-ms=${publishMs} total-ms=${totalMs} rpc-calls=${rpcCalls} rpc=${JSON.stringify(rpcSummary)} rpc-after=${after.filter((o) => o === "ok").length}/50`,
    );

    expect(missing).toBe(0);
    expect(rows[0]).toEqual({ n: TOTAL, d: TOTAL });
    expect(dead).toBe(0);
    expect(faults).toHaveLength(8);
    // Every proxied connection really went through the cuts and the refusal (1 + 5 cuts + 1 refusal, burst not counted).
    for (const c of proxiedConns) expect(c.sessions()).toBeGreaterThanOrEqual(7);
    // The killed consumer had been doing real work, and its successor took over.
    expect(byWho["child-1"]).toBeGreaterThan(0);
    expect(killedChild).toBeDefined();
    // RPC: every call ended in a reply or a clear status, none hung, and the path works afterwards.
    expect(rpc.get("ok") ?? 0).toBeGreaterThan(0);
    for (const outcome of rpc.keys())
      expect(["ok", "UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(outcome);
    expect(after.every((o) => o === "ok")).toBe(true);
  });
});
