// Header names and conversions of the events wire contract. Metadata travels as AMQP headers of the
// same (lower-case) names; names grabbit itself uses are reserved and never copied from metadata.

import type { MessageProperties, Options } from "amqplib";
import { isReservedHeader, type Metadata } from "../metadata.js";

export const CONTENT_TYPE_PROTOBUF = "application/x-protobuf";

/** 1-based delivery attempt, set by the consumer when it schedules a retry. */
export const HEADER_ATTEMPT = "x-grabbit-attempt";
/** On dead-lettered messages: why, after how many attempts, and where the message was first published. */
export const HEADER_ERROR = "x-grabbit-error";
export const HEADER_ATTEMPTS = "x-grabbit-attempts";
export const HEADER_ORIGINAL_EXCHANGE = "x-grabbit-original-exchange";
export const HEADER_ORIGINAL_ROUTING_KEY = "x-grabbit-original-routing-key";
/** On dead-lettered messages: when the first delivery failed, and when the message was dead-lettered (epoch ms). */
export const HEADER_FIRST_FAILED_AT = "x-grabbit-first-failed-at";
export const HEADER_DEAD_LETTERED_AT = "x-grabbit-dead-lettered-at";
/** On messages put back from a dead-letter queue (grabbit dlq replay): how many times. */
export const HEADER_REPLAYS = "x-grabbit-replays";
/** On retried and dead-lettered copies: the user_id the broker validated on the original. */
export const HEADER_ORIGINAL_USER_ID = "x-grabbit-original-user-id";
/** What the broker adds when it dead-letters a message (and counts deliveries): not the message's own. */
export const BROKER_DEATH_HEADERS = [
  "x-death",
  "x-first-death-exchange",
  "x-first-death-queue",
  "x-first-death-reason",
  "x-last-death-exchange",
  "x-last-death-queue",
  "x-last-death-reason",
  "x-delivery-count",
];

/** Metadata as AMQP headers: lower-case names, reserved names skipped. */
export function metadataToHeaders(
  metadata: Metadata | undefined,
  into: Record<string, unknown> = {},
): Record<string, unknown> {
  if (!metadata) return into;
  for (const key in metadata) {
    const value = metadata[key];
    if (typeof value !== "string") continue;
    const name = key.toLowerCase();
    if (isReservedHeader(name)) continue;
    into[name] = value;
  }
  return into;
}

/** AMQP headers as metadata: string-like values of non-reserved names, minus the ones in `skip`. */
export function headersToMetadata(
  headers: Record<string, unknown> | undefined,
  skip?: ReadonlySet<string>,
): Metadata {
  const out: Metadata = {};
  if (!headers) return out;
  for (const key in headers) {
    const name = key.toLowerCase();
    if (isReservedHeader(name) || skip?.has(name)) continue;
    const value = headers[key];
    if (typeof value === "string") out[name] = value;
    else if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
      out[name] = String(value);
    else if (value instanceof Uint8Array) out[name] = Buffer.from(value).toString("utf8");
  }
  return out;
}

/**
 * Headers as received, made safe to publish again. amqplib reads a nested table whose keys include
 * "!" as an instruction ({"!": type, value}) when encoding, so such a table from another client's
 * message would make every copy of it fail to encode; it is wrapped to be written as the table it
 * is. The typed values amqplib itself decodes that way (decimal, timestamp) are kept as they are.
 */
export function republishableHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key in headers) out[key] = republishable(headers[key]);
  return out;
}

function republishable(value: unknown): unknown {
  if (
    value === null ||
    typeof value !== "object" ||
    Buffer.isBuffer(value) ||
    value instanceof Uint8Array
  )
    return value;
  if (Array.isArray(value)) return value.map(republishable);
  const table = value as Record<string, unknown>;
  if (Object.hasOwn(table, "!") && isDecodedTypedValue(table)) return table;
  const inner: Record<string, unknown> = {};
  for (const key in table) inner[key] = republishable(table[key]);
  return Object.hasOwn(table, "!") ? { "!": "object", value: inner } : inner;
}

function isDecodedTypedValue(t: Record<string, unknown>): boolean {
  const keys = Object.keys(t);
  if (keys.length !== 2 || !keys.includes("value")) return false;
  const v = t.value as Record<string, unknown> | null;
  if (t["!"] === "timestamp") return typeof v === "number";
  return (
    t["!"] === "decimal" &&
    typeof v === "object" &&
    v !== null &&
    typeof v.places === "number" &&
    typeof v.digits === "number"
  );
}

/** A header read as a positive integer (amqplib may hand back numbers, bigints or strings). */
export function headerInt(
  headers: Record<string, unknown> | undefined,
  name: string,
): number | undefined {
  const value = headers?.[name];
  const n =
    typeof value === "number"
      ? value
      : typeof value === "bigint"
        ? Number(value)
        : typeof value === "string"
          ? Number(value)
          : NaN;
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : undefined;
}

/**
 * The properties a copy of a delivery keeps when it is published again (to a retry or dead-letter
 * queue): everything but `expiration` (a copy is kept until handled) and `user_id` (the broker checks it
 * against the connection that publishes the copy, which is ours).
 */
export function copiedProperties(p: MessageProperties): Options.Publish {
  const out: Options.Publish = {};
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.contentEncoding !== undefined) out.contentEncoding = p.contentEncoding;
  if (p.deliveryMode !== undefined) out.deliveryMode = p.deliveryMode;
  if (p.priority !== undefined) out.priority = p.priority;
  if (p.correlationId !== undefined) out.correlationId = p.correlationId;
  if (p.replyTo !== undefined) out.replyTo = p.replyTo;
  if (p.messageId !== undefined) out.messageId = p.messageId;
  if (p.timestamp !== undefined) out.timestamp = p.timestamp;
  if (p.type !== undefined) out.type = p.type;
  if (p.appId !== undefined) out.appId = p.appId;
  return out;
}
