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
import type { ConfirmChannel, ConsumeMessage, Message, Options } from "amqplib";
import { ChannelKeeper } from "../channel-keeper.js";
import { StallWatch } from "../stall-watch.js";
import { quorumLostMessage, type AmqpConnection, type AmqpSession } from "../connection.js";
import { CONTENT_TYPE_PROTOBUF, headersToMetadata, metadataToHeaders } from "../headers.js";
import { resolveDeadline, type CallOptions } from "../../context.js";
import type { MethodDesc, ServiceDesc } from "../../descriptors.js";
import { applyInterceptors, type CallNext, type CallRequest, type CallResponse, type Interceptor } from "../../interceptor.js";
import { normalizeMetadata } from "../../metadata.js";
import { Code, StatusError } from "../../status.js";
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
import { DIRECT_REPLY_TO, MAX_TIMEOUT_MS, HEADER_MESSAGE, HEADER_METHOD, HEADER_STATUS, HEADER_TIMEOUT, readDetails, readStatus, readText } from "./wire.js";

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
 * Unary calls over RabbitMQ. Streaming methods are rejected with UNIMPLEMENTED: a queue has no
 * notion of a stream that both ends hold open.
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

  async unary<I, O>(method: MethodDesc<I, O>, request: I, options?: CallOptions): Promise<O> {
    if (method.kind !== "unary") throw streamingError(method);
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
      options?.onResponseMetadata?.(response.metadata);
      return response.message as O;
    } catch (err) {
      const status = StatusError.from(err);
      if (fromReply.has(status)) options?.onResponseMetadata?.(status.metadata);
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

  serverStream<I, O>(method: MethodDesc<I, O>, _request?: I, _options?: CallOptions): AsyncIterable<O> {
    const err = streamingError(method);
    return {
      [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(err) }),
    };
  }

  clientStream<I, O>(method: MethodDesc<I, O>, _requests?: AsyncIterable<I>, _options?: CallOptions): Promise<O> {
    return Promise.reject(streamingError(method));
  }

  bidiStream<I, O>(method: MethodDesc<I, O>, _requests?: AsyncIterable<I>, _options?: CallOptions): AsyncIterable<O> {
    return this.serverStream(method);
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
    this.wake();
    this.link = undefined;
    await this.keeper.close();
  }

  // ---- sending -------------------------------------------------------------------------------

  /** The innermost step of the interceptor chain: publish the request and wait for its reply. */
  private readonly send = (req: CallRequest): Promise<CallResponse> => {
    const link = this.link;
    if (link !== undefined && link.alive && link.drain === undefined && !this.closed && !req.signal.aborted) {
      return this.publish(link, req);
    }
    return this.sendWhenReady(req);
  };

  private async sendWhenReady(req: CallRequest): Promise<CallResponse> {
    for (;;) {
      if (this.closed) throw new StatusError(Code.UNAVAILABLE, "the RPC transport is closed");
      if (req.signal.aborted) throw cancelled(req.signal);
      if (req.deadline !== undefined && req.deadline <= Date.now()) throw deadlineError(req.method);
      const link = this.link;
      if (link?.alive) {
        if (link.drain === undefined) return this.publish(link, req);
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
        timer = setTimeout(() => done(() => reject(deadlineError(req.method))), Math.min(MAX_TIMEOUT_MS, Math.max(0, req.deadline - Date.now())));
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
      timeoutMs = Math.min(MAX_TIMEOUT_MS, Math.ceil(req.deadline - Date.now()));
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
        call.onAbort = () => this.settle(id, cancelled(req.signal));
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
    if (call.firstSentAt === 0) call.firstSentAt = Date.now();
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
    const stalled = quiet ? [...this.pending.values()].filter((c) => c.firstSentAt > 0 && now - c.firstSentAt >= this.stallTimeoutMs) : [];
    if (stalled.length > 0) {
      const probe = await this.connection.probeNodes();
      if (probe.quorumLost) {
        for (const call of stalled) {
          const what = call.confirmed ? "no reply came" : "the request was not confirmed";
          const tail = call.confirmed ? "; the request is queued and may still be served once it is back" : "";
          this.settle(call.id, new StatusError(Code.UNAVAILABLE, `${call.method.path}: ${what} within ${Date.now() - call.firstSentAt} ms: ${quorumLostMessage(probe)}${tail}`));
        }
      } else {
        const link = stalled.find((c) => c.link !== undefined && !c.confirmed)?.link;
        if (link && this.link === link) this.retire(link, `the broker did not confirm a request for ${this.stallTimeoutMs} ms`);
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
    const code = readStatus(headers);
    if (code === undefined) {
      const raw = headers?.[HEADER_STATUS];
      const what = raw === undefined ? "has no rpc-status header" : `has an rpc-status that is not a status code (${describe(raw)})`;
      call.reject(new StatusError(Code.INTERNAL, `the reply to ${call.method.path} ${what}`, { metadata }));
      return;
    }
    if (code > MAX_CODE) {
      // As gRPC does with codes it does not know: UNKNOWN, keeping the number in the text.
      const err = new StatusError(Code.UNKNOWN, `the server replied with unknown status code ${code}: ${readText(headers, HEADER_MESSAGE) ?? ""}`, { metadata, details: readDetails(headers) });
      fromReply.add(err);
      call.reject(err);
      return;
    }
    if (code !== Code.OK) {
      const err = new StatusError(code, readText(headers, HEADER_MESSAGE) ?? "", { metadata, details: readDetails(headers) });
      fromReply.add(err);
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
    const link: Link = { session, channel, alive: true, drain: undefined, calls: new Set(), drained: undefined };
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

function streamingError(method: MethodDesc): StatusError {
  return new StatusError(Code.UNIMPLEMENTED, `${method.path}: streaming is not supported over RabbitMQ (only unary methods are)`);
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

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
