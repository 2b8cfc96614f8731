// What one dead-lettered message says about itself, read from its properties and headers, and its
// body decoded through the contract. Three kinds of dead letter are understood:
// - grabbit's consumers: `x-grabbit-error` (reason), `x-grabbit-attempts`, `x-grabbit-original-*`,
//   `x-grabbit-first-failed-at` / `x-grabbit-dead-lettered-at` (epoch ms);
// - grabbit's RPC servers (a request without reply_to): `x-grabbit-error` and the `rpc-method` header,
//   the original destination being the request queue the DLQ is named after;
// - the broker's own dead-lettering (rejected, expired, over a delivery limit): `x-death`.
// Nothing here throws on a strange message: a body that does not decode becomes `decodeError`.

import { fromBinary, toJson, type JsonValue, type Registry } from "@bufbuild/protobuf";
import type { MessageProperties } from "amqplib";
import {
  BROKER_DEATH_HEADERS,
  CONTENT_TYPE_PROTOBUF,
  HEADER_ATTEMPT,
  HEADER_ATTEMPTS,
  HEADER_DEAD_LETTERED_AT,
  HEADER_ERROR,
  HEADER_FIRST_FAILED_AT,
  HEADER_ORIGINAL_EXCHANGE,
  HEADER_ORIGINAL_ROUTING_KEY,
  HEADER_REPLAYS,
} from "../amqp/headers.js";

/** One broker death record (an `x-death` entry). */
export interface DeathRecord {
  queue: string;
  reason: string;
  count: number;
  exchange: string;
  routingKeys: string[];
  /** Epoch ms (the broker records seconds). */
  time: number | undefined;
}

/** A dead-lettered message as list and show report it. */
export interface DeadLetter {
  /** 1-based position in the queue when it was read. */
  position: number;
  messageId: string | undefined;
  correlationId: string | undefined;
  /** The `type` property: the message's full protobuf name. */
  type: string | undefined;
  reason: string | undefined;
  /** Deliveries made before it was dead-lettered (grabbit's count, else the broker's). */
  attempts: number | undefined;
  originalExchange: string | undefined;
  originalRoutingKey: string | undefined;
  /** Epoch ms; undefined when the message does not say. */
  firstFailure: number | undefined;
  lastFailure: number | undefined;
  /** When it was first published (the `timestamp` property), epoch ms. */
  publishedAt: number | undefined;
  /** Times it was put back by a replay already. */
  replays: number;
  deaths: DeathRecord[];
  /** Who dead-lettered it. */
  source: "consumer" | "rpc" | "broker" | "unknown";
  contentType: string | undefined;
  bodySize: number;
  /** Headers as JSON-safe values (buffers as UTF-8 text, broker timestamps as epoch ms). */
  headers: Record<string, unknown>;
  properties: Record<string, unknown>;
  /** The body in the protobuf JSON mapping, when it decoded. */
  body: JsonValue | undefined;
  /** Why the body was not decoded (no contract given, unknown type, bad bytes...). */
  decodeError: string | undefined;
  /** The raw body, base64 (show only, and only when it did not decode). */
  bodyBase64?: string;
}

/** Headers grabbit or the broker add on the way to a DLQ: removed when a message is replayed. */
export const DEAD_LETTER_HEADERS = [
  HEADER_ERROR,
  HEADER_ATTEMPTS,
  HEADER_ATTEMPT,
  HEADER_FIRST_FAILED_AT,
  HEADER_DEAD_LETTERED_AT,
  ...BROKER_DEATH_HEADERS,
  "x-acquired-count",
];

interface RawMessage {
  content: Buffer;
  properties: MessageProperties;
}

/** Reads a dead letter. `queue` is the DLQ (an RPC request queue is named after it). */
export function describe(
  msg: RawMessage,
  position: number,
  queue: string,
  registry: Registry | undefined,
): DeadLetter {
  const p = msg.properties;
  const headers = (p.headers ?? {}) as Record<string, unknown>;
  const deaths = deathRecords(headers);
  const reason = text(headers[HEADER_ERROR]);
  const rpc = text(headers["rpc-method"]) !== undefined;
  const source =
    reason !== undefined
      ? rpc && text(headers[HEADER_ORIGINAL_EXCHANGE]) === undefined
        ? "rpc"
        : "consumer"
      : deaths.length > 0
        ? "broker"
        : "unknown";
  const origin = originOf(headers, deaths, source, queue);
  const deathTimes = deaths.map((d) => d.time).filter((t): t is number => t !== undefined);
  const firstFailure = minOf([int(headers[HEADER_FIRST_FAILED_AT]), ...deathTimes]);
  const lastFailure = maxOf([int(headers[HEADER_DEAD_LETTERED_AT]), ...deathTimes]);
  const decoded = decode(msg, registry);
  return {
    position,
    messageId: str(p.messageId),
    correlationId: str(p.correlationId),
    type: str(p.type),
    reason: reason ?? brokerReason(headers, deaths),
    attempts:
      int(headers[HEADER_ATTEMPTS]) ??
      int(headers["x-delivery-count"]) ??
      (deaths.length > 0 ? deaths.reduce((n, d) => n + d.count, 0) : undefined),
    originalExchange: origin?.exchange,
    originalRoutingKey: origin?.routingKey,
    firstFailure,
    lastFailure,
    publishedAt: typeof p.timestamp === "number" ? p.timestamp * 1000 : undefined,
    replays: int(headers[HEADER_REPLAYS]) ?? 0,
    deaths,
    source,
    contentType: str(p.contentType),
    bodySize: msg.content.length,
    headers: jsonSafe(headers) as Record<string, unknown>,
    properties: properties(p),
    ...decoded,
  };
}

