// The client side of RPC over RabbitMQ: a Transport, so a generated client works on it unchanged.
//
// One channel per connection session carries every call: requests are published on it and replies
// come back on it through RabbitMQ's direct reply-to (no reply queue to declare, nothing to clean
// up). Calls are matched to replies by correlation id in one map; nothing is allocated per call on
// the broker side, which is what keeps a round trip close to the raw library's.
//
// The channel is in confirm mode, so a request the broker did not take is known at once: a nack
// (a quorum queue without a live leader) re-sends the request on a fresh channel within the call's
// deadline; a request that is neither confirmed nor nacked for `stallTimeoutMs` makes the client
// look at the cluster, and with the quorum lost the call fails fast with UNAVAILABLE. A channel that
// is lost takes its calls' replies with it: idempotent methods are sent again, others fail UNAVAILABLE.

import { randomUUID } from "node:crypto";
import type { Channel, ConfirmChannel, ConsumeMessage, Message, Options } from "amqplib";
import { ChannelKeeper } from "../channel-keeper.js";
import { StallWatch } from "../stall-watch.js";
import { quorumLostMessage, type AmqpConnection, type AmqpSession } from "../connection.js";
import { CONTENT_TYPE_PROTOBUF, headersToMetadata, metadataToHeaders } from "../headers.js";
import { resolveDeadline, type CallOptions } from "../../context.js";
import type { MethodDesc, ServiceDesc } from "../../descriptors.js";
import { applyInterceptors, type CallNext, type CallRequest, type CallResponse, type Interceptor } from "../../interceptor.js";
import { normalizeMetadata } from "../../metadata.js";
import { Code, StatusError, messageOf } from "../../status.js";
import type { Transport } from "../../transport.js";
import { rpcClientTelemetry, telemetryActive } from "../../telemetry/rpc.js";
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_CONVERSATION_ID,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_RABBITMQ,
  RPC_SYSTEM_GRABBIT_AMQP,
} from "../../telemetry/semconv.js";
import type { Logger } from "../../telemetry/logger.js";
import { activeSpan } from "../telemetry.js";
import { inheritCallOptions } from "../../call-context.js";
import type { Metadata } from "../../metadata.js";
import { inboxRoute, StreamEnd } from "./stream.js";
import {
  CANCEL_EXCHANGE,
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_STREAM_WINDOW,
  DEFAULT_STREAM_WINDOW_BYTES,
  DIRECT_REPLY_TO,
  FRAME,
  HEADER_CREDIT,
  HEADER_FRAME,
  HEADER_KEEPALIVE,
  MAX_KEEPALIVE_MS,
  delayUntil,
  remainingMs,
  MIN_KEEPALIVE_MS,
  HEADER_MESSAGE,
  HEADER_METHOD,
  HEADER_STATUS,
  HEADER_TIMEOUT,
  readCount,
  readDetails,
  readFrame,
  readStatus,
  readText,
} from "./wire.js";

/** The highest status code gRPC defines (UNAUTHENTICATED). */
const MAX_CODE = Code.UNAUTHENTICATED;

/** A header value shown in an error, bounded: it came from the network. */
function describe(value: unknown): string {
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : Buffer.isBuffer(value) ? `${value.length} bytes` : typeof value === "bigint" ? `${value}` : JSON.stringify(value) ?? String(value);
  } catch {
    text = typeof value;
  }
  return text.length > 64 ? `${text.slice(0, 64)}...` : text;
}

export interface AmqpRpcTransportOptions {
  /** Client interceptors, first = outermost; they see side "client", transport "amqp". */
  interceptors?: Interceptor[];
  /**
   * Deadline for calls that set none and whose method declares none, in ms; 0 = no deadline.
   * Default 30 000: over a queue a lost server means silence, so an unbounded call could wait forever.
   * Streams have no default deadline (keepalives find a lost peer): for them this bounds only the
   * wait for a server to accept the stream.
   */
  timeoutMs?: number;
  /**
   * While the connection is down: false (default, as gRPC's fail-fast) rejects new calls at once with
   * UNAVAILABLE; true waits for the connection to come back, within the call's deadline.
   */
  waitForReady?: boolean;
  /**
   * Service descriptors whose methods this transport calls. Only for hand-written method
   * descriptors without `requestQueue` (generated ones carry it): such a method's queue is its
   * service's declared one if registered here, else the service name from its path
   * (`/demo.v1.Orders/Get` -> `demo.v1.Orders`), the wire contract's default.
   */
  services?: readonly ServiceDesc[];
  /**
   * Largest request body sent and reply body accepted, in bytes: a bigger request fails with
   * RESOURCE_EXHAUSTED before it is published, a bigger reply is dropped undecoded and the call
   * fails with RESOURCE_EXHAUSTED. Default: no limit.
   */
  maxMessageBytes?: number;
  /** Sent as the AMQP `user_id` of requests (the broker checks it equals our login); servers see it as ctx.peer. */
  userId?: string;
  /**
   * A request neither confirmed nor nacked this long makes the client look at the cluster: with the
   * quorum lost the call fails UNAVAILABLE at once; otherwise the channel is replaced. Default 3 000 ms.
   */
  stallTimeoutMs?: number;
  /** Where replaced channels and re-sent requests are logged (warn). Default: the connection's logger. */
  logger?: Logger;
  /**
   * Streams: each side speaks at least this often (a ping when idle), and a server silent for three
   * of these fails the stream UNAVAILABLE. Sent in the open; the server uses the same. Default 1 000 ms.
   */
  keepaliveMs?: number;
  /**
   * Streams: at most this many response messages given credit for and not yet read (the server
   * waits beyond it). Default 1 024; the first grant is 64, until message sizes are known.
   */
  streamWindow?: number;
  /** Streams: and about this many bytes of them, so that big messages get a smaller window. Default 4 MiB. */
  streamWindowBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const NEVER = new AbortController().signal;

/** The request-and-reply channel: current, or retired and waiting for its calls' replies. */
interface Link {
  readonly session: AmqpSession;
  readonly channel: ConfirmChannel;
  alive: boolean;
  /** Set while the channel's write buffer is full; publishing waits for it. */
  drain: Promise<void> | undefined;
  /** Calls whose request went out on this channel (their replies come back on it). */
  readonly calls: Set<Pending>;
  /** Resolved when a retired link has no calls left. */
  drained: (() => void) | undefined;
  /** This channel's inbox for stream frames, declared with the first stream. */
  inbox: Promise<string> | undefined;
  /** The cancel exchange is declared (true), or could not be (false). */
  cancelExchange: Promise<boolean> | undefined;
}

/** One call waiting for its reply. */
class Pending {
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** The link its current copy went out on; undefined while waiting to be sent again. */
  link: Link | undefined;
  /** The broker took the current copy (publisher confirm). */
  confirmed = false;
  /** When the first copy went out (re-sends keep it). */
  firstSentAt = 0;
  /** When the current copy went out. */
  sentAt = 0;

