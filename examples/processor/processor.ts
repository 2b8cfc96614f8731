// The Request Processor: decides each request the Bridge forwards (approve or deny, drawn at random
// from a seed) and tells the Reporter (a RequestReported event over RabbitMQ) and the Bridge (a gRPC
// callback). Everything transport-shaped comes from generated code and the runtime.
//
// Durability (docs/outbox.md): processRequest answers "accepted" only once its decision and its
// RequestReported event are committed together, in one transaction, to the Processor's database
// (the decision in `<schema>.decisions`, keyed by request id; the event in the runtime's outbox).
// The outbox relay publishes the event; the callback is owed until `notified_at` is set. So a
// Processor killed at any point (SIGKILL included) loses nothing: on restart the relay sends what was
// not confirmed (with the same message id, which the Reporter deduplicates) and the owed callbacks
// are made. A request sent again (the Bridge retries, RabbitMQ redelivers) finds its decision and is
// decided once: the insert is ON CONFLICT DO NOTHING on the request id.

import { Code, detachFromCall, StatusError, type HandlerContext } from "@grabbit/runtime";
import type { AmqpConnection, AmqpRpcServer } from "@grabbit/runtime/amqp";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { Outbox, OutboxRelay, type Database } from "@grabbit/runtime/outbox";
import { BridgeClient } from "#gen/example/v1/bridge.grabbit.js";
import {
  addRequestProcessorGrpcService,
  serveRequestProcessorAmqp,
  type RequestProcessorHandlers,
} from "#gen/example/v1/processor.grabbit.js";
import { RequestReportedEvent } from "#gen/example/v1/reports.grabbit.js";
import { APPROVED, DENIED, centsOf, reportMessage, type Decision } from "#messages";

// The message types, taken from the handler interface: the same code reads either library's.
type ProcessRequestRequest = Parameters<RequestProcessorHandlers["processRequest"]>[0];
type ProcessRequestResponse = Awaited<ReturnType<RequestProcessorHandlers["processRequest"]>>;
type Request = NonNullable<ProcessRequestRequest["request"]>;
import type { Identity } from "../shared/auth.js";
import { retrying } from "../shared/retry.js";

export interface ProcessorOptions {
  connection: AmqpConnection;
  /** The Processor's own database (openDatabase: PGlite by default, PostgreSQL from a URL). */
  db: Database;
  /** Schema of its tables (decisions, outbox). Default "example_processor". */
  schema?: string;
  /** Where the Bridge serves notifyRequestDone ("host:port"); may also be given later with connectBridge(). */
  bridgeAddress?: string;
  /** gRPC listen address; port 0 picks a free one. Default "127.0.0.1:50052". */
  grpcAddress?: string;
  /** Also serve processRequest over RabbitMQ (queue "example.v1.RequestProcessorService"). */
  serveAmqp?: boolean;
  /** Same seed and same request, same decision: runs are repeatable whatever the arrival order. */
  seed?: number;
  identity: Identity;
  /** The outbox relay's id: the same after a restart, so it takes its partitions back at once. Default "example-processor". */
  relayId?: string;
  log?: (line: string) => void;
}

/** What the database holds for some request ids: the demo's exactly-once check. */
export interface DecisionAudit {
  /** Decision rows per request id asked for (at most one each: the primary key). */
  decided: number;
  /** Outbox rows (reports) per request id: more than one would be a report decided twice. */
  reportRows: Record<string, number>;
  /** processRequest calls that found their decision already made (re-sent or redelivered). */
  repeats: number;
  /** Reports not yet confirmed by the broker, and callbacks not yet made. */
  pendingReports: number;
  pendingCallbacks: number;
}

export interface Processor {
  readonly grpcAddress: string;
  /** Requests decided by this process (not counting ones found already decided). */
  readonly processed: number;
  connectBridge(address: string): void;
  audit(requestIds: string[]): Promise<DecisionAudit>;
  close(): Promise<void>;
}

