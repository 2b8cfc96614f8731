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
import type { ConfirmChannel, ConsumeMessage, Message } from "amqplib";
import { ChannelKeeper } from "../channel-keeper.js";
import { StallWatch } from "../stall-watch.js";
import { quorumLostMessage, type AmqpConnection, type AmqpSession } from "../connection.js";
import { NEVER_ABORTED, resolveDeadline, type CallOptions } from "../../context.js";
import type { MethodDesc, ServiceDesc } from "../../descriptors.js";
import {
  applyInterceptors,
  responseMessage,
  type CallInput,
  type CallNext,
  type CallRequest,
  type CallResponse,
  type Interceptor,
} from "../../interceptor.js";
import { Code, StatusError, messageOf } from "../../status.js";
import type { Transport } from "../../transport.js";
import { telemetryActive } from "../../telemetry/rpc.js";
import type { Logger } from "../../telemetry/logger.js";
import { remainingMs } from "../../timers.js";
import { inheritCallOptions } from "../../call-context.js";
import type { AmqpRpcTransportOptions } from "./client-options.js";
import { clientCallRequest, failing, kindError, reportReply } from "./client-call.js";
import { awaitDrain, broadcastCancel, linkInbox } from "./client-link.js";
import { ClientStream, sendCancel, STREAM_OPTIONS, type StreamHost } from "./client-stream.js";
import { lazyResponses } from "../../lazy-responses.js";
import { abortStatus, deadlineError, untilReady } from "./deadline.js";
import { encodeRequest, requestHeaders, requestProperties } from "./encode-request.js";
import { isReplyStatus, parseReply } from "./parse-reply.js";
import { Pending, stalledCalls, type Link } from "./pending.js";
import { RequestQueues } from "./request-queue.js";
import { clientTelemetry, markRequestId } from "./rpc-telemetry.js";
import {
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_STREAM_WINDOW,
  DEFAULT_STREAM_WINDOW_BYTES,
  DIRECT_REPLY_TO,
  FRAME,
  MAX_KEEPALIVE_MS,
  MIN_KEEPALIVE_MS,
  readFrame,
} from "./wire.js";

export type { AmqpRpcTransportOptions } from "./client-options.js";

