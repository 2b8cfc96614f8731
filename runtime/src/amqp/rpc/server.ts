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
import { CONTENT_TYPE_PROTOBUF, copiedProperties, HEADER_DEAD_LETTERED_AT, HEADER_ERROR, headersToMetadata, metadataToHeaders, republishableHeaders } from "../headers.js";
import type { HandlerContext } from "../../context.js";
import type { MethodDesc, ServiceDesc } from "../../descriptors.js";
import { applyInterceptors, type CallRequest, type CallResponse, type Interceptor } from "../../interceptor.js";
import { hasKeys, normalizeMetadata, type Metadata } from "../../metadata.js";
import { Code, StatusError, type ErrorDetail, messageOf } from "../../status.js";
import { encodeRpcStatus } from "../../status-details.js";
import type { Logger } from "../../telemetry/logger.js";
import { recordDeadLettered } from "../../telemetry/metrics.js";
import type { Context } from "../../telemetry/otel.js";
import { logRpcFailure, rpcServerTelemetry, telemetryActive, TRACE_CONTEXT_VALUE } from "../../telemetry/rpc.js";
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_BODY_SIZE,
  ATTR_MESSAGING_MESSAGE_CONVERSATION_ID,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_RABBITMQ,
  RPC_SYSTEM_GRABBIT_AMQP,
} from "../../telemetry/semconv.js";
import { activeSpan, logTraceIds } from "../telemetry.js";
import { runInCallContext } from "../../call-context.js";
import { inboxRoute, StreamEnd } from "./stream.js";
import {
  CANCEL_EXCHANGE,
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_STREAM_WINDOW,
  DEFAULT_STREAM_WINDOW_BYTES,
  INITIAL_STREAM_CREDIT,
  deadLetterQueueName,
  FRAME,
  HEADER_CREDIT,
  HEADER_FRAME,
  HEADER_KEEPALIVE,
  MAX_KEEPALIVE_MS,
  delayUntil,
  MIN_KEEPALIVE_MS,
  HEADER_MESSAGE,
  HEADER_METHOD,
  HEADER_STATUS,
  HEADER_STATUS_DETAILS,
  HEADER_TIMEOUT,
  readCount,
  readFrame,
  readMillis,
  readText,
} from "./wire.js";

export type AmqpQueueType = "auto" | "quorum" | "classic";

export interface AmqpRpcServerOptions {
  /** Server interceptors, first = outermost; they see side "server", transport "amqp". */
  interceptors?: Interceptor[];
  /** Requests handled at once by this server (per connection session). Default: the service's `amqp.prefetch`. */
  prefetch?: number;
  /**
   * Type of the request queue and its dead-letter queue, both durable. Default: the contract's
   * `(grabbit.v1.service).queue_type` (`service.amqp.queueType`), else "auto". "auto": quorum where
   * the broker supports it, classic otherwise, and an existing queue of either type is used as it
   * is. "quorum"/"classic": declared with that `x-queue-type`, and an existing queue of another type
   * fails `serveAmqp` with FAILED_PRECONDITION (RabbitMQ cannot change a queue's type in place).
   * Setting it here overrides the contract: every server of the queue must still agree.
   */
  queueType?: AmqpQueueType;
  /** How long `close()` lets in-flight handlers finish before aborting them (they reply UNAVAILABLE). Default 10 000 ms. */
  closeTimeoutMs?: number;
  /** Problems no caller can be told about (a dead-letter publish that failed, a consumer the broker cancelled). */
  onError?: (err: Error) => void;
  /**
   * Largest request body decoded and response body sent, in bytes; past it the caller gets
   * RESOURCE_EXHAUSTED (the handler does not run, or its response is not sent). Default: no limit.
   */
  maxMessageBytes?: number;
  /**
   * Where failed calls (as the gRPC server logs them: error for UNKNOWN, INTERNAL, DATA_LOSS, warn
   * for the server's other failures, debug for the caller's), dead-lettered requests and errors
   * with no caller are logged, with method, queue and trace id. Default: the connection's logger.
   */
  logger?: Logger;
  /**
   * Streaming calls this server runs at once (they hold no prefetch slot: a stream's open is acked
   * when the stream starts). Past it, a new stream fails RESOURCE_EXHAUSTED. Default 256.
   */
  maxStreams?: number;
  /**
   * At most this many messages of a client's request stream given credit for and not yet read (the
   * client waits beyond it). Default 1 024; the first grant is 64, until message sizes are known.
   */
  streamWindow?: number;
  /** And about this many bytes of them, so that big messages get a smaller window. Default 4 MiB. */
  streamWindowBytes?: number;
}

