// The Reporter: consumes RequestReported events from its own queue and keeps a running summary.
// It checks the bearer token the event carries in its headers (a JWT of the example's issuer:
// signature, issuer, audience, expiry); an event without a valid one is refused with UNAUTHENTICATED,
// which the runtime's consumer takes as permanent: straight to the dead-letter queue, the reason in
// its `x-grabbit-error` header (retrying cannot make a token valid). An issuer that cannot be reached
// is UNAVAILABLE instead, and the event is retried. Copies (the outbox relay and the broker deliver
// at least once) are recognised by their message id and counted once.

import { Code, StatusError } from "@grabbit/runtime";
import type { AmqpConnection, DeliveryContext } from "@grabbit/runtime/amqp";
import { RequestReportedConsumer } from "#gen/example/v1/reports.grabbit.js";
import { APPROVED, centsOf } from "#messages";

// The report's type, taken from the consumer's handler: the same code reads either library's.
type RequestReported = Parameters<Parameters<RequestReportedConsumer["start"]>[0]>[0];
import type { Identity } from "../shared/auth.js";

export interface ReporterOptions {
  connection: AmqpConnection;
  /** The Reporter's own queue. Default "example.reporter". */
  queue?: string;
  /** Only reports of this region (binds `report.*.<region>` instead of `report.*.*`). */
  region?: string;
  /** Delete the queues after this long unused (demo and test runs leave nothing behind). */
  queueExpiresMs?: number;
  identity: Identity;
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
  const queue = options.queue ?? "example.reporter";
  const summary: ReportSummary = {
    reports: 0,
    approved: 0,
    denied: 0,
    approvedCents: 0,
    deniedCents: 0,
    byRegion: {},
    duplicates: 0,
    refused: 0,
  };
  const seen = new Set<string>();
  // Message ids counted: a copy of one (same id) is a duplicate, whatever its request.
  const messages = new Set<string>();
  const waiters = new Set<() => void>();

  async function record(report: RequestReported, delivery: DeliveryContext): Promise<void> {
    try {
      await options.identity.verify(delivery.metadata.authorization);
    } catch (err) {
      const status = StatusError.from(err);
      if (status.code !== Code.UNAUTHENTICATED) throw status; // UNAVAILABLE: retried
      summary.refused++;
      // UNAUTHENTICATED is permanent to the consumer: dead-lettered now, with this reason.
      throw new StatusError(
        Code.UNAUTHENTICATED,
        `report ${report.requestId} refused: ${status.rawMessage}`,
      );
    }
    const id = delivery.messageId || `report-${report.requestId}`;
    if (messages.has(id) || seen.has(report.requestId)) {
      summary.duplicates++;
      return;
    }
    messages.add(id);
    seen.add(report.requestId);
    const region = (summary.byRegion[report.region] ??= {
      approved: 0,
      denied: 0,
      approvedCents: 0,
    });
    summary.reports++;
    if (report.decision === APPROVED) {
      summary.approved++;
      summary.approvedCents += centsOf(report.amountCents);
      region.approved++;
      region.approvedCents += centsOf(report.amountCents);
    } else {
      summary.denied++;
      summary.deniedCents += centsOf(report.amountCents);
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
  log(
    `reporter: consuming ${queue} (${options.region === undefined ? "every region" : `region ${options.region}`})`,
  );

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
          reject(
            new Error(
              `the Reporter is still missing ${missing().length} of ${ids.length} reports after ${timeoutMs} ms`,
            ),
          );
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
    close: () => consumer.close(),
  };
}
