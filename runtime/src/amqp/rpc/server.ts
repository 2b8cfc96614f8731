// The server side of RPC over RabbitMQ: consumes a service's request queue, calls the handler
// named by the `rpc-method` header, and publishes the reply to `reply_to`.
//
// Any number of servers (processes or connections) may consume one request queue; RabbitMQ hands
// each request to one of them. A request is acked only after its reply has been published, so a
// server that dies mid-call leaves the request to another server (at-least-once: a handler can run
// twice for one call when a server is lost between doing the work and acking).

import type { Channel, ConsumeMessage, Message, Options } from "amqplib";
import { ChannelKeeper } from "../channel-keeper.js";
import type { AmqpConnection, AmqpSession } from "../connection.js";
import { Publisher } from "../publisher.js";
import {
  copiedProperties,
  HEADER_DEAD_LETTERED_AT,
  HEADER_ERROR,
  headersToMetadata,
  republishableHeaders,
} from "../headers.js";
import type { HandlerContext } from "../../context.js";
import type { MethodDesc, ServiceDesc } from "../../descriptors.js";
import { createHandlerContext, serverCallRequest, type ServerCall } from "../../handler-context.js";
import type { ServiceHandlers } from "../../handler.js";
import {
  applyInterceptors,
  requestMessage,
  type CallResponse,
  type Interceptor,
} from "../../interceptor.js";
import { hasKeys, normalizeMetadata, type Metadata } from "../../metadata.js";
import { asError, Code, StatusError, type ErrorDetail, messageOf } from "../../status.js";
import type { Logger } from "../../telemetry/logger.js";
import { recordDeadLettered } from "../../telemetry/metrics.js";
import type { Context } from "../../telemetry/otel.js";
import { logRpcFailure, telemetryActive, TRACE_CONTEXT_VALUE } from "../../telemetry/rpc.js";
import { delayUntil } from "../../timers.js";
import { logTraceIds } from "../telemetry.js";
import { runInCallContext } from "../../call-context.js";
import { CancelMemory } from "./cancel-memory.js";
import { requestIds, serverTelemetry } from "./rpc-telemetry.js";
import { declareServerQueue } from "./declare-queue.js";
import {
  cannotEncode,
  encodeResponse,
  replyHeaders,
  replyProperties,
  strippedReplyHeaders,
} from "./encode-reply.js";
import type { AmqpQueueType, AmqpRpcServerOptions } from "./server-options.js";
import { serveStream, type ActiveCall, type ServerLink, type StreamHost } from "./serve-stream.js";
import {
  decodeRequest,
  methodTable,
  validateRequest,
  type MethodEntry,
} from "./validate-request.js";
import {
  CANCEL_EXCHANGE,
  DEFAULT_STREAM_WINDOW,
  DEFAULT_STREAM_WINDOW_BYTES,
  deadLetterQueueName,
  FRAME,
  HEADER_MESSAGE,
  readFrame,
  readText,
} from "./wire.js";

export type { AmqpQueueType, AmqpRpcServerOptions } from "./server-options.js";

const EMPTY = Buffer.alloc(0);
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/**
 * Serves `handlers` (an object with one function per method, keyed as in `service.methods`) on the
 * service's request queue. Resolves once the queue is declared and consumed, so a call made after
 * it is served by this server (or another on the same queue).
 */
export async function serveAmqp<S extends ServiceDesc>(
  connection: AmqpConnection,
  service: S,
  handlers: Partial<ServiceHandlers<S>>,
  options: AmqpRpcServerOptions = {},
): Promise<AmqpRpcServer<S>> {
  const server = new AmqpRpcServer(connection, service, handlers, options);
  try {
    await connection.waitForSession();
    await server.started;
  } catch (err) {
    await server.close();
    throw setupStatus(
      err,
      `cannot serve ${service.typeName} on queue "${service.amqp?.requestQueue}"`,
    );
  }
  return server;
}

/** A refusal for lack of permissions as PERMISSION_DENIED; other broker errors as they came (406...). */
function setupStatus(err: unknown, context: string): unknown {
  if (err instanceof StatusError || !/ACCESS_REFUSED/.test(messageOf(err))) return err;
  return new StatusError(Code.PERMISSION_DENIED, `${context}: ${messageOf(err)}`, { cause: err });
}

