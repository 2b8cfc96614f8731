// The client side of the gRPC transport: one grpc-js Client (one channel) per transport, calls made
// with its makeXxxRequest methods and the descriptors' codecs as serializers, so the unary path adds
// little to raw grpc-js: no grpc-js interceptors, no per-call serializer closures.

import * as grpc from "@grpc/grpc-js";
import { inheritCallOptions } from "../call-context.js";
import { NEVER_ABORTED, resolveDeadline, type CallOptions } from "../context.js";
import type { MethodDesc } from "../descriptors.js";
import {
  applyInterceptors,
  requestMessage,
  requestStream,
  responseMessage,
  responseStream,
  type CallNext,
  type CallRequest,
  type CallResponse,
  type Interceptor,
} from "../interceptor.js";
import type { Metadata } from "../metadata.js";
import { Code, StatusError } from "../status.js";
import {
  grpcTargetAddress,
  RpcClientTelemetry,
  rpcClientTelemetry,
  telemetryActive,
  type RpcCall,
} from "../telemetry/rpc.js";
import { RPC_SYSTEM_GRPC } from "../telemetry/semconv.js";
import { beyondTimers } from "../timers.js";
import type { Transport } from "../transport.js";
import {
  asBuffer,
  fromGrpcMetadata,
  GRPC_METADATA_SETTER,
  statusErrorFromGrpc,
  toGrpcMetadata,
} from "./convert.js";
import { AsyncQueue, HIGH_WATER } from "./queue.js";

export interface GrpcTransportOptions {
  /** Defaults to an insecure (plaintext) channel; see tlsChannelCredentials. */
  credentials?: grpc.ChannelCredentials;
  /** Client interceptors, the first outermost. They run before the gRPC call starts. */
  interceptors?: Interceptor[];
  channelOptions?: grpc.ChannelOptions;
  /** Deadline for calls that set none and whose method declares none. */
  timeoutMs?: number;
}

/** Serializers made once per method descriptor, not once per call. */
interface MethodCodec {
  serialize(value: unknown): Buffer;
  deserialize(bytes: Buffer): unknown;
}

const codecs = new WeakMap<MethodDesc, MethodCodec>();

export function methodCodec(method: MethodDesc): MethodCodec {
  let codec = codecs.get(method);
  if (codec === undefined) {
    const { input, output } = method;
    codec = {
      serialize: (value) => asBuffer(input.encode(value)),
      deserialize: (bytes) => output.decode(bytes),
    };
    codecs.set(method, codec);
  }
  return codec;
}

// Interceptors always get a signal; calls without one share NEVER_ABORTED (context.ts), which
// nothing listens to (also no MaxListenersExceededWarning past 10 calls in flight).

/** The signal worth listening to: none for the shared never-aborted one. */
function abortable(signal: AbortSignal | undefined): AbortSignal | undefined {
  return signal === NEVER_ABORTED ? undefined : signal;
}
const NO_OPTIONS: grpc.CallOptions = Object.freeze({}) as grpc.CallOptions;

type ClientStream = grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>;
// The call's ResponseSink travels on the interceptor request under this key (spread copies it too).
const SINK = Symbol("grabbit.grpc.responseSink");

interface PumpState {
  done: boolean;
  error: { error: unknown } | undefined;
}

export class GrpcTransport implements Transport {
  /** The underlying grpc-js client, for what this class does not cover (waitForReady, channel state). */
  readonly client: grpc.Client;
  private readonly timeoutMs: number | undefined;
  private readonly chain: CallNext | undefined;
  // The chain with the telemetry interceptor outermost, taken while a tracer or meter provider is
  // registered by calls that have interceptors to run or are streams; otherwise calls take `chain`
  // (or no chain at all), as if there were no telemetry. Unary calls without interceptors record
  // their telemetry on the direct path (`telemetry`), without the chain's request and response objects.
  private readonly tracedChain: CallNext;
  private readonly telemetry: RpcClientTelemetry;
  private closed = false;