export async function startProcessor(options: ProcessorOptions): Promise<Processor> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 42;
  const { db } = options;
  const schema = options.schema ?? "example_processor";
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(schema))
    throw new TypeError(
      `schema ${JSON.stringify(schema)}: lower-case letters, digits and underscores`,
    );
  const decisions = `${schema}.decisions`;
  const outbox = new Outbox({ table: `${schema}.outbox` });
  await db.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`).catch(async (err: unknown) => {
    // Two processes creating it at once: one wins, the other sees it there.
    if (!(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema])).rows.length)
      throw err;
  });
  await outbox.install(db);
  await db.query(`CREATE TABLE IF NOT EXISTS ${decisions} (
    request_id text PRIMARY KEY,
    decision integer NOT NULL,
    reason text NOT NULL,
    authorization_header text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    repeats integer NOT NULL DEFAULT 0,
    notified_at timestamptz,
    notify_error text
  )`);
  const relay = new OutboxRelay(db, options.connection, outbox, {
    relayId: options.relayId ?? "example-processor",
    pollMs: 100,
    // Unroutable (no Reporter queue bound yet) is retried: start at 200 ms, not the default second.
    retryDelayMs: { initial: 200 },
    onError: (err) => log(`processor: outbox relay: ${err.message}`),
  }).start();

  const notifying = new Map<string, Promise<void>>();
  let processed = 0;
  let closing = false;
  let bridgeTransport: GrpcTransport | undefined;
  let bridge: BridgeClient | undefined;
  function connectBridge(address: string): void {
    bridgeTransport?.close();
    bridgeTransport = new GrpcTransport(address);
    bridge = new BridgeClient(bridgeTransport);
    void notifyOwed().catch((err: unknown) =>
      log(`processor: ${err instanceof Error ? err.message : String(err)}`),
    );
  }
  if (options.bridgeAddress !== undefined) connectBridge(options.bridgeAddress);

  /** Makes the owed callback for one decision, once at a time per request, and records it. */
  function notify(
    requestId: string,
    decision: Decision,
    reason: string,
    authorization: string,
  ): Promise<void> {
    const running = notifying.get(requestId);
    if (running) return running;
    const work = retrying(
      `notify the Bridge of ${requestId}`,
      log,
      () => {
        // Stopping: no more attempts; the callback stays owed in the database for the next start.
        if (closing) throw new StatusError(Code.FAILED_PRECONDITION, "the Processor is stopping");
        if (!bridge)
          throw new StatusError(
            Code.UNAVAILABLE,
            "the Processor does not know where the Bridge is yet",
          );
        // The token the request came with: inherited inside the call, stored in the row for a restart.
        return bridge.notifyRequestDone(
          { requestId, decision, reason },
          { metadata: { authorization } },
        );
      },
      12,
    )
      .then(
        () =>
          db.query(`UPDATE ${decisions} SET notified_at = now() WHERE request_id = $1`, [
            requestId,
          ]),
        (err: unknown) => {
          if (closing) return;
          const why = err instanceof Error ? err.message : String(err);
          log(`processor: gave up telling the Bridge about ${requestId}: ${why}`);
          return db.query(`UPDATE ${decisions} SET notify_error = $2 WHERE request_id = $1`, [
            requestId,
            why,
          ]);
        },
      )
      .then(
        () => undefined,
        (err: unknown) => log(`processor: ${err instanceof Error ? err.message : String(err)}`),
      )
      .finally(() => notifying.delete(requestId));
    notifying.set(requestId, work);
    return work;
  }

  /** The callbacks a previous run (or a Bridge that was away) still owes. */
  async function notifyOwed(): Promise<void> {
    if (closing || !bridge) return;
    const { rows } = await db.query(
      `SELECT request_id, decision, reason, authorization_header FROM ${decisions} WHERE notified_at IS NULL AND notify_error IS NULL ORDER BY decided_at`,
    );
    for (const r of rows) void notify(r.request_id, r.decision, r.reason, r.authorization_header);
  }

  /** One transaction: the decision (once per request id) and its report in the outbox. */
  async function decideOnce(
    request: Request,
    authorization: string,
  ): Promise<{ decision: Decision; reason: string; fresh: boolean }> {
    return db.transaction(async (tx) => {
      const made = decide(seed, request);
      const inserted = await tx.query(
        `INSERT INTO ${decisions} (request_id, decision, reason, authorization_header) VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING RETURNING request_id`,
        [request.requestId, made.decision, made.reason, authorization],
      );
      if (inserted.rows.length === 0) {
        const { rows } = await tx.query(
          `UPDATE ${decisions} SET repeats = repeats + 1 WHERE request_id = $1 RETURNING decision, reason`,
          [request.requestId],
        );
        return {
          decision: rows[0].decision as Decision,
          reason: rows[0].reason as string,
          fresh: false,
        };
      }
      // The outbox does not inherit the call context: the token (for the Reporter's check) is passed
      // here; the trace context is stored with the row by the outbox itself. The message id is the
      // request's, so every copy the relay may send is recognisably the same report.
      await outbox.add(
        tx,
        RequestReportedEvent,
        reportMessage({
          requestId: request.requestId,
          decision: made.decision,
          region: request.region,
          amountCents: centsOf(request.amountCents),
          decidedAt: new Date(),
        }),
        // Ordered per request (there is one report each): no report waits behind another one.
        {
          messageId: `report-${request.requestId}`,
          orderingKey: request.requestId,
          metadata: { authorization },
        },
      );
      return { ...made, fresh: true };
    });
  }

  const handlers: RequestProcessorHandlers = {
    async processRequest(
      input: ProcessRequestRequest,
      context: HandlerContext,
    ): Promise<ProcessRequestResponse> {
      const request = input.request;
      if (!request?.requestId)
        throw new StatusError(Code.INVALID_ARGUMENT, "request.request_id is required");
      if (centsOf(request.amountCents) <= 0)
        throw new StatusError(Code.INVALID_ARGUMENT, "request.amount_cents must be positive");
      // The interceptor verified it; it is stored with the decision for the callback after a restart.
      const authorization = context.metadata.authorization!;
      const { decision, reason, fresh } = await decideOnce(request, authorization);
      if (fresh) {
        processed++;
        relay.wake();
      }
      // The callback comes after this call has answered: detached, it keeps the caller's trace but
      // not the call's deadline (its retries may take longer). A repeat re-sends an owed callback.
      void detachFromCall(() => notify(request.requestId, decision, reason, authorization));
      return { requestId: request.requestId, accepted: true };
    },
  };

  const interceptors = [options.identity.interceptor()];
  const server = new GrpcServer({ interceptors });
  addRequestProcessorGrpcService(server, handlers);
  const listen = options.grpcAddress ?? "127.0.0.1:50052";
  const port = await server.listen(listen);
  const grpcAddress = `${listen.slice(0, listen.lastIndexOf(":"))}:${port}`;
  // The same handlers and the same token check serve RabbitMQ callers.
  let amqpServer: AmqpRpcServer | undefined;
  if (options.serveAmqp)
    amqpServer = await serveRequestProcessorAmqp(options.connection, handlers, { interceptors });
  log(
    `processor: gRPC on ${grpcAddress}${amqpServer ? ", AMQP on queue example.v1.RequestProcessorService" : ""}, seed ${seed}, database ${db.kind} (${schema})`,
  );
  // A Bridge that was away, or callbacks a killed run owed: tried again now and then.
  const sweep = setInterval(() => void notifyOwed().catch(() => undefined), 2000);
  sweep.unref();

  return {
    grpcAddress,
    get processed() {
      return processed;
    },
    connectBridge,
    async audit(requestIds) {
      const ids = [...requestIds];
      const decided = await db.query(
        `SELECT count(*)::int AS n, coalesce(sum(repeats), 0)::int AS repeats FROM ${decisions} WHERE request_id = ANY($1::text[])`,
        [ids],
      );
      const reports = await db.query(
        `SELECT message_id, count(*)::int AS n FROM ${outbox.table} WHERE message_id = ANY($1::text[]) GROUP BY message_id`,
        [ids.map((id) => `report-${id}`)],
      );
      const pending = await db.query(
        `SELECT count(*)::int AS n FROM ${outbox.table} WHERE message_id = ANY($1::text[]) AND sent_at IS NULL`,
        [ids.map((id) => `report-${id}`)],
      );
      const owed = await db.query(
        `SELECT count(*)::int AS n FROM ${decisions} WHERE request_id = ANY($1::text[]) AND notified_at IS NULL`,
        [ids],
      );
      return {
        decided: Number(decided.rows[0].n),
        repeats: Number(decided.rows[0].repeats),
        reportRows: Object.fromEntries(
          reports.rows.map((r) => [String(r.message_id).slice("report-".length), Number(r.n)]),
        ),
        pendingReports: Number(pending.rows[0].n),
        pendingCallbacks: Number(owed.rows[0].n),
      };
    },
    async close() {
      closing = true;
      clearInterval(sweep);
      await amqpServer?.close();
      await server.close({ graceMs: 2000 });
      // Finish the callbacks under way; what is left is in the database for the next start.
      await Promise.allSettled([...notifying.values()]);
      await relay.close();
      bridgeTransport?.close();
    },
  };
}

/**
 * Approves or denies at random. The draw is seeded by the seed and the request's content, so the same
 * run decides the same way every time; large amounts are approved less often.
 */
export function decide(seed: number, request: Request): { decision: Decision; reason: string } {
  const amountCents = centsOf(request.amountCents);
  const draw = mulberry32(fnv1a(`${seed}|${request.customer}|${amountCents}|${request.region}`))();
  const threshold = amountCents > 50_000 ? 0.4 : 0.8;
  const shown = `draw ${draw.toFixed(2)}, approval rate ${threshold}`;
  return draw < threshold
    ? { decision: APPROVED, reason: `approved (${shown})` }
    : { decision: DENIED, reason: `denied by the risk check (${shown})` };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A small seeded PRNG: the same seed gives the same sequence on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