/**
 * A running RPC server. Requests are answered per the wire contract:
 * - unknown `rpc-method`, or a method the handlers object lacks: UNIMPLEMENTED;
 * - a request framed as another kind than its method (an `open` for a unary method...): INVALID_ARGUMENT;
 * - a body the request type cannot decode: INVALID_ARGUMENT;
 * - no `reply_to`: published to `<requestQueue>.dlq` with header `x-grabbit-error`, then acked;
 * - `rpc-timeout-ms` of 0 or less (already late on arrival): DEADLINE_EXCEEDED without running the
 *   handler (expired requests still queued are dropped by the broker through `expiration`);
 * - a handler still running at the deadline: its `ctx.signal` is aborted and DEADLINE_EXCEEDED is
 *   replied at once;
 * - a handler that throws a StatusError: its code, message and metadata; anything else thrown:
 *   UNKNOWN with the error's message (never its stack).
 * The deadline starts when the request arrives (the caller's clock is never compared with ours).
 * A caller that cancels reaches the server through the cancel exchange and this channel's inbox:
 * the handler's signal aborts (or, still queued, the request is dropped when it arrives).
 * Streaming methods are served by serveStream (docs/wire-contract.md, "Streams over RabbitMQ").
 * Every handler runs in its call context (call-context.ts), so its own calls and publishes carry on.
 */
export class AmqpRpcServer<S extends ServiceDesc = ServiceDesc> {
  readonly service: S;
  readonly requestQueue: string;
  /** Resolves when the first session's consumer is up; rejects if that setup failed. */
  readonly started: Promise<void>;
  private readonly connection: AmqpConnection;
  private readonly handlers: Partial<ServiceHandlers<S>>;
  private readonly methods: ReadonlyMap<string, MethodEntry>;
  private readonly interceptors: Interceptor[] | undefined;
  private readonly prefetch: number;
  private readonly queueType: AmqpQueueType;
  /** Who chose an explicit queue type, for the error when the existing queue disagrees. */
  private readonly queueTypeSource: string;
  private readonly closeTimeoutMs: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly maxMessageBytes: number;
  private readonly untrack: () => void;
  private readonly keeper: ChannelKeeper<Channel>;
  /** Dead-lettering: confirmed, and re-sent after a lost channel like any publish. */
  private readonly deadLetters: Publisher;
  private link: ServerLink | undefined;
  private readonly links = new WeakMap<Channel, ServerLink>();
  private startedSettle: ((err?: unknown) => void) | undefined;
  /** Calls being handled: each entry ends its call early with the given status. */
  private readonly active = new Set<(err: StatusError) => void>();
  /** Calls being handled, by correlation id, for the caller's cancellation and a stream's frames. */
  private readonly calls = new Map<string, ActiveCall>();
  /** Cancellations that came before their request (still queued): id -> when forgotten. */
  private readonly cancelledEarly = new CancelMemory();
  /** What serving a stream needs of this server (serve-stream.ts). */
  private readonly streamHost: StreamHost;
  private inFlightCount = 0;
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | undefined;
  private readonly logger: Logger;
  /** The SERVER span and rpc.server.call.duration, outermost while a provider is registered. */
  private readonly telemetry: Interceptor;