  constructor(
    readonly id: string,
    readonly method: MethodDesc,
    readonly signal: AbortSignal,
    readonly queue: string,
    readonly body: Buffer,
    readonly props: Options.Publish,
    readonly resolve: (response: CallResponse) => void,
    readonly reject: (err: StatusError) => void,
  ) {}

  /** Detaches timers and listeners; the caller has already removed it from the map. */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort) this.signal.removeEventListener("abort", this.onAbort);
  }
}

/** Errors built from a reply carry the server's metadata; local ones (timeouts, losses) do not. */
const fromReply = new WeakSet<StatusError>();

/**
 * Calls over RabbitMQ, every kind. Unary: request and reply as above. Streams: an `open` to the
 * request queue, then frames between the client's inbox and the server's (ClientStream below,
 * docs/wire-contract.md "Streams over RabbitMQ"). A cancelled call tells its server: directly once
 * a stream knows it, else through the cancel exchange every server of the queue listens on.
 *
 * `close()` stops the transport: calls still waiting are rejected with CANCELLED at once (their
 * requests may still be served), later calls with UNAVAILABLE. The connection stays open; closing
 * the connection closes the transport too.
 */
export class AmqpRpcTransport implements Transport {
  private readonly connection: AmqpConnection;
  private readonly defaultTimeoutMs: number;
  private readonly waitForReady: boolean;
  private readonly maxMessageBytes: number;
  private readonly userId: string | undefined;
  private readonly chain: CallNext;
  private readonly interceptors: Interceptor[] | undefined;
  private readonly logger: Logger;
  /**
   * Per request queue, the chain with the telemetry interceptor outermost (its CLIENT span carries
   * the queue as messaging.destination.name), taken while a tracer or meter provider is registered.
   */
  private readonly tracedChains = new Map<string, CallNext>();
  private readonly pending = new Map<string, Pending>();
  /** Streams open on this transport, by correlation id. */
  private readonly streams = new Map<string, ClientStream>();
  private readonly keepaliveMs: number;
  private readonly streamWindow: number;
  private readonly streamWindowBytes: number;
  private readonly queues = new WeakMap<MethodDesc, string>();
  private readonly queuesByPath = new Map<string, string>();
  private readonly untrack: () => void;
  private readonly keeper: ChannelKeeper<ConfirmChannel>;
  private readonly stallTimeoutMs: number;
  private readonly stalls: StallWatch;
  /** When the broker last confirmed a request, and when the last reply came. */
  private confirmedAt = 0;
  private repliedAt = 0;
  /** Calls to send again (nacked, or their channel lost), in order. */
  private readonly resend: Pending[] = [];
  private link: Link | undefined;
  private readonly links = new WeakMap<ConfirmChannel, Link>();
  /** The session whose link setup failed, and why: calls fail fast instead of waiting on it. */
  private linkFailure: { session: AmqpSession; error: Error } | undefined;
  /** Woken whenever the link or the connection changes, to re-check readiness. */
  private readonly changeWaiters = new Set<() => void>();
  private closed = false;
  private watchedSession: AmqpSession | undefined;

  constructor(connection: AmqpConnection, options: AmqpRpcTransportOptions = {}) {
    this.connection = connection;
    this.defaultTimeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.waitForReady = options.waitForReady ?? false;
    this.maxMessageBytes = options.maxMessageBytes ?? Infinity;
    this.userId = options.userId;
    this.chain = applyInterceptors(this.send, options.interceptors);
    this.interceptors = options.interceptors;
    this.logger = options.logger ?? connection.logger;
    for (const service of options.services ?? []) this.register(service);
    this.stallTimeoutMs = Math.max(100, options.stallTimeoutMs ?? 3_000);
    this.keepaliveMs = Math.min(MAX_KEEPALIVE_MS, Math.max(MIN_KEEPALIVE_MS, options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS));
    this.streamWindow = Math.max(1, Math.floor(options.streamWindow ?? DEFAULT_STREAM_WINDOW));
    this.streamWindowBytes = Math.max(1, Math.floor(options.streamWindowBytes ?? DEFAULT_STREAM_WINDOW_BYTES));
    this.stalls = new StallWatch(this.stallTimeoutMs, () => this.checkStall(), () => this.pending.size > 0);
    this.keeper = new ChannelKeeper<ConfirmChannel>(connection, {
      owner: "RPC client",
      confirm: true,
      // No-ack is required by direct reply-to, and the consumer must exist before the first publish.
      setup: async (channel) => {
        await channel.consume(DIRECT_REPLY_TO, this.onReply, { noAck: true });
      },
      onOpen: (channel, session) => this.adoptLink(channel, session),
      onLost: (channel) => this.lose(channel),
      onError: (err) => {
        const session = this.connection.currentSession;
        if (session) this.linkFailure = { session, error: err };
        this.wake();
        connection.reportError(err);
      },
    });
    this.keeper.start();
    this.untrack = connection.track(this);
  }

  /** Counters: requests sent again (after a nack or a lost channel), nacks, channels replaced. */
  readonly stats = { resent: 0, nacked: 0, replaced: 0 };

  /** Makes calls to `service`'s methods go to its declared request queue. */
  register(service: ServiceDesc): this {
    const queue = service.amqp?.requestQueue;
    if (!queue) return this;
    for (const method of Object.values(service.methods)) {
      this.queues.set(method, queue);
      this.queuesByPath.set(method.path, queue);
    }
    return this;
  }

  async unary<I, O>(method: MethodDesc<I, O>, request: I, callOptions?: CallOptions): Promise<O> {
    if (method.kind !== "unary") throw kindError(method, "unary");
    const options = inheritCallOptions(callOptions);
    let values: Map<string | symbol, unknown> | undefined;
    const req: CallRequest = {
      method,
      transport: "amqp",
      side: "client",
      metadata: normalizeMetadata(options?.metadata),
      deadline: resolveDeadline(options, method.timeoutMs ?? this.defaultTimeoutMs),
      signal: options?.signal ?? NEVER,
      message: request,
      // Made on first use; an own getter, so `{ ...req }` in an interceptor still carries it.
      get values() {
        values ??= new Map();
        return values;
      },
      peer: undefined,
    };
    try {
      const response = await (telemetryActive() ? this.tracedChain(method) : this.chain)(req);
      reportReply(options, response.metadata);
      return response.message as O;
    } catch (err) {
      const status = StatusError.from(err);
      if (fromReply.has(status)) reportReply(options, status.metadata);
      throw status;
    }
  }

