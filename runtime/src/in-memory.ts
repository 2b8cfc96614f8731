// An in-process Transport for tests of handlers and interceptors: a generated client calls the
// generated handlers object directly, with no broker and no socket, through the same steps a real
// transport takes: client interceptors (side "client"), every message encoded and decoded by its
// type, the server interceptors (side "server") and the handler inside its call context, with the
// deadline timed and the caller's cancellation reaching the handler's signal.
//
// What it reports is what the real transports report: a method it does not serve or the handlers
// lack answers UNIMPLEMENTED, a passed deadline DEADLINE_EXCEEDED (and aborts the handler), an
// aborted signal CANCELLED, a handler's StatusError its code, message, metadata and details, and
// anything else thrown UNKNOWN with its message. It is for tests: no message size limit, no retry.

import {
  inheritCallOptions,
  runInCallContext,
  runWithCallContext,
  currentCallContext,
} from "./call-context.js";
import { abortStatus, deadlineError, failing, kindError } from "./call-errors.js";
import {
  NEVER_ABORTED,
  resolveDeadline,
  type CallOptions,
  type HandlerContext,
} from "./context.js";
import type { MethodDesc, ServiceDesc, TransportName } from "./descriptors.js";
import type { ServiceHandlers } from "./handler.js";
import {
  clientCallRequest,
  createHandlerContext,
  serverCallRequest,
  type ServerCall,
} from "./handler-context.js";
import {
  applyInterceptors,
  requestStreams,
  responseMessage,
  responseStream,
  responseStreams,
  type CallInput,
  type CallNext,
  type CallRequest,
  type CallResponse,
  type Interceptor,
} from "./interceptor.js";
import { lazyResponses } from "./lazy-responses.js";
import { isReservedHeader, normalizeMetadata, type Metadata } from "./metadata.js";
import { Code, StatusError, messageOf } from "./status.js";
import { delayUntil } from "./timers.js";
import type { Transport } from "./transport.js";

export interface InMemoryTransportOptions {
  /** Server interceptors, first = outermost; they see side "server", as on a GrpcServer or serveAmqp. */
  interceptors?: Interceptor[];
  /** Client interceptors, first = outermost; they see side "client". */
  clientInterceptors?: Interceptor[];
  /** What interceptors and handlers see as `transport`. Default "grpc". */
  transport?: TransportName;
  /** What handlers see as `ctx.peer`. Default "in-memory". */
  peer?: string;
  /** Deadline for calls that set none and whose method declares none, in ms. Default: none. */
  timeoutMs?: number;
}

type Handler = (request: unknown, ctx: HandlerContext) => unknown;

interface Served {
  readonly method: MethodDesc;
  /** The bound handler, or undefined when the handlers object lacks the method. */
  readonly handler: Handler | undefined;
}

/** Where the innermost client step finds the caller's options (callbacks) behind the interceptors. */
const OPTIONS = Symbol("grabbit.memory.options");
type ClientRequest = CallRequest & {
  [OPTIONS]?: CallOptions | undefined;
  [CALLER]?: HandlerContext | undefined;
};
/** The call the caller was serving, if any: its own request stream runs in it, as on a real client. */
const CALLER = Symbol("grabbit.memory.caller");

/**
 * A Transport that serves calls in this process with the handlers given to it (and to `add`).
 * Generated clients take it as any other: `new OrdersClient(createInMemoryTransport(...))`.
 */
export class InMemoryTransport implements Transport {
  private readonly served = new Map<string, Served>();
  private readonly clientChain: CallNext;
  private readonly serverInterceptors: Interceptor[] | undefined;
  private readonly transportName: TransportName;
  private readonly peer: string;
  private readonly defaultTimeoutMs: number | undefined;
  private closed = false;

  constructor(options: InMemoryTransportOptions = {}) {
    this.clientChain = applyInterceptors(this.send, options.clientInterceptors);
    this.serverInterceptors =
      options.interceptors && options.interceptors.length > 0 ? options.interceptors : undefined;
    this.transportName = options.transport ?? "grpc";
    this.peer = options.peer ?? "in-memory";
    this.defaultTimeoutMs = options.timeoutMs;
  }