  /** Prefer `serveAmqp`, which waits until the server consumes. */
  constructor(
    connection: AmqpConnection,
    service: S,
    handlers: Partial<ServiceHandlers<S>>,
    options: AmqpRpcServerOptions = {},
  ) {
    if (!service.amqp) {
      throw new TypeError(
        `service ${service.typeName} is not served over AMQP (its descriptor has no amqp section)`,
      );
    }
    this.connection = connection;
    this.service = service;
    this.handlers = handlers;
    this.requestQueue = service.amqp.requestQueue;
    this.prefetch = Math.max(1, Math.floor(options.prefetch ?? service.amqp.prefetch ?? 1));
    this.queueType = options.queueType ?? service.amqp.queueType ?? "auto";
    this.queueTypeSource =
      options.queueType !== undefined
        ? "the server's queueType option"
        : `the contract ((grabbit.v1.service).queue_type of ${service.typeName})`;
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.onError = options.onError;
    this.logger = options.logger ?? connection.logger;
    this.telemetry = serverTelemetry(service.amqp.requestQueue);
    this.maxMessageBytes = options.maxMessageBytes ?? Infinity;
    this.streamHost = {
      handlers,
      maxStreams: Math.max(1, options.maxStreams ?? 256),
      maxMessageBytes: this.maxMessageBytes,
      streamWindow: Math.max(1, Math.floor(options.streamWindow ?? DEFAULT_STREAM_WINDOW)),
      streamWindowBytes: Math.max(
        1,
        Math.floor(options.streamWindowBytes ?? DEFAULT_STREAM_WINDOW_BYTES),
      ),
      streams: { count: 0 },
      active: this.active,
      calls: this.calls,
      early: (link, msg, method, code, text) => this.early(link, msg, method, code, text),
      context: (msg, method, deadline, sendHeaders) =>
        this.context(msg, method, deadline, sendHeaders),
      logFailure: (msg, method, ctx, err) => this.logFailure(msg, method, ctx, err),
      chainFor: (msg) => this.chainFor(msg),
    };
    this.interceptors =
      options.interceptors && options.interceptors.length > 0 ? options.interceptors : undefined;
    this.methods = methodTable(service, handlers);
    this.started = new Promise<void>((resolve, reject) => {
      this.startedSettle = (err) => {
        this.startedSettle = undefined;
        if (err === undefined) resolve();
        else reject(err);
      };
    });
    this.started.catch(() => {});
    this.deadLetters = new Publisher(connection, {
      maxInFlight: Math.max(16, this.prefetch),
      track: false,
      logger: this.logger,
    });
    this.keeper = new ChannelKeeper<Channel>(connection, {
      owner: `RPC server of queue "${this.requestQueue}"`,
      confirm: false,
      setup: (channel, session) => this.setup(channel, session),
      onLost: (channel) => this.lose(channel),
      onError: (err) => this.report(err),
    });
    this.keeper.startOrFail().then(
      () => this.startedSettle?.(),
      (err: unknown) => this.startedSettle?.(err),
    );
    this.untrack = connection.track(this);
  }

  /** Requests being handled now. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /**
   * Stops starting handlers, lets in-flight ones finish, reply and ack (up to `closeTimeoutMs`, then
   * their signals are aborted and UNAVAILABLE is replied), then cancels the consumer and closes its
   * channels. Requests not started (delivered meanwhile, or still queued) go back to the queue,
   * unhandled, for other servers.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.untrack();
    this.startedSettle?.(
      new StatusError(Code.CANCELLED, "the server was closed before it started"),
    );
    // The same order as EventConsumer's close (consumer.ts): RabbitMQ 3.10 quorum queues drop part
    // of the acks that follow the basic.cancel of their consumer when the channel closes soon after,
    // so requests already answered came back and were handled twice. So: no handler starts from here
    // (onDelivery holds what arrives), the running ones reply and ack, and only then is the consumer
    // cancelled. Held requests are not nacked (the broker would hand them straight back to this
    // still-subscribed consumer, and a quorum queue counts a nack as a failed delivery): they go back
    // with the channel, at most the prefetch of them.
    if (this.inFlightCount > 0) {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<boolean>(
        (resolve) => (timer = setTimeout(() => resolve(false), this.closeTimeoutMs)),
      );
      const idle = await Promise.race([this.whenIdle().then(() => true), graceOver]);
      clearTimeout(timer);
      if (!idle) {
        const err = new StatusError(Code.UNAVAILABLE, "the server is shutting down");
        for (const end of [...this.active]) end(err);
        await this.whenIdle();
      }
    }
    const link = this.link;
    if (link?.alive && link.consumerTag !== undefined) {
      await link.channel.cancel(link.consumerTag).catch(() => {});
    }
    this.link = undefined;
    if (link) link.alive = false;
    await Promise.allSettled([this.keeper.close(), this.deadLetters.close()]);
  }

  private whenIdle(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  // ---- topology and consumer, per session -----------------------------------------------------

  /** Declares the queues, then consumes on `channel` (the keeper's; run again for every new one). */
  private async setup(channel: Channel, session: AmqpSession): Promise<void> {
    if (this.closing) return;
    const declaration = {
      queueType: this.queueType,
      source: this.queueTypeSource,
      service: this.service.typeName,
      requestQueue: this.requestQueue,
      quorum: this.connection.supportsQuorumQueues(),
    };
    await declareServerQueue(session, this.requestQueue, declaration);
    await declareServerQueue(session, deadLetterQueueName(this.requestQueue), declaration);
    await channel.prefetch(this.prefetch);
    if (this.closing || !session.open) return;
    const link: ServerLink = {
      session,
      channel,
      consumerTag: undefined,
      alive: true,
      inbox: undefined,
      inboxProblem: undefined,
    };
    await this.openInbox(link);
    if (this.closing || !session.open) return;
    this.links.set(channel, link);
    this.link = link;
    const ok = await channel.consume(this.requestQueue, (msg) => this.onDelivery(link, msg), {
      noAck: false,
    });
    link.consumerTag = ok.consumerTag;
  }

