// The server side of RPC over RabbitMQ: consumes a service's request queue, calls the handler
// named by the `rpc-method` header, and publishes the reply to `reply_to`.
//
// Any number of servers (processes or connections) may consume one request queue; RabbitMQ hands
// each request to one of them. A request is acked only after its reply has been published, so a
// server that dies mid-call leaves the request to another server (at-least-once: a handler can run
// twice for one call when a server is lost between doing the work and acking).

import type { Channel, ConsumeMessage, Options } from "amqplib";
import { ChannelKeeper } from "../channel-keeper.js";
import type { AmqpConnection, AmqpSession } from "../connection.js";
import { Publisher } from "../publisher.js";
import { CONTENT_TYPE_PROTOBUF, copiedProperties, HEADER_ERROR, headersToMetadata, metadataToHeaders, republishableHeaders } from "../headers.js";
import type { HandlerContext } from "../../context.js";
import type { MethodDesc, ServiceDesc } from "../../descriptors.js";
import { applyInterceptors, type CallRequest, type CallResponse, type Interceptor } from "../../interceptor.js";
import type { Metadata } from "../../metadata.js";
import { Code, StatusError, type ErrorDetail } from "../../status.js";
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
import { deadLetterQueueName, MAX_TIMEOUT_MS, HEADER_MESSAGE, HEADER_METHOD, HEADER_STATUS, HEADER_STATUS_DETAILS, HEADER_TIMEOUT, readMillis, readText } from "./wire.js";

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
}

interface MethodEntry {
  readonly key: string;
  readonly method: MethodDesc;
  /** Undefined when the service object has no function for the method, or it streams. */
  readonly handler: ((request: unknown, ctx: HandlerContext) => unknown) | undefined;
  readonly unsupported: string | undefined;
}