interface MethodEntry {
  readonly key: string;
  readonly method: MethodDesc;
  /** Undefined when the service object has no function for the method. */
  readonly handler: ((request: unknown, ctx: HandlerContext) => unknown) | undefined;
  readonly unsupported: string | undefined;
}

/** The consuming channel, for the deliveries that came on it (acks must go back on it). */
interface ServerLink {
  readonly session: AmqpSession;
  readonly channel: Channel;
  consumerTag: string | undefined;
  alive: boolean;
  /** This channel's inbox (stream frames, cancellations); undefined when it could not be declared. */
  inbox: string | undefined;
  /** Why there is no inbox, for the streams refused on this channel. */
  inboxProblem: string | undefined;
}

/** A call being served, as a cancellation finds it. */
interface ActiveCall {
  /** Ends the call early with this status (deadline, shutdown, the caller's cancellation). */
  end(err: StatusError): void;
  /** A streaming call's end, which takes the client's frames. */
  readonly stream?: StreamEnd;
  /** Stream calls: frames from the client (half-close) the end does not take itself. */
  frame?(kind: string): void;
}

/** How long a cancellation of a call not seen yet is remembered (its request may still be queued). */
const CANCEL_MEMORY_MS = 10 * 60_000;
const CANCEL_MEMORY_MAX = 10_000;

const EMPTY = Buffer.alloc(0);
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/**
 * Serves `handlers` (an object with one function per method, keyed as in `service.methods`) on the
 * service's request queue. Resolves once the queue is declared and consumed, so a call made after
 * it is served by this server (or another on the same queue).
 */