  /**
   * The channel's inbox: a private queue (exclusive, deleted with its consumer) that takes the frames
   * of the streams this channel serves, and, bound to the cancel exchange with the request queue as
   * key, the cancellations of unary calls. Declared on a scratch channel, so that a refusal (a user
   * without configure rights) costs streams and cancellation only, not the server: it is logged once.
   */
  private async openInbox(link: ServerLink): Promise<void> {
    let scratch: Channel | undefined;
    try {
      scratch = await link.session.createChannel();
      await scratch.assertExchange(CANCEL_EXCHANGE, "direct", { durable: true });
      const { queue } = await scratch.assertQueue("", {
        exclusive: true,
        autoDelete: true,
        durable: false,
        arguments: { "x-queue-type": "classic" },
      });
      await scratch.bindQueue(queue, CANCEL_EXCHANGE, this.requestQueue);
      await link.channel.consume(queue, (msg) => this.onFrame(msg), { noAck: true });
      link.inbox = queue;
      link.channel.on("return", (msg: Message) => this.onReturn(msg));
    } catch (err) {
      link.inboxProblem = `its inbox could not be declared (${messageOf(err)})`;
      this.logger.warn(
        { queue: this.requestQueue, err: asError(err) },
        `RPC server of queue "${this.requestQueue}": no streaming calls and no cancellation of unary calls on this channel: ${link.inboxProblem}`,
      );
    } finally {
      await scratch?.close().catch(() => {});
    }
  }

  /** A frame to this server's inbox: a stream's, or a cancellation. */
  private onFrame(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    const headers = msg.properties.headers as Record<string, unknown> | undefined;
    const kind = readFrame(headers);
    const id = msg.properties.correlationId as string | undefined;
    if (kind === undefined || id === undefined) return;
    const call = this.calls.get(id);
    if (kind === FRAME.cancel) {
      const why = readText(headers, HEADER_MESSAGE);
      const err = new StatusError(
        Code.CANCELLED,
        `the caller cancelled the call${why ? `: ${why}` : ""}`,
      );
      if (call !== undefined) call.end(err);
      else this.cancelledEarly.remember(id);
      return;
    }
    if (call?.stream === undefined) return; // a frame of a stream that is over
    if (!call.stream.receive(kind, headers, msg.content)) call.frame?.(kind);
  }

  /** A stream frame no queue took: the client's inbox is gone, and with it the client. */
  private onReturn(msg: Message): void {
    const id = msg.properties.correlationId as string | undefined;
    const call = id === undefined ? undefined : this.calls.get(id);
    call?.stream?.break(
      new StatusError(
        Code.UNAVAILABLE,
        `the client is gone: its inbox "${msg.fields.routingKey}" no longer exists`,
      ),
    );
  }

  private lose(channel: Channel): void {
    const link = this.links.get(channel);
    if (!link) return;
    link.alive = false;
    if (this.link === link) this.link = undefined;
  }

  // ---- requests -------------------------------------------------------------------------------

  private onDelivery(link: ServerLink, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled us (the queue was deleted): a fresh channel re-declares and consumes.
      this.report(new Error(`the broker cancelled the consumer of queue "${this.requestQueue}"`));
      this.keeper.replace(link.channel, new Error("the broker cancelled the consumer"));
      return;
    }
    // Arrived while shutting down: held unacked, returned to the queue when close() closes the channel.
    if (this.closing) return;
    this.inFlightCount++;
    this.handle(link, msg)
      .catch((err) => this.report(err))
      .finally(() => {
        if (--this.inFlightCount === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      });
  }