/** The consuming channel, for the deliveries that came on it (acks must go back on it). */
interface ServerLink {
  readonly session: AmqpSession;
  readonly channel: Channel;
  consumerTag: string | undefined;
  alive: boolean;
}

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
 * - unknown `rpc-method`, or a streaming method: UNIMPLEMENTED;
 * - a body the request type cannot decode: INVALID_ARGUMENT;
 * - no `reply_to`: published to `<requestQueue>.dlq` with header `x-grabbit-error`, then acked;
 * - `rpc-timeout-ms` of 0 or less (already late on arrival): DEADLINE_EXCEEDED without running the
 *   handler (expired requests still queued are dropped by the broker through `expiration`);
 * - a handler still running at the deadline: its `ctx.signal` is aborted and DEADLINE_EXCEEDED is
 *   replied at once;
 * - a handler that throws a StatusError: its code, message and metadata; anything else thrown:
 *   UNKNOWN with the error's message (never its stack).
 * The deadline starts when the request arrives (the caller's clock is never compared with ours).
 * There is no cancellation over the queue: a caller that gives up does not abort the handler.
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
    this.interceptors = options.interceptors && options.interceptors.length > 0 ? options.interceptors : undefined;
    for (const [key, method] of Object.entries(service.methods)) {
      const fn = (handlers as Record<string, unknown>)[key];
      let unsupported: string | undefined;
      if (method.kind !== "unary") unsupported = `${method.path}: streaming is not supported over RabbitMQ`;
      else if (typeof fn !== "function") unsupported = `${method.path} is not implemented by this server`;
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
    const link: ServerLink = { session, channel, consumerTag: undefined, alive: true };
    this.links.set(channel, link);
    this.link = link;
    const ok = await channel.consume(this.requestQueue, (msg) => this.onDelivery(link, msg), { noAck: false });
    link.consumerTag = ok.consumerTag;
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
    const timeoutMs = readMillis(headers?.[HEADER_TIMEOUT]) ?? readMillis(props.expiration);
    if (timeoutMs !== undefined && timeoutMs <= 0) {
      this.early(link, msg, entry.method, Code.DEADLINE_EXCEEDED, `${entry.method.path}: the deadline had passed when the request arrived`);
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
    this.logFailure(msg, method, undefined, new StatusError(code, text));
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

  /** Runs interceptors and handler, racing them against the deadline and shutdown. */
  private invoke(link: ServerLink, msg: ConsumeMessage, entry: MethodEntry, request: unknown, deadline: number | undefined): Promise<void> {
    const metadata = headersToMetadata(msg.properties.headers as Record<string, unknown> | undefined);
    const peer = typeof msg.properties.userId === "string" ? msg.properties.userId : undefined;
    // The abort controller and the values map are made on first use: most handlers never touch
    // them, and they are a measurable part of a call's cost. Own getters (not prototype ones) so
    // that `{ ...ctx }` and `{ ...req }` in user code still carry them.
    let controller: AbortController | undefined;
    let values: Map<string | symbol, unknown> | undefined;
    const ctx: HandlerContext = {
      method: entry.method,
      transport: "amqp",
      metadata,
      deadline,
      get signal() {
        controller ??= new AbortController();
        return controller.signal;
      },
      responseMetadata: {},
      responseHeaders: {},
      sendHeaders() {
        throw new StatusError(Code.UNIMPLEMENTED, "sendHeaders is not wired to RabbitMQ yet");
      },
      peer,
      get values() {
        values ??= new Map();
        return values;
      },
    };
    const abort = (reason: StatusError) => {
      controller ??= new AbortController();
      controller.abort(reason);
    };
    const handler = entry.handler!;
    const handlers = this.handlers;
    const callHandler = async (message: unknown): Promise<CallResponse> => {
      const response = await handler.call(handlers, message, ctx);
      return { message: response, metadata: ctx.responseMetadata };
    };
    // While a provider is registered: the SERVER span outermost (continuing the caller's
    // traceparent; the handler runs inside it), then the request's ids on it, then the user's.
    const interceptors = telemetryActive() ? [this.telemetry, requestIds(msg), ...(this.interceptors ?? [])] : this.interceptors;
    const start = (): Promise<CallResponse> => {
      if (!interceptors) return callHandler(request);
      const req: CallRequest = {
        method: entry.method,
        transport: "amqp",
        side: "server",
        metadata,
        deadline,
        get signal() {
          return ctx.signal;
        },
        message: request,
        get values() {
          return ctx.values;
        },
        peer,
      };
      return applyInterceptors((r) => callHandler(r.message), interceptors)(req);
    };

    return new Promise<void>((done) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (response: CallResponse | undefined, error: unknown): void => {
        if (finished) return;
        finished = true;
        if (timer !== undefined) clearTimeout(timer);
        this.active.delete(end);
        if (response !== undefined) this.replyOk(link, msg, entry.method, response);
        else {
          const status = StatusError.from(error);
          this.logFailure(msg, entry.method, values?.get(TRACE_CONTEXT_VALUE) as Context | undefined, error);
          this.reply(link, msg, entry.method, status.code, status.rawMessage, { ...ctx.responseMetadata, ...status.metadata }, EMPTY, status.details);
        }
        done();
      };
      // Ends the call before the handler does (deadline, shutdown): abort its signal, reply now.
      const end = (err: StatusError): void => {
        if (finished) return;
        abort(err);
        finish(undefined, err);
      };
      this.active.add(end);
      if (deadline !== undefined) {
        timer = setTimeout(
          () => end(new StatusError(Code.DEADLINE_EXCEEDED, `${entry.method.path}: the handler did not finish before the deadline`)),
          Math.min(MAX_TIMEOUT_MS, Math.max(0, deadline - Date.now())),
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
    const headers = metadataToHeaders(metadata);
    headers[HEADER_STATUS] = code;
    if (code !== Code.OK) headers[HEADER_MESSAGE] = message;
    if (code !== Code.OK && details !== undefined && details.length > 0) {
      headers[HEADER_STATUS_DETAILS] = Buffer.from(encodeRpcStatus({ code, message, details }));
    }
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
    const headers = { ...republishableHeaders(p.headers ?? {}), [HEADER_ERROR]: reason };
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

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