  /** The traced chain for `method`'s request queue, made on first use. */
  private tracedChain(method: MethodDesc): CallNext {
    const queue = this.queueOf(method);
    let chain = this.tracedChains.get(queue);
    if (chain === undefined) {
      const telemetry = rpcClientTelemetry({
        system: RPC_SYSTEM_GRABBIT_AMQP,
        attributes: {
          [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
          [ATTR_MESSAGING_OPERATION_TYPE]: "send",
          [ATTR_MESSAGING_OPERATION_NAME]: "publish",
          [ATTR_MESSAGING_DESTINATION_NAME]: queue,
        },
      });
      chain = applyInterceptors(this.send, [telemetry, ...(this.interceptors ?? [])]);
      this.tracedChains.set(queue, chain);
    }
    return chain;
  }

  serverStream<I, O>(method: MethodDesc<I, O>, request: I, options?: CallOptions): AsyncIterable<O> {
    if (method.kind !== "server_streaming") return failing(kindError(method, "server_streaming"));
    return this.responses(method, { message: request }, options) as AsyncIterable<O>;
  }

  async clientStream<I, O>(method: MethodDesc<I, O>, requests: AsyncIterable<I>, callOptions?: CallOptions): Promise<O> {
    if (method.kind !== "client_streaming") throw kindError(method, "client_streaming");
    const options = inheritCallOptions(callOptions);
    const response = await this.openStream(method, { messages: requests }, options);
    return response.message as O;
  }

  bidiStream<I, O>(method: MethodDesc<I, O>, requests: AsyncIterable<I>, options?: CallOptions): AsyncIterable<O> {
    if (method.kind !== "bidi_streaming") return failing(kindError(method, "bidi_streaming"));
    return this.responses(method, { messages: requests }, options) as AsyncIterable<O>;
  }

  /** A server or bidi stream's responses; the call opens on the first next(). */
  private responses(method: MethodDesc, input: { message?: unknown; messages?: AsyncIterable<unknown> }, callOptions: CallOptions | undefined): AsyncIterable<unknown> {
    // Taken now, while the caller's call context (if any) is the current one.
    const options = inheritCallOptions(callOptions);
    return {
      [Symbol.asyncIterator]: () => {
        let iterator: AsyncIterator<unknown> | undefined;
        let opening: Promise<AsyncIterator<unknown>> | undefined;
        const open = () =>
          (opening ??= this.openStream(method, input, options).then((response) => {
            iterator = response.messages![Symbol.asyncIterator]();
            return iterator;
          }));
        return {
          next: async () => (iterator ?? (await open())).next(),
          return: async () => {
            if (iterator === undefined && opening === undefined) return { value: undefined, done: true };
            const it = iterator ?? (await open().catch(() => undefined));
            return (await it?.return?.()) ?? { value: undefined, done: true };
          },
        };
      },
    };
  }

  /** Runs a stream call through the interceptors (telemetry outermost while a provider is registered). */
  private openStream(method: MethodDesc, input: { message?: unknown; messages?: AsyncIterable<unknown> }, options: CallOptions | undefined): Promise<CallResponse> {
    let values: Map<string | symbol, unknown> | undefined;
    const req: CallRequest & { [STREAM_OPTIONS]?: CallOptions } = {
      method,
      transport: "amqp",
      side: "client",
      metadata: normalizeMetadata(options?.metadata),
      // A stream has no deadline unless the caller or the method sets one (keepalives find a dead
      // peer); the transport's default timeout bounds only the wait for a server to accept it.
      deadline: resolveDeadline(options, method.timeoutMs),
      signal: options?.signal ?? NEVER,
      ...input,
      get values() {
        values ??= new Map();
        return values;
      },
      peer: undefined,
      [STREAM_OPTIONS]: options,
    };
    return (telemetryActive() ? this.tracedChain(method) : this.chain)(req);
  }

  /** Number of calls waiting for a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.untrack();
    this.stalls.stop();
    this.failAll(undefined, () => new StatusError(Code.CANCELLED, "the RPC transport was closed"));
    for (const stream of [...this.streams.values()]) stream.fail(new StatusError(Code.CANCELLED, "the RPC transport was closed"), true);
    this.wake();
    this.link = undefined;
    await this.keeper.close();
  }

  // ---- sending -------------------------------------------------------------------------------

  /** The innermost step of the interceptor chain: publish the request and wait for its reply. */
  private readonly send = (req: CallRequest): Promise<CallResponse> => {
    if (req.method.kind !== "unary") return this.stream(req);
    const link = this.link;
    if (link !== undefined && link.alive && link.drain === undefined && !this.closed && !req.signal.aborted) {
      return this.publish(link, req);
    }
    return this.sendWhenReady(req);
  };

  private async sendWhenReady(req: CallRequest): Promise<CallResponse> {
    return this.publish(await this.readyLink(req), req);
  }

  /** The link to send on once it is up and not full; fails on the call's deadline or cancellation, or when it cannot come. */
  private async readyLink(req: CallRequest): Promise<Link> {
    for (;;) {
      if (this.closed) throw new StatusError(Code.UNAVAILABLE, "the RPC transport is closed");
      if (req.signal.aborted) throw cancelled(req.signal);
      if (req.deadline !== undefined && req.deadline <= Date.now()) throw deadlineError(req.method);
      const link = this.link;
      if (link?.alive) {
        if (link.drain === undefined) return link;
        await this.waitFor(link.drain, req);
        continue;
      }
      const session = this.connection.currentSession;
      if (session && this.linkFailure?.session === session) {
        const cause = this.linkFailure.error;
        throw new StatusError(Code.UNAVAILABLE, `cannot receive replies: ${cause.message}`, { cause });
      }
      // A session without a link yet is still running its setups; ours will open the link shortly.
      if (!session && !this.waitForReady) {
        throw new StatusError(Code.UNAVAILABLE, "not connected to RabbitMQ");
      }
      if (!session) {
        // waitForReady: the connection's own wait also fails when it is closed or gives up.
        const remaining = req.deadline === undefined ? undefined : Math.max(0, req.deadline - Date.now());
        const up = this.connection.waitForSession({
          ...(req.signal !== NEVER ? { signal: req.signal } : {}),
          // A little later than our own deadline timer, so the caller sees DEADLINE_EXCEEDED.
          ...(remaining !== undefined ? { timeoutMs: remaining + 100 } : {}),
        });
        await this.waitFor(up.then(() => undefined), req);
        continue;
      }
      // If that session dies before our setup runs on it, waiters must re-check (and fail fast).
      if (this.watchedSession !== session) {
        this.watchedSession = session;
        void session.closed.then(() => this.wake());
      }
      await this.waitFor(new Promise<void>((resolve) => this.changeWaiters.add(resolve)), req);
    }
  }

  /** Waits for `event`, or fails on the call's deadline or cancellation. */
  private waitFor(event: Promise<void>, req: CallRequest): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => done(() => reject(cancelled(req.signal)));
      const watch = req.signal !== NEVER;
      const done = (f: () => void) => {
        if (timer !== undefined) clearTimeout(timer);
        if (watch) req.signal.removeEventListener("abort", onAbort);
        f();
      };
      if (req.deadline !== undefined) {
        timer = setTimeout(() => done(() => reject(deadlineError(req.method))), delayUntil(req.deadline));
      }
      if (watch) req.signal.addEventListener("abort", onAbort, { once: true });
      event.then(
        () => done(resolve),
        (err: unknown) => done(() => reject(StatusError.from(err, Code.UNAVAILABLE))),
      );
    });
  }

  private publish(link: Link, req: CallRequest): Promise<CallResponse> {
    const method = req.method;
    let timeoutMs: number | undefined;
    if (req.deadline !== undefined) {
      timeoutMs = remainingMs(req.deadline);
      if (timeoutMs <= 0) return Promise.reject(deadlineError(method));
    }
    let body: Buffer;
    try {
      const bytes = method.input.encode(req.message);
      body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      return Promise.reject(new StatusError(Code.INTERNAL, `could not encode the ${method.input.typeName} request: ${messageOf(err)}`, { cause: err }));
    }
    if (body.length > this.maxMessageBytes) {
      return Promise.reject(new StatusError(Code.RESOURCE_EXHAUSTED, `${method.path}: the request is ${body.length} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes)`));
    }
    const headers = metadataToHeaders(req.metadata);
    headers[HEADER_METHOD] = method.path;
    if (timeoutMs !== undefined) headers[HEADER_TIMEOUT] = timeoutMs;
    const id = randomUUID();
    // The call's CLIENT span (active here while tracing) learns the request's ids.
    const span = activeSpan();
    if (span !== undefined && span.isRecording()) {
      span.setAttribute(ATTR_MESSAGING_MESSAGE_CONVERSATION_ID, id);
      span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, id);
    }
    const props: Options.Publish = {
      correlationId: id,
      messageId: id,
      replyTo: DIRECT_REPLY_TO,
      contentType: CONTENT_TYPE_PROTOBUF,
      type: method.input.typeName,
      headers,
      mandatory: true,
      ...(this.userId !== undefined ? { userId: this.userId } : {}),
      ...(timeoutMs !== undefined ? { expiration: String(timeoutMs) } : {}),
    };

    return new Promise<CallResponse>((resolve, reject) => {
      const call = new Pending(id, method, req.signal, this.queueOf(method), body, props, resolve, reject);
      // Registered before publishing: a fast server's reply can arrive in the very next read.
      this.pending.set(id, call);
      if (!this.write(link, call)) return;
      if (timeoutMs !== undefined) {
        call.timer = setTimeout(() => this.settle(id, deadlineError(method)), timeoutMs);
      }
      if (req.signal !== NEVER) {
        if (req.signal.aborted) {
          this.settle(id, cancelled(req.signal));
          return;
        }
        call.onAbort = () => {
          const err = cancelled(req.signal);
          // The server that took the request (whichever it is) hears it through the cancel exchange.
          if (this.pending.has(id)) this.broadcastCancel(call.link ?? this.link, call.queue, id, err.rawMessage);
          this.settle(id, err);
        };
        req.signal.addEventListener("abort", call.onAbort, { once: true });
      }
    });
  }

  /** Publishes the call's request on `link`; false when it could not (the call is settled then). */
  private write(link: Link, call: Pending): boolean {
    const channel = link.channel;
    let flushed: boolean;
    try {
      flushed = channel.publish("", call.queue, call.body, call.props, (err) => this.onConfirm(call, link, err));
    } catch (err) {
      this.settle(call.id, new StatusError(Code.UNAVAILABLE, `could not send the request: ${messageOf(err)}`, { cause: err }));
      return false;
    }
    call.link = link;
    call.confirmed = false;
    call.sentAt = Date.now();
    if (call.firstSentAt === 0) call.firstSentAt = call.sentAt;
    link.calls.add(call);
    if (!flushed) this.awaitDrain(link);
    this.stalls.arm();
    return true;
  }

  private onConfirm(call: Pending, link: Link, err: Error | null): void {
    if (call.link !== link || !this.pending.has(call.id)) return;
    if (err === null) {
      call.confirmed = true;
      this.confirmedAt = Date.now();
      return;
    }
    if (err.message === "channel closed") return; // lose() decides
    // Nacked: the broker did not take the request, so sending it again cannot run it twice. The
    // channel may go on nacking (a quorum queue client stuck on a dead leader): retire it.
    this.stats.nacked++;
    this.detach(call);
    this.resend.push(call);
    if (this.link === link) this.retire(link, `the broker nacked a request (${err.message})`);
    else this.flushResend();
  }

  /** A new channel takes new calls; the old one stays until the replies to its calls are in. */
  private retire(link: Link, reason: string): void {
    if (this.link === link) this.link = undefined;
    this.stats.replaced++;
    this.warn({ reason, waiting: link.calls.size }, `replacing the RPC client's channel: ${reason}`);
    const drained = new Promise<void>((resolve) => {
      if (link.calls.size === 0) resolve();
      else link.drained = resolve;
    });
    this.keeper.replace(link.channel, new Error(reason), drained);
  }

  private detach(call: Pending): void {
    const link = call.link;
    if (!link) return;
    call.link = undefined;
    link.calls.delete(call);
    if (link.calls.size === 0) link.drained?.();
  }

  /** Sends the calls waiting to be sent again, on the current link. */
  private flushResend(): void {
    const link = this.link;
    if (!link?.alive || this.resend.length === 0) return;
    let resent = 0;
    for (const call of this.resend.splice(0)) {
      if (!this.pending.has(call.id)) continue;
      this.stats.resent++;
      resent++;
      this.write(link, call);
    }
    if (resent > 0) this.warn({ count: resent }, `re-sent ${resent} RPC request(s) on a new channel`);
  }

  private warn(fields: Record<string, unknown>, msg: string): void {
    try {
      this.logger.warn(fields, msg);
    } catch {
      // A logger that throws must not fail calls.
    }
  }

  // ---- stalls: requests the broker neither confirms nor nacks ---------------------------------

  // Stalled: calls waiting stallTimeoutMs for the broker's word or for their reply, with no confirm
  // and no reply at all in that time (nacks and re-sends included: a quorum queue without a majority
  // may nack, or say nothing, and cannot hand a queued request to any server).
  private async checkStall(): Promise<void> {
    const now = Date.now();
    const quiet = now - Math.max(this.confirmedAt, this.repliedAt) >= this.stallTimeoutMs;
    // A request the broker has not confirmed for the stall time is stalled whatever else it confirms
    // meanwhile (a channel whose queue client hangs on a dead leader goes on confirming nothing, while
    // a new channel works); one confirmed but unanswered only when nothing at all comes back (else it
    // is just a slow handler).
    const stalled = [...this.pending.values()].filter((c) => c.firstSentAt > 0 && now - c.firstSentAt >= this.stallTimeoutMs && (!c.confirmed || quiet));
    if (stalled.length > 0) {
      const probe = await this.connection.probeNodes();
      if (probe.quorumLost) {
        for (const call of stalled) {
          const what = call.confirmed ? "no reply came" : "the request was not confirmed";
          const tail = call.confirmed ? "; the request is queued and may still be served once it is back" : "";
          this.settle(call.id, new StatusError(Code.UNAVAILABLE, `${call.method.path}: ${what} within ${Date.now() - call.firstSentAt} ms: ${quorumLostMessage(probe)}${tail}`));
        }
      } else {
        const current = this.link;
        if (current !== undefined && stalled.some((c) => c.link === current && !c.confirmed)) {
          this.retire(current, `the broker did not confirm a request for ${this.stallTimeoutMs} ms`);
        }
        // Copies left unconfirmed on a channel already replaced will not be confirmed there: idempotent
        // calls go again on the new channel, the others fail now rather than at their deadline (the
        // broker may or may not have taken them, as when a channel is lost).
        for (const call of stalled) {
          if (call.confirmed || call.link === undefined || call.link === current || call.link === this.link || now - call.sentAt < this.stallTimeoutMs) continue;
          if (!this.pending.has(call.id)) continue;
          if (call.method.idempotent) {
            this.detach(call);
            this.resend.push(call);
          } else {
            this.settle(call.id, new StatusError(Code.UNAVAILABLE, `${call.method.path}: the request was not confirmed within ${now - call.sentAt} ms on a channel since replaced; it may or may not have been taken`));
          }
        }
        this.flushResend();
      }
    }
  }

  /** Back-pressure: when amqplib's buffer is full, later calls wait for it to drain. */
  private awaitDrain(link: Link): void {
    if (link.drain) return;
    link.drain = new Promise<void>((resolve) => {
      const done = () => {
        link.channel.off("drain", done);
        link.channel.off("close", done);
        link.drain = undefined;
        resolve();
      };
      link.channel.on("drain", done);
      link.channel.on("close", done);
    });
  }

  private queueOf(method: MethodDesc): string {
    let queue = this.queues.get(method);
    if (queue !== undefined) return queue;
    queue = method.requestQueue ?? this.queuesByPath.get(method.path) ?? serviceOfPath(method.path);
    this.queues.set(method, queue);
    return queue;
  }

  // ---- streams -------------------------------------------------------------------------------

  /** The innermost step for a streaming call: open it on a ready link and hand back its responses. */
  private async stream(req: CallRequest): Promise<CallResponse> {
    const link = await this.readyLink(req);
    let inbox: string;
    try {
      inbox = await this.inboxOf(link);
    } catch (err) {
      throw new StatusError(Code.UNAVAILABLE, `${req.method.path}: cannot open a stream: the client's inbox could not be declared (${messageOf(err)})`, { cause: err });
    }
    if (!link.alive) throw new StatusError(Code.UNAVAILABLE, `${req.method.path}: the channel to RabbitMQ was lost while the stream was opening`);
    const options = (req as CallRequest & { [STREAM_OPTIONS]?: CallOptions })[STREAM_OPTIONS];
    const stream = new ClientStream(this.streamHost, link, req, this.queueOf(req.method), inbox, options, this.keepaliveMs, { window: this.streamWindow, bytes: this.streamWindowBytes }, this.maxMessageBytes, this.defaultTimeoutMs);
    this.streams.set(stream.id, stream);
    stream.open(this.userId);
    return stream.response();
  }

  /** What a ClientStream needs of the transport. */
  private readonly streamHost: StreamHost = {
    forget: (stream) => {
      if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    },
    broadcastCancel: (link, queue, id, reason) => this.broadcastCancel(link, queue, id, reason),
    drained: (link) => {
      this.awaitDrain(link);
      return link.drain ?? Promise.resolve();
    },
  };

  /**
   * The link's inbox: a private queue, exclusive to our connection and deleted with its consumer
   * (so with the channel), that the servers of our streams send their frames to. Declared on a
   * scratch channel, so that a refusal fails streams only, not the link the unary calls share.
   */
  private inboxOf(link: Link): Promise<string> {
    link.inbox ??= (async () => {
      const scratch = await link.session.createChannel();
      let queue: string;
      try {
        ({ queue } = await scratch.assertQueue("", { exclusive: true, autoDelete: true, durable: false, arguments: { "x-queue-type": "classic" } }));
      } finally {
        await scratch.close().catch(() => {});
      }
      await link.channel.consume(queue, this.onFrame, { noAck: true });
      return queue;
    })();
    link.inbox.catch(() => {
      link.inbox = undefined; // the next stream tries again
    });
    return link.inbox;
  }

  private readonly onFrame = (msg: ConsumeMessage | null): void => {
    if (msg === null) return;
    const id = msg.properties.correlationId as string | undefined;
    const stream = id === undefined ? undefined : this.streams.get(id);
    const headers = msg.properties.headers as Record<string, unknown> | undefined;
    const kind = readFrame(headers);
    if (stream !== undefined) {
      if (kind !== undefined) stream.frame(kind, msg);
      return;
    }
    // A server accepted a stream we have given up on: tell it, so that it does not work for nobody.
    if (kind === FRAME.ready && id !== undefined && typeof msg.properties.replyTo === "string") {
      const link = this.link;
      if (link?.alive) sendCancel(link.channel, msg.properties.replyTo, id, "the call was over before the server accepted it");
    }
  };

  /**
   * Tells every server of `queue` that call `id` is cancelled (the one serving it aborts its
   * handler; the others remember it, in case the request is still queued). Best effort: the
   * exchange is declared once per channel, on a scratch channel, and a failure is logged once.
   */
  private broadcastCancel(link: Link | undefined, queue: string, id: string, reason: string): void {
    if (link === undefined || !link.alive) return;
    link.cancelExchange ??= (async () => {
      const scratch = await link.session.createChannel();
      try {
        await scratch.assertExchange(CANCEL_EXCHANGE, "direct", { durable: true });
        return true;
      } finally {
        await scratch.close().catch(() => {});
      }
    })().catch((err: unknown) => {
      this.warn({ err: err instanceof Error ? err : new Error(String(err)) }, `cancellations cannot reach AMQP servers: exchange "${CANCEL_EXCHANGE}" could not be declared (${messageOf(err)})`);
      return false;
    });
    void link.cancelExchange.then((ok) => {
      if (!ok || !link.alive) return;
      try {
        link.channel.publish(CANCEL_EXCHANGE, queue, EMPTY, { correlationId: id, headers: { [HEADER_FRAME]: FRAME.cancel, [HEADER_MESSAGE]: reason } });
      } catch {
        // The channel closed: the server's deadline still ends the call.
      }
    });
  }

  // ---- replies -------------------------------------------------------------------------------

  private readonly onReply = (msg: ConsumeMessage | null): void => {
    if (msg === null) return; // the broker cancelled the consumer; the channel's close follows
    const id = msg.properties.correlationId as string | undefined;
    const call = id === undefined ? undefined : this.pending.get(id);
    // Unknown ids are replies to calls that already timed out or were cancelled: dropped.
    if (call === undefined) return;
    this.repliedAt = Date.now();
    this.pending.delete(call.id);
    this.detach(call);
    call.dispose();
    const headers = msg.properties.headers as Record<string, unknown> | undefined;
    const metadata = headersToMetadata(headers);
    const err = replyError(headers, call.method, metadata);
    if (err !== undefined) {
      call.reject(err);
      return;
    }
    if (msg.content.length > this.maxMessageBytes) {
      call.reject(new StatusError(Code.RESOURCE_EXHAUSTED, `${call.method.path}: the reply is ${msg.content.length} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes)`, { metadata }));
      return;
    }
    let message: unknown;
    try {
      message = call.method.output.decode(msg.content);
    } catch (err) {
      call.reject(new StatusError(Code.INTERNAL, `could not decode the ${call.method.output.typeName} response: ${messageOf(err)}`, { cause: err, metadata }));
      return;
    }
    call.resolve({ message, metadata });
  };

  /** A mandatory request no queue took: nobody serves that queue (it does not even exist). */
  private readonly onReturn = (msg: Message): void => {
    const id = msg.properties.correlationId as string | undefined;
    if (id === undefined) return;
    const stream = this.streams.get(id);
    if (stream !== undefined) {
      stream.returned(msg);
      return;
    }
    const call = this.pending.get(id);
    if (!call) return;
    this.settle(
      id,
      new StatusError(Code.UNAVAILABLE, `no server for ${call.method.path}: queue "${msg.fields.routingKey}" does not exist (${msg.fields.exchange === "" ? "default exchange, " : ""}${(msg.fields as { replyText?: string }).replyText ?? "NO_ROUTE"})`),
    );
  };

  private settle(id: string, err: StatusError): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    this.detach(call);
    call.dispose();
    call.reject(err);
  }

  // ---- the link ------------------------------------------------------------------------------

  private adoptLink(channel: ConfirmChannel, session: AmqpSession): void {
    if (this.closed) return;
    const link: Link = { session, channel, alive: true, drain: undefined, calls: new Set(), drained: undefined, inbox: undefined, cancelExchange: undefined };
    channel.on("return", this.onReturn);
    this.links.set(channel, link);
    this.link = link;
    this.linkFailure = undefined;
    this.flushResend();
    this.wake();
  }

  /**
   * A channel closed: replies to its calls can no longer arrive. Idempotent methods are sent again
   * on the next channel (within their deadline); others fail now, not at their deadline, since the
   * request may or may not have run.
   */
  private lose(channel: ConfirmChannel): void {
    const link = this.links.get(channel);
    if (!link || !link.alive) return;
    link.alive = false;
    if (this.link === link) this.link = undefined;
    for (const call of [...link.calls]) {
      this.detach(call);
      if (call.method.idempotent && !this.closed) this.resend.push(call);
      else this.settle(call.id, new StatusError(Code.UNAVAILABLE, "the connection to RabbitMQ was lost before the reply arrived"));
    }
    for (const stream of [...this.streams.values()]) {
      if (stream.link === link) stream.fail(new StatusError(Code.UNAVAILABLE, `${stream.method.path}: the channel to RabbitMQ carrying the stream was lost`), false);
    }
    this.wake();
  }

  private failAll(link: Link | undefined, error: () => StatusError): void {
    for (const call of [...this.pending.values()]) {
      if (link === undefined || call.link === link) this.settle(call.id, error());
    }
    if (link === undefined) this.resend.length = 0;
  }

  private wake(): void {
    const waiters = [...this.changeWaiters];
    this.changeWaiters.clear();
    for (const w of waiters) w();
  }
}

