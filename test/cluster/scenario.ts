// A load-and-fault driver for the cluster tests: for a bounded time it publishes typed events at a
// steady rate to a quorum queue that two competing EventConsumers (each on its own AmqpConnection,
// as separate processes would be) consume, and makes AMQP RPC calls at a steady rate to two
// AmqpRpcServers (each on its own connection). At a set time it runs a fault (kill a node, ...).
// Every publish and every call is recorded with its outcome; the summary counts them and says how
// long the service took to work again. Only the runtime's public API is used.
//
// Outcomes (exclusive; they add up to the number sent):
// - publish: "confirmed" (resolved), "refused" (rejected, with the error's code and message) or
//   "hung" (not settled within its publish timeout + a margin, whether or not it settled later);
// - RPC: "ok" (the right reply), "failed" (by code) or "hung" (not settled within its deadline +
//   the margin).
// Loss and duplicates are counted from the consumers' side, after a drain period: "lost" = a
//   message whose publish was confirmed (in time or late) and that no consumer ever received;
//   refused messages are never counted as lost (one that arrived anyway is "consumedUnconfirmed").
//   "duplicates" = deliveries to a handler beyond the first of the same message_id.
//
// Recovery time (per stream, publishes and RPC calls separately), measured from the fault mark
// (ctx.markFault(), the moment of the kill): take the attempts in the order they were sent and the
// longest tail of them that all succeeded in time (confirmed / ok), i.e. everything sent after the
// last failure or hang; of that tail, the attempts sent at or after the fault. Recovery time = the
// earliest moment one of those succeeded - the fault: "from the kill to the first success after
// which every attempt sent succeeded". null = not recovered by the end of the run (the last
// attempt sent failed). A fault that nothing noticed gives about one round trip. Successes can
// still be slow after that moment: `maxLatencyAfterRecoveryMs` and `slowAfterRecovery` (settled
// more than 1 s after being sent) show such stalls in the tail.
//
// The same, measured from a later mark (ctx.mark(), e.g. "majority back"), is `recoveryAfterMarkMs`.

import amqp from "amqplib";
import { codeName, StatusError } from "@grabbit/runtime";
import {
  AmqpConnection,
  AmqpRpcTransport,
  EventConsumer,
  EventPublisher,
  Publisher,
  serveAmqp,
  type AmqpRpcServer,
} from "@grabbit/runtime/amqp";
import { orderEvent, type Order } from "../amqp/fixtures.js";
import { echoService, type Echo } from "../amqp-rpc/fixture.js";
import { uniqueName } from "../support/broker.js";

export interface ScenarioFaultContext {
  /** The event queue (quorum) the consumers share. */
  readonly eventQueue: string;
  /** The RPC request queue (quorum) the servers share. */
  readonly rpcQueue: string;
  /** Marks the fault (the kill): recovery is measured from here. Only the first call counts. */
  markFault(label: string): void;
  /** Marks a later moment, e.g. "majority back"; the summary gives recovery after it too. */
  mark(label: string): void;
  /** Aborted when the load ends: a fault still waiting should stop waiting. */
  readonly signal: AbortSignal;
}