  /** Serves `service` with `handlers` too; a method they leave out answers UNIMPLEMENTED. */
  add<S extends ServiceDesc>(service: S, handlers: Partial<ServiceHandlers<S>>): this {
    for (const [key, method] of Object.entries(service.methods)) {
      const fn = (handlers as Record<string, unknown>)[key];
      // Handlers may be methods of a class instance, so keep `this`.
      const handler = typeof fn === "function" ? (fn.bind(handlers) as Handler) : undefined;
      this.served.set(method.path, { method, handler });
    }
    return this;
  }

  async unary<I, O>(method: MethodDesc<I, O>, request: I, options?: CallOptions): Promise<O> {
    if (method.kind !== "unary") throw kindError(method, "unary");
    return responseMessage(
      await this.call(method, { stream: false, message: request }, inheritCallOptions(options)),
      method,
    ) as O;
  }

  serverStream<I, O>(
    method: MethodDesc<I, O>,
    request: I,
    options?: CallOptions,
  ): AsyncIterable<O> {
    if (method.kind !== "server_streaming") return failing(kindError(method, "server_streaming"));
    const inherited = inheritCallOptions(options); // taken now, in the caller's call context
    return lazyResponses(() =>
      this.call(method, { stream: false, message: request }, inherited),
    ) as AsyncIterable<O>;
  }

  async clientStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    options?: CallOptions,
  ): Promise<O> {
    if (method.kind !== "client_streaming") throw kindError(method, "client_streaming");
    return responseMessage(
      await this.call(method, { stream: true, messages: requests }, inheritCallOptions(options)),
      method,
    ) as O;
  }

  bidiStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    options?: CallOptions,
  ): AsyncIterable<O> {
    if (method.kind !== "bidi_streaming") return failing(kindError(method, "bidi_streaming"));
    const inherited = inheritCallOptions(options);
    return lazyResponses(() =>
      this.call(method, { stream: true, messages: requests }, inherited),
    ) as AsyncIterable<O>;
  }

  /** Later calls fail UNAVAILABLE; calls already running go on. */
  close(): void {
    this.closed = true;
  }

  private call(
    method: MethodDesc,
    input: CallInput,
    options: CallOptions | undefined,
  ): Promise<CallResponse> {
    const req: ClientRequest = clientCallRequest(
      method,
      this.transportName,
      options,
      resolveDeadline(options, method.timeoutMs ?? this.defaultTimeoutMs),
      input,
    );
    req[OPTIONS] = options;
    req[CALLER] = currentCallContext();
    return this.clientChain(req);
  }

  /** The innermost client step: hand the call to its handler, as a server would receive it. */
  private readonly send = (req: ClientRequest): Promise<CallResponse> => {
    const path = req.method.path;
    if (this.closed)
      return Promise.reject(new StatusError(Code.UNAVAILABLE, "the in-memory transport is closed"));
    const served = this.served.get(path);
    if (served === undefined)
      return Promise.reject(
        new StatusError(
          Code.UNIMPLEMENTED,
          `unknown method ${path} (no service on this in-memory transport has it)`,
        ),
      );
    if (served.handler === undefined)
      return Promise.reject(
        new StatusError(Code.UNIMPLEMENTED, `${path} is not implemented by this server`),
      );
    const kind = req.method.kind;
    if (requestStreams(kind) !== req.stream) {
      return Promise.reject(
        new StatusError(
          Code.INTERNAL,
          `${path}: an interceptor changed the request's shape (a ${kind} call takes ${req.stream ? "one message" : "a stream"})`,
        ),
      );
    }
    return new MemoryCall(served.method, served.handler, req, this).start();
  };

  /** What a MemoryCall needs of its transport. */
  get settings(): {
    readonly transport: TransportName;
    readonly peer: string;
    readonly interceptors: Interceptor[] | undefined;
  } {
    return {
      transport: this.transportName,
      peer: this.peer,
      interceptors: this.serverInterceptors,
    };
  }
}