/** Where the message was first published, if it can be told. */
export function originOf(
  headers: Record<string, unknown>,
  deaths: DeathRecord[],
  source: DeadLetter["source"],
  queue: string,
): { exchange: string; routingKey: string } | undefined {
  const exchange = text(headers[HEADER_ORIGINAL_EXCHANGE]);
  const routingKey = text(headers[HEADER_ORIGINAL_ROUTING_KEY]);
  if (exchange !== undefined && routingKey !== undefined) return { exchange, routingKey };
  if (deaths.length > 0) {
    // x-death has one record per (queue, reason), newest first: the first death names the original.
    const firstQueue = text(headers["x-first-death-queue"]);
    const first = deaths.find((d) => d.queue === firstQueue) ?? deaths[deaths.length - 1]!;
    const key = first.routingKeys[0];
    if (key !== undefined)
      return {
        exchange: text(headers["x-first-death-exchange"]) ?? first.exchange,
        routingKey: key,
      };
  }
  // An RPC request goes to its service's request queue through the default exchange.
  if (source === "rpc" && queue.endsWith(".dlq"))
    return { exchange: "", routingKey: queue.slice(0, -".dlq".length) };
  return undefined;
}

function brokerReason(headers: Record<string, unknown>, deaths: DeathRecord[]): string | undefined {
  const first = deaths[0];
  if (!first) return undefined;
  const why: Record<string, string> = {
    rejected: "rejected by a consumer without requeue",
    expired: "its TTL expired",
    maxlen: "the queue was over its length limit",
    delivery_limit: "delivered more times than the queue's delivery limit",
  };
  return `dead-lettered by the broker from queue "${text(headers["x-last-death-queue"]) ?? first.queue}": ${why[first.reason] ?? first.reason}`;
}

function decode(
  msg: RawMessage,
  registry: Registry | undefined,
): Pick<DeadLetter, "body" | "decodeError"> {
  const p = msg.properties;
  const type = str(p.type);
  const fail = (decodeError: string) => ({ body: undefined, decodeError });
  if (registry === undefined)
    return fail("no contract was given to decode it with (an image or a proto folder)");
  if (p.contentType !== undefined && p.contentType !== CONTENT_TYPE_PROTOBUF)
    return fail(
      `its content_type is ${JSON.stringify(p.contentType)}, not ${CONTENT_TYPE_PROTOBUF}`,
    );
  if (type === undefined) return fail("it has no type property naming its message");
  const desc = registry.getMessage(type);
  if (desc === undefined) return fail(`the contract has no message named ${type}`);
  try {
    const message = fromBinary(desc, msg.content);
    return { body: toJson(desc, message, { registry }), decodeError: undefined };
  } catch (err) {
    return fail(
      `its body does not decode as ${type}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function deathRecords(headers: Record<string, unknown>): DeathRecord[] {
  const raw = headers["x-death"];
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((entry) => {
    if (entry === null || typeof entry !== "object") return [];
    const e = entry as Record<string, unknown>;
    const keys = Array.isArray(e["routing-keys"])
      ? (e["routing-keys"] as unknown[]).map(text).filter((k): k is string => k !== undefined)
      : [];
    return [
      {
        queue: text(e.queue) ?? "",
        reason: text(e.reason) ?? "",
        count: int(e.count) ?? 1,
        exchange: text(e.exchange) ?? "",
        routingKeys: keys,
        time: timestamp(e.time),
      },
    ];
  });
}

function properties(p: MessageProperties): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p))
    if (k !== "headers" && v !== undefined)
      out[k] =
        k === "timestamp" && typeof v === "number" ? new Date(v * 1000).toISOString() : jsonSafe(v);
  return out;
}

/** A header value as JSON: buffers as text, broker timestamps as epoch ms, bigints as numbers. */
function jsonSafe(v: unknown): unknown {
  if (v === null || v === undefined) return v;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("utf8");
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof v === "object") {
    const t = v as Record<string, unknown>;
    if (t["!"] === "timestamp" && typeof t.value === "number")
      return new Date(t.value * 1000).toISOString();
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(t)) out[k] = jsonSafe(t[k]);
    return out;
  }
  return v;
}

function timestamp(v: unknown): number | undefined {
  if (v !== null && typeof v === "object" && (v as Record<string, unknown>)["!"] === "timestamp")
    return int((v as Record<string, unknown>).value)! * 1000;
  const n = int(v);
  return n === undefined ? undefined : n * 1000;
}

export function text(v: unknown): string | undefined {
  return typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function int(v: unknown): number | undefined {
  const n =
    typeof v === "number"
      ? v
      : typeof v === "bigint"
        ? Number(v)
        : typeof v === "string" && v.trim() !== ""
          ? Number(v)
          : NaN;
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

function minOf(xs: (number | undefined)[]): number | undefined {
  const ns = xs.filter((x): x is number => x !== undefined);
  return ns.length ? Math.min(...ns) : undefined;
}

function maxOf(xs: (number | undefined)[]): number | undefined {
  const ns = xs.filter((x): x is number => x !== undefined);
  return ns.length ? Math.max(...ns) : undefined;
}