export interface ScenarioOptions {
  name: string;
  /** Broker URLs, given to every client in this order. */
  urls: string[];
  /** How long the load runs (at least). Default 14 000 ms. */
  durationMs?: number;
  /**
   * Keeps the load running until `ms` after the mark `label` (ctx.mark()), but no longer than
   * `maxDurationMs` in all: to see what happens after a node that takes a variable time is back.
   */
  runAfterMark?: { label: string; ms: number; maxDurationMs: number };
  /** When the fault callback is called, from the start of the load. Default 3000 ms. */
  faultAtMs?: number;
  fault?: (ctx: ScenarioFaultContext) => Promise<void>;
  /**
   * Called once everything is set up and working, just before the load starts (not timed): the
   * place for slow look-ups the fault needs, such as which node leads the queues.
   */
  beforeLoad?: (queues: { eventQueue: string; rpcQueue: string }) => Promise<void>;
  /** Default 500. */
  eventsPerSecond?: number;
  /** Default 200. */
  rpcPerSecond?: number;
  /** Per-publish timeout given to the runtime. Default 8000 ms. */
  publishTimeoutMs?: number;
  /** Per-call RPC deadline given to the runtime. Default 5000 ms. */
  rpcTimeoutMs?: number;
  /** A publish or call not settled within its timeout + this is "hung". Default 2000 ms. */
  hangMarginMs?: number;
  /** After the load: how long to wait for every confirmed message to be consumed. Default 15 000 ms. */
  drainMs?: number;
  /** Called before anything is declared, with what the scenario will declare (to delete it even if the run throws). */
  onCreated?: (created: ScenarioResult["created"]) => void;
}

export interface StreamSummary {
  sent: number;
  /** Confirmed publishes / ok calls (settled in time). */
  ok: number;
  /** Refused publishes / failed calls (settled in time). */
  failed: number;
  hung: number;
  /** Hung ones that did settle, but late. */
  settledLate: number;
  failedPct: number;
  /** By code name. */
  failedByCode: Record<string, number>;
  /** "CODE: message" -> count, the most frequent first (at most 8). */
  failedByError: [string, number][];
  /** Failures whose message mentions the quorum (/quorum/i). */
  failedMentioningQuorum: number;
  /** Longest time from sending to a failure. */
  maxFailLatencyMs: number;
  /** See the header comment; null = not recovered before the load ended. */
  recoveryMs: number | null;
  /** When the last failed (or hung) attempt was sent, relative to the fault. */
  lastFailureSentMs: number | null;
  maxLatencyAfterRecoveryMs: number | null;
  /** Attempts of that tail that took more than 1 s to succeed. */
  slowAfterRecovery: number | null;
  /** Per second of the load by send time: "ok/failed/hung". */
  timeline: string;
}

export interface ScenarioSummary {
  name: string;
  /** How long the load ran. */
  loadMs: number;
  /** Relative to the start of the load (ms). */
  faultAtMs: number | null;
  faultLabel: string | null;
  marks: Record<string, number>;
  publish: StreamSummary & {
    lost: number;
    lostSample: string[];
    consumedUnique: number;
    deliveries: number;
    duplicates: number;
    consumedUnconfirmed: number;
    perConsumer: number[];
    /** Recovery measured from each mark instead of the fault. */
    recoveryAfterMarkMs: Record<string, number | null>;
  };
  rpc: StreamSummary & { perServer: number[]; recoveryAfterMarkMs: Record<string, number | null> };
  /**
   * Per connection: its sessions in order, as "port@seconds" from the start of the load (negative:
   * before it), long lists shortened; and how often it was disconnected.
   */
  connections: { name: string; sessions: string; disconnects: number }[];
  /** Errors reported with no caller (connections' onError, consumers', servers'), by message. */
  reportedErrors: [string, number][];
  /** Closes that did not finish in time (the client was abandoned). */
  closeTimeouts: string[];
}

export interface ScenarioResult {
  summary: ScenarioSummary;
  /** What the scenario declared on the cluster; delete it with deleteScenarioObjects(). */
  created: { queues: string[]; exchanges: string[] };
  /** Every publish and call, in the order sent, with times relative to the start of the load. */
  attempts: { publish: AttemptRecord[]; rpc: AttemptRecord[] };
}

export interface AttemptRecord {
  sentMs: number;
  /** Undefined: never settled. */
  settledMs: number | undefined;
  outcome: "ok" | "failed" | "hung";
  /** "CODE: message" of a failure. */
  error: string | undefined;
}