/** Serves `handlers` as `service` in this process; pass the result to a generated client. */
export function createInMemoryTransport<S extends ServiceDesc>(
  service: S,
  handlers: Partial<ServiceHandlers<S>>,
  options?: InMemoryTransportOptions,
): InMemoryTransport {
  return new InMemoryTransport(options).add(service, handlers);
}

/**
 * One call on its way from the client step to the handler and back. The client's side ends at the
 * first of: the handler's result (or stream end), its error, the deadline, the caller's signal, the
 * caller stopping to read; an end before the handler's aborts the handler's signal.
 */
class MemoryCall {
  private readonly server: ServerCall;
  private readonly options: CallOptions | undefined;
  private headersSent = false;
  private over = false;
  private timer: NodeJS.Timeout | undefined;
  private onAbort: (() => void) | undefined;
  /** Settles when the call ends before its handler does (deadline, cancellation). */
  private readonly cut: Promise<never>;
  private cutWith: (err: StatusError) => void = () => {};
  /** The caller's request stream, to stop when the call is over. */
  private requests: AsyncIterator<unknown> | undefined;
  private readonly interceptors: Interceptor[] | undefined;
  private reported = false;

  constructor(
    private readonly method: MethodDesc,
    private readonly handler: Handler,
    private readonly req: ClientRequest,
    transport: InMemoryTransport,
  ) {
    this.options = req[OPTIONS];
    const settings = transport.settings;
    this.interceptors = settings.interceptors;
    // Over the "wire" only what a transport would carry: normalized names, reserved ones dropped.
    const metadata: Metadata = {};
    for (const [name, value] of Object.entries(normalizeMetadata(req.metadata)))
      if (!isReservedHeader(name)) metadata[name] = value;
    this.server = createHandlerContext({
      method,
      transport: settings.transport,
      metadata,
      deadline: req.deadline,
      peer: settings.peer,
      sendHeaders: (ctx, extra) => this.sendHeaders(ctx, extra, true),
    });
    this.cut = new Promise<never>((_, reject) => (this.cutWith = reject));
    this.cut.catch(() => {});
  }

  start(): Promise<CallResponse> {
    const req = this.req;
    const method = this.method;
    if (req.signal.aborted) return Promise.reject(abortStatus(req.signal));
    if (req.deadline !== undefined && req.deadline <= Date.now())
      return Promise.reject(deadlineError(method));
    if (req.deadline !== undefined) {
      this.timer = setTimeout(
        () =>
          this.end(
            deadlineError(method),
            new StatusError(
              Code.DEADLINE_EXCEEDED,
              `${method.path}: the handler did not finish before the deadline`,
            ),
          ),
        delayUntil(req.deadline),
      );
    }
    if (req.signal !== NEVER_ABORTED) {
      this.onAbort = () =>
        this.end(
          abortStatus(req.signal),
          new StatusError(Code.CANCELLED, "the caller cancelled the call"),
        );
      req.signal.addEventListener("abort", this.onAbort, { once: true });
    }
    let request: unknown;
    if (!req.stream) {
      try {
        request = roundTrip(method.input, req.message, "request");
      } catch (err) {
        this.finish();
        return Promise.reject(err);
      }
    }
    const ctx = this.server.ctx;
    const input: CallInput = req.stream
      ? { stream: true, messages: this.requestStream(req.messages) }
      : { stream: false, message: request };
    const callHandler = async (r: CallRequest): Promise<CallResponse> => {
      const result = await this.handler(r.stream ? r.messages : r.message, ctx);
      return responseStreams(method.kind)
        ? {
            stream: true,
            messages: result as AsyncIterable<unknown>,
            metadata: ctx.responseMetadata,
          }
        : { stream: false, message: result, metadata: ctx.responseMetadata };
    };
    const chain = this.interceptors
      ? applyInterceptors(callHandler, this.interceptors)
      : callHandler;
    const run = runInCallContext(ctx, () => chain(serverCallRequest(ctx, input)));
    const response = Promise.race([run, this.cut]);
    if (method.kind === "unary" || method.kind === "client_streaming")
      return response.then(
        (r) => this.single(r),
        (err) => this.failed(err),
      );
    return response.then(
      (r) => this.stream(r),
      (err) => this.failed(err),
    );
  }

