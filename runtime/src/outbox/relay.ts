// The read side of the outbox: publishes stored events with confirms, marks each row sent only after
// its confirm, and keeps order per ordering key even with several relays (one per service instance).
//
// How relays share the work: events are spread over a fixed set of partitions by ordering key, and a
// relay takes a short lease on the partitions it sends from (claimed with SELECT ... FOR UPDATE SKIP
// LOCKED, so two relays never claim the same partition at once), renews it while a batch is in
// flight, and gives it back after marking. A partition is sent by one relay at a time, in id order
// on one confirm channel, so events of one key reach the exchange in the order they were added.
// No transaction stays open while waiting for the broker: writers are never blocked by a slow
// broker, and the embedded (single-connection) database works the same way.
//
// Without strictOrder a round pipelines batches: while the broker confirms one batch (published
// with publishMany, one promise for the batch), the next is read and published, and the first is
// marked sent in one UPDATE once confirmed. At most PIPELINE_DEPTH batches are in flight; a round ends after
// MAX_BATCHES_PER_ROUND batches or when a read comes back short, and gives its leases back.
//
// A relay killed mid-batch leaves its rows unmarked; once its lease expires (or it restarts with the
// same relayId) they are sent again with the same message_id. Delivery is at-least-once: consumers
// drop the copies by message_id (see idempotent()).

import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { Options } from "amqplib";
import type { AmqpConnection, AmqpSession } from "../amqp/connection.js";
import { CONTENT_TYPE_PROTOBUF } from "../amqp/headers.js";
import { Publisher, PublishManyError, type OutgoingMessage } from "../amqp/publisher.js";
import { logTraceIds, startPublish } from "../amqp/telemetry.js";
import type { Logger } from "../telemetry/logger.js";
import { observeOutbox } from "../telemetry/metrics.js";
import { Code, StatusError, messageOf } from "../status.js";
import type { Database } from "./database.js";
import type { Outbox } from "./outbox.js";

const MANDATORY = { mandatory: true } as const;
/** Batches one round sends from its partitions before giving the leases back (other relays get a turn). */
const MAX_BATCHES_PER_ROUND = 20;
/** Batches in flight at once (published, not yet confirmed and marked): reading, confirming and marking overlap. */
const PIPELINE_DEPTH = 3;

export interface OutboxRelayOptions {
  /** Lease owner name. Default: host-pid-random. A relay restarted with the same id takes its leases back at once. */
  relayId?: string;
  /** Rows read and published per round. Default 500. */
  batchSize?: number;
  /** How long a claimed partition stays ours without renewal; a crashed relay's partitions wait this long. Default 15 000 ms. */
  leaseMs?: number;
  /** Pause between polls when there is nothing to send. Default 200 ms. */
  pollMs?: number;
  /** Partitions claimed per round; lower spreads partitions over more relays. Default: a quarter of them (at least 1). */
  partitionsPerClaim?: number;
  /** Per-message confirm timeout, waiting for a lost connection to come back included. Default 60 000 ms. */
  publishTimeoutMs?: number;
  /** Publish attempts before a row is marked failed (kept, with last_error). 0 = never give up. Default 20. */
  maxAttempts?: number;
  /** Backoff between attempts of one row (unroutable, refused, timed out). Default 1 000 ms doubling up to 60 000 ms. */
  retryDelayMs?: { initial?: number; max?: number };
  /**
   * Order per key even when a row fails. Default false: a batch's rows are all in flight at once, so
   * when one comes back (unroutable, refused, timed out) later rows of its key may already be out,
   * and the failed row arrives after them on its retry. True: each partition's rows go one at a time,
   * each after the previous one's confirm, and a failure stops the partition there until that row is
   * sent or given up. Costs a broker round trip per row and partition.
   */
  strictOrder?: boolean;
  /** Sent rows are deleted this long after their confirm; a negative value keeps them. Default 1 hour. */
  retainSentMs?: number;
  /** Errors nobody awaits: a failed round (database or broker), a row that failed to publish. */
  onError?: (err: Error) => void;
  /**
   * Called with the message ids of a round once the broker has confirmed them and before their rows
   * are marked sent. For metrics; a crash at this point is the window in which a copy is sent again.
   */
  onConfirmed?: (messageIds: string[]) => void;
  /**
   * Where failed rounds and rows that failed to publish are logged (error, with message id,
   * exchange, routing key and trace id). Default: the connection's logger.
   */
  logger?: Logger;
}

