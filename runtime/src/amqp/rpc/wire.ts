// The RPC-over-RabbitMQ wire contract (docs/wire-contract.md): the names other languages rely on.
// Changing any of these breaks every non-TypeScript client and server, so they live in one place.

import { decodeRpcStatus } from "../../status-details.js";
import type { Code, ErrorDetail } from "../../status.js";

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
    typeof value === "number"
      ? value
      : typeof value === "bigint"
        ? Number(value)
        : typeof value === "string" && value !== ""
          ? Number(value)
          : NaN;
  return Number.isInteger(n) && n >= 0 ? (n as Code) : undefined;
}

/** A header as text (amqplib hands back long strings as strings, some brokers' as buffers). */
export function readText(
  headers: Record<string, unknown> | undefined,
  name: string,
): string | undefined {
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
  const n =
    typeof value === "number"
      ? value
      : typeof value === "bigint"
        ? Number(value)
        : typeof value === "string" && value !== ""
          ? Number(value)
          : NaN;
  return Number.isFinite(n) ? n : undefined;
}

// The timer cap and deadline arithmetic are shared with the gRPC transport (../../timers.ts).
export { MAX_TIMEOUT_MS, remainingMs, delayUntil } from "../../timers.js";

// ---- streams and cancellation (docs/wire-contract.md, "Streams over RabbitMQ") ----------------
// A streaming call opens like a unary request (to the request queue, `rpc-method`, `rpc-timeout-ms`)
// and then goes on as frames between two private queues: the client's inbox (the open's `reply_to`)
// and the server's (the `ready` frame's `reply_to`). Every frame carries the call's `correlation_id`
// and says what it is in `rpc-frame`; frames to an inbox are published `mandatory`, so a peer whose
// inbox is gone (its process or connection died) is known from the broker's return at once.

/** Header on every stream frame and on a cancellation: what the message is (one of FRAME). */
export const HEADER_FRAME = "rpc-frame";
/** `open`, `ready`, `credit`: how many more `message` frames the receiver takes from the other side. */
export const HEADER_CREDIT = "rpc-credit";
/** `message`: its number in its direction, from 1; a gap or repeat is a broken stream. */
export const HEADER_SEQ = "rpc-seq";
/** `open`: how often each side speaks at least (a `ping` when it has nothing else to send), in ms. */
export const HEADER_KEEPALIVE = "rpc-keepalive-ms";

export const FRAME = {
  /** Client -> request queue: starts a streaming call (body: the request, for server-streaming). */
  open: "open",
  /** Server -> client inbox: the call is accepted; `reply_to` the server's inbox, `rpc-credit` its window. */
  ready: "ready",
  /** Server -> client: the response headers (user metadata as headers). At most once, before any message. */
  headers: "headers",
  /** Either way: one stream message, `rpc-seq` numbered, body the protobuf message. */
  message: "message",
  /** Either way: the sender may send `rpc-credit` more messages. */
  credit: "credit",
  /** Client -> server: no more requests. */
  halfClose: "half-close",
  /** Server -> client: the call is over: `rpc-status`, `rpc-message`, details and trailers, as a unary reply. */
  end: "end",
  /** Client -> server (or the cancel exchange, for a unary call): the caller gave up; `rpc-message` why. */
  cancel: "cancel",
  /** Either way: nothing to say, still here. */
  ping: "ping",
} as const;
export type FrameKind = (typeof FRAME)[keyof typeof FRAME];

const FRAME_KINDS = new Set<string>(Object.values(FRAME));

/** The frame kind of a message, or undefined for a unary request/reply (no `rpc-frame` header) or an unknown kind. */
export function readFrame(headers: Record<string, unknown> | undefined): FrameKind | undefined {
  const value = readText(headers, HEADER_FRAME);
  return value !== undefined && FRAME_KINDS.has(value) ? (value as FrameKind) : undefined;
}

/** A non-negative integer header (credit, seq), or undefined. */
export function readCount(
  headers: Record<string, unknown> | undefined,
  name: string,
): number | undefined {
  const n = readMillis(headers?.[name]);
  return n !== undefined && Number.isInteger(n) && n >= 0 ? n : undefined;
}

/**
 * The exchange cancellations of unary calls go through: the client does not know which server took
 * its request, so it publishes `rpc-frame: cancel` here with the request queue as routing key, and
 * every server of that queue (each binds its inbox with that key) hears it. Direct, durable.
 */
export const CANCEL_EXCHANGE = "grabbit.rpc.cancel";

/** Default keepalive: a silent peer is taken for gone after three of these. */
export const DEFAULT_KEEPALIVE_MS = 1_000;
/** Keepalives a peer may miss before its stream fails UNAVAILABLE. */
export const KEEPALIVE_MISSES = 3;
/** Bounds on a keepalive asked for in an `open`. */
export const MIN_KEEPALIVE_MS = 50;
export const MAX_KEEPALIVE_MS = 60_000;
/**
 * A receiver's window, grabbit's policy (the wire only carries credit): at most this many messages
 * given credit for and not yet read...
 */
export const DEFAULT_STREAM_WINDOW = 1_024;
/** ...and, once message sizes are known, about this many bytes of them (so big messages get fewer). */
export const DEFAULT_STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
/** The credit given in an open or ready, before any size is known; also what a peer's open without `rpc-credit` gets. */
export const INITIAL_STREAM_CREDIT = 64;