  /** A unary or client-streaming call's response, encoded and decoded as a transport would. */
  private single(response: CallResponse): CallResponse {
    if (this.over) throw this.lateEnd();
    let message: unknown;
    try {
      message = roundTrip(this.method.output, responseMessage(response, this.method), "response");
    } catch (err) {
      return this.failed(err);
    }
    const headers = this.sendHeaders(this.server.ctx, undefined, false);
    const trailers = { ...response.metadata };
    this.finish();
    this.report(trailers);
    return { stream: false, message, metadata: { ...headers, ...trailers } };
  }

  /** A server- or bidi-streaming call's responses: read from the handler inside its call context. */
  private stream(response: CallResponse): CallResponse {
    let messages: AsyncIterable<unknown>;
    try {
      messages = responseStream(response, this.method);
    } catch (err) {
      return this.failed(err);
    }
    if (messages === undefined || typeof messages[Symbol.asyncIterator] !== "function") {
      return this.failed(
        new StatusError(
          Code.INTERNAL,
          `${this.method.path}: the handler did not return an async iterable`,
        ),
      );
    }
    const ctx = this.server.ctx;
    const iterator = runInCallContext(ctx, () => messages[Symbol.asyncIterator]());
    const metadata: Metadata = {};
    const out: AsyncIterableIterator<unknown> = {
      [Symbol.asyncIterator]: () => out,
      next: async () => {
        if (this.over) return { value: undefined, done: true };
        let next: IteratorResult<unknown>;
        try {
          next = await Promise.race([runInCallContext(ctx, () => iterator.next()), this.cut]);
        } catch (err) {
          if (this.over)
            void runInCallContext(ctx, async () => iterator.return?.())?.catch(() => {});
          return this.failed(err);
        }
        if (next.done) {
          const headers = this.sendHeaders(ctx, undefined, false);
          const trailers = { ...ctx.responseMetadata };
          Object.assign(metadata, headers, trailers);
          this.finish();
          this.report(trailers);
          return { value: undefined, done: true };
        }
        let value: unknown;
        try {
          value = roundTrip(this.method.output, next.value, "response");
        } catch (err) {
          void runInCallContext(ctx, async () => iterator.return?.())?.catch(() => {});
          return this.failed(err);
        }
        Object.assign(metadata, this.sendHeaders(ctx, undefined, false));
        return { value, done: false };
      },
      return: async () => {
        if (!this.over) {
          this.end(
            undefined,
            new StatusError(
              Code.CANCELLED,
              `${this.method.path}: the caller stopped reading the stream`,
            ),
          );
          void runInCallContext(ctx, async () => iterator.return?.())?.catch(() => {});
        }
        return { value: undefined, done: true };
      },
    };
    return { stream: true, messages: out, metadata };
  }

  /** The caller's request stream as the handler reads it: each message encoded and decoded, read in the caller's context. */
  private requestStream(messages: AsyncIterable<unknown>): AsyncIterable<unknown> {
    const caller = this.req[CALLER];
    return {
      [Symbol.asyncIterator]: () => {
        let iterator: AsyncIterator<unknown>;
        try {
          iterator = runWithCallContext(caller, () => messages[Symbol.asyncIterator]());
        } catch (err) {
          const status = this.requestFailure(err);
          return { next: () => Promise.reject(status) };
        }
        this.requests = iterator;
        return {
          next: async () => {
            if (this.over) return { value: undefined, done: true };
            let next: IteratorResult<unknown>;
            try {
              next = await runWithCallContext(caller, () => iterator.next());
            } catch (err) {
              throw this.requestFailure(err);
            }
            if (next.done) return next;
            return { value: roundTrip(this.method.input, next.value, "request"), done: false };
          },
          return: async () => {
            await runWithCallContext(caller, async () => iterator.return?.());
            return { value: undefined, done: true };
          },
        };
      },
    };
  }

