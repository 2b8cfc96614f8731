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

/**
 * Request headers an outgoing call copies from the call being served, unless it sets them itself:
 * the caller's credentials, and W3C trace context and baggage (with an OpenTelemetry SDK registered
 * the active span's context is injected over these; without one they pass through unchanged).
 */
export const INHERITED_HEADERS: readonly string[] = ["authorization", "traceparent", "tracestate", "baggage"];

const storage = new AsyncLocalStorage<HandlerContext>();

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
    const own = options?.deadline === undefined ? undefined : options.deadline instanceof Date ? options.deadline.getTime() : options.deadline;
    out.deadline = own === undefined ? ctx.deadline : Math.min(own, ctx.deadline);
  }
  const served = ctx.signal;
  out.signal = options?.signal === undefined || options.signal === served ? served : AbortSignal.any([options.signal, served]);
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

function hasHeader(metadata: Metadata | undefined, name: string): boolean {
  if (metadata === undefined) return false;
  if (metadata[name] !== undefined) return true;
  for (const key of Object.keys(metadata)) if (key.toLowerCase() === name) return true;
  return false;
}
