// The RPC-over-RabbitMQ wire contract (SPEC.md, "Wire contract"): the names other languages rely on.
// Changing any of these breaks every non-TypeScript client and server, so they live in one place.

import { decodeRpcStatus } from "../../status-details.js";
import { Code, type ErrorDetail } from "../../status.js";

/** RabbitMQ's direct reply-to pseudo queue: replies go straight to the consuming channel, no queue. */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";

/** Request header: the gRPC path of the method, "/demo.v1.Orders/Get". */
export const HEADER_METHOD = "rpc-method";
/** Request header: the caller's remaining deadline in milliseconds (also sent as `expiration`). */
export const HEADER_TIMEOUT = "rpc-timeout-ms";
/** Reply header: the gRPC status code as an integer, 0 = OK. */
export const HEADER_STATUS = "rpc-status";
/** Reply header: the error text when the status is not OK. */
export const HEADER_MESSAGE = "rpc-message";
/**
 * Reply header, optional, only when the status is not OK: the error details as a serialized
 * google.rpc.Status (code, message, details), an AMQP byte array ('x'), as gRPC's
 * `grpc-status-details-bin` trailer carries them.
 */
export const HEADER_STATUS_DETAILS = "rpc-status-details-bin";

/** Where requests that cannot be answered (no reply_to) are kept, next to the request queue. */
export function deadLetterQueueName(requestQueue: string): string {
  return `${requestQueue}.dlq`;
}

/** The status code in a reply's headers; undefined when it is missing or not an integer code. */
export function readStatus(headers: Record<string, unknown> | undefined): Code | undefined {
  const value = headers?.[HEADER_STATUS];
  const n =
    typeof value === "number" ? value : typeof value === "bigint" ? Number(value) : typeof value === "string" && value !== "" ? Number(value) : NaN;
  return Number.isInteger(n) && n >= 0 ? (n as Code) : undefined;
}

/** A header as text (amqplib hands back long strings as strings, some brokers' as buffers). */
export function readText(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const value = headers?.[name];
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8");
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  return undefined;
}

/** The error details of a reply; none when the header is absent, not bytes, or not a google.rpc.Status. */
export function readDetails(headers: Record<string, unknown> | undefined): ErrorDetail[] {
  const value = headers?.[HEADER_STATUS_DETAILS];
  if (!(value instanceof Uint8Array)) return [];
  try {
    return decodeRpcStatus(value).details;
  } catch {
    return []; // a peer's malformed details: the code and message still stand, as on gRPC
  }
}

/** Milliseconds from a header or the `expiration` property; undefined when absent or malformed. */
export function readMillis(value: unknown): number | undefined {
  const n = typeof value === "number" ? value : typeof value === "bigint" ? Number(value) : typeof value === "string" && value !== "" ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Longest delay Node's timers take (about 24.8 days); longer ones fire at once. Deadlines further
 * away than this are sent and timed as this (RabbitMQ's `expiration` is bounded too).
 */
export const MAX_TIMEOUT_MS = 2_147_483_647;