function deadlineError(method: MethodDesc): StatusError {
  return new StatusError(Code.DEADLINE_EXCEEDED, `${method.path}: the deadline passed before the reply arrived`);
}

function cancelled(signal: AbortSignal): StatusError {
  const reason = signal.reason;
  if (reason instanceof StatusError) return reason;
  // AbortSignal.timeout() is a deadline by another name.
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new StatusError(Code.DEADLINE_EXCEEDED, `the call's signal timed out: ${reason.message}`, { cause: reason });
  }
  return new StatusError(Code.CANCELLED, reason instanceof Error && reason.message ? `the call was cancelled: ${reason.message}` : "the call was cancelled", {
    cause: reason,
  });
}

/** "/demo.v1.Orders/Get" -> "demo.v1.Orders", the default request queue. */
function serviceOfPath(path: string): string {
  const end = path.lastIndexOf("/");
  return path.slice(path.startsWith("/") ? 1 : 0, end > 0 ? end : path.length);
}


// ---- streams --------------------------------------------------------------------------------------

/** Where a stream call finds its options (callbacks) behind the interceptors. */
const STREAM_OPTIONS = Symbol("grabbit.amqp.streamOptions");
const EMPTY: Buffer = Buffer.alloc(0);

interface StreamHost {
  forget(stream: ClientStream): void;
  broadcastCancel(link: Link, queue: string, id: string, reason: string): void;
  drained(link: Link): Promise<void>;
}

