// The server side of the gRPC transport: plain async handlers (handler.ts) adapted to grpc-js's
// callback and stream API, with the runtime's HandlerContext and server interceptors around them.

import * as grpc from "@grpc/grpc-js";
import { runInCallContext } from "../call-context.js";
import type { HandlerContext } from "../context.js";
import type { MethodDesc, ServiceDesc } from "../descriptors.js";
import type { ServiceHandlers } from "../handler.js";
import {
  applyInterceptors,
  requestMessage,
  requestStream,
  type CallNext,
  type CallRequest,
  type CallResponse,
  type Interceptor,
} from "../interceptor.js";
import { hasKeys, type Metadata } from "../metadata.js";
import { Code, StatusError, messageOf } from "../status.js";
import { beyondTimers, delayUntil } from "../timers.js";
import { defaultLogger, type Logger } from "../telemetry/logger.js";
import type { Context } from "../telemetry/otel.js";
import {
  logRpcFailure,
  type RpcCall,
  RpcServerTelemetry,
  rpcServerTelemetry,
  telemetryActive,
  TRACE_CONTEXT_VALUE,
} from "../telemetry/rpc.js";
import { RPC_SYSTEM_GRPC } from "../telemetry/semconv.js";
import {
  asBuffer,
  fromGrpcMetadata,
  GRPC_METADATA_GETTER,
  grpcStatusFromError,
  toGrpcMetadata,
} from "./convert.js";
import { confirmHalfClose } from "./half-close.js";
import { HealthServiceDesc, HealthStatus } from "./health.js";
import { AsyncQueue, HIGH_WATER } from "./queue.js";

type SurfaceCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;

type WritableCall =
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;
type ReadableCall =
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;

/** Shared by the handlers of one server, so that shutdown can tell handlers why they were stopped. */
interface ServerState {
  /** Set when shutdown's grace period ran out and the remaining calls are being cut off. */
  forced: boolean;
  /** Calls whose handlers are still running, so that shutdown can end them with UNAVAILABLE. */
  readonly active: Set<GrpcHandlerContext>;
}

/** How a call's result is sent: the unary callback, or the stream (grpc-js turns an error into the status). */
type Respond = grpc.sendUnaryData<unknown> | WritableCall;

// After the grace period, how long the UNAVAILABLE statuses get to reach clients before the
// connections are closed hard.
const CUT_OFF_FLUSH_MS = 1000;

// A client cancels its stream when its own deadline passes, which can be a little before the server's
// copy of it (clocks start at different moments): a cancel this close to the deadline is the deadline.
const DEADLINE_SLACK_MS = 100;
// The handler context travels on the interceptor request under this key (spread copies it too).
const CONTEXT = Symbol("grabbit.grpc.context");

export interface GrpcServerOptions {
  /** Server interceptors, the first outermost. They wrap every handler of every service added. */
  interceptors?: Interceptor[];
  channelOptions?: grpc.ChannelOptions;
  /**
   * Where failed calls are logged, once each, with method, status code and trace id: pino or any
   * logger of its shape. Default: JSON lines on stderr, warnings and errors (see defaultLogger).
   */
  logger?: Logger;
}

/**
 * The ways one method's calls run: the user's interceptors alone (or none), or with the telemetry
 * interceptor outermost while a tracer or meter provider is registered. Unary calls without
 * interceptors record their telemetry on the direct path instead (`telemetry`), with no chain.
 */
interface Chains {
  readonly plain: CallNext | undefined;
  /** Undefined for services that are not traced (health checks). */
  readonly traced: CallNext | undefined;
  /** Undefined for services that are not traced. */
  readonly telemetry: RpcServerTelemetry | undefined;
  readonly logger: Logger;
}

function pick(chains: Chains): CallNext | undefined {
  return chains.traced !== undefined && telemetryActive() ? chains.traced : chains.plain;
}