  constructor(address: string, options: GrpcTransportOptions = {}) {
    this.client = new grpc.Client(
      address,
      options.credentials ?? grpc.credentials.createInsecure(),
      options.channelOptions,
    );
    this.timeoutMs = options.timeoutMs;
    this.chain =
      options.interceptors && options.interceptors.length > 0
        ? applyInterceptors((request) => this.dispatch(request), options.interceptors)
        : undefined;
    const target = { system: RPC_SYSTEM_GRPC, ...grpcTargetAddress(address) } as const;
    this.telemetry = new RpcClientTelemetry(target);
    this.tracedChain = applyInterceptors(
      (request) => this.dispatch(request),
      [rpcClientTelemetry(target), ...(options.interceptors ?? [])],
    );
  }

  unary<I, O>(method: MethodDesc<I, O>, request: I, callerOptions?: CallOptions): Promise<O> {
    const options = inheritCallOptions(callerOptions);
    const deadline = this.deadlineFor(method, callerOptions, options);
    if (this.chain === undefined) {
      // The direct path, traced or not: telemetry (if any) starts inside unaryCall, on the grpc-js metadata.
      const sink = ResponseSink.for(options);
      if (sink === undefined)
        return this.unaryCall(
          method,
          request,
          options?.metadata,
          deadline,
          options?.signal,
          undefined,
          true,
        ) as Promise<O>;
      return this.unaryCall(
        method,
        request,
        options!.metadata,
        deadline,
        options!.signal,
        sink,
        true,
      ).then((message) => {
        options!.onResponseMetadata?.(sink.merged);
        return message as O;
      });
    }
    return this.intercept(this.callRequest(method, options, deadline, request, undefined)).then(
      (response) => {
        options?.onResponseMetadata?.(response.metadata);
        return responseMessage(response, method) as O;
      },
    );
  }

  clientStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    callerOptions?: CallOptions,
  ): Promise<O> {
    const options = inheritCallOptions(callerOptions);
    const deadline = this.deadlineFor(method, callerOptions, options);
    return this.intercept(this.callRequest(method, options, deadline, undefined, requests)).then(
      (response) => {
        options?.onResponseMetadata?.(response.metadata);
        return responseMessage(response, method) as O;
      },
    );
  }

  /**
   * The call starts when iteration starts; leaving the loop early cancels it. What it inherits from
   * the call being served (inheritCallOptions) is taken here, when the stream is asked for.
   */
  serverStream<I, O>(
    method: MethodDesc<I, O>,
    request: I,
    callerOptions?: CallOptions,
  ): AsyncIterable<O> {
    const options = inheritCallOptions(callerOptions);
    return this.streamResponses<O>(
      method,
      options,
      this.deadlineFor(method, callerOptions, options),
      request,
      undefined,
    );
  }

  /** As serverStream: starts when iteration starts, inherits from the call served when asked for. */
  bidiStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    callerOptions?: CallOptions,
  ): AsyncIterable<O> {
    const options = inheritCallOptions(callerOptions);
    return this.streamResponses<O>(
      method,
      options,
      this.deadlineFor(method, callerOptions, options),
      undefined,
      requests,
    );
  }

  /**
   * Connects now rather than on the first call; resolves once the channel is ready, rejects with
   * UNAVAILABLE if it is not within `timeoutMs`. Calls do not need it: they connect on demand.
   */
  ready(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + timeoutMs, (err) => {
        if (err)
          reject(
            new StatusError(
              Code.UNAVAILABLE,
              `not connected within ${timeoutMs} ms: ${err.message}`,
              { cause: err },
            ),
          );
        else resolve();
      });
    });
  }

  /** Closes the channel; calls in flight fail, later calls fail at once. */
  close(): void {
    this.closed = true;
    this.client.close();
  }

  private async *streamResponses<O>(
    method: MethodDesc,
    options: CallOptions | undefined,
    deadline: number | undefined,
    message: unknown,
    messages: AsyncIterable<unknown> | undefined,
  ): AsyncGenerator<O> {
    const request = this.callRequest(method, options, deadline, message, messages);
    const traced = telemetryActive();
    const response = await this.intercept(request, traced);
    const stream = responseStream(response, method) as AsyncIterable<O>;
    if (this.chain === undefined && !traced) {
      yield* stream;
    } else {
      try {
        yield* stream;
      } catch (err) {
        // An interceptor's wrapper stream may fail with anything; callers get a StatusError.
        throw StatusError.from(err);
      }
    }
    options?.onResponseMetadata?.(response.metadata);
  }

  /** Runs the interceptor chain (or the call alone); whatever it throws reaches the caller as a StatusError. */
  private intercept(request: CallRequest, traced = telemetryActive()): Promise<CallResponse> {
    const chain = traced ? this.tracedChain : this.chain;
    if (chain === undefined) return this.dispatch(request);
    try {
      return chain(request).catch(rethrowAsStatusError);
    } catch (err) {
      return Promise.reject(StatusError.from(err));
    }
  }

  /**
   * CallOptions.timeoutMs and deadline win (the earlier of both); without either, the method's
   * timeout, else the transport's. Inside a handler, also no later than the served call's deadline
   * (in `inherited`, the options after inheritCallOptions). That deadline is taken apart from the
   * caller's own options: as an explicit deadline it would otherwise replace the method's timeout.
   */
  private deadlineFor(
    method: MethodDesc,
    options: CallOptions | undefined,
    inherited: CallOptions | undefined,
  ): number | undefined {
    const own = this.ownDeadline(method, options);
    if (inherited === options || inherited?.deadline === undefined) return own;
    const served =
      inherited.deadline instanceof Date ? inherited.deadline.getTime() : inherited.deadline;
    return own === undefined ? served : Math.min(own, served);
  }

  private ownDeadline(method: MethodDesc, options: CallOptions | undefined): number | undefined {
    const fallback = method.timeoutMs ?? this.timeoutMs;
    if (
      options === undefined ||
      (options.timeoutMs === undefined && options.deadline === undefined)
    ) {
      return fallback !== undefined && fallback > 0 ? Date.now() + fallback : undefined;
    }
    return resolveDeadline(options, options.deadline !== undefined ? undefined : fallback);
  }

  private callRequest(
    method: MethodDesc,
    options: CallOptions | undefined,
    deadline: number | undefined,
    message: unknown,
    messages: AsyncIterable<unknown> | undefined,
  ): CallRequest {
    // One object shape for every kind: the tag says which of message/messages applies.
    const request = {
      method,
      transport: "grpc",
      side: "client",
      // A copy: interceptors add to it, and the caller's object must not change under it.
      metadata: { ...options?.metadata },
      deadline,
      signal: options?.signal ?? NEVER_ABORTED,
      stream: messages !== undefined,
      message,
      messages,
      values: new Map(),
      peer: undefined,
    } as CallRequest & { [SINK]?: ResponseSink };
    const sink =
      options?.onHeaders === undefined && options?.onTrailers === undefined
        ? undefined
        : ResponseSink.for(options);
    if (sink !== undefined) request[SINK] = sink;
    return request;
  }

  /** The innermost step of the interceptor chain: the gRPC call itself. */
  private async dispatch(request: CallRequest): Promise<CallResponse> {
    // grpc-js throws a plain Error for calls on a closed channel; callers get a StatusError.
    if (this.closed) throw closedError();
    const { method, metadata, deadline } = request;
    const signal = abortable(request.signal);
    // An interceptor that built a request of its own (not a spread copy) loses the caller's hooks.
    const sink =
      (request as CallRequest & { [SINK]?: ResponseSink })[SINK] ?? new ResponseSink(undefined);
    switch (method.kind) {
      case "unary":
        return {
          stream: false,
          message: await this.unaryCall(
            method,
            requestMessage(request),
            metadata,
            deadline,
            signal,
            sink,
          ),
          metadata: sink.merged,
        };
      case "client_streaming":
        return {
          stream: false,
          message: await this.clientStreamCall(
            method,
            requestStream(request),
            metadata,
            deadline,
            signal,
            sink,
          ),
          metadata: sink.merged,
        };
      case "server_streaming": {
        throwIfAborted(signal);
        const call = this.client.makeServerStreamRequest(
          method.path,
          methodCodec(method).serialize,
          methodCodec(method).deserialize,
          requestMessage(request),
          toGrpcMetadata(metadata),
          callOptions(deadline),
        );
        return {
          stream: true,
          messages: readResponses(call, signal, sink, undefined),
          metadata: sink.merged,
        };
      }
      case "bidi_streaming": {
        const requests = requestStream(request);
        throwIfAborted(signal);
        const codec = methodCodec(method);
        const call = this.client.makeBidiStreamRequest(
          method.path,
          codec.serialize,
          codec.deserialize,
          toGrpcMetadata(metadata),
          callOptions(deadline),
        );
        const pump: PumpState = { done: false, error: undefined };
        const messages = readResponses(call, signal, sink, pump);
        void writeRequests(call, requests, pump);
        return { stream: true, messages, metadata: sink.merged };
      }
      default:
        throw new StatusError(
          Code.INTERNAL,
          `unknown method kind ${String(method.kind)} for ${method.path}`,
        );
    }
  }

  /**
   * One unary call. With a `sink` the promise settles on the status event, after headers and
   * trailers went into it; without one, on the grpc-js callback (one event fewer). `traced`:
   * record the call's span and duration here while a provider is registered (the direct path; the
   * chain has its own interceptor for that).
   */
  private unaryCall(
    method: MethodDesc,
    message: unknown,
    metadata: Metadata | undefined,
    deadline: number | undefined,
    signal: AbortSignal | undefined,
    sink: ResponseSink | undefined,
    traced = false,
  ): Promise<unknown> {
    if (this.closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    const codec = methodCodec(method);
    let grpcMetadata: grpc.Metadata;
    let rpc: RpcCall | undefined;
    try {
      grpcMetadata = toGrpcMetadata(metadata);
      // After the caller's entries, so that the call's own traceparent wins, as on the chain.
      if (traced) rpc = this.telemetry.start(method, grpcMetadata, GRPC_METADATA_SETTER);
    } catch (err) {
      return Promise.reject(StatusError.from(err));
    }
    return new Promise((resolve, reject) => {
      let onAbort: (() => void) | undefined;
      let result: unknown;
      let error: grpc.ServiceError | null = null;
      const call = this.client.makeUnaryRequest(
        method.path,
        codec.serialize,
        codec.deserialize,
        message,
        grpcMetadata,
        callOptions(deadline),
        (err, value) => {
          if (onAbort !== undefined) signal!.removeEventListener("abort", onAbort);
          if (sink !== undefined) {
            error = err;
            result = value;
          } else if (err) failCall(err, signal, rpc, reject);
          else {
            rpc?.end(Code.OK);
            resolve(value);
          }
        },
      );
      if (sink !== undefined) {
        call.on("metadata", (headers: grpc.Metadata) => sink.headers(headers, call));
        // grpc-js calls back first, then emits the status with the trailers.
        call.on("status", (status: grpc.StatusObject) => {
          sink.trailers(status.metadata);
          if (sink.failure)
            return failCall(StatusError.from(sink.failure.error), signal, rpc, reject);
          if (error) return failCall(error, signal, rpc, reject);
          rpc?.end(Code.OK);
          resolve(result);
        });
      }
      if (signal !== undefined) {
        onAbort = () => call.cancel();
        signal.addEventListener("abort", onAbort, { once: true });
      }
    });
  }

  private clientStreamCall(
    method: MethodDesc,
    requests: AsyncIterable<unknown>,
    metadata: Metadata,
    deadline: number | undefined,
    signal: AbortSignal | undefined,
    sink: ResponseSink,
  ): Promise<unknown> {
    throwIfAborted(signal);
    const codec = methodCodec(method);
    const grpcMetadata = toGrpcMetadata(metadata);
    return new Promise((resolve, reject) => {
      let result: unknown;
      let error: grpc.ServiceError | null = null;
      const pump: PumpState = { done: false, error: undefined };
      const call = this.client.makeClientStreamRequest(
        method.path,
        codec.serialize,
        codec.deserialize,
        grpcMetadata,
        callOptions(deadline),
        (err, value) => {
          error = err;
          result = value;
        },
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
      call.on("error", ignore);
      call.on("metadata", (headers: grpc.Metadata) => sink.headers(headers, call));
      call.on("status", (status: grpc.StatusObject) => {
        pump.done = true;
        signal?.removeEventListener("abort", onAbort);
        sink.trailers(status.metadata);
        // The request stream (or a metadata hook) failed first: that is the cause, not the CANCELLED it led to.
        if (pump.error) return reject(StatusError.from(pump.error.error));
        if (sink.failure) return reject(StatusError.from(sink.failure.error));
        // The callback's error also covers an OK status without a response message.
        if (error) return reject(callError(error, signal));
        resolve(result);
      });
      void writeRequests(call, requests, pump);
    });
  }
}

/**
 * Where one call's response metadata goes: `merged` (headers, then the trailers over them) for
 * onResponseMetadata and interceptors, and each part as it arrives to CallOptions.onHeaders and
 * onTrailers. onHeaders is called when the server's headers arrive, before the first message; a
 * call answered with a status alone (grpc-js: trailers-only) or failing before it reached a server
 * has none. onTrailers is called with the status, whatever its code. A hook that throws fails the
 * call with its error, cancelling it if still running.
 */
class ResponseSink {
  readonly merged: Metadata = {};
  /** What a hook threw; the call fails with it rather than with its status. */
  failure: { error: unknown } | undefined;

  constructor(private readonly hooks: Pick<CallOptions, "onHeaders" | "onTrailers"> | undefined) {}

  /** A sink for calls whose caller asked for response metadata in any form, else undefined. */
  static for(options: CallOptions | undefined): ResponseSink | undefined {
    if (options === undefined) return undefined;
    if (
      options.onResponseMetadata === undefined &&
      options.onHeaders === undefined &&
      options.onTrailers === undefined
    )
      return undefined;
    return new ResponseSink(options);
  }

  headers(metadata: grpc.Metadata, call: grpc.Call): void {
    fromGrpcMetadata(metadata, this.merged);
    const onHeaders = this.hooks?.onHeaders;
    if (onHeaders !== undefined) this.report(onHeaders, metadata, call);
  }

  trailers(metadata: grpc.Metadata | null): void {
    fromGrpcMetadata(metadata, this.merged);
    const onTrailers = this.hooks?.onTrailers;
    if (onTrailers !== undefined) this.report(onTrailers, metadata, undefined);
  }

  private report(
    hook: (metadata: Metadata) => void,
    metadata: grpc.Metadata | null,
    call: grpc.Call | undefined,
  ): void {
    try {
      hook(fromGrpcMetadata(metadata));
    } catch (error) {
      this.failure ??= { error };
      call?.cancel();
    }
  }
}

/** Copies the request stream into the call, honouring back-pressure; stops when the call ends. */
async function writeRequests(
  call: grpc.ClientWritableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>,
  requests: AsyncIterable<unknown>,
  pump: PumpState,
): Promise<void> {
  try {
    for await (const message of requests) {
      if (pump.done) break;
      if (!call.write(message)) await drained(call);
      if (pump.done) break;
    }
    if (!pump.done) call.end();
  } catch (error) {
    if (!pump.done) {
      pump.error = { error };
      call.cancel();
    }
  }
}

function drained(call: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("status", done);
      resolve();
    };
    call.on("drain", done);
    call.on("status", done);
  });
}