interface Row {
  id: string;
  message_id: string;
  partition: number;
  exchange: string;
  exchange_kind: string;
  routing_key: string;
  type: string;
  content: Uint8Array;
  headers: Record<string, unknown>;
  persistent: boolean;
  expiration_ms: number | null;
  priority: number | null;
  ts: number;
  attempts: number;
  due: boolean;
}

export interface OutboxRelayStats {
  /** Rows confirmed by the broker and marked sent. */
  sent: number;
  /** Publish attempts that failed (the row is retried later). */
  failedAttempts: number;
  /** Rows marked failed after maxAttempts. */
  gaveUp: number;
  /** Rounds that published something. */
  rounds: number;
}

export class OutboxRelay {
  readonly id: string;
  readonly stats: OutboxRelayStats = { sent: 0, failedAttempts: 0, gaveUp: 0, rounds: 0 };
  private readonly t: string;
  private readonly p: string;
  private readonly batchSize: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly perClaim: number;
  private readonly maxAttempts: number;
  private readonly retryInitial: number;
  private readonly retryMax: number;
  private readonly retainSentMs: number;
  private readonly publisher: Publisher;
  private readonly stopController = new AbortController();
  private running: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private declared = new Set<string>();
  private declaredSession: number | undefined;
  private lastPurge = 0;
  private lastRound: Promise<void> = Promise.resolve();
  private readonly logger: Logger;
  private unobserve: (() => void) | undefined;

  constructor(
    private readonly db: Database,
    private readonly connection: AmqpConnection,
    outbox: Outbox,
    private readonly options: OutboxRelayOptions = {},
  ) {
    this.id = options.relayId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.t = outbox.table;
    this.p = outbox.partitionTable;
    this.batchSize = Math.max(1, options.batchSize ?? 500);
    this.leaseMs = Math.max(100, options.leaseMs ?? 15_000);
    this.pollMs = Math.max(1, options.pollMs ?? 200);
    this.perClaim = Math.max(1, options.partitionsPerClaim ?? Math.ceil(outbox.partitions / 4));
    this.maxAttempts = Math.max(0, options.maxAttempts ?? 20);
    this.retryInitial = Math.max(1, options.retryDelayMs?.initial ?? 1000);
    this.retryMax = Math.max(this.retryInitial, options.retryDelayMs?.max ?? 60_000);
    this.retainSentMs = options.retainSentMs ?? 3_600_000;
    this.logger = options.logger ?? connection.logger;
    // PIPELINE_DEPTH batches in flight: marked, being confirmed, just published.
    this.publisher = new Publisher(connection, {
      maxInFlight: this.batchSize * PIPELINE_DEPTH,
      timeoutMs: options.publishTimeoutMs ?? 60_000,
      track: false,
      logger: this.logger,
    });
  }

  /** Starts the loop in the background; errors go to onError and the loop goes on. */
  start(): this {
    if (this.stopping) throw new Error("the relay was stopped");
    // grabbit.outbox.backlog and grabbit.outbox.oldest_age, read from the table at each collection
    // while a meter provider is registered.
    this.unobserve ??= observeOutbox(() => this.backlog(), { "grabbit.outbox.table": this.t });
    this.running ??= this.loop();
    return this;
  }

  /** Ends the wait between polls: call it after committing a transaction that added events. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Finishes the round in progress (its confirms and marks), gives the leases back, closes the channel. */
  close(): Promise<void> {
    return this.stop();
  }