/** Logs a call that failed, with the trace it belongs to. */
function logFailure(chains: Chains, context: GrpcHandlerContext, err: unknown): void {
  try {
    logRpcFailure(
      chains.logger,
      {
        method: context.method,
        transport: "grpc",
        metadata: context.metadata,
        peer: context.peer,
        ctx: context.peekValue(TRACE_CONTEXT_VALUE) as Context | undefined,
      },
      err,
    );
  } catch {
    // A logger that throws must not break the call.
  }
}

/** A request message that failed to decode, standing in for it until a handler wrapper sees it. */
class Undecodable {
  readonly error: StatusError;
  constructor(typeName: string, cause: unknown) {
    this.error = new StatusError(
      Code.INVALID_ARGUMENT,
      `cannot decode ${typeName}: ${messageOf(cause)}`,
      { cause },
    );
  }
}

/** The request stream handed to a streaming handler; remembers a message that failed to decode. */
class RequestQueue extends AsyncQueue<unknown> {
  decodeError: StatusError | undefined;
}

/**
 * The grpc-js service definition of a service: paths, streaming flags and the descriptors' codecs.
 * Use it with grpcServiceImplementation (or GrpcServer): an undecodable request reaches the
 * implementation as a marker that it answers with INVALID_ARGUMENT.
 */
export function grpcServiceDefinition(service: ServiceDesc): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [key, method] of Object.entries(service.methods)) {
    const { input, output } = method;
    definition[key] = {
      path: method.path,
      requestStream: method.kind === "client_streaming" || method.kind === "bidi_streaming",
      responseStream: method.kind === "server_streaming" || method.kind === "bidi_streaming",
      requestSerialize: (value) => asBuffer(input.encode(value)),
      // Never throws: grpc-js would answer INTERNAL; the handlers answer INVALID_ARGUMENT instead,
      // as the AMQP transport does for a request it cannot decode.
      requestDeserialize: (bytes) => {
        try {
          return input.decode(bytes);
        } catch (err) {
          return new Undecodable(input.typeName, err);
        }
      },
      responseSerialize: (value) => asBuffer(output.encode(value)),
      responseDeserialize: (bytes) => output.decode(bytes),
      originalName: method.name,
    };
  }
  return definition;
}

/**
 * grpc-js handlers for a service implementation (an object of plain async functions keyed like
 * `service.methods`). Methods without a handler are left out, so grpc-js answers UNIMPLEMENTED.
 */
export function grpcServiceImplementation<S extends ServiceDesc>(
  service: S,
  handlers: Partial<ServiceHandlers<S>>,
  options: { interceptors?: Interceptor[]; logger?: Logger } = {},
): grpc.UntypedServiceImplementation {
  return implementation(
    service,
    handlers,
    options.interceptors,
    { forced: false, active: new Set() },
    options.logger ?? defaultLogger(),
    true,
  );
}

const serverTelemetry = rpcServerTelemetry({ system: RPC_SYSTEM_GRPC });
const directTelemetry = new RpcServerTelemetry({ system: RPC_SYSTEM_GRPC });

function implementation(
  service: ServiceDesc,
  handlers: object,
  interceptors: Interceptor[] | undefined,
  state: ServerState,
  logger: Logger,
  traced: boolean,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [key, method] of Object.entries(service.methods)) {
    const fn = (handlers as Record<string, unknown>)[key];
    if (typeof fn !== "function") continue;
    // Handlers may be methods of a class instance, so keep `this`.
    const handler = (fn as (...args: unknown[]) => unknown).bind(handlers);
    const chains: Chains = {
      plain:
        interceptors && interceptors.length > 0
          ? applyInterceptors(terminal(method, handler), interceptors)
          : undefined,
      traced: traced
        ? applyInterceptors(terminal(method, handler), [serverTelemetry, ...(interceptors ?? [])])
        : undefined,
      telemetry: traced ? directTelemetry : undefined,
      logger,
    };
    switch (method.kind) {
      case "unary":
        impl[key] = unaryHandler(method, handler, chains, state);
        break;
      case "client_streaming":
        impl[key] = clientStreamHandler(method, handler, chains, state);
        break;
      case "server_streaming":
        impl[key] = serverStreamHandler(method, handler, chains, state);
        break;
      case "bidi_streaming":
        impl[key] = bidiStreamHandler(method, handler, chains, state);
        break;
    }
  }
  return impl;
}