export async function serveAmqp(
  connection: AmqpConnection,
  service: ServiceDesc,
  handlers: object,
  options: AmqpRpcServerOptions = {},
): Promise<AmqpRpcServer> {
  const server = new AmqpRpcServer(connection, service, handlers, options);
  try {
    await connection.waitForSession();
    await server.started;
  } catch (err) {
    await server.close();
    throw setupStatus(err, `cannot serve ${service.typeName} on queue "${service.amqp?.requestQueue}"`);
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
export class AmqpRpcServer {
  readonly service: ServiceDesc;
  readonly requestQueue: string;
  /** Resolves when the first session's consumer is up; rejects if that setup failed. */
  readonly started: Promise<void>;
  private readonly connection: AmqpConnection;
  private readonly handlers: object;
  private readonly methods = new Map<string, MethodEntry>();
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
  private readonly cancelledEarly = new Map<string, number>();
  private streamCount = 0;
  private readonly maxStreams: number;
  private readonly streamWindow: number;
  private readonly streamWindowBytes: number;
  private inFlightCount = 0;
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | undefined;
  private readonly logger: Logger;
  /** The SERVER span and rpc.server.call.duration, outermost while a provider is registered. */
  private readonly telemetry: Interceptor;

  /** Prefer `serveAmqp`, which waits until the server consumes. */
  constructor(connection: AmqpConnection, service: ServiceDesc, handlers: object, options: AmqpRpcServerOptions = {}) {
    if (!service.amqp) {
      throw new TypeError(`service ${service.typeName} is not served over AMQP (its descriptor has no amqp section)`);
    }
    this.connection = connection;
    this.service = service;
    this.handlers = handlers;
    this.requestQueue = service.amqp.requestQueue;
    this.prefetch = Math.max(1, Math.floor(options.prefetch ?? service.amqp.prefetch ?? 1));
    this.queueType = options.queueType ?? service.amqp.queueType ?? "auto";
    this.queueTypeSource =
      options.queueType !== undefined ? "the server's queueType option" : `the contract ((grabbit.v1.service).queue_type of ${service.typeName})`;
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.onError = options.onError;
    this.logger = options.logger ?? connection.logger;
    this.telemetry = rpcServerTelemetry({
      system: RPC_SYSTEM_GRABBIT_AMQP,
      attributes: {
        [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
        [ATTR_MESSAGING_OPERATION_TYPE]: "process",
        [ATTR_MESSAGING_OPERATION_NAME]: "process",
        [ATTR_MESSAGING_DESTINATION_NAME]: service.amqp.requestQueue,
      },
    });
    this.maxMessageBytes = options.maxMessageBytes ?? Infinity;
    this.maxStreams = Math.max(1, options.maxStreams ?? 256);
    this.streamWindow = Math.max(1, Math.floor(options.streamWindow ?? DEFAULT_STREAM_WINDOW));
    this.streamWindowBytes = Math.max(1, Math.floor(options.streamWindowBytes ?? DEFAULT_STREAM_WINDOW_BYTES));
    this.interceptors = options.interceptors && options.interceptors.length > 0 ? options.interceptors : undefined;
    for (const [key, method] of Object.entries(service.methods)) {
      const fn = (handlers as Record<string, unknown>)[key];
      let unsupported: string | undefined;
      if (typeof fn !== "function") unsupported = `${method.path} is not implemented by this server`;
      this.methods.set(method.path, {
        key,
        method,
        handler: unsupported === undefined ? (fn as MethodEntry["handler"]) : undefined,
        unsupported,
      });
    }
    this.started = new Promise<void>((resolve, reject) => {
      this.startedSettle = (err) => {
        this.startedSettle = undefined;
        if (err === undefined) resolve();
        else reject(err);
      };
    });
    this.started.catch(() => {});
    this.deadLetters = new Publisher(connection, { maxInFlight: Math.max(16, this.prefetch), track: false, logger: this.logger });
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
   * Stops consuming, lets in-flight handlers finish and reply (up to `closeTimeoutMs`, then their
   * signals are aborted and UNAVAILABLE is replied), and closes its channels. Requests not yet
   * delivered stay in the queue for other servers.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.untrack();
    this.startedSettle?.(new StatusError(Code.CANCELLED, "the server was closed before it started"));
    const link = this.link;
    if (link?.alive && link.consumerTag !== undefined) {
      await link.channel.cancel(link.consumerTag).catch(() => {});
    }
    if (this.inFlightCount > 0) {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.closeTimeoutMs)));
      const idle = await Promise.race([this.whenIdle().then(() => true), graceOver]);
      clearTimeout(timer);
      if (!idle) {
        const err = new StatusError(Code.UNAVAILABLE, "the server is shutting down");
        for (const end of [...this.active]) end(err);
        await this.whenIdle();
      }
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
    await this.declare(session, this.requestQueue);
    await this.declare(session, deadLetterQueueName(this.requestQueue));
    await channel.prefetch(this.prefetch);
    if (this.closing || !session.open) return;
    const link: ServerLink = { session, channel, consumerTag: undefined, alive: true, inbox: undefined, inboxProblem: undefined };
    await this.openInbox(link);
    if (this.closing || !session.open) return;
    this.links.set(channel, link);
    this.link = link;
    const ok = await channel.consume(this.requestQueue, (msg) => this.onDelivery(link, msg), { noAck: false });
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
      const { queue } = await scratch.assertQueue("", { exclusive: true, autoDelete: true, durable: false, arguments: { "x-queue-type": "classic" } });
      await scratch.bindQueue(queue, CANCEL_EXCHANGE, this.requestQueue);
      await link.channel.consume(queue, (msg) => this.onFrame(msg), { noAck: true });
      link.inbox = queue;
      link.channel.on("return", (msg: Message) => this.onReturn(msg));
    } catch (err) {
      link.inboxProblem = `its inbox could not be declared (${messageOf(err)})`;
      this.logger.warn(
        { queue: this.requestQueue, err: err instanceof Error ? err : new Error(String(err)) },
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
      const err = new StatusError(Code.CANCELLED, `the caller cancelled the call${why ? `: ${why}` : ""}`);
      if (call !== undefined) call.end(err);
      else this.rememberCancel(id);
      return;
    }
    if (call?.stream === undefined) return; // a frame of a stream that is over
    if (!call.stream.receive(kind, headers, msg.content)) call.frame?.(kind);
  }

  private rememberCancel(id: string): void {
    const now = Date.now();
    if (this.cancelledEarly.size >= CANCEL_MEMORY_MAX) {
      for (const [key, until] of this.cancelledEarly) {
        if (until <= now || this.cancelledEarly.size >= CANCEL_MEMORY_MAX) this.cancelledEarly.delete(key);
        else break;
      }
    }
    this.cancelledEarly.set(id, now + CANCEL_MEMORY_MS);
  }

  /** True (once) when the caller cancelled this call before its request reached us. */
  private cancelledBefore(id: unknown): boolean {
    if (this.cancelledEarly.size === 0 || typeof id !== "string") return false;
    const until = this.cancelledEarly.get(id);
    if (until === undefined) return false;
    this.cancelledEarly.delete(id);
    return until > Date.now();
  }

  /** A stream frame no queue took: the client's inbox is gone, and with it the client. */
  private onReturn(msg: Message): void {
    const id = msg.properties.correlationId as string | undefined;
    const call = id === undefined ? undefined : this.calls.get(id);
    call?.stream?.break(new StatusError(Code.UNAVAILABLE, `the client is gone: its inbox "${msg.fields.routingKey}" no longer exists`));
  }

  /** Declares a durable queue of the configured type; in "auto" mode an existing queue is taken as is. */
  private async declare(session: AmqpSession, queue: string): Promise<void> {
    // An explicit type is always sent, classic too: where a default queue type is configured
    // (RabbitMQ's default_queue_type), an argument-less declaration would get that type instead.
    // "auto" on a broker without quorum queues sends none, as older brokers expect.
    const type = this.queueType !== "auto" ? this.queueType : this.connection.supportsQuorumQueues() ? "quorum" : undefined;
    const options: Options.AssertQueue = { durable: true, ...(type ? { arguments: { "x-queue-type": type } } : {}) };
    const ch = await session.createChannel();
    try {
      await ch.assertQueue(queue, options);
    } catch (err) {
      // 406 PRECONDITION_FAILED: the queue exists with other arguments (closes the channel).
      if ((err as { code?: number }).code !== 406) throw err;
      if (this.queueType !== "auto") throw this.clash(queue, this.queueType, err);
      const check = await session.createChannel();
      try {
        await check.checkQueue(queue);
      } finally {
        await check.close().catch(() => {});
      }
    } finally {
      await ch.close().catch(() => {});
    }
  }

  /** An existing queue that an explicit queue type does not match: what happened and what to do. */
  private clash(queue: string, type: "quorum" | "classic", err: unknown): StatusError {
    const broker = /with message "(.*)"\s*$/s.exec(messageOf(err))?.[1] ?? messageOf(err);
    const queues = `"${this.requestQueue}" and "${deadLetterQueueName(this.requestQueue)}"`;
    const what = /x-queue-type/.test(broker)
      ? `queue "${queue}" already exists with another type than the ${type} type that ${this.queueTypeSource} asks for`
      : `queue "${queue}" already exists with other arguments than this server declares (durable, x-queue-type ${type}, from ${this.queueTypeSource})`;
    return new StatusError(
      Code.FAILED_PRECONDITION,
      `cannot serve ${this.service.typeName}: ${what} (RabbitMQ: ${broker}). ` +
        `RabbitMQ cannot change a queue's type, and every server of one queue must declare it alike. ` +
        `If the type changed on purpose, stop the servers that use the old one, delete ${queues} (requests waiting in them are lost), ` +
        `then start the servers again and the queues are re-created as ${type}; otherwise make the contract's queue_type (or this server's queueType option) match the queue.`,
      { cause: err },
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
    if (this.closing) {
      // Arrived while shutting down: hand it back for another server.
      try {
        link.channel.nack(msg, false, true);
      } catch {
        // Channel gone: the broker requeues it anyway.
      }
      return;
    }
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
    const arrival = Date.now();
    const props = msg.properties;
    const headers = props.headers as Record<string, unknown> | undefined;
    const replyTo = props.replyTo as string | undefined;
    if (!replyTo) {
      await this.deadLetter(link, msg, "the request has no reply_to, so no reply can be sent");
      return;
    }
    const path = readText(headers, HEADER_METHOD);
    const entry = path === undefined ? undefined : this.methods.get(path);
    if (entry === undefined) {
      const what = path === undefined ? "the request has no rpc-method header" : `unknown method ${path}`;
      const text = `${what} (service ${this.service.typeName} on queue "${this.requestQueue}")`;
      this.logMessage("warn", msg, { method: path, code: "UNIMPLEMENTED", transport: "amqp" }, text);
      this.reply(link, msg, undefined, Code.UNIMPLEMENTED, text);
      return;
    }
    if (entry.handler === undefined) {
      this.early(link, msg, entry.method, Code.UNIMPLEMENTED, entry.unsupported ?? `${entry.method.path} is not implemented`);
      return;
    }
    const streaming = entry.method.kind !== "unary";
    if (streaming !== (readFrame(headers) === FRAME.open)) {
      const text = streaming
        ? `${entry.method.path} is a ${entry.method.kind.replace("_", "-")} method: open it as a stream (${"rpc-frame"}: open), not as a unary request`
        : `${entry.method.path} is a unary method, not a stream`;
      this.early(link, msg, entry.method, Code.INVALID_ARGUMENT, text);
      return;
    }
    if (this.cancelledBefore(props.correlationId)) {
      this.early(link, msg, entry.method, Code.CANCELLED, `${entry.method.path}: the caller cancelled the call before it was served`);
      return;
    }
    // A stream's deadline is its rpc-timeout-ms only: an open's `expiration` may just bound its
    // wait in the queue (a client with no deadline still wants an answer soon).
    const timeoutMs = readMillis(headers?.[HEADER_TIMEOUT]) ?? (streaming ? undefined : readMillis(props.expiration));
    if (timeoutMs !== undefined && timeoutMs <= 0) {
      this.early(link, msg, entry.method, Code.DEADLINE_EXCEEDED, `${entry.method.path}: the deadline had passed when the request arrived`);
      return;
    }
    if (streaming) {
      await this.serveStream(link, msg, entry, timeoutMs === undefined ? undefined : arrival + timeoutMs);
      return;
    }
    if (msg.content.length > this.maxMessageBytes) {
      this.early(link, msg, entry.method, Code.RESOURCE_EXHAUSTED, `${entry.method.path}: the request is ${msg.content.length} bytes, over the limit of ${this.maxMessageBytes}`);
      return;
    }
    let request: unknown;
    try {
      request = entry.method.input.decode(msg.content);
    } catch (err) {
      this.early(link, msg, entry.method, Code.INVALID_ARGUMENT, `could not decode the request as ${entry.method.input.typeName}: ${messageOf(err)}`);
      return;
    }
    await this.invoke(link, msg, entry, request, timeoutMs === undefined ? undefined : arrival + timeoutMs);
  }

  /** A request refused before its handler runs: logged as a failed call, then replied to. */
  private early(link: ServerLink, msg: ConsumeMessage, method: MethodDesc, code: Code, text: string): void {
    const err = new StatusError(code, text);
    let traceCtx: Context | undefined;
    if (telemetryActive()) {
      // Refused before any handler ran, still a call: its SERVER span (continuing the caller's
      // trace) and rpc.server.call.duration record the refusal, through the same telemetry step.
      const { ctx } = this.context(msg, method, undefined, () => {});
      void this.telemetry(() => Promise.reject(err))(this.callRequest(ctx, {})).catch(() => {});
      traceCtx = ctx.values.get(TRACE_CONTEXT_VALUE) as Context | undefined;
    }
    this.logFailure(msg, method, traceCtx, err);
    this.reply(link, msg, method, code, text);
  }

  private logFailure(msg: ConsumeMessage, method: MethodDesc, ctx: Context | undefined, err: unknown): void {
    try {
      const metadata = headersToMetadata(msg.properties.headers as Record<string, unknown> | undefined);
      const peer = typeof msg.properties.userId === "string" ? msg.properties.userId : undefined;
      logRpcFailure(this.logger.child({ queue: this.requestQueue, message_id: msg.properties.messageId ?? msg.properties.correlationId }), { method, transport: "amqp", metadata, peer, ctx }, err);
    } catch {
      // A logger that throws must not break the reply.
    }
  }

  /** One log line about a request: queue, message id, trace ids, and `fields`. */
  private logMessage(level: "warn" | "error", msg: ConsumeMessage, fields: Record<string, unknown>, text: string): void {
    const record: Record<string, unknown> = { queue: this.requestQueue, message_id: msg.properties.messageId ?? msg.properties.correlationId, ...fields };
    const ids = logTraceIds(msg.properties.headers as Record<string, unknown> | undefined);
    if (ids !== undefined) Object.assign(record, ids);
    try {
      this.logger[level](record, text);
    } catch {
      // A logger that throws must not stop the server.
    }
  }

  /**
   * The context a handler gets. The abort controller and the values map are made on first use: most
   * handlers never touch them, and they are a measurable part of a call's cost. Own getters (not
   * prototype ones) so that `{ ...ctx }` in user code still carries them. `sendHeaders` is the
   * transport's: a unary reply carries the headers with it; a stream sends a `headers` frame.
   */
  private context(
    msg: ConsumeMessage,
    method: MethodDesc,
    deadline: number | undefined,
    sendHeaders: (ctx: HandlerContext, metadata: Metadata | undefined) => void,
  ): { ctx: HandlerContext; abort: (reason: StatusError) => void; values: () => Map<string | symbol, unknown> | undefined } {
    const metadata = headersToMetadata(msg.properties.headers as Record<string, unknown> | undefined);
    const peer = typeof msg.properties.userId === "string" ? msg.properties.userId : undefined;
    let controller: AbortController | undefined;
    let values: Map<string | symbol, unknown> | undefined;
    const ctx: HandlerContext = {
      method,
      transport: "amqp",
      metadata,
      deadline,
      get signal() {
        controller ??= new AbortController();
        return controller.signal;
      },
      responseHeaders: {},
      sendHeaders(extra?: Metadata) {
        sendHeaders(ctx, extra);
      },
      responseMetadata: {},
      peer,
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

  /** The interceptors of a call: while a provider is registered the SERVER span outermost, then the request's ids, then the user's. */
  private chainFor(msg: ConsumeMessage): Interceptor[] | undefined {
    return telemetryActive() ? [this.telemetry, requestIds(msg), ...(this.interceptors ?? [])] : this.interceptors;
  }

  /** The call request interceptors see, over the handler's context. */
  private callRequest(ctx: HandlerContext, input: { message?: unknown; messages?: AsyncIterable<unknown> }): CallRequest {
    return {
      method: ctx.method,
      transport: "amqp",
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
    };
  }

  /** Runs interceptors and handler, racing them against the deadline, the caller's cancellation and shutdown. */
  private invoke(link: ServerLink, msg: ConsumeMessage, entry: MethodEntry, request: unknown, deadline: number | undefined): Promise<void> {
    let headersSent = false;
    const { ctx, abort, values } = this.context(msg, entry.method, deadline, (c, extra) => {
      // One reply carries everything: the headers are sent with it, merged under the trailers.
      if (headersSent) throw new StatusError(Code.FAILED_PRECONDITION, `${entry.method.path}: the response headers were already sent`);
      headersSent = true;
      if (extra) Object.assign(c.responseHeaders, normalizeMetadata(extra));
    });
    const handler = entry.handler!;
    const handlers = this.handlers;
    const callHandler = async (message: unknown): Promise<CallResponse> => {
      const response = await handler.call(handlers, message, ctx);
      return { message: response, metadata: ctx.responseMetadata };
    };
    const interceptors = this.chainFor(msg);
    const start = (): Promise<CallResponse> =>
      runInCallContext(ctx, () => (interceptors ? applyInterceptors((r) => callHandler(r.message), interceptors)(this.callRequest(ctx, { message: request })) : callHandler(request)));
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
        if (response !== undefined) this.replyOk(link, msg, entry.method, headers ? { ...response, metadata: { ...headers, ...response.metadata } } : response);
        else {
          const status = StatusError.from(error);
          this.logFailure(msg, entry.method, values()?.get(TRACE_CONTEXT_VALUE) as Context | undefined, error);
          this.reply(link, msg, entry.method, status.code, status.rawMessage, { ...headers, ...ctx.responseMetadata, ...status.metadata }, EMPTY, status.details);
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
          () => end(new StatusError(Code.DEADLINE_EXCEEDED, `${entry.method.path}: the handler did not finish before the deadline`)),
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

  /**
   * A streaming call: `ready` (our inbox and the client's credit) goes to the client's inbox, the
   * open is acked, and the handler runs with the client's messages as its input (client and bidi)
   * and its output sent as `message` frames under the client's credit; `end` carries the status
   * and trailers. The deadline, the client's `cancel`, its silence or its inbox vanishing, and
   * shutdown abort the handler's signal.
   */
  private async serveStream(link: ServerLink, msg: ConsumeMessage, entry: MethodEntry, deadline: number | undefined): Promise<void> {
    const method = entry.method;
    const props = msg.properties;
    const headers = props.headers as Record<string, unknown> | undefined;
    const id = props.correlationId as string | undefined;
    if (link.inbox === undefined || id === undefined) {
      const why = id === undefined ? "the open has no correlation_id" : `this server cannot serve streams: ${link.inboxProblem ?? "its channel is being replaced"}`;
      this.early(link, msg, method, id === undefined ? Code.INVALID_ARGUMENT : Code.UNAVAILABLE, `${method.path}: ${why}`);
      return;
    }
    if (this.streamCount >= this.maxStreams) {
      this.early(link, msg, method, Code.RESOURCE_EXHAUSTED, `${method.path}: this server already runs ${this.streamCount} streams (maxStreams)`);
      return;
    }
    let request: unknown;
    if (method.kind === "server_streaming") {
      if (msg.content.length > this.maxMessageBytes) {
        this.early(link, msg, method, Code.RESOURCE_EXHAUSTED, `${method.path}: the request is ${msg.content.length} bytes, over the limit of ${this.maxMessageBytes}`);
        return;
      }
      try {
        request = method.input.decode(msg.content);
      } catch (err) {
        this.early(link, msg, method, Code.INVALID_ARGUMENT, `could not decode the request as ${method.input.typeName}: ${messageOf(err)}`);
        return;
      }
    }
    const keepaliveMs = Math.min(MAX_KEEPALIVE_MS, Math.max(MIN_KEEPALIVE_MS, readCount(headers, HEADER_KEEPALIVE) ?? DEFAULT_KEEPALIVE_MS));
    const clientCredit = readCount(headers, HEADER_CREDIT) ?? INITIAL_STREAM_CREDIT;
    const clientInbox = props.replyTo as string;
    const channel = link.channel;
    const route = inboxRoute(channel, clientInbox, id, () => drainOf(channel));
    const takesMessages = method.kind === "client_streaming" || method.kind === "bidi_streaming";
    let finished = false;
    let onBroken: (err: StatusError) => void = () => {};
    const stream = new StreamEnd({
      path: method.path,
      side: "server",
      keepaliveMs,
      window: takesMessages ? this.streamWindow : 0,
      windowBytes: this.streamWindowBytes,
      maxMessageBytes: this.maxMessageBytes,
      receives: method.input,
      sends: method.output,
      decodeCode: Code.INVALID_ARGUMENT,
      onBroken: (err) => onBroken(err),
    });
    let headersSent = false;
    const sendHeaders = (ctx: HandlerContext, extra: Metadata | undefined, explicit: boolean): void => {
      if (headersSent) {
        if (explicit) throw new StatusError(Code.FAILED_PRECONDITION, `${method.path}: the response headers were already sent (explicitly, or with the first message)`);
        return;
      }
      headersSent = true;
      if (extra) Object.assign(ctx.responseHeaders, normalizeMetadata(extra));
      if (!explicit && !hasKeys(ctx.responseHeaders)) return; // nothing to say: no frame
      if (!finished) stream.sendFrame(FRAME.headers, metadataToHeaders(ctx.responseHeaders));
    };
    const { ctx, abort, values } = this.context(msg, method, deadline, (c, extra) => sendHeaders(c, extra, true));

    this.streamCount++;
    return new Promise<void>((done) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: unknown): void => {
        if (finished) return;
        if (timer !== undefined) clearTimeout(timer);
        this.active.delete(end);
        if (this.calls.get(id)?.end === end) this.calls.delete(id);
        const status = err === undefined ? undefined : StatusError.from(err);
        if (status !== undefined) this.logFailure(msg, method, values()?.get(TRACE_CONTEXT_VALUE) as Context | undefined, err);
        try {
          sendHeaders(ctx, undefined, false);
          const trailers = { ...ctx.responseMetadata, ...status?.metadata };
          stream.sendFrame(FRAME.end, statusHeaders(status?.code ?? Code.OK, status?.rawMessage ?? "", trailers, status?.details));
        } catch {
          // The client's inbox or our channel is gone: nobody to tell.
        }
        finished = true;
        stream.close(status);
        this.streamCount--;
        done();
      };
      // Ends the call before the handler does: abort its signal, send the end now.
      const end = (err: StatusError): void => {
        if (finished) return;
        abort(err);
        finish(err);
      };
      onBroken = end;
      this.active.add(end);
      this.calls.set(id, {
        end,
        stream,
        frame: (kind) => {
          if (kind === FRAME.halfClose) stream.inbound.end();
        },
      });
      if (deadline !== undefined) {
        timer = setTimeout(
          () => end(new StatusError(Code.DEADLINE_EXCEEDED, `${method.path}: the stream did not finish before the deadline`)),
          delayUntil(deadline),
        );
      }
      try {
        stream.connect(route, clientCredit);
        stream.sendFrame(FRAME.ready, { [HEADER_CREDIT]: stream.window }, EMPTY, { replyTo: link.inbox });
        channel.ack(msg);
      } catch (err) {
        end(StatusError.from(err, Code.UNAVAILABLE));
        return;
      }
      const handler = entry.handler!;
      const handlers = this.handlers;
      const input = takesMessages ? { messages: stream.inbound as AsyncIterable<unknown> } : { message: request };
      const callHandler = async (req: CallRequest): Promise<CallResponse> => {
        const result = await handler.call(handlers, takesMessages ? req.messages : req.message, ctx);
        return method.kind === "client_streaming" ? { message: result, metadata: ctx.responseMetadata } : { messages: result as AsyncIterable<unknown>, metadata: ctx.responseMetadata };
      };
      const interceptors = this.chainFor(msg);
      const run = async (): Promise<void> => {
        const response = interceptors ? await applyInterceptors(callHandler, interceptors)(this.callRequest(ctx, input)) : await callHandler(this.callRequest(ctx, input));
        if (method.kind === "client_streaming") {
          sendHeaders(ctx, undefined, false);
          await stream.send(response.message);
          return;
        }
        const messages = response.messages;
        if (messages === undefined || typeof (messages as AsyncIterable<unknown>)[Symbol.asyncIterator] !== "function") {
          throw new StatusError(Code.INTERNAL, `${method.path}: the handler did not return an async iterable`);
        }
        for await (const message of messages) {
          if (finished) break;
          sendHeaders(ctx, undefined, false);
          await stream.send(message);
        }
      };
      runInCallContext(ctx, run).then(
        () => finish(undefined),
        (err: unknown) => finish(err),
      );
    });
  }

  private replyOk(link: ServerLink, msg: ConsumeMessage, method: MethodDesc, response: CallResponse): void {
    let body: Buffer;
    try {
      const bytes = method.output.encode(response.message);
      body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      this.reply(link, msg, method, Code.INTERNAL, `could not encode the ${method.output.typeName} response: ${messageOf(err)}`, response.metadata);
      return;
    }
    if (body.length > this.maxMessageBytes) {
      this.reply(link, msg, method, Code.RESOURCE_EXHAUSTED, `${method.path}: the response is ${body.length} bytes, over the limit of ${this.maxMessageBytes}`, response.metadata);
      return;
    }
    this.reply(link, msg, method, Code.OK, "", response.metadata, body);
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
    const headers = statusHeaders(code, message, metadata, details);
    // The answer to a stream's open (refused before it started) is that stream's `end` frame.
    if (readFrame(msg.properties.headers as Record<string, unknown> | undefined) === FRAME.open) headers[HEADER_FRAME] = FRAME.end;
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
      channel.publish("", msg.properties.replyTo as string, body, {
        correlationId: msg.properties.correlationId,
        contentType: CONTENT_TYPE_PROTOBUF,
        ...(code === Code.OK && method ? { type: method.output.typeName } : {}),
        headers: h,
      });
    try {
      try {
        send(headers);
      } catch (err) {
        // Metadata or details amqplib cannot encode (a header table over 64 KB...): the caller still
        // gets the status, without them, rather than waiting for its deadline.
        if (!cannotEncode(err)) throw err;
        const note = `the reply's metadata and error details were dropped: ${messageOf(err)}`;
        send({ [HEADER_STATUS]: code, ...(code !== Code.OK ? { [HEADER_MESSAGE]: `${message} (${note})` } : {}) });
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
    this.logMessage("warn", msg, { reason, reason_kind: "no_reply_to", dead_letter_queue: deadLetterQueueName(this.requestQueue) }, `dead-lettering a request from queue "${this.requestQueue}": ${reason}`);
    const headers = { ...republishableHeaders(p.headers ?? {}), [HEADER_ERROR]: reason, [HEADER_DEAD_LETTERED_AT]: Date.now() };
    // Kept until someone looks: persistent, whatever the request was.
    const options: Options.Publish = { ...copiedProperties(p), headers, deliveryMode: 2 };
    const send = (o: Options.Publish) => this.deadLetters.publish("", deadLetterQueueName(this.requestQueue), msg.content, o, { mandatory: false });
    try {
      try {
        await send(options);
      } catch (err) {
        // Headers amqplib cannot write again (over its 64 KB table...): requeueing would loop on the
        // request forever, so keep it with the reason only.
        if (!cannotEncode(err)) throw err;
        await send({ ...options, headers: { [HEADER_ERROR]: `${reason}; its headers could not be copied and were dropped (${messageOf(err)})` } });
      }
      if (link.alive) link.channel.ack(msg);
    } catch (err) {
      this.report(new Error(`could not dead-letter a request from queue "${this.requestQueue}": ${messageOf(err)}`));
      try {
        if (link.alive) link.channel.nack(msg, false, true);
      } catch {
        // Channel gone: redelivered anyway.
      }
    }
  }

  /** An error with no caller: logged (error, with the queue), then to onError. */
  private report(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      this.logger.error({ queue: this.requestQueue, err: error }, error.message);
    } catch {
      // A logger that throws must not stop the server.
    }
    this.onError?.(error);
  }
}

/**
 * How amqplib refuses properties it cannot write (a header table over 64 KB, a value of no AMQP type);
 * the publisher passes that on as INVALID_ARGUMENT.
 */
function cannotEncode(err: unknown): boolean {
  return err instanceof RangeError || err instanceof TypeError || (err instanceof StatusError && err.code === Code.INVALID_ARGUMENT);
}

/** A reply's or an `end` frame's headers: the trailers, the status, its text and details. */
function statusHeaders(code: Code, message: string, metadata: Metadata | undefined, details: readonly ErrorDetail[] | undefined): Record<string, unknown> {
  const headers = metadataToHeaders(metadata);
  headers[HEADER_STATUS] = code;
  if (code !== Code.OK) headers[HEADER_MESSAGE] = message;
  if (code !== Code.OK && details !== undefined && details.length > 0) {
    headers[HEADER_STATUS_DETAILS] = Buffer.from(encodeRpcStatus({ code, message, details }));
  }
  return headers;
}

/** Resolves when `channel` can take more writes, or has closed. */
function drainOf(channel: Channel): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      channel.off("drain", done);
      channel.off("close", done);
      resolve();
    };
    channel.on("drain", done);
    channel.on("close", done);
  });
}

/** Puts a request's ids on the call's SERVER span (active when this runs, inside the telemetry interceptor). */
function requestIds(msg: ConsumeMessage): Interceptor {
  return (next) => (req) => {
    const span = activeSpan();
    if (span !== undefined && span.isRecording()) {
      const correlationId = msg.properties.correlationId;
      const messageId = msg.properties.messageId;
      if (typeof correlationId === "string") span.setAttribute(ATTR_MESSAGING_MESSAGE_CONVERSATION_ID, correlationId);
      if (typeof messageId === "string") span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, messageId);
      span.setAttribute(ATTR_MESSAGING_MESSAGE_BODY_SIZE, msg.content.length);
    }
    return next(req);
  };
}