  /** @deprecated Renamed `close()` (one shutdown verb across the runtime); this name goes in the next release. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopController.abort(new StatusError(Code.CANCELLED, "the relay is stopping"));
      this.wake();
      this.unobserve?.();
      await this.running;
      await this.publisher.close();
      await this.db
        .query(`UPDATE ${this.p} SET owner = NULL, lease_until = '-infinity' WHERE owner = $1`, [
          this.id,
        ])
        .catch((err) => this.report(err));
    })();
    return this.stopping;
  }

  /**
   * One round: claim partitions, publish what is due in them, mark it. Returns the rows sent. For
   * tests and for callers that drive the relay themselves instead of start().
   */
  runOnce(): Promise<number> {
    // One round at a time per relay: two would both hold "our" leases and send the same rows.
    const round = this.lastRound.then(() => this.round());
    this.lastRound = round.then(
      () => undefined,
      () => undefined,
    );
    return round;
  }

  private async round(): Promise<number> {
    const parts = await this.claim();
    if (parts.length === 0) return 0;
    const renew = setInterval(
      () => {
        this.db
          .query(
            `UPDATE ${this.p} SET lease_until = now() + make_interval(secs => $2) WHERE owner = $1 AND partition = ANY($3::int[])`,
            [this.id, this.leaseMs / 1000, parts],
          )
          .catch((err) => this.report(err));
      },
      Math.max(50, Math.floor(this.leaseMs / 3)),
    );
    try {
      return await this.sendFrom(parts);
    } finally {
      clearInterval(renew);
      await this.db
        .query(
          `UPDATE ${this.p} SET owner = NULL, lease_until = '-infinity' WHERE owner = $1 AND partition = ANY($2::int[])`,
          [this.id, parts],
        )
        .catch((err) => this.report(err));
    }
  }

  /** Rows not yet sent (nor given up), and the age of the oldest of them in seconds. */
  async backlog(): Promise<{ backlog: number; oldestAgeSeconds: number | undefined }> {
    const { rows } = await this.db.query(
      `SELECT count(*)::int AS n, extract(epoch FROM now() - min(created_at))::float8 AS age FROM ${this.t} WHERE sent_at IS NULL AND failed_at IS NULL`,
    );
    const r = rows[0] as { n: number; age: number | null };
    return {
      backlog: Number(r.n),
      oldestAgeSeconds: r.age === null ? undefined : Math.max(0, Number(r.age)),
    };
  }

  /** Deletes sent rows older than retainSentMs; returns how many. */
  async purge(): Promise<number> {
    if (this.retainSentMs < 0) return 0;
    const { rows } = await this.db.query(
      `WITH d AS (DELETE FROM ${this.t} WHERE sent_at < now() - make_interval(secs => $1) RETURNING 1) SELECT count(*)::int AS n FROM d`,
      [this.retainSentMs / 1000],
    );
    return Number((rows[0] as { n: number }).n);
  }

  private async loop(): Promise<void> {
    const signal = this.stopController.signal;
    let errorDelay = 0;
    while (!signal.aborted) {
      let sent = 0;
      try {
        // Claim nothing while the broker is away: leases would only block other relays.
        await this.connection.waitForSession({ signal });
        sent = await this.runOnce();
        errorDelay = 0;
        if (this.retainSentMs >= 0 && Date.now() - this.lastPurge > 60_000) {
          this.lastPurge = Date.now();
          await this.purge();
        }
      } catch (err) {
        if (signal.aborted) break;
        this.report(err);
        errorDelay = Math.min(5000, Math.max(this.pollMs, errorDelay * 2));
        await this.sleep(errorDelay);
        continue;
      }
      if (sent === 0) await this.sleep(this.pollMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        // A stale wakeUp left behind would swallow the next wake() (it resets `woken`).
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = () => {
        this.woken = false;
        done();
      };
    });
  }