type Handler = (input: unknown, context: HandlerContext) => unknown;

/** The innermost step of a server chain: the user's handler with the (possibly rewritten) request. */
function terminal(method: MethodDesc, handler: Handler): CallNext {
  const streamingInput = method.kind === "client_streaming" || method.kind === "bidi_streaming";
  const streamingOutput = method.kind === "server_streaming" || method.kind === "bidi_streaming";
  return async (request: CallRequest): Promise<CallResponse> => {
    const context = (request as CallRequest & { [CONTEXT]?: GrpcHandlerContext })[CONTEXT];
    if (context === undefined)
      throw new StatusError(
        Code.INTERNAL,
        "an interceptor replaced the call request without keeping its fields",
      );
    // An interceptor may have replaced the metadata object; the handler sees what it passed on.
    context.metadata = request.metadata;
    const result = await handler(
      streamingInput ? requestStream(request) : requestMessage(request),
      context,
    );
    return streamingOutput
      ? {
          stream: true,
          messages: result as AsyncIterable<unknown>,
          metadata: context.responseMetadata,
        }
      : { stream: false, message: result, metadata: context.responseMetadata };
  };
}

function unaryHandler(
  method: MethodDesc,
  handler: Handler,
  chains: Chains,
  state: ServerState,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    if (call.request instanceof Undecodable)
      return callback(grpcStatusFromError(call.request.error, {}));
    const context = new GrpcHandlerContext(method, call, state, callback);
    let rpc: RpcCall | undefined;
    let result: unknown;
    try {
      // The handler (and its interceptors) run in the call's context, for currentCallContext().
      result = runInCallContext(context, () => {
        if (chains.plain !== undefined)
          return pick(chains)!(context.request(call.request, undefined)).then(responseMessage);
        // No interceptors: the handler directly, in the call's span while a provider is registered.
        rpc = chains.telemetry?.start(method, call.metadata, GRPC_METADATA_GETTER, call);
        if (rpc === undefined) return handler(call.request, context);
        context.traceContext = rpc.ctx;
        return rpc.run(handler, call.request, context);
      });
    } catch (err) {
      result = Promise.reject(err);
    }
    Promise.resolve(result).then(
      (message) => {
        rpc?.end(Code.OK);
        if (context.finish()) sendUnaryResult(callback, message, context);
      },
      (err: unknown) => {
        rpc?.end(StatusError.from(err).code, err);
        if (!context.finish()) return;
        sendUnaryError(callback, err, context);
        logFailure(chains, context, err);
      },
    );
  };
}

function clientStreamHandler(
  method: MethodDesc,
  handler: Handler,
  chains: Chains,
  state: ServerState,
): grpc.handleClientStreamingCall<unknown, unknown> {
  return (call, callback) => {
    const context = new GrpcHandlerContext(method, call, state, callback);
    const chain = pick(chains);
    const requests = readRequests(call, context);
    let result: unknown;
    try {
      result = runInCallContext(context, () =>
        chain === undefined
          ? handler(requests, context)
          : chain(context.request(undefined, requests)).then(responseMessage),
      );
    } catch (err) {
      result = Promise.reject(err);
    }
    Promise.resolve(result).then(
      (message) => {
        void requests.return();
        if (!context.finish()) return;
        if (requests.decodeError) {
          sendUnaryError(callback, requests.decodeError, context);
          logFailure(chains, context, requests.decodeError);
        } else sendUnaryResult(callback, message, context);
      },
      (err: unknown) => {
        void requests.return();
        if (!context.finish()) return;
        sendUnaryError(callback, requests.decodeError ?? err, context);
        logFailure(chains, context, requests.decodeError ?? err);
      },
    );
  };
}

