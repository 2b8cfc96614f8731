// Tracing and metrics of RPC calls, transport-neutral, so that the gRPC transport and RPC over
// RabbitMQ record the same spans and durations: RpcClientTelemetry and RpcServerTelemetry for a
// transport to call on its own per-call path (gRPC unary calls without interceptors), and the same
// as interceptors of the runtime's one shape, which transports put outermost, only while
// telemetryActive(): with nothing registered a call takes the same path as without telemetry.
// Per call they make the span and little else: span attributes are made once per method, metric
// attributes once per method and status, peers parsed once per connection.

import type { Attributes, Context, Span, TextMapGetter, TextMapSetter } from "@opentelemetry/api";
import type { MethodDesc } from "../descriptors.js";
import type { CallNext, CallRequest, CallResponse, Interceptor } from "../interceptor.js";
import type { Metadata } from "../metadata.js";
import { Code, codeName, StatusError } from "../status.js";
import type { Logger } from "./logger.js";
import { recordRpcDuration } from "./metrics.js";
import { activeMeter, activeTracer, otelApi, traceIdsFor } from "./otel.js";
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
const SERVER_ERRORS = new Set<Code>([
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.UNIMPLEMENTED,
  Code.INTERNAL,
  Code.UNAVAILABLE,
  Code.DATA_LOSS,
]);

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
function peerAttributes(peer: string): Attributes | undefined {
  const match = /^(?:ipv[46]:)?\[?([^\]]*?)\]?:(\d+)$/.exec(peer);
  if (match === null) return undefined;
  return { [ATTR_NETWORK_PEER_ADDRESS]: match[1]!, [ATTR_NETWORK_PEER_PORT]: Number(match[2]) };
}

// Peers are connections, so a server sees the same few strings call after call: parse each once.
const peerCache = new Map<string, Attributes | undefined>();
const PEER_CACHE_LIMIT = 1_000;

function cachedPeerAttributes(peer: string): Attributes | undefined {
  let attributes = peerCache.get(peer);
  if (attributes === undefined && !peerCache.has(peer)) {
    if (peerCache.size >= PEER_CACHE_LIMIT) peerCache.clear();
    attributes = peerAttributes(peer);
    peerCache.set(peer, attributes);
  }
  return attributes;
}

/** Ends `span` with the call's status: rpc.status_code, and error status and error.type on failure. */
function endSpan(
  span: Span,
  side: "client" | "server",
  code: Code,
  failed: boolean,
  err: unknown,
): void {
  if (span.isRecording()) {
    const name = codeName(code);
    span.setAttribute(ATTR_RPC_STATUS_CODE, name);
    if (failed) {
      span.setAttribute(ATTR_ERROR_TYPE, name);
      const message =
        err instanceof StatusError
          ? err.rawMessage
          : err instanceof Error
            ? err.message
            : undefined;
      // `api` is loaded: there is a span.
      span.setStatus({ code: api!.SpanStatusCode.ERROR, ...(message ? { message } : {}) });
      if (err instanceof Error && side === "server" && !(err instanceof StatusError))
        span.recordException(err);
    }
  }
  span.end();
}

/**
 * The telemetry of one call in flight: its span (when a tracer provider is registered) and the
 * context holding it, and the start time of its duration. end() records both, once.
 */
export class RpcCall {
  private done = false;
  private readonly start = performance.now();

  constructor(
    private readonly side: "client" | "server",
    private readonly system: RpcSystem,
    /** rpc.method, "demo.v1.Orders/Get". */
    readonly method: string,
    readonly span: Span | undefined,
    /** The context with `span` in it; undefined without a span. */
    readonly ctx: Context | undefined,
  ) {}

  /** Runs `fn(a, b)` with the call's context active (as is, without one). */
  run<A, B, R>(fn: (a: A, b: B) => R, a: A, b: B): R {
    return this.ctx === undefined || api === undefined
      ? fn(a, b)
      : api.context.with(this.ctx, fn, undefined, a, b);
  }

  /** Ends the span with `code` and records the duration; later calls do nothing. */
  end(code: Code, err?: unknown): void {
    if (this.done) return;
    this.done = true;
    const failed = isRpcFailure(this.side, code);
    if (this.span !== undefined) endSpan(this.span, this.side, code, failed, err);
    recordRpcDuration(
      this.side,
      this.system,
      this.method,
      code,
      failed,
      (performance.now() - this.start) / 1000,
    );
  }
}

