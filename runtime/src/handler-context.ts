// Building the context a handler gets, the CallRequest server interceptors see over it, and the one
// client interceptors see, for the transports that are not grpc-js (RabbitMQ, in-memory). The abort controller and the values map
// are made on first use: most handlers never touch them, and they are a measurable part of a call's
// cost. Own getters (not prototype ones), so that `{ ...ctx }` in user code still carries them.
// Nothing here fails; `sendHeaders` throws only what the transport's own callback throws.

import { NEVER_ABORTED, type CallOptions, type HandlerContext } from "./context.js";
import type { MethodDesc, TransportName } from "./descriptors.js";
import type { CallInput, CallRequest } from "./interceptor.js";
import { normalizeMetadata, type Metadata } from "./metadata.js";
import type { StatusError } from "./status.js";

export interface HandlerContextInit {
  readonly method: MethodDesc;
  readonly transport: TransportName;
  readonly metadata: Metadata;
  readonly deadline: number | undefined;
  readonly peer: string | undefined;
  /** The transport's: a unary reply carries the headers with it, a stream sends them now. */
  readonly sendHeaders: (ctx: HandlerContext, metadata: Metadata | undefined) => void;
}

export interface ServerCall {
  readonly ctx: HandlerContext;
  /** Aborts the handler's signal with `reason` (once; later calls do nothing). */
  readonly abort: (reason: StatusError) => void;
  /** The values map if anything made it, without making it. */
  readonly values: () => Map<string | symbol, unknown> | undefined;
}

export function createHandlerContext(init: HandlerContextInit): ServerCall {
  let controller: AbortController | undefined;
  let values: Map<string | symbol, unknown> | undefined;
  const send = init.sendHeaders;
  const ctx: HandlerContext = {
    method: init.method,
    transport: init.transport,
    metadata: init.metadata,
    deadline: init.deadline,
    get signal() {
      controller ??= new AbortController();
      return controller.signal;
    },
    responseHeaders: {},
    sendHeaders(extra?: Metadata) {
      send(ctx, extra);
    },
    responseMetadata: {},
    peer: init.peer,
    get values() {
      values ??= new Map();
      return values;
    },
  };
  const abort = (reason: StatusError) => {
    controller ??= new AbortController();
    if (!controller.signal.aborted) controller.abort(reason);
  };
  return { ctx, abort, values: () => values };
}

/** The call request server interceptors see, over the handler's context (signal and values are its own). */
export function serverCallRequest(ctx: HandlerContext, input: CallInput): CallRequest {
  return {
    method: ctx.method,
    transport: ctx.transport,
    side: "server",
    metadata: ctx.metadata,
    deadline: ctx.deadline,
    get signal() {
      return ctx.signal;
    },
    ...input,
    get values() {
      return ctx.values;
    },
    peer: ctx.peer,
  } as CallRequest;
}

/** The request client interceptors see; `values` is made on first use (an own getter, so `{ ...req }` keeps it). */
export function clientCallRequest(
  method: MethodDesc,
  transport: TransportName,
  options: CallOptions | undefined,
  deadline: number | undefined,
  input: CallInput,
): CallRequest {
  let values: Map<string | symbol, unknown> | undefined;
  return {
    method,
    transport,
    side: "client",
    metadata: normalizeMetadata(options?.metadata),
    deadline,
    signal: options?.signal ?? NEVER_ABORTED,
    ...input,
    get values() {
      values ??= new Map();
      return values;
    },
    peer: undefined,
  };
}
