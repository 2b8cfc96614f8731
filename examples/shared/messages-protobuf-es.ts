// What differs between the example's two message libraries, for protobuf-es (examples/gen-es/).
// Picked for "#messages" by Node's --conditions=protobuf-es (examples/package.json); exports the same
// names as messages-ts-proto.ts.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Decision, DecisionSchema } from "../gen-es/example/v1/common_pb.js";
import { RequestReportedSchema, type RequestReported } from "../gen-es/example/v1/reports_pb.js";

export const LIBRARY = "protobuf-es";
export type { Decision };
export const APPROVED = Decision.APPROVED;
export const DENIED = Decision.DENIED;

/** The proto name of a decision ("DECISION_APPROVED"), as the JSON mapping writes it. */
export function decisionName(decision: Decision): string {
  return DecisionSchema.value[decision]?.name ?? String(decision);
}

/** An int64 field's value (protobuf-es: a bigint) as a number; the example's amounts are small. */
export function centsOf(value: bigint): number {
  return Number(value);
}

/** An int64 field to send. */
export function cents(value: number): bigint {
  return BigInt(value);
}

/** A google.protobuf.Timestamp field to send. */
export function timestamp(date: Date): Timestamp {
  return timestampFromDate(date);
}

/** A report for the outbox, which takes a message: create() makes one from the plain fields. */
export function reportMessage(report: {
  requestId: string;
  decision: Decision;
  region: string;
  amountCents: number;
  decidedAt: Date;
}): RequestReported {
  return create(RequestReportedSchema, {
    ...report,
    amountCents: BigInt(report.amountCents),
    decidedAt: timestampFromDate(report.decidedAt),
  });
}
