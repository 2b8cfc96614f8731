// The Reporter: consumes RequestReported events from its own queue and keeps a running summary.
// It checks the bearer token the event carries in its headers; an event without a valid one is
// refused and goes straight to the dead-letter queue (retrying cannot make a token valid).

import { Code, StatusError } from "@grabbit/runtime";
import type { AmqpConnection, DeliveryContext } from "@grabbit/runtime/amqp";
import { Decision } from "../gen/example/v1/common.js";
import type { RequestReported } from "../gen/example/v1/reports.js";
import { RequestReportedConsumer } from "../gen/example/v1/reports.grabbit.js";
import { TokenCheck } from "../shared/auth.js";

export interface ReporterOptions {
  connection: AmqpConnection;
  /** The Reporter's own queue. Default "example.reporter". */
  queue?: string;
  /** Only reports of this region (binds `report.*.<region>` instead of `report.*.*`). */
  region?: string;
  /** Delete the queues after this long unused (demo and test runs leave nothing behind). */
  queueExpiresMs?: number;
  tokens: Iterable<string>;
  log?: (line: string) => void;
}

export interface RegionSummary {
  approved: number;
  denied: number;
  approvedCents: number;
}

export interface ReportSummary {
  /** Distinct reports counted (a redelivered duplicate counts once). */
  reports: number;
  approved: number;
  denied: number;
  approvedCents: number;
  deniedCents: number;
  byRegion: Record<string, RegionSummary>;
  /** Deliveries seen again (at-least-once delivery) and not counted twice. */
  duplicates: number;
  /** Events refused for a missing or invalid token (dead-lettered). */
  refused: number;
}

export interface Reporter {
  readonly queue: string;
  summary(): ReportSummary;
  has(requestId: string): boolean;
  /** Resolves once a report has been counted for every id; rejects after timeoutMs. */
  waitFor(requestIds: Iterable<string>, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReporter(options: ReporterOptions): Promise<Reporter> {
  const log = options.log ?? (() => {});
  const check = new TokenCheck(options.tokens);
  const queue = options.queue ?? "example.reporter";
  const summary: ReportSummary = { reports: 0, approved: 0, denied: 0, approvedCents: 0, deniedCents: 0, byRegion: {}, duplicates: 0, refused: 0 };
  const seen = new Set<string>();
  const waiters = new Set<() => void>();

  function record(report: RequestReported, delivery: DeliveryContext): void {
    if (check.verify(delivery.metadata.authorization) === undefined) {
      summary.refused++;
      // FAILED_PRECONDITION is permanent to the consumer: dead-lettered now, with this reason.
      throw new StatusError(Code.FAILED_PRECONDITION, `report ${report.requestId} carries no valid bearer token`);
    }
    if (seen.has(report.requestId)) {
      summary.duplicates++;
      return;
    }
    seen.add(report.requestId);
    const region = (summary.byRegion[report.region] ??= { approved: 0, denied: 0, approvedCents: 0 });
    summary.reports++;
    if (report.decision === Decision.DECISION_APPROVED) {
      summary.approved++;
      summary.approvedCents += report.amountCents;
      region.approved++;
      region.approvedCents += report.amountCents;
    } else {
      summary.denied++;
      summary.deniedCents += report.amountCents;
      region.denied++;
    }
    for (const wake of [...waiters]) wake();
  }

  const consumer = new RequestReportedConsumer(options.connection, {
    queue,
    ...(options.region !== undefined ? { filter: { region: options.region } } : {}),
    ...(options.queueExpiresMs !== undefined ? { queueExpiresMs: options.queueExpiresMs } : {}),
    onHandlerError: (err) => log(`reporter: ${err instanceof Error ? err.message : String(err)}`),
  });
  await consumer.start(record);
  log(`reporter: consuming ${queue} (${options.region === undefined ? "every region" : `region ${options.region}`})`);

  return {
    queue,
    summary: () => structuredClone(summary),
    has: (id) => seen.has(id),
    waitFor(requestIds, timeoutMs = 30_000) {
      const ids = [...requestIds];
      const missing = () => ids.filter((id) => !seen.has(id));
      if (missing().length === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`the Reporter is still missing ${missing().length} of ${ids.length} reports after ${timeoutMs} ms`));
        }, timeoutMs);
        const wake = () => {
          if (missing().length > 0) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve();
        };
        waiters.add(wake);
      });
    },
    close: () => consumer.stop(),
  };
}