/** Span attributes and names of one side's methods, made once per method descriptor. */
class MethodAttributes {
  private readonly byMethod = new WeakMap<MethodDesc, { name: string; attributes: Attributes }>();
  constructor(private readonly base: Attributes) {}

  get(method: MethodDesc): { name: string; attributes: Attributes } {
    let entry = this.byMethod.get(method);
    if (entry === undefined) {
      const name = rpcMethodName(method);
      // The SDK copies span attributes, so one object serves every call of the method.
      entry = { name, attributes: { ...this.base, [ATTR_RPC_METHOD]: name } };
      this.byMethod.set(method, entry);
    }
    return entry;
  }
}

/**
 * The client side's telemetry for one target, for a transport to call per call. start() gives an
 * RpcCall whose CLIENT span (named after the method) is in the caller's active context, its
 * context injected into `carrier` (traceparent, tracestate, baggage), or undefined when no tracer
 * or meter provider is registered.
 */
export class RpcClientTelemetry {
  readonly system: RpcSystem;
  private readonly methods: MethodAttributes;

  constructor(target: RpcClientTarget) {
    this.system = target.system;
    const base: Attributes = { [ATTR_RPC_SYSTEM_NAME]: target.system, ...target.attributes };
    if (target.serverAddress !== undefined) base[ATTR_SERVER_ADDRESS] = target.serverAddress;
    if (target.serverPort !== undefined) base[ATTR_SERVER_PORT] = target.serverPort;
    this.methods = new MethodAttributes(base);
  }

  start<C>(method: MethodDesc, carrier: C, setter?: TextMapSetter<C>): RpcCall | undefined {
    const tracer = activeTracer();
    if (tracer === undefined || api === undefined) {
      return activeMeter() === undefined
        ? undefined
        : new RpcCall("client", this.system, this.methods.get(method).name, undefined, undefined);
    }
    const { name, attributes } = this.methods.get(method);
    const parent = api.context.active();
    const span = tracer.startSpan(name, { kind: api.SpanKind.CLIENT, attributes }, parent);
    const ctx = api.trace.setSpan(parent, span);
    // Also for a span that is not recording (sampled out): the flag travels, and the server agrees.
    api.propagation.inject(ctx, carrier, setter);
    return new RpcCall("client", this.system, name, span, ctx);
  }
}

/**
 * The server side's telemetry, for a transport to call per call. start() gives an RpcCall whose
 * SERVER span continues the context `carrier` holds (a new trace without one), or undefined when
 * no tracer or meter provider is registered. Run the handler in it with RpcCall.run.
 */
export class RpcServerTelemetry {
  readonly system: RpcSystem;
  private readonly methods: MethodAttributes;

  constructor(target: RpcServerTarget) {
    this.system = target.system;
    this.methods = new MethodAttributes({
      [ATTR_RPC_SYSTEM_NAME]: target.system,
      ...target.attributes,
    });
  }

  /** `peer`: the peer string, or what gives it (read only for a recording span). */
  start<C>(
    method: MethodDesc,
    carrier: C,
    getter: TextMapGetter<C> | undefined,
    peer: string | { getPeer(): string } | undefined,
  ): RpcCall | undefined {
    const tracer = activeTracer();
    if (tracer === undefined || api === undefined) {
      return activeMeter() === undefined
        ? undefined
        : new RpcCall("server", this.system, this.methods.get(method).name, undefined, undefined);
    }
    const { name, attributes } = this.methods.get(method);
    const parent = api.propagation.extract(api.ROOT_CONTEXT, carrier, getter);
    const span = tracer.startSpan(name, { kind: api.SpanKind.SERVER, attributes }, parent);
    if (peer !== undefined && span.isRecording()) {
      const peerAttrs = cachedPeerAttributes(typeof peer === "string" ? peer : peer.getPeer());
      if (peerAttrs !== undefined) span.setAttributes(peerAttrs);
    }
    return new RpcCall("server", this.system, name, span, api.trace.setSpan(parent, span));
  }
}