interface Attempt {
  sentAt: number;
  settledAt: number | undefined;
  ok: boolean;
  error: string | undefined;
  code: string | undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every client connection of a scenario is made here, so an option (such as keeping the URL order) is set once. */
async function connect(
  urls: string[],
  name: string,
  onError: (err: Error) => void,
): Promise<AmqpConnection> {
  // The same URL order for every client, kept as given (the runtime shuffles by default): the worst
  // case of the issue, every connection and every queue leader on the first node.
  return AmqpConnection.connect({
    urls: [...urls],
    urlOrder: "given",
    name,
    connectTimeoutMs: 30_000,
    onError,
  });
}

function describeError(err: unknown): { code: string; text: string } {
  if (err instanceof StatusError)
    return { code: codeName(err.code), text: `${codeName(err.code)}: ${err.rawMessage}` };
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return { code: "not a StatusError", text };
}

function countInto(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function top(map: Map<string, number>, n = 8): [string, number][] {
  return [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}

/** Whether an attempt succeeded within its limit (timeout + margin). */
function inTime(a: Attempt, limitMs: number): boolean {
  return a.settledAt !== undefined && a.settledAt - a.sentAt <= limitMs;
}

function recoveryFrom(
  attempts: Attempt[],
  from: number,
  limitMs: number,
): { recoveryMs: number | null; tailStart: number } {
  let s = attempts.length;
  while (s > 0 && attempts[s - 1]!.ok && inTime(attempts[s - 1]!, limitMs)) s--;
  let j = s;
  while (j < attempts.length && attempts[j]!.sentAt < from) j++;
  if (j >= attempts.length) return { recoveryMs: null, tailStart: j };
  let first = Infinity;
  for (let k = j; k < attempts.length; k++) first = Math.min(first, attempts[k]!.settledAt!);
  return { recoveryMs: first - from, tailStart: j };
}

function summarize(
  attempts: Attempt[],
  limitMs: number,
  start: number,
  faultAt: number | undefined,
  loadMs: number,
): StreamSummary {
  let ok = 0;
  let failed = 0;
  let hung = 0;
  let settledLate = 0;
  let maxFailLatencyMs = 0;
  let failedMentioningQuorum = 0;
  let lastFailureSent: number | undefined;
  const byCode = new Map<string, number>();
  const byError = new Map<string, number>();
  const buckets = Array.from({ length: Math.ceil(loadMs / 1000) + 1 }, () => [0, 0, 0]);
  for (const a of attempts) {
    const b = buckets[Math.min(buckets.length - 1, Math.floor((a.sentAt - start) / 1000))]!;
    if (!inTime(a, limitMs)) {
      hung++;
      b[2]!++;
      if (a.settledAt !== undefined) settledLate++;
      lastFailureSent = a.sentAt;
    } else if (a.ok) {
      ok++;
      b[0]!++;
    } else {
      failed++;
      b[1]!++;
      countInto(byCode, a.code!);
      countInto(byError, a.error!);
      if (/quorum/i.test(a.error!)) failedMentioningQuorum++;
      maxFailLatencyMs = Math.max(maxFailLatencyMs, a.settledAt! - a.sentAt);
      lastFailureSent = a.sentAt;
    }
  }
  let recoveryMs: number | null = null;
  let maxLatencyAfterRecoveryMs: number | null = null;
  let slowAfterRecovery: number | null = null;
  if (faultAt !== undefined) {
    const r = recoveryFrom(attempts, faultAt, limitMs);
    recoveryMs = r.recoveryMs;
    if (r.recoveryMs !== null) {
      maxLatencyAfterRecoveryMs = 0;
      slowAfterRecovery = 0;
      for (let k = r.tailStart; k < attempts.length; k++) {
        const latency = attempts[k]!.settledAt! - attempts[k]!.sentAt;
        maxLatencyAfterRecoveryMs = Math.max(maxLatencyAfterRecoveryMs, latency);
        if (latency > 1000) slowAfterRecovery++;
      }
    }
  }
  return {
    sent: attempts.length,
    ok,
    failed,
    hung,
    settledLate,
    failedPct: attempts.length ? Math.round((failed / attempts.length) * 10_000) / 100 : 0,
    failedByCode: Object.fromEntries(byCode),
    failedByError: top(byError),
    failedMentioningQuorum,
    maxFailLatencyMs,
    recoveryMs,
    lastFailureSentMs:
      lastFailureSent === undefined || faultAt === undefined ? null : lastFailureSent - faultAt,
    maxLatencyAfterRecoveryMs,
    slowAfterRecovery,
    timeline: buckets.map((b) => `${b[0]}/${b[1]}/${b[2]}`).join(" "),
  };
}

function sessionsText(sessions: { url: string; at: number }[], start: number): string {
  const one = (x: { url: string; at: number }) => {
    let port = x.url;
    try {
      port = new URL(x.url).port || x.url;
    } catch {
      // "?" when there was no session to read
    }
    return `${port}@${((x.at - start) / 1000).toFixed(1)}`;
  };
  const all = sessions.map(one);
  return all.length <= 12
    ? all.join(" ")
    : `${all.slice(0, 6).join(" ")} ... (${all.length - 12} more) ... ${all.slice(-6).join(" ")}`;
}

/** Closes something, giving up after `ms` (and saying so). */
async function closeWithin(
  what: string,
  close: () => Promise<unknown>,
  ms: number,
  timeouts: string[],
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
  const r = await Promise.race([
    close().then(
      () => "done" as const,
      () => "done" as const,
    ),
    gaveUp,
  ]);
  clearTimeout(timer);
  if (r === "timeout") timeouts.push(`${what} (${ms} ms)`);
}

export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const durationMs = options.durationMs ?? 14_000;
  const faultAtMs = options.faultAtMs ?? 3_000;
  const eventsPerSecond = options.eventsPerSecond ?? 500;
  const rpcPerSecond = options.rpcPerSecond ?? 200;
  const publishTimeoutMs = options.publishTimeoutMs ?? 8_000;
  const rpcTimeoutMs = options.rpcTimeoutMs ?? 5_000;
  const hangMarginMs = options.hangMarginMs ?? 2_000;
  const drainMs = options.drainMs ?? 15_000;
  const pubLimit = publishTimeoutMs + hangMarginMs;
  const rpcLimit = rpcTimeoutMs + hangMarginMs;

  const tag = uniqueName(`grabbit-cluster-${options.name}`);
  const exchange = `${tag}-ex`;
  const queue = `${tag}-q`;
  const retryDelay = 1000;
  const event = orderEvent(exchange, "topic", "cluster.{region}");
  const service = echoService();
  const rpcQueue = service.amqp!.requestQueue;
  const created = {
    queues: [queue, `${queue}.dlq`, `${queue}.retry.${retryDelay}`, rpcQueue, `${rpcQueue}.dlq`],
    exchanges: [exchange],
  };
  options.onCreated?.(created);

  const reported = new Map<string, number>();
  const report = (who: string) => (err: Error) => countInto(reported, `${who}: ${err.message}`);
  const connections: {
    name: string;
    conn: AmqpConnection;
    sessions: { url: string; at: number }[];
    disconnects: number;
  }[] = [];
  // Reset when the load starts; every time in the summary is relative to it.
  let start = Date.now();
  const closeTimeouts: string[] = [];
  const open = async (name: string) => {
    const conn = await connect(options.urls, `${tag}-${name}`, report(`connection ${name}`));
    const entry = {
      name,
      conn,
      sessions: [{ url: conn.currentSession?.url ?? "?", at: Date.now() }],
      disconnects: 0,
    };
    conn.on("connected", (s: { url: string }) =>
      entry.sessions.push({ url: s.url, at: Date.now() }),
    );
    conn.on("disconnected", () => entry.disconnects++);
    connections.push(entry);
    return conn;
  };

  const warmUpId = `${tag}-warm-up`;
  let summary: ScenarioSummary | undefined;
  const consumers: EventConsumer[] = [];
  const servers: AmqpRpcServer[] = [];
  const transports: AmqpRpcTransport[] = [];
  const publishers: { close(): Promise<void> }[] = [];
  try {
    // ---- consumers first: a publish before the queue is bound would be unroutable ----
    const consumed = new Map<string, number>();
    const perConsumer = [0, 0];
    for (let k = 0; k < 2; k++) {
      const conn = await open(`consumer-${k + 1}`);
      const consumer = new EventConsumer(conn, {
        queue,
        queueType: "quorum",
        prefetch: 64,
        retry: { delaysMs: [retryDelay] },
        onError: report(`consumer ${k + 1}`),
      });
      consumer.on(event, (_o: Order, d) => {
        perConsumer[k]!++;
        countInto(consumed, d.messageId ?? "<none>");
      });
      await consumer.start();
      consumers.push(consumer);
    }

    // ---- two RPC servers, each on its own connection ----
    const served = [0, 0];
    for (let k = 0; k < 2; k++) {
      const conn = await open(`rpc-server-${k + 1}`);
      const server = await serveAmqp(
        conn,
        service,
        {
          echo: (req: Echo) => {
            served[k]!++;
            return { text: req.text, delayMs: 0 };
          },
        },
        { queueType: "quorum", onError: report(`rpc server ${k + 1}`) },
      );
      servers.push(server);
    }

    // ---- the publisher and the RPC client, each on its own connection ----
    const pubConn = await open("publisher");
    const shared = new Publisher(pubConn, { timeoutMs: publishTimeoutMs });
    const publisher = new EventPublisher<Order>(pubConn, event, { publisher: shared });
    publishers.push(publisher, shared);
    const clientConn = await open("rpc-client");
    const transport = new AmqpRpcTransport(clientConn, { timeoutMs: rpcTimeoutMs });
    transports.push(transport);

    // Everything works before the load starts (else the numbers would measure the setup).
    await publisher.publish({ id: "warm-up", region: "warm", amount: 0 }, { messageId: warmUpId });
    await transport.unary(service.methods.echo, { text: "warm-up", delayMs: 0 });
    await options.beforeLoad?.({ eventQueue: queue, rpcQueue });

    // ---- the load ----
    const pubs: Attempt[] = [];
    const calls: Attempt[] = [];
    const confirmedIds = new Set<string>();
    const inflight = new Set<Promise<unknown>>();
    const track = (p: Promise<unknown>) => {
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    };
    start = Date.now();
    let faultAt: number | undefined;
    let faultLabel: string | null = null;
    const marks: Record<string, number> = {};
    const loadEnded = new AbortController();

    const publishOne = (i: number) => {
      const a: Attempt = {
        sentAt: Date.now(),
        settledAt: undefined,
        ok: false,
        error: undefined,
        code: undefined,
      };
      pubs.push(a);
      const id = `${tag}-${i}`;
      track(
        publisher.publish({ id: `o${i}`, region: `r${i % 5}`, amount: i }, { messageId: id }).then(
          () => {
            a.settledAt = Date.now();
            a.ok = true;
            confirmedIds.add(id);
          },
          (err: unknown) => {
            a.settledAt = Date.now();
            const d = describeError(err);
            a.code = d.code;
            a.error = d.text;
          },
        ),
      );
    };
    const callOne = (i: number) => {
      const a: Attempt = {
        sentAt: Date.now(),
        settledAt: undefined,
        ok: false,
        error: undefined,
        code: undefined,
      };
      calls.push(a);
      const text = `${tag}-c${i}`;
      track(
        transport.unary(service.methods.echo, { text, delayMs: 0 }).then(
          (r) => {
            a.settledAt = Date.now();
            if (r.text === text) a.ok = true;
            else {
              a.code = "wrong reply";
              a.error = `wrong reply: ${r.text}`;
            }
          },
          (err: unknown) => {
            a.settledAt = Date.now();
            const d = describeError(err);
            a.code = d.code;
            a.error = d.text;
          },
        ),
      );
    };

    // The load's length: durationMs, or longer while runAfterMark waits for its mark.
    const loadMs = () => {
      const after = options.runAfterMark;
      if (!after) return durationMs;
      const at = marks[after.label];
      return Math.min(
        after.maxDurationMs,
        Math.max(durationMs, at === undefined ? Infinity : at + after.ms),
      );
    };
    let faultRun: Promise<void> = Promise.resolve();
    let faultError: unknown;
    const faultTimer = options.fault
      ? setTimeout(() => {
          const ctx: ScenarioFaultContext = {
            eventQueue: queue,
            rpcQueue,
            signal: loadEnded.signal,
            markFault: (label) => {
              if (faultAt !== undefined) return;
              faultAt = Date.now();
              faultLabel = label;
            },
            mark: (label) => {
              marks[label] = Date.now() - start;
            },
          };
          faultRun = options.fault!(ctx).catch((err: unknown) => {
            faultError = err;
          });
        }, faultAtMs)
      : undefined;

    await new Promise<void>((resolve) => {
      const ticker = setInterval(() => {
        const elapsed = Date.now() - start;
        const t = Math.min(elapsed, loadMs());
        const duePubs = Math.floor((t * eventsPerSecond) / 1000);
        while (pubs.length < duePubs) publishOne(pubs.length);
        const dueCalls = Math.floor((t * rpcPerSecond) / 1000);
        while (calls.length < dueCalls) callOne(calls.length);
        if (elapsed >= loadMs()) {
          clearInterval(ticker);
          resolve();
        }
      }, 5);
    });
    const loadEnd = Date.now();
    const ranMs = loadEnd - start;
    loadEnded.abort();
    if (faultTimer) clearTimeout(faultTimer);
    await faultRun;
    if (faultError) throw faultError;

    // ---- let what is in flight settle (or be counted as hung), then drain the queue ----
    const settleBy = loadEnd + Math.max(pubLimit, rpcLimit) + 500;
    while (inflight.size > 0 && Date.now() < settleBy) await sleep(50);
    const drainUntil = Date.now() + drainMs;
    const missing = () => [...confirmedIds].filter((id) => !consumed.has(id));
    while (missing().length > 0 && Date.now() < drainUntil) await sleep(100);
    // Redeliveries still on their way show up as duplicates.
    await sleep(1000);

    const lostIds = missing();
    let deliveries = 0;
    let duplicates = 0;
    let consumedUnconfirmed = 0;
    for (const [id, n] of consumed) {
      if (id === warmUpId) continue;
      deliveries += n;
      duplicates += n - 1;
      if (!confirmedIds.has(id)) consumedUnconfirmed++;
    }

    const pubSummary = summarize(pubs, pubLimit, start, faultAt, ranMs);
    const rpcSummary = summarize(calls, rpcLimit, start, faultAt, ranMs);
    const afterMarks = (attempts: Attempt[], limit: number) =>
      Object.fromEntries(
        Object.entries(marks).map(([label, at]) => [
          label,
          recoveryFrom(attempts, start + at, limit).recoveryMs,
        ]),
      );
    summary = {
      name: options.name,
      loadMs: ranMs,
      faultAtMs: faultAt === undefined ? null : faultAt - start,
      faultLabel,
      marks,
      publish: {
        ...pubSummary,
        lost: lostIds.length,
        lostSample: lostIds.slice(0, 5),
        consumedUnique: consumed.size - (consumed.has(warmUpId) ? 1 : 0),
        deliveries,
        duplicates,
        consumedUnconfirmed,
        perConsumer,
        recoveryAfterMarkMs: afterMarks(pubs, pubLimit),
      },
      rpc: { ...rpcSummary, perServer: served, recoveryAfterMarkMs: afterMarks(calls, rpcLimit) },
      connections: [],
      reportedErrors: [],
      closeTimeouts,
    };
    const record = (list: Attempt[], limit: number): AttemptRecord[] =>
      list.map((a) => ({
        sentMs: a.sentAt - start,
        settledMs: a.settledAt === undefined ? undefined : a.settledAt - start,
        outcome: !inTime(a, limit) ? "hung" : a.ok ? "ok" : "failed",
        error: a.error,
      }));
    return {
      summary,
      created,
      attempts: { publish: record(pubs, pubLimit), rpc: record(calls, rpcLimit) },
    };
  } finally {
    // Bounded closes: a client that cannot close is noted, not waited for.
    for (const t of transports)
      await closeWithin("rpc transport", () => t.close(), 5_000, closeTimeouts);
    for (const p of publishers)
      await closeWithin("publisher", () => p.close(), 5_000, closeTimeouts);
    for (const c of consumers) await closeWithin("consumer", () => c.close(), 5_000, closeTimeouts);
    for (const s of servers) await closeWithin("rpc server", () => s.close(), 5_000, closeTimeouts);
    for (const c of connections)
      await closeWithin(`connection ${c.name}`, () => c.conn.close(), 5_000, closeTimeouts);
    // Filled in here (the returned object is this one) so they include what happened while closing.
    if (summary) {
      summary.connections = connections.map((c) => ({
        name: c.name,
        sessions: sessionsText(c.sessions, start),
        disconnects: c.disconnects,
      }));
      summary.reportedErrors = top(reported);
    }
  }
}

/** Deletes a scenario's queues and exchanges through the first node that answers (each step bounded). */
export async function deleteScenarioObjects(
  urls: string[],
  created: ScenarioResult["created"],
): Promise<string[]> {
  const problems: string[] = [];
  for (const url of urls) {
    let model: amqp.ChannelModel | undefined;
    try {
      model = await amqp.connect(url, { timeout: 5_000 });
      model.on("error", () => {});
      const step = async (what: string, f: (ch: amqp.Channel) => Promise<unknown>) => {
        const ch = await model!.createChannel();
        ch.on("error", () => {});
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<never>(
          (_, reject) =>
            (timer = setTimeout(() => reject(new Error(`${what}: no answer in 10 s`)), 10_000)),
        );
        try {
          await Promise.race([f(ch), limit]);
        } catch (err) {
          problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
        } finally {
          clearTimeout(timer);
          await ch.close().catch(() => {});
        }
      };
      for (const q of created.queues) await step(`delete queue ${q}`, (ch) => ch.deleteQueue(q));
      for (const e of created.exchanges)
        await step(`delete exchange ${e}`, (ch) => ch.deleteExchange(e));
      await model.close().catch(() => {});
      return problems;
    } catch (err) {
      problems.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
      await model?.close().catch(() => {});
    }
  }
  return problems;
}

/** The summary as a few lines for the test output (JSON on each line, so it can be grepped and parsed). */
export function formatSummary(s: ScenarioSummary): string {
  const stream = (what: string, x: StreamSummary) => {
    const { timeline, failedByError, ...figures } = x;
    return [
      `  ${what}: ${JSON.stringify(figures)}`,
      `  ${what} failures: ${JSON.stringify(failedByError)}`,
      `  ${what} per second sent (ok/failed/hung): ${timeline}`,
    ];
  };
  return [
    `CLUSTER SCENARIO ${s.name}: load ${s.loadMs} ms, fault ${JSON.stringify(s.faultLabel)} at ${s.faultAtMs} ms, marks ${JSON.stringify(s.marks)} (ms from the start of the load)`,
    ...stream("publish", s.publish),
    ...stream("rpc", s.rpc),
    ...s.connections.map(
      (c) =>
        `  connection ${c.name}: ${c.disconnects} disconnect(s), sessions (port@s) ${c.sessions}`,
    ),
    `  reported errors: ${JSON.stringify(s.reportedErrors)}`,
    `  close timeouts: ${JSON.stringify(s.closeTimeouts)}`,
  ].join("\n");
}