const DEFAULT_TIMEOUT_MS = 30_000;

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
  private readonly queues = new RequestQueues();
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
    this.keepaliveMs = Math.min(
      MAX_KEEPALIVE_MS,
      Math.max(MIN_KEEPALIVE_MS, options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS),
    );
    this.streamWindow = Math.max(1, Math.floor(options.streamWindow ?? DEFAULT_STREAM_WINDOW));
    this.streamWindowBytes = Math.max(
      1,
      Math.floor(options.streamWindowBytes ?? DEFAULT_STREAM_WINDOW_BYTES),
    );
    this.stalls = new StallWatch(
      this.stallTimeoutMs,
      () => this.checkStall(),
      () => this.pending.size > 0,
    );
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
    this.queues.register(service);
    return this;
  }

  async unary<I, O>(method: MethodDesc<I, O>, request: I, callOptions?: CallOptions): Promise<O> {
    if (method.kind !== "unary") throw kindError(method, "unary");
    const options = inheritCallOptions(callOptions);
    const req = clientCallRequest(
      method,
      "amqp",
      options,
      resolveDeadline(options, method.timeoutMs ?? this.defaultTimeoutMs),
      { stream: false, message: request },
    );
    try {
      const response = await (telemetryActive() ? this.tracedChain(method) : this.chain)(req);
      reportReply(options, response.metadata);
      return responseMessage(response, method) as O;
    } catch (err) {
      const status = StatusError.from(err);
      if (isReplyStatus(status)) reportReply(options, status.metadata);
      throw status;
    }
  }

  /** The traced chain for `method`'s request queue, made on first use. */
  private tracedChain(method: MethodDesc): CallNext {
    const queue = this.queues.of(method);
    let chain = this.tracedChains.get(queue);
    if (chain === undefined) {
      chain = applyInterceptors(this.send, [clientTelemetry(queue), ...(this.interceptors ?? [])]);
      this.tracedChains.set(queue, chain);
    }
    return chain;
  }

  serverStream<I, O>(
    method: MethodDesc<I, O>,
    request: I,
    options?: CallOptions,
  ): AsyncIterable<O> {
    if (method.kind !== "server_streaming") return failing(kindError(method, "server_streaming"));
    return this.responses(method, { stream: false, message: request }, options) as AsyncIterable<O>;
  }

  async clientStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    callOptions?: CallOptions,
  ): Promise<O> {
    if (method.kind !== "client_streaming") throw kindError(method, "client_streaming");
    const options = inheritCallOptions(callOptions);
    const response = await this.openStream(method, { stream: true, messages: requests }, options);
    return responseMessage(response, method) as O;
  }

  bidiStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    options?: CallOptions,
  ): AsyncIterable<O> {
    if (method.kind !== "bidi_streaming") return failing(kindError(method, "bidi_streaming"));
    return this.responses(
      method,
      { stream: true, messages: requests },
      options,
    ) as AsyncIterable<O>;
  }

  /** A server or bidi stream's responses; the call opens on the first next(). */
  private responses(
    method: MethodDesc,
    input: CallInput,
    callOptions: CallOptions | undefined,
  ): AsyncIterable<unknown> {
    // Taken now, while the caller's call context (if any) is the current one.
    const options = inheritCallOptions(callOptions);
    return lazyResponses(() => this.openStream(method, input, options));
  }

  /** Runs a stream call through the interceptors (telemetry outermost while a provider is registered). */
  private openStream(
    method: MethodDesc,
    input: CallInput,
    options: CallOptions | undefined,
  ): Promise<CallResponse> {
    // A stream has no deadline unless the caller or the method sets one (keepalives find a dead
    // peer); the transport's default timeout bounds only the wait for a server to accept it.
    const req: CallRequest & { [STREAM_OPTIONS]?: CallOptions } = clientCallRequest(
      method,
      "amqp",
      options,
      resolveDeadline(options, method.timeoutMs),
      input,
    );
    req[STREAM_OPTIONS] = options;
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
    this.stalls.close();
    this.failAll(undefined, () => new StatusError(Code.CANCELLED, "the RPC transport was closed"));
    for (const stream of [...this.streams.values()])
      stream.fail(new StatusError(Code.CANCELLED, "the RPC transport was closed"), true);
    this.wake();
    this.link = undefined;
    await this.keeper.close();
  }

  // ---- sending -------------------------------------------------------------------------------

  /** The innermost step of the interceptor chain: publish the request and wait for its reply. */
  private readonly send = (req: CallRequest): Promise<CallResponse> => {
    if (req.method.kind !== "unary") return this.stream(req);
    const link = this.link;
    if (link?.alive && link.drain === undefined && !this.closed && !req.signal.aborted) {
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
      if (req.signal.aborted) throw abortStatus(req.signal);
      if (req.deadline !== undefined && req.deadline <= Date.now()) throw deadlineError(req.method);
      const link = this.link;
      if (link?.alive) {
        if (link.drain === undefined) return link;
        await untilReady(link.drain, req);
        continue;
      }
      const session = this.connection.currentSession;
      if (session && this.linkFailure?.session === session) {
        const cause = this.linkFailure.error;
        throw new StatusError(Code.UNAVAILABLE, `cannot receive replies: ${cause.message}`, {
          cause,
        });
      }
      // A session without a link yet is still running its setups; ours will open the link shortly.
      if (!session && !this.waitForReady) {
        throw new StatusError(Code.UNAVAILABLE, "not connected to RabbitMQ");
      }
      if (!session) {
        // waitForReady: the connection's own wait also fails when it is closed or gives up.
        const remaining =
          req.deadline === undefined ? undefined : Math.max(0, req.deadline - Date.now());
        const up = this.connection.waitForSession({
          ...(req.signal !== NEVER_ABORTED ? { signal: req.signal } : {}),
          // A little later than our own deadline timer, so the caller sees DEADLINE_EXCEEDED.
          ...(remaining !== undefined ? { timeoutMs: remaining + 100 } : {}),
        });
        await untilReady(
          up.then(() => undefined),
          req,
        );
        continue;
      }
      // If that session dies before our setup runs on it, waiters must re-check (and fail fast).
      if (this.watchedSession !== session) {
        this.watchedSession = session;
        void session.closed.then(() => this.wake());
      }
      await untilReady(new Promise<void>((resolve) => this.changeWaiters.add(resolve)), req);
    }
  }

  private publish(link: Link, req: CallRequest): Promise<CallResponse> {
    const method = req.method;
    let timeoutMs: number | undefined;
    if (req.deadline !== undefined) {
      timeoutMs = remainingMs(req.deadline);
      if (timeoutMs <= 0) return Promise.reject(deadlineError(method));
    }
    if (req.stream)
      return Promise.reject(
        new StatusError(
          Code.INTERNAL,
          `${method.path}: an interceptor passed on a request stream for a unary call`,
        ),
      );
    const body = encodeRequest(method.path, method.input, req.message, this.maxMessageBytes);
    if (body instanceof StatusError) return Promise.reject(body);
    const headers = requestHeaders(req.metadata, method.path, timeoutMs);
    const id = randomUUID();
    markRequestId(id); // on the call's CLIENT span, active here while tracing
    const props = requestProperties({
      id,
      replyTo: DIRECT_REPLY_TO,
      type: method.input.typeName,
      headers,
      userId: this.userId,
      expirationMs: timeoutMs,
    });

    return new Promise<CallResponse>((resolve, reject) => {
      const call = new Pending(
        id,
        method,
        req.signal,
        this.queues.of(method),
        body,
        props,
        resolve,
        reject,
      );
      // Registered before publishing: a fast server's reply can arrive in the very next read.
      this.pending.set(id, call);
      if (!this.write(link, call)) return;
      if (timeoutMs !== undefined) {
        call.timer = setTimeout(() => this.settle(id, deadlineError(method)), timeoutMs);
      }
      if (req.signal !== NEVER_ABORTED) {
        if (req.signal.aborted) {
          this.settle(id, abortStatus(req.signal));
          return;
        }
        call.onAbort = () => {
          const err = abortStatus(req.signal);
          // The server that took the request (whichever it is) hears it through the cancel exchange.
          if (this.pending.has(id))
            broadcastCancel(call.link ?? this.link, call.queue, id, err.rawMessage, (fields, msg) =>
              this.warn(fields, msg),
            );
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
      flushed = channel.publish("", call.queue, call.body, call.props, (err) =>
        this.onConfirm(call, link, err),
      );
    } catch (err) {
      this.settle(
        call.id,
        new StatusError(Code.UNAVAILABLE, `could not send the request: ${messageOf(err)}`, {
          cause: err,
        }),
      );
      return false;
    }
    call.link = link;
    call.confirmed = false;
    call.sentAt = Date.now();
    if (call.firstSentAt === 0) call.firstSentAt = call.sentAt;
    link.calls.add(call);
    if (!flushed) awaitDrain(link);
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
    this.warn(
      { reason, waiting: link.calls.size },
      `replacing the RPC client's channel: ${reason}`,
    );
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
    if (resent > 0)
      this.warn({ count: resent }, `re-sent ${resent} RPC request(s) on a new channel`);
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
    const stalled = stalledCalls(
      this.pending.values(),
      now,
      this.stallTimeoutMs,
      Math.max(this.confirmedAt, this.repliedAt),
    );
    if (stalled.length > 0) {
      const probe = await this.connection.probeNodes();
      if (probe.quorumLost) {
        for (const call of stalled) {
          const what = call.confirmed ? "no reply came" : "the request was not confirmed";
          const tail = call.confirmed
            ? "; the request is queued and may still be served once it is back"
            : "";
          this.settle(
            call.id,
            new StatusError(
              Code.UNAVAILABLE,
              `${call.method.path}: ${what} within ${Date.now() - call.firstSentAt} ms: ${quorumLostMessage(probe)}${tail}`,
            ),
          );
        }
      } else {
        const current = this.link;
        if (current !== undefined && stalled.some((c) => c.link === current && !c.confirmed)) {
          this.retire(
            current,
            `the broker did not confirm a request for ${this.stallTimeoutMs} ms`,
          );
        }
        // Copies left unconfirmed on a channel already replaced will not be confirmed there: idempotent
        // calls go again on the new channel, the others fail now rather than at their deadline (the
        // broker may or may not have taken them, as when a channel is lost).
        for (const call of stalled) {
          if (
            call.confirmed ||
            call.link === undefined ||
            call.link === current ||
            call.link === this.link ||
            now - call.sentAt < this.stallTimeoutMs
          )
            continue;
          if (!this.pending.has(call.id)) continue;
          if (call.method.idempotent) {
            this.detach(call);
            this.resend.push(call);
          } else {
            this.settle(
              call.id,
              new StatusError(
                Code.UNAVAILABLE,
                `${call.method.path}: the request was not confirmed within ${now - call.sentAt} ms on a channel since replaced; it may or may not have been taken`,
              ),
            );
          }
        }
        this.flushResend();
      }
    }
  }

  // ---- streams -------------------------------------------------------------------------------

  /** The innermost step for a streaming call: open it on a ready link and hand back its responses. */
  private async stream(req: CallRequest): Promise<CallResponse> {
    const link = await this.readyLink(req);
    let inbox: string;
    try {
      inbox = await linkInbox(link, this.onFrame);
    } catch (err) {
      throw new StatusError(
        Code.UNAVAILABLE,
        `${req.method.path}: cannot open a stream: the client's inbox could not be declared (${messageOf(err)})`,
        { cause: err },
      );
    }
    if (!link.alive)
      throw new StatusError(
        Code.UNAVAILABLE,
        `${req.method.path}: the channel to RabbitMQ was lost while the stream was opening`,
      );
    const options = (req as CallRequest & { [STREAM_OPTIONS]?: CallOptions })[STREAM_OPTIONS];
    const stream = new ClientStream(
      this.streamHost,
      link,
      req,
      this.queues.of(req.method),
      inbox,
      options,
      this.keepaliveMs,
      { window: this.streamWindow, bytes: this.streamWindowBytes },
      this.maxMessageBytes,
      this.defaultTimeoutMs,
    );
    this.streams.set(stream.id, stream);
    stream.open(this.userId);
    return stream.response();
  }

  /** What a ClientStream needs of the transport. */
  private readonly streamHost: StreamHost = {
    forget: (stream) => {
      if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    },
    broadcastCancel: (link, queue, id, reason) =>
      broadcastCancel(link, queue, id, reason, (fields, msg) => this.warn(fields, msg)),
    drained: (link) => {
      awaitDrain(link);
      return link.drain ?? Promise.resolve();
    },
  };

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
      if (link?.alive)
        sendCancel(
          link.channel,
          msg.properties.replyTo,
          id,
          "the call was over before the server accepted it",
        );
    }
  };

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
    const reply = parseReply(
      call.method,
      msg.properties.headers as Record<string, unknown> | undefined,
      msg.content,
      this.maxMessageBytes,
    );
    if (reply instanceof StatusError) call.reject(reply);
    else call.resolve(reply);
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
      new StatusError(
        Code.UNAVAILABLE,
        `no server for ${call.method.path}: queue "${msg.fields.routingKey}" does not exist (${msg.fields.exchange === "" ? "default exchange, " : ""}${(msg.fields as { replyText?: string }).replyText ?? "NO_ROUTE"})`,
      ),
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
    const link: Link = {
      session,
      channel,
      alive: true,
      drain: undefined,
      calls: new Set(),
      drained: undefined,
      inbox: undefined,
      cancelExchange: undefined,
    };
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
    if (!link?.alive) return;
    link.alive = false;
    if (this.link === link) this.link = undefined;
    for (const call of [...link.calls]) {
      this.detach(call);
      if (call.method.idempotent && !this.closed) this.resend.push(call);
      else
        this.settle(
          call.id,
          new StatusError(
            Code.UNAVAILABLE,
            "the connection to RabbitMQ was lost before the reply arrived",
          ),
        );
    }
    for (const stream of [...this.streams.values()]) {
      if (stream.link === link)
        stream.fail(
          new StatusError(
            Code.UNAVAILABLE,
            `${stream.method.path}: the channel to RabbitMQ carrying the stream was lost`,
          ),
          false,
        );
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