  private async handle(link: ServerLink, msg: ConsumeMessage): Promise<void> {
    const verdict = validateRequest(msg.properties, {
      methods: this.methods,
      service: this.service.typeName,
      queue: this.requestQueue,
      cancelledBefore: (id) => this.cancelledEarly.take(id),
      arrival: Date.now(),
    });
    switch (verdict.kind) {
      case "dead-letter":
        await this.deadLetter(link, msg, verdict.reason);
        return;
      case "unknown-method":
        this.logMessage(
          "warn",
          msg,
          { method: verdict.path, code: "UNIMPLEMENTED", transport: "amqp" },
          verdict.text,
        );
        this.reply(link, msg, undefined, Code.UNIMPLEMENTED, verdict.text);
        return;
      case "refuse":
        this.early(link, msg, verdict.entry.method, verdict.code, verdict.text);
        return;
    }
    const { entry, deadline } = verdict;
    if (verdict.streaming) {
      await serveStream(this.streamHost, link, msg, entry, deadline);
      return;
    }
    const decoded = decodeRequest(entry.method, msg.content, this.maxMessageBytes);
    if ("code" in decoded) {
      this.early(link, msg, entry.method, decoded.code, decoded.text);
      return;
    }
    await this.invoke(link, msg, entry, decoded.request, deadline);
  }

  /** A request refused before its handler runs: logged as a failed call, then replied to. */
  private early(
    link: ServerLink,
    msg: ConsumeMessage,
    method: MethodDesc,
    code: Code,
    text: string,
  ): void {
    const err = new StatusError(code, text);
    let traceCtx: Context | undefined;
    if (telemetryActive()) {
      // Refused before any handler ran, still a call: its SERVER span (continuing the caller's
      // trace) and rpc.server.call.duration record the refusal, through the same telemetry step.
      const { ctx } = this.context(msg, method, undefined, () => {});
      void this.telemetry(() => Promise.reject(err))(
        serverCallRequest(ctx, { stream: false, message: undefined }),
      ).catch(() => {});
      traceCtx = ctx.values.get(TRACE_CONTEXT_VALUE) as Context | undefined;
    }
    this.logFailure(msg, method, traceCtx, err);
    this.reply(link, msg, method, code, text);
  }

  private logFailure(
    msg: ConsumeMessage,
    method: MethodDesc,
    ctx: Context | undefined,
    err: unknown,
  ): void {
    try {
      const metadata = headersToMetadata(
        msg.properties.headers as Record<string, unknown> | undefined,
      );
      const peer = typeof msg.properties.userId === "string" ? msg.properties.userId : undefined;
      logRpcFailure(
        this.logger.child({
          queue: this.requestQueue,
          message_id: msg.properties.messageId ?? msg.properties.correlationId,
        }),
        { method, transport: "amqp", metadata, peer, ctx },
        err,
      );
    } catch {
      // A logger that throws must not break the reply.
    }
  }

  /** One log line about a request: queue, message id, trace ids, and `fields`. */
  private logMessage(
    level: "warn" | "error",
    msg: ConsumeMessage,
    fields: Record<string, unknown>,
    text: string,
  ): void {
    const record: Record<string, unknown> = {
      queue: this.requestQueue,
      message_id: msg.properties.messageId ?? msg.properties.correlationId,
      ...fields,
    };
    const ids = logTraceIds(msg.properties.headers as Record<string, unknown> | undefined);
    if (ids !== undefined) Object.assign(record, ids);
    try {
      this.logger[level](record, text);
    } catch {
      // A logger that throws must not stop the server.
    }
  }

  /** The context a handler gets (handler-context.ts); `sendHeaders` is how this call sends its response headers. */
  private context(
    msg: ConsumeMessage,
    method: MethodDesc,
    deadline: number | undefined,
    sendHeaders: (ctx: HandlerContext, metadata: Metadata | undefined) => void,
  ): ServerCall {
    const metadata = headersToMetadata(
      msg.properties.headers as Record<string, unknown> | undefined,
    );
    const peer = typeof msg.properties.userId === "string" ? msg.properties.userId : undefined;
    return createHandlerContext({
      method,
      transport: "amqp",
      metadata,
      deadline,
      peer,
      sendHeaders,
    });
  }

