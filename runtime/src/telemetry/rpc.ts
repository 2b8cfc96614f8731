// Tracing and metrics of RPC calls, transport-neutral: interceptors of the runtime's one shape, so
// that the gRPC transport and RPC over RabbitMQ record the same spans and durations. Transports put
// them outermost, and only while telemetryActive(): with nothing registered a call takes the same
// path as without telemetry.

import type { Attributes, Context, Span } from "@opentelemetry/api";
import type { MethodDesc } from "../descriptors.js";
import type { CallNext, CallRequest, CallResponse, Interceptor } from "../interceptor.js";
import type { Metadata } from "../metadata.js";
import { Code, codeName, StatusError } from "../status.js";
import type { Logger } from "./logger.js";
import { recordRpcCall } from "./metrics.js";
import { activeMeter, activeTracer, injectTraceContext, extractTraceContext, otelApi, traceIdsFor } from "./otel.js";
import {
  ATTR_ERROR_TYPE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  type RpcSystem,
} from "./semconv.js";

const api = otelApi();

/**
 * Key of CallRequest.values (and so HandlerContext.values) under which the server interceptor
 * leaves the OpenTelemetry Context of the call's span, for code that runs outside it (failure logs).
 */
export const TRACE_CONTEXT_VALUE: unique symbol = Symbol.for("grabbit.telemetry.context");

/** True when a tracer or meter provider is registered: then calls go through the telemetry interceptors. */
export function telemetryActive(): boolean {
  return activeTracer() !== undefined || activeMeter() !== undefined;
}

/** rpc.method and the span name: the method path without its leading slash, "demo.v1.Orders/Get". */
export function rpcMethodName(method: MethodDesc): string {
  return method.path.startsWith("/") ? method.path.slice(1) : method.path;
}

/** Status codes a server counts as its own failure (the gRPC conventions' list); the rest are the caller's. */
const SERVER_ERRORS = new Set<Code>([Code.UNKNOWN, Code.DEADLINE_EXCEEDED, Code.UNIMPLEMENTED, Code.INTERNAL, Code.UNAVAILABLE, Code.DATA_LOSS]);

/** Whether `code` marks a failure on `side`: every non-OK code for a client, SERVER_ERRORS for a server. */
export function isRpcFailure(side: "client" | "server", code: Code): boolean {
  return side === "client" ? code !== Code.OK : SERVER_ERRORS.has(code);
}

/** Where a client sends its calls: server.address and server.port from a gRPC target or a queue. */
export interface RpcClientTarget {
  system: RpcSystem;
  serverAddress?: string;
  serverPort?: number;
  /** More attributes for every client span (messaging attributes for RPC over RabbitMQ). */
  attributes?: Attributes;
}

export interface RpcServerTarget {
  system: RpcSystem;
  attributes?: Attributes;
}

/**
 * server.address and server.port of a gRPC target, as the conventions parse it: "host:port",
 * "dns:///host:port", "[::1]:port"; anything else (unix sockets, several addresses) whole.
 */
export function grpcTargetAddress(target: string): { serverAddress: string; serverPort?: number } {
  const match = /^(?:dns:(?:\/\/[^/]*)?\/)?(\[[^\]]+\]|[^:/,]+):(\d+)$/.exec(target);
  if (match === null) {
    if (target.startsWith("unix:")) return { serverAddress: target.replace(/^unix:(\/\/)?/, "") };
    return { serverAddress: target };
  }
  return { serverAddress: match[1]!.replace(/^\[(.*)\]$/, "$1"), serverPort: Number(match[2]) };
}

/** network.peer.address/port from a grpc-js peer string ("ipv4:127.0.0.1:5000", "[::1]:5000"). */
function peerAttributes(peer: string | undefined, into: Attributes): void {
  if (peer === undefined) return;
  const match = /^(?:ipv[46]:)?\[?([^\]]*?)\]?:(\d+)$/.exec(peer);
  if (match === null) return;
  into[ATTR_NETWORK_PEER_ADDRESS] = match[1]!;
  into[ATTR_NETWORK_PEER_PORT] = Number(match[2]);
}