/**
 * One streaming call on the client: opened on the request queue, then frames with the server that
 * took it (its inbox comes in `ready`). Our requests go out under the server's credit, its
 * responses come in under ours. Ends with the server's `end`, or here: deadline, cancellation, the
 * server's silence, its inbox vanishing, the channel lost. Ending here tells the server (`cancel`).
 */
class ClientStream {
  readonly id = randomUUID();
  readonly method: MethodDesc;
  private readonly end: StreamEnd;
  private serverInbox: string | undefined;
  private over = false;
  private timer: NodeJS.Timeout | undefined;
  private onAbort: (() => void) | undefined;
  /** Headers, then trailers over them: what CallResponse.metadata shows. */
  private readonly metadata: Metadata = {};
  private headersReported = false;
  private requests: AsyncIterator<unknown> | undefined;
  private readonly signal: AbortSignal;

  constructor(
    private readonly host: StreamHost,
    readonly link: Link,
    private readonly req: CallRequest,
    private readonly queue: string,
    private readonly inbox: string,
    private readonly options: CallOptions | undefined,
    private readonly keepaliveMs: number,
    window: { window: number; bytes: number },
    private readonly maxMessageBytes: number,
    /** Without a deadline, how long to wait for a server to accept the open (0: forever). */
    private readonly acceptTimeoutMs: number,
  ) {
    const method = req.method;
    this.method = method;
    this.signal = req.signal;
    const sendsMessages = method.kind === "client_streaming" || method.kind === "bidi_streaming";
    this.end = new StreamEnd({
      path: method.path,
      side: "client",
      keepaliveMs,
      // A client stream's single response needs one message of credit.
      window: method.kind === "client_streaming" ? 1 : window.window,
      windowBytes: window.bytes,
      maxMessageBytes,
      receives: method.output,
      sends: method.input,
      decodeCode: Code.INTERNAL,
      onBroken: (err) => this.fail(err, true),
    });
    this.end.inbound.onReturn = () => this.fail(new StatusError(Code.CANCELLED, `${method.path}: the caller stopped reading the stream`), true);
    if (sendsMessages && req.messages === undefined) {
      this.fail(new StatusError(Code.INTERNAL, `${method.path}: an interceptor dropped the request stream`), false);
    }
  }