  /** The interceptors of a call: while a provider is registered the SERVER span outermost, then the request's ids, then the user's. */
  private chainFor(msg: ConsumeMessage): Interceptor[] | undefined {
    return telemetryActive()
      ? [this.telemetry, requestIds(msg), ...(this.interceptors ?? [])]
      : this.interceptors;
  }

  /** Runs interceptors and handler, racing them against the deadline, the caller's cancellation and shutdown. */
  private invoke(
    link: ServerLink,
    msg: ConsumeMessage,
    entry: MethodEntry,
    request: unknown,
    deadline: number | undefined,
  ): Promise<void> {
    let headersSent = false;
    const { ctx, abort, values } = this.context(msg, entry.method, deadline, (c, extra) => {
      // One reply carries everything: the headers are sent with it, merged under the trailers.
      if (headersSent)
        throw new StatusError(
          Code.FAILED_PRECONDITION,
          `${entry.method.path}: the response headers were already sent`,
        );
      headersSent = true;
      if (extra) Object.assign(c.responseHeaders, normalizeMetadata(extra));
    });
    const handler = entry.handler!;
    const handlers = this.handlers;
    const callHandler = async (message: unknown): Promise<CallResponse> => {
      const response = await handler.call(handlers, message, ctx);
      return { stream: false, message: response, metadata: ctx.responseMetadata };
    };
    const interceptors = this.chainFor(msg);
    const start = (): Promise<CallResponse> =>
      runInCallContext(ctx, () =>
        interceptors
          ? applyInterceptors(
              async (r) => callHandler(requestMessage(r)),
              interceptors,
            )(serverCallRequest(ctx, { stream: false, message: request }))
          : callHandler(request),
      );
    const id = msg.properties.correlationId as string | undefined;

    return new Promise<void>((done) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (response: CallResponse | undefined, error: unknown): void => {
        if (finished) return;
        finished = true;
        if (timer !== undefined) clearTimeout(timer);
        this.active.delete(end);
        if (id !== undefined && this.calls.get(id)?.end === end) this.calls.delete(id);
        const headers = hasKeys(ctx.responseHeaders) ? ctx.responseHeaders : undefined;
        if (response !== undefined)
          this.replyOk(
            link,
            msg,
            entry.method,
            headers ? { ...response, metadata: { ...headers, ...response.metadata } } : response,
          );
        else {
          const status = StatusError.from(error);
          this.logFailure(
            msg,
            entry.method,
            values()?.get(TRACE_CONTEXT_VALUE) as Context | undefined,
            error,
          );
          this.reply(
            link,
            msg,
            entry.method,
            status.code,
            status.rawMessage,
            { ...headers, ...ctx.responseMetadata, ...status.metadata },
            EMPTY,
            status.details,
          );
        }
        done();
      };
      // Ends the call before the handler does (deadline, shutdown, cancellation): abort its signal, reply now.
      const end = (err: StatusError): void => {
        if (finished) return;
        abort(err);
        finish(undefined, err);
      };
      this.active.add(end);
      if (id !== undefined && link.inbox !== undefined) this.calls.set(id, { end });
      if (deadline !== undefined) {
        timer = setTimeout(
          () =>
            end(
              new StatusError(
                Code.DEADLINE_EXCEEDED,
                `${entry.method.path}: the handler did not finish before the deadline`,
              ),
            ),
          delayUntil(deadline),
        );
      }
      let work: Promise<CallResponse>;
      try {
        work = start();
      } catch (err) {
        work = Promise.reject(err);
      }
      work.then(
        (response) => finish(response, undefined),
        (err) => finish(undefined, err),
      );
    });
  }

  private replyOk(
    link: ServerLink,
    msg: ConsumeMessage,
    method: MethodDesc,
    response: CallResponse,
  ): void {
    const body = response.stream
      ? new StatusError(
          Code.INTERNAL,
          `${method.path}: an interceptor returned a response stream for a unary call`,
        )
      : encodeResponse(method, response.message, this.maxMessageBytes);
    if (body instanceof StatusError)
      this.reply(link, msg, method, body.code, body.rawMessage, response.metadata);
    else this.reply(link, msg, method, Code.OK, "", response.metadata, body);
  }

  /** Publishes the reply, then acks the request. */
  private reply(
    link: ServerLink,
    msg: ConsumeMessage,
    method: MethodDesc | undefined,
    code: Code,
    message: string,
    metadata?: Metadata,
    body: Buffer = EMPTY,
    details?: readonly ErrorDetail[],
  ): void {
    // The answer to a stream's open (refused before it started) is that stream's `end` frame.
    const headers = replyHeaders(
      msg.properties.headers as Record<string, unknown> | undefined,
      code,
      message,
      metadata,
      details,
    );
    // The request is acked before the reply is published, in the same write: RabbitMQ 3.10 closes the
    // whole connection (541 INTERNAL_ERROR) on a reply to a direct reply-to whose node is gone, and
    // with the ack after the reply the request came back to be answered again, crashing every
    // server in turn until its expiration. The caller on the dead node has lost its channel anyway.
    // If the request's channel died mid-call the ack is impossible (the request will be redelivered),
    // and the reply still goes out on the new channel (its second reply is dropped as late).
    if (link.alive) {
      try {
        link.channel.ack(msg);
      } catch {
        // The channel closed under us: the broker redelivers the unacked request.
      }
    }
    const channel = link.alive ? link.channel : this.link?.channel;
    if (channel === undefined) return;
    const send = (h: Record<string, unknown>) =>
      channel.publish(
        "",
        msg.properties.replyTo as string,
        body,
        replyProperties(msg.properties.correlationId, code, method, h),
      );
    try {
      try {
        send(headers);
      } catch (err) {
        // Metadata or details amqplib cannot encode (a header table over 64 KB...): the caller still
        // gets the status, without them, rather than waiting for its deadline.
        if (!cannotEncode(err)) throw err;
        const note = `the reply's metadata and error details were dropped: ${messageOf(err)}`;
        send(strippedReplyHeaders(code, message, note));
        this.report(new Error(`${method?.path ?? this.requestQueue}: ${note}`));
      }
    } catch {
      // The channel closed under us: the caller's call fails or is retried on its side.
    }
  }

  /** Keeps an unanswerable request in `<queue>.dlq` with the reason, confirmed before the ack. */
  private async deadLetter(link: ServerLink, msg: ConsumeMessage, reason: string): Promise<void> {
    const p = msg.properties;
    recordDeadLettered({ queue: this.requestQueue, reason: "no_reply_to" });
    this.logMessage(
      "warn",
      msg,
      {
        reason,
        reason_kind: "no_reply_to",
        dead_letter_queue: deadLetterQueueName(this.requestQueue),
      },
      `dead-lettering a request from queue "${this.requestQueue}": ${reason}`,
    );
    const headers = {
      ...republishableHeaders(p.headers ?? {}),
      [HEADER_ERROR]: reason,
      [HEADER_DEAD_LETTERED_AT]: Date.now(),
    };
    // Kept until someone looks: persistent, whatever the request was.
    const options: Options.Publish = { ...copiedProperties(p), headers, deliveryMode: 2 };
    const send = (o: Options.Publish) =>
      this.deadLetters.publish("", deadLetterQueueName(this.requestQueue), msg.content, o, {
        mandatory: false,
      });
    try {
      try {
        await send(options);
      } catch (err) {
        // Headers amqplib cannot write again (over its 64 KB table...): requeueing would loop on the
        // request forever, so keep it with the reason only.
        if (!cannotEncode(err)) throw err;
        await send({
          ...options,
          headers: {
            [HEADER_ERROR]: `${reason}; its headers could not be copied and were dropped (${messageOf(err)})`,
          },
        });
      }
      if (link.alive) link.channel.ack(msg);
    } catch (err) {
      this.report(
        new Error(
          `could not dead-letter a request from queue "${this.requestQueue}": ${messageOf(err)}`,
        ),
      );
      try {
        if (link.alive) link.channel.nack(msg, false, true);
      } catch {
        // Channel gone: redelivered anyway.
      }
    }
  }

  /** An error with no caller: logged (error, with the queue), then to onError. */
  private report(err: unknown): void {
    const error = asError(err);
    try {
      this.logger.error({ queue: this.requestQueue, err: error }, error.message);
    } catch {
      // A logger that throws must not stop the server.
    }
    this.onError?.(error);
  }
}