  /** The caller's request stream threw: the call is cancelled on both sides, as on gRPC. */
  private requestFailure(err: unknown): StatusError {
    const status =
      err instanceof StatusError
        ? err
        : new StatusError(
            Code.CANCELLED,
            `${this.method.path}: the request stream failed: ${messageOf(err)}`,
            { cause: err },
          );
    this.end(status, status);
    return status;
  }

  /** Sends the response headers (once); `explicit` is ctx.sendHeaders(). Returns what was sent. */
  private sendHeaders(
    ctx: HandlerContext,
    extra: Metadata | undefined,
    explicit: boolean,
  ): Metadata {
    if (this.headersSent) {
      if (explicit)
        throw new StatusError(
          Code.FAILED_PRECONDITION,
          `${this.method.path}: the response headers were already sent (explicitly, or with the first message)`,
        );
      return {};
    }
    if (extra) Object.assign(ctx.responseHeaders, normalizeMetadata(extra));
    if (this.over) return {};
    this.headersSent = true;
    const headers = { ...ctx.responseHeaders };
    try {
      this.options?.onHeaders?.(headers);
    } catch {
      // A callback that throws must not break the call.
    }
    return headers;
  }

  /**
   * Ends the call before its handler does: `client` is what the caller gets (none when the caller
   * itself stopped reading), `server` what the handler's signal is aborted with.
   */
  private end(client: StatusError | undefined, server: StatusError): void {
    if (this.over) return;
    this.server.abort(server);
    this.finish();
    this.report(client?.metadata ?? {});
    if (client !== undefined) this.cutWith(client);
  }

  /** The call failed: the status the caller gets, with the headers and trailers set so far. */
  private failed(err: unknown): never {
    if (this.over && !(err instanceof StatusError)) throw this.lateEnd();
    const status = StatusError.from(err);
    if (this.over) throw status; // ended here (deadline, cancellation): reported already
    const ctx = this.server.ctx;
    const trailers = { ...ctx.responseMetadata, ...status.metadata };
    const metadata = this.headersSent ? trailers : { ...ctx.responseHeaders, ...trailers };
    this.server.abort(status);
    this.finish();
    this.report(trailers);
    throw new StatusError(status.code, status.rawMessage, {
      metadata,
      details: status.details,
      cause: status,
    });
  }

  private lateEnd(): StatusError {
    return new StatusError(
      Code.CANCELLED,
      `${this.method.path}: the call was over before the handler finished`,
    );
  }

  private finish(): void {
    this.over = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort) this.req.signal.removeEventListener("abort", this.onAbort);
    const requests = this.requests;
    this.requests = undefined;
    void requests?.return?.()?.catch?.(() => {});
  }

  /** The trailers and the merged response metadata, once. */
  private report(trailers: Metadata): void {
    if (this.reported) return;
    this.reported = true;
    try {
      this.options?.onTrailers?.(trailers);
      this.options?.onResponseMetadata?.({ ...this.server.ctx.responseHeaders, ...trailers });
    } catch {
      // as above
    }
  }
}

/** A message through its type's codec, as a transport carries it (so handlers and callers never share objects). */
function roundTrip(
  type: MethodDesc["input"],
  message: unknown,
  what: "request" | "response",
): unknown {
  let bytes: Uint8Array;
  try {
    bytes = type.encode(message);
  } catch (err) {
    throw new StatusError(
      Code.INTERNAL,
      `could not encode the ${type.typeName} ${what}: ${messageOf(err)}`,
      { cause: err },
    );
  }
  try {
    return type.decode(bytes);
  } catch (err) {
    throw new StatusError(
      what === "request" ? Code.INVALID_ARGUMENT : Code.INTERNAL,
      `could not decode the ${what} as ${type.typeName}: ${messageOf(err)}`,
      { cause: err },
    );
  }
}