  private async claim(): Promise<number[]> {
    // SKIP LOCKED: a partition another relay is claiming right now is passed over, not waited for.
    // Rows locked by a concurrent claim are re-checked after its commit, so a fresh lease is respected.
    const { rows } = await this.db.query(
      `UPDATE ${this.p} SET owner = $1, lease_until = now() + make_interval(secs => $2)
       WHERE partition IN (
         SELECT p.partition FROM ${this.p} p
         WHERE (p.lease_until < now() OR p.owner = $1)
           AND EXISTS (SELECT 1 FROM ${this.t} o WHERE o.partition = p.partition AND o.sent_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= now())
         ORDER BY random()
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
       RETURNING partition`,
      [this.id, this.leaseMs / 1000, this.perClaim],
    );
    return rows.map((r: { partition: number }) => Number(r.partition));
  }

  /** Rows of these partitions not yet sent nor given up, in id order, after `afterId`. */
  private async read(parts: number[], afterId: string): Promise<Row[]> {
    const { rows } = await this.db.query(
      `SELECT id::text AS id, message_id, partition, exchange, exchange_kind, routing_key, type, content, headers, persistent,
              expiration_ms, priority, floor(extract(epoch FROM created_at))::float8 AS ts, attempts, (next_attempt_at <= now()) AS due
       FROM ${this.t} o
       WHERE partition = ANY($1::int[]) AND sent_at IS NULL AND failed_at IS NULL AND o.id > $3::bigint
       ORDER BY o.id -- the bigint column: "id" alone would sort the text alias
       LIMIT $2`,
      [parts, this.batchSize, afterId],
    );
    return rows as Row[];
  }

  /** The rows that may go now: a row waiting for its retry holds back the later rows of its partition (order per key first). */
  private dueRows(rows: Row[], blocked: Set<number>): Row[] {
    const due: Row[] = [];
    for (const row of rows) {
      if (blocked.has(row.partition)) continue;
      if (!row.due) {
        blocked.add(row.partition);
        continue;
      }
      due.push(row);
    }
    return due;
  }

  private async sendFrom(parts: number[]): Promise<number> {
    if (this.options.strictOrder) return this.sendStrict(parts);
    // Partitions held back for the rest of the round: a row waiting for its retry, or refused.
    const blocked = new Set<number>();
    let afterId = "0";
    let sent = 0;
    // Batches published and not yet confirmed and marked, oldest first.
    const inFlight: Promise<number>[] = [];
    try {
      for (let batch = 0; batch < MAX_BATCHES_PER_ROUND; batch++) {
        const rows = await this.read(parts, afterId);
        if (rows.length === 0) break;
        afterId = rows[rows.length - 1]!.id;
        const due = this.dueRows(rows, blocked);
        const refused =
          due.length > 0 ? await this.declareExchanges(due) : new Map<string, Error>();
        // A row whose exchange was refused fails before anything is sent: keep its partition's later
        // rows back too. Failures that come back after sending cannot recall what followed.
        const failed: { row: Row; err: unknown }[] = [];
        const sending: Row[] = [];
        for (const row of due) {
          if (blocked.has(row.partition)) continue;
          const err = refused.get(row.exchange);
          if (err) {
            failed.push({ row, err });
            blocked.add(row.partition);
          } else sending.push(row);
        }
        const outcomes = this.publishBatch(sending);
        // Older batches are confirmed and marked while this one is in flight and the next is read.
        if (inFlight.length >= PIPELINE_DEPTH - 1) sent += await inFlight.shift()!;
        inFlight.push(
          outcomes.then((errors) => {
            const ok: Row[] = [];
            errors.forEach((err, i) => {
              if (err === undefined) ok.push(sending[i]!);
              else failed.push({ row: sending[i]!, err });
            });
            return this.mark(ok, failed);
          }),
        );
        if (rows.length < this.batchSize) break;
      }
    } finally {
      // Whatever failed meanwhile, what is in flight is awaited and marked: no confirmed row is left
      // unmarked by a failed read (it would be sent again). The first failure is the round's.
      const settled = await Promise.allSettled(inFlight.splice(0));
      for (const r of settled) if (r.status === "fulfilled") sent += r.value;
      const failure = settled.find((r) => r.status === "rejected");
      // biome-ignore lint/correctness/noUnsafeFinally: deliberate, a batch that failed in flight is the round's failure
      if (failure) throw failure.reason;
    }
    return sent;
  }