/** Ends `span` with the call's status: rpc.status_code, and error status and error.type on failure. */
function endSpan(span: Span | undefined, side: "client" | "server", code: Code, failed: boolean, err: unknown): void {
  if (span === undefined) return;
  if (span.isRecording()) {
    const name = codeName(code);
    span.setAttribute(ATTR_RPC_STATUS_CODE, name);
    if (failed) {
      span.setAttribute(ATTR_ERROR_TYPE, name);
      const message = err instanceof StatusError ? err.rawMessage : err instanceof Error ? err.message : undefined;
      // `api` is loaded: there is a span.
      span.setStatus({ code: api!.SpanStatusCode.ERROR, ...(message ? { message } : {}) });
      if (err instanceof Error && side === "server" && !(err instanceof StatusError)) span.recordException(err);
    }
  }
  span.end();
}

/** Calls `fn` with `ctx` active (when there is one), turning a synchronous throw into a rejection. */
function callIn(ctx: Context | undefined, next: CallNext, request: CallRequest): Promise<CallResponse> {
  try {
    return ctx === undefined || api === undefined ? next(request) : api.context.with(ctx, next, undefined, request);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * A response stream that finishes the call when it ends: OK when it completes, the error's code
 * when it fails, CANCELLED when the reader leaves early. With `ctx`, each step of the inner stream
 * runs in it, so that a server's streaming handler runs inside its span.
 */
async function* finishWithStream(messages: AsyncIterable<unknown>, ctx: Context | undefined, finish: (code: Code, err?: unknown) => void): AsyncGenerator<unknown> {
  const iterator = messages[Symbol.asyncIterator]();
  const step = () => iterator.next();
  let finished = false;
  try {
    for (;;) {
      const result = ctx === undefined || api === undefined ? await iterator.next() : await api.context.with(ctx, step);
      if (result.done) break;
      yield result.value;
    }
    finished = true;
    finish(Code.OK);
  } catch (err) {
    finished = true;
    finish(StatusError.from(err).code, err);
    throw err;
  } finally {
    if (!finished) {
      finish(Code.CANCELLED);
      const close = () => iterator.return?.();
      await (ctx === undefined || api === undefined ? close() : api.context.with(ctx, close));
    }
  }
}

function seconds(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}

/**
 * The client side: a CLIENT span named after the method, its context injected into the outgoing
 * metadata (traceparent, tracestate, baggage), the rest of the chain and the call run inside it;
 * then rpc.client.call.duration. Works with neither provider registered too (it then records nothing).
 */
export function rpcClientTelemetry(target: RpcClientTarget): Interceptor {
  const base: Attributes = { [ATTR_RPC_SYSTEM_NAME]: target.system, ...target.attributes };
  if (target.serverAddress !== undefined) base[ATTR_SERVER_ADDRESS] = target.serverAddress;
  if (target.serverPort !== undefined) base[ATTR_SERVER_PORT] = target.serverPort;
  return (next) => (request) => {
    const method = rpcMethodName(request.method);
    const start = performance.now();
    const tracer = activeTracer();
    let span: Span | undefined;
    let ctx: Context | undefined;
    if (tracer !== undefined && api !== undefined) {
      const parent = api.context.active();
      span = tracer.startSpan(method, { kind: api.SpanKind.CLIENT, attributes: { ...base, [ATTR_RPC_METHOD]: method } }, parent);
      ctx = api.trace.setSpan(parent, span);
      // Also for a span that is not recording (sampled out): the flag travels, and the server agrees.
      injectTraceContext(request.metadata, ctx);
    }
    let done = false;
    const finish = (code: Code, err?: unknown) => {
      if (done) return;
      done = true;
      const failed = isRpcFailure("client", code);
      endSpan(span, "client", code, failed, err);
      recordRpcCall({ side: "client", system: target.system, method, code, failed, durationSeconds: seconds(start) });
    };
    return callIn(ctx, next, request).then(
      (response) => {
        if (response.messages === undefined) {
          finish(Code.OK);
          return response;
        }
        return { ...response, messages: finishWithStream(response.messages, undefined, finish) };
      },
      (err: unknown) => {
        finish(StatusError.from(err).code, err);
        throw err;
      },
    );
  };
}

/**
 * The server side: a SERVER span continuing the context the request metadata carries (a new trace
 * without one), the rest of the chain and the handler run inside it, so that the spans and
 * publishes the handler starts are its children; then rpc.server.call.duration.
 */
export function rpcServerTelemetry(target: RpcServerTarget): Interceptor {
  const base: Attributes = { [ATTR_RPC_SYSTEM_NAME]: target.system, ...target.attributes };
  return (next) => (request) => {
    const method = rpcMethodName(request.method);
    const start = performance.now();
    const tracer = activeTracer();
    let span: Span | undefined;
    let ctx: Context | undefined;
    if (tracer !== undefined && api !== undefined) {
      const parent = extractTraceContext(request.metadata) ?? api.ROOT_CONTEXT;
      span = tracer.startSpan(method, { kind: api.SpanKind.SERVER, attributes: { ...base, [ATTR_RPC_METHOD]: method } }, parent);
      if (span.isRecording()) {
        const peer: Attributes = {};
        peerAttributes(request.peer, peer);
        span.setAttributes(peer);
      }
      ctx = api.trace.setSpan(parent, span);
      request.values.set(TRACE_CONTEXT_VALUE, ctx);
    }
    let done = false;
    const finish = (code: Code, err?: unknown) => {
      if (done) return;
      done = true;
      const failed = isRpcFailure("server", code);
      endSpan(span, "server", code, failed, err);
      recordRpcCall({ side: "server", system: target.system, method, code, failed, durationSeconds: seconds(start) });
    };
    return callIn(ctx, next, request).then(
      (response) => {
        if (response.messages === undefined) {
          finish(Code.OK);
          return response;
        }
        return { ...response, messages: finishWithStream(response.messages, ctx, finish) };
      },
      (err: unknown) => {
        finish(StatusError.from(err).code, err);
        throw err;
      },
    );
  };
}

/**
 * Logs a failed server call once: error level for UNKNOWN, INTERNAL and DATA_LOSS (a bug or a broken
 * dependency), warn for the server's other failures (deadline, unavailable, unimplemented), debug for
 * the caller's (not found, invalid argument, permission...). Fields: method, code, transport, peer,
 * trace_id and span_id (from `ctx`, the active span, or the request's traceparent), err.
 */
export function logRpcFailure(
  logger: Logger,
  call: { method: MethodDesc; transport: string; metadata: Metadata | undefined; peer?: string | undefined; ctx?: Context | undefined },
  err: unknown,
): void {
  const error = StatusError.from(err);
  const code = error.code === Code.OK ? Code.UNKNOWN : error.code;
  const fields: Record<string, unknown> = { method: call.method.path, code: codeName(code), transport: call.transport };
  if (call.peer !== undefined) fields["peer"] = call.peer;
  const ids = traceIdsFor(call.metadata, call.ctx);
  if (ids !== undefined) Object.assign(fields, ids);
  fields["err"] = err instanceof Error ? err : error;
  const msg = `${call.method.path} failed: ${codeName(code)}: ${error.rawMessage}`;
  if (code === Code.UNKNOWN || code === Code.INTERNAL || code === Code.DATA_LOSS) logger.error(fields, msg);
  else if (SERVER_ERRORS.has(code)) logger.warn(fields, msg);
  else logger.debug(fields, msg);
}
