// What differs between the example's two message libraries, for ts-proto (examples/gen/, the default).
// The services import it as "#messages" (examples/package.json); with EXAMPLE_MESSAGES=protobuf-es
// Node's --conditions=protobuf-es picks messages-protobuf-es.ts instead, which exports the same names.
import { Decision, decisionToJSON } from "../gen/example/v1/common.js";
import type { RequestReported } from "../gen/example/v1/reports.js";

export const LIBRARY = "ts-proto";
export type { Decision };
export const APPROVED = Decision.DECISION_APPROVED;
export const DENIED = Decision.DECISION_DENIED;

/** The proto name of a decision ("DECISION_APPROVED"), as the JSON mapping writes it. */
export function decisionName(decision: Decision): string {
  return decisionToJSON(decision);
}

/** An int64 field's value (ts-proto: a number). */
export function centsOf(value: number): number {
  return value;
}

/** An int64 field to send. */
export function cents(value: number): number {
  return value;
}

/** A google.protobuf.Timestamp field to send (ts-proto: a Date). */
export function timestamp(date: Date): Date {
  return date;
}

/** A report for the outbox, which takes the library's message (ts-proto: the plain object). */
export function reportMessage(report: {
  requestId: string;
  decision: Decision;
  region: string;
  amountCents: number;
  decidedAt: Date;
}): RequestReported {
  return report;
}