  /** Publishes rows under one promise; resolves with each row's error (undefined when confirmed). */
  private publishBatch(rows: Row[]): Promise<(unknown | undefined)[]> {
    if (rows.length === 0) return Promise.resolve([]);
    return this.publisher.publishMany(rows.map((row) => this.message(row))).then(
      () => rows.map(() => undefined),
      (err: unknown) => (err instanceof PublishManyError ? err.errors : rows.map(() => err)),
    );
  }

  /** Marks confirmed rows sent (one UPDATE) and failed ones for a retry; returns how many were sent. */
  private async mark(ok: Row[], failed: { row: Row; err: unknown }[]): Promise<number> {
    if (ok.length > 0) {
      this.options.onConfirmed?.(ok.map((r) => r.message_id));
      // The id range beside the list lets PostgreSQL walk the primary key over the batch: with the
      // list alone it planned a scan of the whole table (sent rows are kept retainSentMs) per mark.
      let min = BigInt(ok[0]!.id);
      let max = min;
      for (const r of ok) {
        const id = BigInt(r.id);
        if (id < min) min = id;
        else if (id > max) max = id;
      }
      await this.db.query(
        `UPDATE ${this.t} SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[]) AND id BETWEEN $2::bigint AND $3::bigint`,
        [ok.map((r) => r.id), String(min), String(max)],
      );
      this.stats.sent += ok.length;
      this.stats.rounds++;
    }
    for (const { row, err } of failed) await this.markFailed(row, err);
    return ok.length;
  }