/** Calls `next(request)` with `ctx` active (when there is one), turning a synchronous throw into a rejection. */
function callIn(call: RpcCall, next: CallNext, request: CallRequest): Promise<CallResponse> {
  try {
    return call.run(next, request, undefined);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * A response stream that finishes the call when it ends: OK when it completes, the error's code
 * when it fails, CANCELLED when the reader leaves early. With `ctx`, each step of the inner stream
 * runs in it, so that a server's streaming handler runs inside its span.
 */
async function* finishWithStream(
  messages: AsyncIterable<unknown>,
  ctx: Context | undefined,
  call: RpcCall,
): AsyncGenerator<unknown> {
  const iterator = messages[Symbol.asyncIterator]();
  const step = () => iterator.next();
  let finished = false;
  try {
    for (;;) {
      const result =
        ctx === undefined || api === undefined
          ? await iterator.next()
          : await api.context.with(ctx, step);
      if (result.done) break;
      yield result.value;
    }
    finished = true;
    call.end(Code.OK);
  } catch (err) {
    finished = true;
    call.end(StatusError.from(err).code, err);
    throw err;
  } finally {
    if (!finished) {
      call.end(Code.CANCELLED);
      const close = () => iterator.return?.();
      await (ctx === undefined || api === undefined ? close() : api.context.with(ctx, close));
    }
  }
}

/** The rest of an interceptor chain under `call`: ends it when the response (or its stream) does. */
function intercepted(
  call: RpcCall,
  next: CallNext,
  request: CallRequest,
  streamCtx: Context | undefined,
): Promise<CallResponse> {
  return callIn(call, next, request).then(
    (response) => {
      if (!response.stream) {
        call.end(Code.OK);
        return response;
      }
      return { ...response, messages: finishWithStream(response.messages, streamCtx, call) };
    },
    (err: unknown) => {
      call.end(StatusError.from(err).code, err);
      throw err;
    },
  );
}

/**
 * The client side as an interceptor: a CLIENT span named after the method, its context injected
 * into the outgoing metadata (traceparent, tracestate, baggage), the rest of the chain and the call
 * run inside it; then rpc.client.call.duration. With neither provider registered it records nothing.
 */
export function rpcClientTelemetry(target: RpcClientTarget): Interceptor {
  const telemetry = new RpcClientTelemetry(target);
  return (next) => (request) => {
    const call = telemetry.start(request.method, request.metadata);
    return call === undefined ? next(request) : intercepted(call, next, request, undefined);
  };
}

/**
 * The server side as an interceptor: a SERVER span continuing the context the request metadata
 * carries (a new trace without one), the rest of the chain and the handler run inside it, so that
 * the spans and publishes the handler starts are its children; then rpc.server.call.duration.
 */
export function rpcServerTelemetry(target: RpcServerTarget): Interceptor {
  const telemetry = new RpcServerTelemetry(target);
  return (next) => (request) => {
    const call = telemetry.start(request.method, request.metadata, undefined, request.peer);
    if (call === undefined) return next(request);
    if (call.ctx !== undefined) request.values.set(TRACE_CONTEXT_VALUE, call.ctx);
    return intercepted(call, next, request, call.ctx);
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
  call: {
    method: MethodDesc;
    transport: string;
    metadata: Metadata | undefined;
    peer?: string | undefined;
    ctx?: Context | undefined;
  },
  err: unknown,
): void {
  const error = StatusError.from(err);
  const code = error.code === Code.OK ? Code.UNKNOWN : error.code;
  const fields: Record<string, unknown> = {
    method: call.method.path,
    code: codeName(code),
    transport: call.transport,
  };
  if (call.peer !== undefined) fields["peer"] = call.peer;
  const ids = traceIdsFor(call.metadata, call.ctx);
  if (ids !== undefined) Object.assign(fields, ids);
  fields["err"] = err instanceof Error ? err : error;
  const msg = `${call.method.path} failed: ${codeName(code)}: ${error.rawMessage}`;
  if (code === Code.UNKNOWN || code === Code.INTERNAL || code === Code.DATA_LOSS)
    logger.error(fields, msg);
  else if (SERVER_ERRORS.has(code)) logger.warn(fields, msg);
  else logger.debug(fields, msg);
}