  /** Publishes the open to the request queue; the deadline and the caller's signal start counting. */
  open(userId: string | undefined): void {
    if (this.over) return;
    const req = this.req;
    const method = this.method;
    let timeoutMs: number | undefined;
    if (req.deadline !== undefined) {
      timeoutMs = remainingMs(req.deadline);
      if (timeoutMs <= 0) return this.fail(deadlineError(method), false);
      // No cancel on the deadline: the server times the same deadline (from the open's rpc-timeout-ms)
      // and ends its side DEADLINE_EXCEEDED by itself.
      this.timer = setTimeout(() => this.fail(deadlineError(method), false), timeoutMs);
    } else if (this.acceptTimeoutMs > 0) {
      // The open expires in the queue as the wait does, so that a late server does not start it.
      this.timer = setTimeout(
        () => this.fail(new StatusError(Code.UNAVAILABLE, `${method.path}: no server accepted the stream within ${this.acceptTimeoutMs} ms (the transport's timeoutMs)`), true),
        this.acceptTimeoutMs,
      );
    }
    if (this.signal !== NEVER) {
      if (this.signal.aborted) return this.fail(cancelled(this.signal), false);
      this.onAbort = () => this.fail(cancelled(this.signal), true);
      this.signal.addEventListener("abort", this.onAbort, { once: true });
    }
    let body: Buffer = EMPTY;
    if (method.kind === "server_streaming") {
      try {
        const bytes = method.input.encode(req.message);
        body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (err) {
        return this.fail(new StatusError(Code.INTERNAL, `could not encode the ${method.input.typeName} request: ${messageOf(err)}`, { cause: err }), false);
      }
      if (body.length > this.maxMessageBytes) {
        return this.fail(new StatusError(Code.RESOURCE_EXHAUSTED, `${method.path}: the request is ${body.length} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes)`), false);
      }
    }
    const headers = metadataToHeaders(req.metadata);
    headers[HEADER_METHOD] = method.path;
    headers[HEADER_FRAME] = FRAME.open;
    headers[HEADER_CREDIT] = this.end.window;
    headers[HEADER_KEEPALIVE] = this.keepaliveMs;
    if (timeoutMs !== undefined) headers[HEADER_TIMEOUT] = timeoutMs;
    const span = activeSpan();
    if (span !== undefined && span.isRecording()) {
      span.setAttribute(ATTR_MESSAGING_MESSAGE_CONVERSATION_ID, this.id);
      span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, this.id);
    }
    const props: Options.Publish = {
      correlationId: this.id,
      messageId: this.id,
      replyTo: this.inbox,
      contentType: CONTENT_TYPE_PROTOBUF,
      type: method.kind === "server_streaming" ? method.input.typeName : undefined,
      headers,
      mandatory: true,
      ...(userId !== undefined ? { userId } : {}),
      ...(timeoutMs !== undefined ? { expiration: String(timeoutMs) } : this.acceptTimeoutMs > 0 ? { expiration: String(this.acceptTimeoutMs) } : {}),
    };
    try {
      this.link.channel.publish("", this.queue, body, props, (err) => {
        if (err !== null && err.message !== "channel closed") {
          this.fail(new StatusError(Code.UNAVAILABLE, `${method.path}: the broker did not take the stream's open (${err.message})`), false);
        }
      });
    } catch (err) {
      this.fail(new StatusError(Code.UNAVAILABLE, `${method.path}: could not open the stream: ${messageOf(err)}`, { cause: err }), false);
    }
  }

