// The call a handler is serving, carried through its async work with AsyncLocalStorage, so that
// the calls and publishes it makes on the way carry on the same call: they end no later than its
// deadline, stop when it is cancelled, and carry its caller's authorization and trace headers.
//
// Servers (gRPC and RabbitMQ) run each handler inside runInCallContext(); clients and publishers
// pass their options through inheritCallOptions() before anything else. `inherit: false` in a
// call's options starts afresh.

import { AsyncLocalStorage } from "node:async_hooks";
import type { CallOptions, HandlerContext } from "./context.js";
import type { Metadata } from "./metadata.js";
import { Code, StatusError } from "./status.js";

/**
 * Request headers an outgoing call copies from the call being served, unless it sets them itself:
 * the caller's credentials, and W3C trace context and baggage (with an OpenTelemetry SDK registered
 * the active span's context is injected over these; without one they pass through unchanged).
 */
export const INHERITED_HEADERS: readonly string[] = [
  "authorization",
  "traceparent",
  "tracestate",
  "baggage",
];

const storage = new AsyncLocalStorage<HandlerContext>();

/** Runs `fn` in call `ctx`, or outside any call when `ctx` is undefined (an in-process peer's own context). */
export function runWithCallContext<T>(ctx: HandlerContext | undefined, fn: () => T): T {
  return ctx === undefined ? storage.exit(fn) : storage.run(ctx, fn);
}

/** The call being served here, inside a handler (or anything it started); undefined elsewhere. */
export function currentCallContext(): HandlerContext | undefined {
  return storage.getStore();
}

/** Runs `fn` (a handler, with its interceptors) as part of the call `ctx` describes. */
export function runInCallContext<T>(ctx: HandlerContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/**
 * The options for a call or publish made now: `options` as given outside a handler or with
 * `inherit: false`; inside one, also the served call's deadline (the earlier wins), its signal
 * (either aborting cancels) and the INHERITED_HEADERS the options do not set.
 */
export function inheritCallOptions(options: CallOptions | undefined): CallOptions | undefined {
  if (options?.inherit === false) return options;
  const ctx = storage.getStore();
  if (ctx === undefined) return options;
  const out: CallOptions = { ...options };
  if (ctx.deadline !== undefined) {
    const own =
      options?.deadline === undefined
        ? undefined
        : options.deadline instanceof Date
          ? options.deadline.getTime()
          : options.deadline;
    out.deadline = own === undefined ? ctx.deadline : Math.min(own, ctx.deadline);
  }
  const served = ctx.signal;
  out.signal =
    options?.signal === undefined || options.signal === served
      ? served
      : AbortSignal.any([options.signal, served]);
  let metadata: Metadata | undefined;
  for (const name of INHERITED_HEADERS) {
    const value = ctx.metadata[name];
    if (value === undefined || hasHeader(options?.metadata, name)) continue;
    metadata ??= { ...options?.metadata };
    metadata[name] = value;
  }
  if (metadata !== undefined) out.metadata = metadata;
  return out;
}

/**
 * Runs `fn` as work a handler starts and does not wait for: it keeps the served call's metadata
 * (the caller's token, trace headers) and values, but not its deadline or cancellation, so what it
 * calls or publishes outlives the call (Go's context.WithoutCancel). Outside a handler: just `fn()`.
 */
export function detachFromCall<T>(fn: () => T): T {
  const call = storage.getStore();
  if (call === undefined) return fn();
  const detached: HandlerContext = {
    method: call.method,
    transport: call.transport,
    metadata: call.metadata,
    deadline: undefined,
    // Never aborted, and one per piece of detached work: a shared signal would collect a listener
    // from every call made under it.
    signal: new AbortController().signal,
    responseHeaders: {},
    sendHeaders() {
      throw new StatusError(
        Code.FAILED_PRECONDITION,
        "work detached from a call cannot send the call's response headers",
      );
    },
    responseMetadata: {},
    peer: call.peer,
    values: call.values,
  };
  return storage.run(detached, fn);
}

function hasHeader(metadata: Metadata | undefined, name: string): boolean {
  if (metadata === undefined) return false;
  if (metadata[name] !== undefined) return true;
  for (const key of Object.keys(metadata)) if (key.toLowerCase() === name) return true;
  return false;
}