function serverStreamHandler(
  method: MethodDesc,
  handler: Handler,
  chains: Chains,
  state: ServerState,
): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    if (call.request instanceof Undecodable) {
      call.emit("error", grpcStatusFromError(call.request.error, {}));
      return;
    }
    const context = new GrpcHandlerContext(method, call, state, call);
    const chain = pick(chains);
    void runInCallContext(context, () =>
      respondWithStream(call, context, chains, async () =>
        chain === undefined
          ? handler(call.request, context)
          : responseStream(await chain(context.request(call.request, undefined))),
      ),
    );
  };
}

function bidiStreamHandler(
  method: MethodDesc,
  handler: Handler,
  chains: Chains,
  state: ServerState,
): grpc.handleBidiStreamingCall<unknown, unknown> {
  return (call) => {
    const context = new GrpcHandlerContext(method, call, state, call);
    const chain = pick(chains);
    const requests = readRequests(call, context);
    void runInCallContext(context, () =>
      respondWithStream(
        call,
        context,
        chains,
        async () =>
          chain === undefined
            ? handler(requests, context)
            : responseStream(await chain(context.request(undefined, requests))),
        requests,
      ),
    );
  };
}

// Shared functions (no closure per call): the transport tells the client which call it was.
function responseMessage(response: CallResponse): unknown {
  if (response.stream)
    throw new StatusError(
      Code.INTERNAL,
      "an interceptor returned a response stream for a call that answers with one message",
    );
  return response.message;
}

function responseStream(response: CallResponse): unknown {
  if (!response.stream)
    throw new StatusError(
      Code.INTERNAL,
      "an interceptor returned one response message for a call that answers with a stream",
    );
  return response.messages;
}

/** Ends a call with one response message: the response headers (if not sent yet), the message, the trailers. */
function sendUnaryResult(
  callback: grpc.sendUnaryData<unknown>,
  message: unknown,
  context: GrpcHandlerContext,
): void {
  let trailers: grpc.Metadata | undefined;
  try {
    context.flushHeaders("message");
    if (hasKeys(context.responseMetadata)) trailers = toGrpcMetadata(context.responseMetadata);
  } catch (err) {
    callback({ code: grpc.status.INTERNAL, details: (err as Error).message });
    return;
  }
  if (trailers === undefined) callback(null, message);
  else callback(null, message, trailers);
}

/** Ends a call with one response message with an error: the response headers (if not sent yet), then the status. */
function sendUnaryError(
  callback: grpc.sendUnaryData<unknown>,
  err: unknown,
  context: GrpcHandlerContext,
): void {
  try {
    context.flushHeaders("status");
  } catch (headerErr) {
    // Headers gRPC cannot carry are a bug of the handler's, reported as INTERNAL like bad trailers.
    callback(grpcStatusFromError(headerErr, {}));
    return;
  }
  callback(grpcStatusFromError(err, context.responseMetadata));
}

/** Runs a handler that returns a response stream and writes it out, then the status and trailers. */
async function respondWithStream(
  call: WritableCall,
  context: GrpcHandlerContext,
  chains: Chains,
  start: () => Promise<unknown>,
  requests?: RequestQueue,
): Promise<void> {
  try {
    const messages = await start();
    if (
      messages === undefined ||
      messages === null ||
      typeof (messages as AsyncIterable<unknown>)[Symbol.asyncIterator] !== "function"
    ) {
      throw new StatusError(
        Code.INTERNAL,
        `the handler of ${context.method.path} returned no async iterable`,
      );
    }
    for await (const message of messages as AsyncIterable<unknown>) {
      if (call.cancelled || context.isFinished) break;
      // grpc-js would send empty headers with the first message: send the handler's instead.
      context.flushHeaders("message");
      if (!call.write(message)) await drainedOrCancelled(call);
      if (call.cancelled || context.isFinished) break;
    }
    void requests?.return();
    if (!context.finish() || call.cancelled) return;
    if (requests?.decodeError) throw requests.decodeError;
    let trailers: grpc.Metadata;
    try {
      context.flushHeaders("status");
      trailers = toGrpcMetadata(context.responseMetadata);
    } catch (err) {
      call.emit("error", { code: Code.INTERNAL, details: (err as Error).message });
      return;
    }
    call.end(trailers);
  } catch (err) {
    void requests?.return();
    if (!context.finish()) return;
    const failure = requests?.decodeError ?? err;
    let status: grpc.StatusObject;
    try {
      context.flushHeaders("status");
      status = grpcStatusFromError(failure, context.responseMetadata);
    } catch (headerErr) {
      status = grpcStatusFromError(headerErr, {});
    }
    // grpc-js turns an emitted error into the call's status (code, details, metadata as trailers).
    call.emit("error", status);
    logFailure(chains, context, failure);
  }
}