/**
 * Response messages of a server- or bidi-streaming call. The stream ends after both the readable
 * side ended (all messages delivered) and the status arrived; a non-OK status is thrown last.
 */
function readResponses(
  call: ClientStream,
  signal: AbortSignal | undefined,
  sink: ResponseSink,
  pump: PumpState | undefined,
): AsyncQueue<unknown> {
  let status: grpc.StatusObject | undefined;
  let readableEnded = false;
  const queue = new AsyncQueue<unknown>(
    HIGH_WATER,
    () => call.resume(),
    () => {
      if (status === undefined) call.cancel();
      // Keep the stream flowing so that grpc-js can finish; the queue drops what still arrives.
      call.resume();
    },
  );
  const onAbort = () => call.cancel();
  const finish = () => {
    if (status === undefined || !readableEnded) return;
    signal?.removeEventListener("abort", onAbort);
    if (pump) pump.done = true;
    if (pump?.error) queue.end(StatusError.from(pump.error.error));
    else if (sink.failure) queue.end(StatusError.from(sink.failure.error));
    else if (status.code !== grpc.status.OK) queue.end(callError(status, signal));
    else queue.end();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  call.on("data", (message: unknown) => {
    if (queue.push(message)) call.pause();
  });
  call.on("end", () => {
    readableEnded = true;
    finish();
  });
  call.on("close", () => {
    readableEnded = true;
    finish();
  });
  call.on("error", ignore); // the status event carries the same failure
  call.on("metadata", (headers: grpc.Metadata) => sink.headers(headers, call));
  call.on("status", (s: grpc.StatusObject) => {
    status = s;
    if (pump) pump.done = true;
    sink.trailers(s.metadata);
    finish();
  });
  return queue;
}

function callOptions(deadline: number | undefined): grpc.CallOptions {
  if (deadline === undefined) return NO_OPTIONS;
  // grpc-js servers read a timeout past ~24.8 days as negative (int32), i.e. already passed, and
  // grpc-js clients treat it as infinite anyway: send such a deadline as none.
  if (beyondTimers(deadline)) return NO_OPTIONS;
  return { deadline };
}

/**
 * The error a failed call rejects with. A call cancelled through its signal fails with the signal's
 * reason when that is a StatusError, so a handler that passes its own ctx.signal to a downstream call
 * sees DEADLINE_EXCEEDED (or UNAVAILABLE at shutdown), not a bare CANCELLED.
 */
function callError(
  status: { code: number; details: string; metadata: grpc.Metadata | null },
  signal: AbortSignal | undefined,
): StatusError {
  if (status.code === grpc.status.CANCELLED && signal?.aborted) return abortedError(signal);
  return statusErrorFromGrpc(status);
}

/** Rejects a failed unary call, after ending its telemetry with the same error. */
function failCall(
  err: grpc.ServiceError | StatusError,
  signal: AbortSignal | undefined,
  rpc: RpcCall | undefined,
  reject: (reason: unknown) => void,
): void {
  const error = err instanceof StatusError ? err : callError(err, signal);
  rpc?.end(error.code, error);
  reject(error);
}

function closedError(): StatusError {
  return new StatusError(Code.UNAVAILABLE, "the transport is closed");
}

function abortedError(signal: AbortSignal): StatusError {
  const reason: unknown = signal.reason;
  if (reason instanceof StatusError) return reason;
  const message = reason instanceof Error ? reason.message : "the call was cancelled";
  return new StatusError(Code.CANCELLED, message, { cause: reason });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError(signal);
}

function rethrowAsStatusError(err: unknown): never {
  throw StatusError.from(err);
}

function ignore(): void {}
