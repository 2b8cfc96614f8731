// What a handler sees about the call it serves, the same on gRPC and on RabbitMQ.

import type { MethodDesc, TransportName } from "./descriptors.js";
import type { Metadata } from "./metadata.js";

export interface HandlerContext {
  readonly method: MethodDesc;
  readonly transport: TransportName;
  /** Request metadata: gRPC metadata or AMQP headers. */
  readonly metadata: Metadata;
  /** Absolute deadline in epoch milliseconds, if the caller set one. */
  readonly deadline: number | undefined;
  /** Aborted when the caller cancels, the deadline passes or the server shuts down. */
  readonly signal: AbortSignal;
  /**
   * Response headers (gRPC initial metadata; over RabbitMQ the stream's `headers` frame, or the
   * unary reply's headers). Set them before the first response message: they go out with it, or
   * earlier through sendHeaders(). Changes after they were sent are ignored.
   */
  readonly responseHeaders: Metadata;
  /**
   * Sends the response headers now (`metadata` merged over responseHeaders), before any message.
   * Once only: a second call, or a call after the first message, throws FAILED_PRECONDITION.
   */
  sendHeaders(metadata?: Metadata): void;
  /** Trailers: metadata sent with the call's final status (gRPC trailers, AMQP reply or `end` frame headers). */
  readonly responseMetadata: Metadata;
  /** Who called: a gRPC peer address, or the AMQP connection's user_id when the broker vouched for it. */
  readonly peer: string | undefined;
  /** Values interceptors attach for handlers (a verified identity, a trace span...). */
  readonly values: Map<string | symbol, unknown>;
}

/** Options every client call takes, whatever the transport. */
export interface CallOptions {
  /** Relative deadline; overrides the method's default. */
  timeoutMs?: number;
  /** Absolute deadline (epoch ms or Date); the earlier of this and timeoutMs wins. */
  deadline?: number | Date;
  signal?: AbortSignal;
  metadata?: Metadata;
  /** Called with the response metadata (gRPC trailers merged over headers, AMQP reply headers). */
  onResponseMetadata?: (metadata: Metadata) => void;
  /** Called once with the response headers, when they arrive (before the first message). */
  onHeaders?: (metadata: Metadata) => void;
  /** Called once with the trailers, when the call ends (with or without an error). */
  onTrailers?: (metadata: Metadata) => void;
  /**
   * Inside a handler, outgoing calls and publishes inherit the served call's deadline, cancellation,
   * `authorization` and trace headers (see call-context.ts). `false` starts afresh.
   */
  inherit?: boolean;
}

/** The absolute deadline of a call, or undefined when it has none. */
export function resolveDeadline(
  options: CallOptions | undefined,
  defaultTimeoutMs: number | undefined,
  now = Date.now(),
): number | undefined {
  let deadline: number | undefined;
  const timeout = options?.timeoutMs ?? defaultTimeoutMs;
  if (timeout !== undefined && timeout > 0) deadline = now + timeout;
  if (options?.deadline !== undefined) {
    const abs = options.deadline instanceof Date ? options.deadline.getTime() : options.deadline;
    deadline = deadline === undefined ? abs : Math.min(deadline, abs);
  }
  return deadline;
}

/**
 * The signal of calls made without one: it never aborts, so nothing listens to it (one abort
 * listener per call in flight on a shared signal would be an O(n) walk per add and remove).
 */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;