  /** What the interceptors and the caller get: the responses (server, bidi) or the one response (client streaming). */
  async response(): Promise<CallResponse> {
    if (this.method.kind !== "client_streaming") return { messages: this.end.inbound, metadata: this.metadata };
    const first = await this.end.inbound.next();
    if (first.done) throw new StatusError(Code.INTERNAL, `${this.method.path}: the server ended the call without a response`);
    const rest = await this.end.inbound.next();
    if (!rest.done) throw new StatusError(Code.INTERNAL, `${this.method.path}: the server sent more than one response to a client-streaming call`);
    return { message: first.value, metadata: this.metadata };
  }

  /** A frame from the server, on our inbox. */
  frame(kind: string, msg: ConsumeMessage): void {
    const headers = msg.properties.headers as Record<string, unknown> | undefined;
    switch (kind) {
      case FRAME.ready:
        this.ready(msg, headers);
        return;
      case FRAME.headers:
        this.end.receive(FRAME.headers, headers, msg.content); // heard from: the silence watch restarts
        this.reportHeaders(headersToMetadata(headers));
        return;
      case FRAME.end:
        this.ended(headers);
        return;
      case FRAME.message:
        if (!this.headersReported) this.reportHeaders({});
        break;
    }
    if (this.serverInbox !== undefined) this.end.receive(kind as Parameters<StreamEnd["receive"]>[0], headers, msg.content);
  }