function drainedOrCancelled(call: WritableCall): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("cancelled", done);
      resolve();
    };
    call.on("drain", done);
    call.on("cancelled", done);
  });
}

/**
 * The request stream a handler iterates. It ends when the client half-closes, fails with
 * CANCELLED (DEADLINE_EXCEEDED, UNAVAILABLE at a forced shutdown) when the call is cancelled and
 * with INVALID_ARGUMENT at a message it cannot decode. A handler that stops reading early does not
 * end the call. grpc-js ends the request stream of a cancelled call too, just before it tells of
 * the cancellation: the end is confirmed as a half-close first (half-close.ts), so that a handler
 * never takes a cancelled upload for a complete one.
 */
function readRequests(call: ReadableCall, context: GrpcHandlerContext): RequestQueue {
  const queue = new RequestQueue(
    HIGH_WATER,
    () => call.resume(),
    () => call.resume(), // nobody reads any more: let grpc-js drain the rest into the void
  );
  // The end is being confirmed: the surface call's own close that follows must not fail the stream.
  let endSeen = false;
  call.on("data", (message: unknown) => {
    if (message instanceof Undecodable) {
      // The call fails with INVALID_ARGUMENT whatever the handler does with the error it reads.
      queue.decodeError ??= message.error;
      queue.end(message.error);
      call.resume();
    } else if (queue.push(message)) call.pause();
  });
  call.on("end", () => {
    endSeen = true;
    if (queue.ended) return;
    void confirmHalfClose(call).then((halfClosed) =>
      queue.end(halfClosed ? undefined : context.cancelReason()),
    );
  });
  call.on("cancelled", () => queue.end(context.cancelReason()));
  call.on("close", () => {
    if (!endSeen)
      queue.end(new StatusError(Code.CANCELLED, "the call ended before the request stream did"));
  });
  call.on("error", ignore);
  return queue;
}

/**
 * HandlerContext for one gRPC call. The signal (and the deadline timer and cancel listener behind
 * it) is made only when a handler or interceptor reads it, which most unary handlers never do.
 */
class GrpcHandlerContext implements HandlerContext {
  readonly transport = "grpc" as const;
  readonly deadline: number | undefined;
  readonly responseMetadata: Metadata = {};
  // Made on first use: many handlers never look at request metadata, values or response headers.
  private metadataCache: Metadata | undefined;
  private headersCache: Metadata | undefined;
  /** How the response headers went out (once per call), for sendHeaders' error; undefined until then. */
  private headersSent: "sendHeaders" | "message" | "status" | undefined;
  private valuesCache: Map<string | symbol, unknown> | undefined;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;
  /**
   * The context of the call's span when the direct path traced it (no interceptors): what the
   * telemetry interceptor would have put in values under TRACE_CONTEXT_VALUE, without making the map.
   */
  traceContext: Context | undefined;

  constructor(
    readonly method: MethodDesc,
    private readonly call: SurfaceCall,
    private readonly state: ServerState,
    private readonly respond: Respond,
  ) {
    state.active.add(this);
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() : deadline;
    this.deadline = Number.isFinite(ms) ? ms : undefined;
  }

  get metadata(): Metadata {
    return (this.metadataCache ??= fromGrpcMetadata(this.call.metadata));
  }

  /** An interceptor may pass on a different metadata object; the handler sees that one. */
  set metadata(metadata: Metadata) {
    this.metadataCache = metadata;
  }