  /** strictOrder: one lane per partition, one row in flight per lane; the first failure ends the lane. */
  private async sendStrict(parts: number[]): Promise<number> {
    const due = this.dueRows(await this.read(parts, "0"), new Set());
    if (due.length === 0) return 0;
    const refused = await this.declareExchanges(due);
    const ok: Row[] = [];
    const failed: { row: Row; err: unknown }[] = [];
    const lanes = new Map<number, Row[]>();
    for (const row of due) {
      const lane = lanes.get(row.partition);
      if (lane) lane.push(row);
      else lanes.set(row.partition, [row]);
    }
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        for (const row of lane) {
          try {
            const err = refused.get(row.exchange);
            if (err) throw err;
            await this.publish(row);
            ok.push(row);
          } catch (err) {
            failed.push({ row, err });
            return;
          }
        }
      }),
    );
    return this.mark(ok, failed);
  }

  private publish(row: Row): Promise<void> {
    const m = this.message(row);
    return this.publisher.publish(
      m.exchange,
      m.routingKey,
      m.content,
      m.properties,
      m.settled === undefined ? MANDATORY : { mandatory: true, settled: m.settled },
    );
  }

  /** The message a row stands for, its trace (if traced) continuing the one that wrote the row. */
  private message(row: Row): OutgoingMessage {
    const content = row.content;
    let headers = row.headers ?? {};
    // A PRODUCER span continuing the trace of the transaction that wrote the row (its traceparent
    // is in the stored headers), written into the copy sent in its place, so that the consumer's
    // span is in that trace too.
    const trace = startPublish({
      exchange: row.exchange,
      routingKey: row.routing_key,
      messageId: row.message_id,
      bodySize: content.byteLength,
      parentHeaders: headers,
    });
    if (trace?.traced) headers = trace.inject({ ...headers });
    const props: Options.Publish = {
      contentType: CONTENT_TYPE_PROTOBUF,
      type: row.type,
      messageId: row.message_id,
      timestamp: Number(row.ts),
      deliveryMode: row.persistent ? 2 : 1,
    };
    // No table when there is nothing in it (a row written outside a trace, without metadata):
    // amqplib makes each headers object the prototype of a new one, as costly as the rest.
    for (const _ in headers) {
      props.headers = headers;
      break;
    }
    if (row.expiration_ms !== null) props.expiration = String(row.expiration_ms);
    if (row.priority !== null) props.priority = Number(row.priority);
    // The trace ends as the publisher settles the row's message: no promise of its own.
    return {
      exchange: row.exchange,
      routingKey: row.routing_key,
      content,
      properties: props,
      settled: trace,
    };
  }

  /** Declares each exchange once per session; returns the ones the broker refused, with why. */
  private async declareExchanges(rows: Row[]): Promise<Map<string, Error>> {
    const refused = new Map<string, Error>();
    const session: AmqpSession = await this.connection.waitForSession({
      signal: this.stopController.signal,
    });
    if (this.declaredSession !== session.id) {
      this.declared = new Set();
      this.declaredSession = session.id;
    }
    const wanted = new Map<string, string>();
    for (const r of rows)
      if (r.exchange !== "" && !r.exchange.startsWith("amq.") && !this.declared.has(r.exchange))
        wanted.set(r.exchange, r.exchange_kind);
    for (const [exchange, kind] of wanted) {
      const ch = await session.createChannel();
      try {
        await ch.assertExchange(exchange, kind, { durable: true });
        this.declared.add(exchange);
      } catch (err) {
        // A lost session fails the round (retried later); a refusal from a live broker fails these rows.
        if (!session.open) throw err;
        refused.set(
          exchange,
          new StatusError(
            Code.FAILED_PRECONDITION,
            `could not declare exchange "${exchange}": ${messageOf(err)}`,
            { cause: err },
          ),
        );
      } finally {
        await ch.close().catch(() => {});
      }
    }
    return refused;
  }

  private async markFailed(row: Row, err: unknown): Promise<void> {
    this.stats.failedAttempts++;
    const message = messageOf(err);
    const delayMs = Math.min(this.retryMax, this.retryInitial * 2 ** Math.min(20, row.attempts));
    const { rows } = await this.db.query(
      `UPDATE ${this.t} SET attempts = attempts + 1, last_error = $2, next_attempt_at = now() + make_interval(secs => $3),
              failed_at = CASE WHEN $4::int > 0 AND attempts + 1 >= $4::int THEN now() END
       WHERE id = $1::bigint
       RETURNING failed_at IS NOT NULL AS gave_up`,
      [row.id, message.slice(0, 2000), delayMs / 1000, this.maxAttempts],
    );
    const gaveUp = Boolean((rows[0] as { gave_up?: boolean } | undefined)?.gave_up);
    if (gaveUp) this.stats.gaveUp++;
    const fields: Record<string, unknown> = {
      table: this.t,
      row: row.id,
      message_id: row.message_id,
      exchange: row.exchange,
      routing_key: row.routing_key,
      attempts: row.attempts + 1,
      gave_up: gaveUp,
      ...logTraceIds(row.headers ?? undefined),
    };
    this.report(
      new StatusError(
        err instanceof StatusError ? err.code : Code.UNAVAILABLE,
        `outbox row ${row.id} (message ${row.message_id} to "${row.exchange}" with key "${row.routing_key}") ${gaveUp ? `failed for good after ${row.attempts + 1} attempts` : "will be retried"}: ${message}`,
        { cause: err },
      ),
      fields,
    );
  }

  /** An error nobody awaits: logged (error), then to onError. */
  private report(err: unknown, fields?: Record<string, unknown>): void {
    const e = err instanceof Error ? err : new Error(String(err));
    try {
      this.logger.error({ relay: this.id, ...(fields ?? { table: this.t }), err: e }, e.message);
    } catch {
      // A logger that throws must not stop the relay.
    }
    try {
      this.options.onError?.(e);
    } catch {
      // A logger that throws must not stop the relay.
    }
  }
}