  private ready(msg: ConsumeMessage, headers: Record<string, unknown> | undefined): void {
    const from = msg.properties.replyTo;
    if (typeof from !== "string" || from === "") {
      this.fail(new StatusError(Code.INTERNAL, `${this.method.path}: the server's ready frame has no reply_to`), false);
      return;
    }
    if (this.serverInbox !== undefined) {
      // A second server took the same open (the first died before acking it): keep the first.
      if (from !== this.serverInbox) sendCancel(this.link.channel, from, this.id, "another server already serves this stream");
      return;
    }
    if (this.over) {
      sendCancel(this.link.channel, from, this.id, "the call was over before the server accepted it");
      return;
    }
    this.serverInbox = from;
    if (this.req.deadline === undefined && this.timer !== undefined) {
      clearTimeout(this.timer); // accepted: from here only a deadline the caller set ends it
      this.timer = undefined;
    }
    const channel = this.link.channel;
    this.end.connect(
      inboxRoute(channel, from, this.id, () => this.host.drained(this.link)),
      readCount(headers, HEADER_CREDIT) ?? 0,
    );
    if (this.req.messages !== undefined) void this.pump(this.req.messages);
  }

  /** Sends the caller's requests under the server's credit, then half-closes. */
  private async pump(messages: AsyncIterable<unknown>): Promise<void> {
    let iterator: AsyncIterator<unknown>;
    try {
      iterator = messages[Symbol.asyncIterator]();
    } catch (err) {
      this.fail(new StatusError(Code.CANCELLED, `${this.method.path}: the request stream failed: ${messageOf(err)}`, { cause: err }), true);
      return;
    }
    this.requests = iterator;
    try {
      for (;;) {
        const next = await iterator.next();
        if (this.over) return;
        if (next.done) break;
        await this.end.send(next.value);
      }
      if (!this.over) this.end.sendFrame(FRAME.halfClose);
    } catch (err) {
      if (this.over) return;
      const status = err instanceof StatusError ? err : new StatusError(Code.CANCELLED, `${this.method.path}: the request stream failed: ${messageOf(err)}`, { cause: err });
      this.fail(status, true);
    }
  }

  private ended(headers: Record<string, unknown> | undefined): void {
    if (this.over) return;
    const metadata = headersToMetadata(headers);
    const err = replyError(headers, this.method, metadata);
    this.finish(metadata);
    this.end.close(err);
    this.stopRequests(); // the server is done: whatever the caller still had to send goes nowhere
  }

  /** The broker returned a frame of ours: no queue took it. */
  returned(msg: Message): void {
    const what =
      msg.fields.routingKey === this.queue
        ? `no server for ${this.method.path}: queue "${this.queue}" does not exist`
        : `${this.method.path}: the server serving the stream is gone (its inbox "${msg.fields.routingKey}" no longer exists)`;
    this.fail(new StatusError(Code.UNAVAILABLE, what), false);
  }

  /** Ends the call here with `err`; `tell` sends the server a cancel (it may still be working). */
  fail(err: StatusError, tell: boolean): void {
    if (this.over) return;
    if (tell) {
      if (this.serverInbox !== undefined) sendCancel(this.link.channel, this.serverInbox, this.id, err.rawMessage);
      else this.host.broadcastCancel(this.link, this.queue, this.id, err.rawMessage);
    }
    this.finish(undefined);
    this.end.close(err);
    this.stopRequests();
  }

  private finish(trailers: Metadata | undefined): void {
    this.over = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort) this.signal.removeEventListener("abort", this.onAbort);
    this.host.forget(this);
    // No headers frame and no message: a status alone, and no onHeaders (as on gRPC).
    if (trailers !== undefined) Object.assign(this.metadata, trailers);
    try {
      this.options?.onTrailers?.(trailers ?? {});
      this.options?.onResponseMetadata?.(this.metadata);
    } catch {
      // A callback that throws must not break the stream's end.
    }
  }

  private reportHeaders(headers: Metadata): void {
    if (this.headersReported) return;
    this.headersReported = true;
    Object.assign(this.metadata, headers);
    try {
      this.options?.onHeaders?.(headers);
    } catch {
      // as above
    }
  }

  private stopRequests(): void {
    const requests = this.requests;
    this.requests = undefined;
    void requests?.return?.()?.catch?.(() => {});
  }
}

/** A cancel frame straight to a server's inbox (not mandatory: a server already gone is fine). */
function sendCancel(channel: Channel, inbox: string, id: string, reason: string): void {
  try {
    channel.publish("", inbox, EMPTY, { correlationId: id, headers: { [HEADER_FRAME]: FRAME.cancel, [HEADER_MESSAGE]: reason } });
  } catch {
    // The channel closed: the server hears of it through our silence.
  }
}

/** The error a reply or `end` frame carries; undefined when it says OK. */
function replyError(headers: Record<string, unknown> | undefined, method: MethodDesc, metadata: Metadata): StatusError | undefined {
  const code = readStatus(headers);
  if (code === undefined) {
    const raw = headers?.[HEADER_STATUS];
    const what = raw === undefined ? "has no rpc-status header" : `has an rpc-status that is not a status code (${describe(raw)})`;
    return new StatusError(Code.INTERNAL, `the reply to ${method.path} ${what}`, { metadata });
  }
  if (code === Code.OK) return undefined;
  const err =
    code > MAX_CODE
      ? // As gRPC does with codes it does not know: UNKNOWN, keeping the number in the text.
        new StatusError(Code.UNKNOWN, `the server replied with unknown status code ${code}: ${readText(headers, HEADER_MESSAGE) ?? ""}`, { metadata, details: readDetails(headers) })
      : new StatusError(code, readText(headers, HEADER_MESSAGE) ?? "", { metadata, details: readDetails(headers) });
  fromReply.add(err);
  return err;
}

/** Over RabbitMQ a unary reply carries headers and trailers as one set: every callback gets it. */
function reportReply(options: CallOptions | undefined, metadata: Metadata): void {
  options?.onHeaders?.(metadata);
  options?.onTrailers?.(metadata);
  options?.onResponseMetadata?.(metadata);
}

function kindError(method: MethodDesc, called: string): StatusError {
  return new StatusError(Code.INTERNAL, `${method.path} is a ${method.kind} method, called as ${called}`);
}

function failing(err: StatusError): AsyncIterable<never> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(err) }) };
}