  get values(): Map<string | symbol, unknown> {
    if (this.valuesCache === undefined) {
      this.valuesCache = new Map();
      if (this.traceContext !== undefined)
        this.valuesCache.set(TRACE_CONTEXT_VALUE, this.traceContext);
    }
    return this.valuesCache;
  }

  get responseHeaders(): Metadata {
    return (this.headersCache ??= {});
  }

  sendHeaders(metadata?: Metadata): void {
    if (this.headersSent !== undefined || this.finished)
      throw new StatusError(Code.FAILED_PRECONDITION, this.headersTooLate());
    const headers =
      metadata === undefined ? this.headersCache : { ...this.headersCache, ...metadata };
    this.sendHeadersNow(headers, "sendHeaders");
    // Kept so that the handler (and its interceptors) can read what was sent.
    if (metadata !== undefined) Object.assign(this.responseHeaders, metadata);
  }

  /**
   * Sends the response headers unless they went out already: before the first response message
   * (grpc-js would send empty ones with it) and before the status (so that a call without messages
   * still delivers them, as headers rather than trailers).
   */
  flushHeaders(reason: "message" | "status"): void {
    if (this.headersSent === undefined) this.sendHeadersNow(this.headersCache, reason);
  }

  /** Throws INTERNAL, before anything is sent, for headers gRPC cannot carry. */
  private sendHeadersNow(
    headers: Metadata | undefined,
    reason: "sendHeaders" | "message" | "status",
  ): void {
    if (reason !== "sendHeaders" && (headers === undefined || !hasKeys(headers))) {
      // Nothing of the handler's: grpc-js sends its empty headers with the first message, or none before the status.
      this.headersSent = reason;
      return;
    }
    let grpcHeaders: grpc.Metadata;
    try {
      grpcHeaders = toGrpcMetadata(headers);
    } catch (err) {
      throw new StatusError(
        Code.INTERNAL,
        `the response headers of ${this.method.path} cannot be sent: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.headersSent = reason;
    this.call.sendMetadata(grpcHeaders);
  }

  private headersTooLate(): string {
    const path = this.method.path;
    if (this.finished) return `${path} has ended: its response headers can no longer be sent`;
    switch (this.headersSent) {
      case "sendHeaders":
        return `sendHeaders was already called for ${path}: the response headers are sent once`;
      case "message":
        return `the response headers of ${path} went out with its first response message: call sendHeaders before that`;
      default:
        return `the response headers of ${path} went out with its status`;
    }
  }

  /** A value, without making the map when there is none. */
  peekValue(key: string | symbol): unknown {
    if (this.valuesCache !== undefined) return this.valuesCache.get(key);
    return key === TRACE_CONTEXT_VALUE ? this.traceContext : undefined;
  }

  get peer(): string | undefined {
    return this.call.getPeer();
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.call.cancelled) this.onCancel();
      else if (!this.finished) {
        (this.call as NodeJS.EventEmitter).once("cancelled", this.onCancel);
        // Past setTimeout's range (about 24.8 days) Node would fire at once: such a deadline is no deadline.
        if (this.deadline !== undefined && !beyondTimers(this.deadline)) {
          this.timer = setTimeout(this.onDeadline, delayUntil(this.deadline));
        }
      }
    }
    return this.controller.signal;
  }

  /** The interceptor view of this call; values set on it reach the handler. */
  request(message: unknown, messages: AsyncIterable<unknown> | undefined): CallRequest {
    const self = this;
    return {
      method: this.method,
      transport: "grpc",
      side: "server",
      metadata: this.metadata,
      deadline: this.deadline,
      // A getter, so that a chain that never looks at the signal does not create one.
      get signal() {
        return self.signal;
      },
      stream: messages !== undefined,
      message,
      messages,
      values: this.values,
      peer: this.call.getPeer(),
      [CONTEXT]: this,
    } as unknown as CallRequest;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /**
   * The handler is done: stop watching for cancellation and the deadline. False when the call was
   * already finished (cut off at shutdown): then its result must not be sent.
   */
  finish(): boolean {
    if (this.finished) return false;
    this.finished = true;
    this.state.active.delete(this);
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.controller !== undefined)
      (this.call as NodeJS.EventEmitter).off("cancelled", this.onCancel);
    return true;
  }

  /** Shutdown ran out of grace: end the call with UNAVAILABLE (retryable) and tell the handler. */
  cutOff(): void {
    if (this.finished) return;
    const reason = new StatusError(Code.UNAVAILABLE, "the server is shutting down");
    this.controller?.abort(reason);
    this.finish();
    const status = grpcStatusFromError(reason, this.responseMetadata);
    if (typeof this.respond === "function") this.respond(status);
    else this.respond.emit("error", status);
  }

  /** Why grpc-js cancelled the call: a forced shutdown, the deadline, or the client. */
  cancelReason(): StatusError {
    if (this.state.forced) return new StatusError(Code.UNAVAILABLE, "the server is shutting down");
    if (this.deadline !== undefined && Date.now() >= this.deadline - DEADLINE_SLACK_MS)
      return new StatusError(Code.DEADLINE_EXCEEDED, "the deadline passed");
    return new StatusError(Code.CANCELLED, "the client cancelled the call");
  }

  private readonly onCancel = (): void => {
    if (!this.finished) this.controller?.abort(this.cancelReason());
  };

  private readonly onDeadline = (): void => {
    if (!this.finished)
      this.controller?.abort(new StatusError(Code.DEADLINE_EXCEEDED, "the deadline passed"));
  };
}

/** A grpc-js server serving grabbit services, with graceful shutdown. */
export class GrpcServer {
  readonly server: grpc.Server;
  private readonly interceptors: Interceptor[] | undefined;
  private readonly logger: Logger;
  private readonly state: ServerState = { forced: false, active: new Set() };
  private health: HealthStatus | undefined;

  constructor(options: GrpcServerOptions = {}) {
    this.server = new grpc.Server(options.channelOptions);
    this.interceptors = options.interceptors;
    this.logger = options.logger ?? defaultLogger();
  }

  add<S extends ServiceDesc>(service: S, handlers: Partial<ServiceHandlers<S>>): this {
    this.server.addService(
      grpcServiceDefinition(service),
      implementation(service, handlers, this.interceptors, this.state, this.logger, true),
    );
    return this;
  }

  /**
   * Serves grpc.health.v1.Health from `health` (by default: the whole server SERVING). Health checks
   * bypass the server's interceptors (and are not traced), since probes carry no credentials; close() turns every
   * status NOT_SERVING and ends Watch streams before draining.
   */
  addHealth(health: HealthStatus = new HealthStatus()): HealthStatus {
    this.server.addService(
      grpcServiceDefinition(HealthServiceDesc),
      implementation(HealthServiceDesc, health.handlers, undefined, this.state, this.logger, false),
    );
    this.health = health;
    return health;
  }

  /** Binds and starts serving; resolves with the bound port (useful with port 0). */
  listen(
    address = "127.0.0.1:0",
    credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
  }

  /**
   * Stops accepting calls and waits for those in flight. After `graceMs` (default 10 000) the rest
   * end with UNAVAILABLE (their handlers' signals abort with that reason, their later results are
   * dropped), and connections still open a moment later are closed hard.
   */
  close({ graceMs = 10_000 }: { graceMs?: number } = {}): Promise<void> {
    this.health?.close();
    return new Promise((resolve) => {
      let flushTimer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(graceTimer);
        clearTimeout(flushTimer);
        resolve();
      };
      const graceTimer = setTimeout(() => {
        this.state.forced = true;
        for (const context of [...this.state.active]) context.cutOff();
        flushTimer = setTimeout(() => {
          this.server.forceShutdown();
          done();
        }, CUT_OFF_FLUSH_MS);
      }, graceMs);
      this.server.tryShutdown(done);
    });
  }

  /** @deprecated Renamed `close({ graceMs })` (one shutdown verb across the runtime); this alias goes in the next release. */
  shutdown(graceMs?: number): Promise<void> {
    return this.close(graceMs === undefined ? {} : { graceMs });
  }
}

function ignore(): void {}
