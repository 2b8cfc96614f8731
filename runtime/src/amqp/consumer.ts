// Typed event consumption with manual acks, bounded prefetch and concurrency, delayed retries and a
// dead-letter queue.
//
// Failure handling, per delivery:
// - the handler resolves: the message is acked;
// - the handler throws: a copy goes (with a publisher confirm) to the TTL queue
//   `${queue}.retry.${delayMs}` with `x-grabbit-attempt` incremented, which dead-letters it back to
//   the work queue after the delay; only then is the original acked;
// - after `maxAttempts`, or at once when the handler or an interceptor throws a StatusError with code
//   INVALID_ARGUMENT, FAILED_PRECONDITION, UNAUTHENTICATED or PERMISSION_DENIED (a permanent failure:
//   retrying cannot help), the message goes to the
//   dead-letter queue with body, properties and headers kept, plus `x-grabbit-error` (the reason),
//   `x-grabbit-attempts`, `x-grabbit-original-exchange`, `x-grabbit-original-routing-key` and the
//   times of the first failure and of the dead-lettering (`x-grabbit-first-failed-at`,
//   `x-grabbit-dead-lettered-at`, epoch ms; read back by @grabbit/runtime/dlq);
// - a body that does not decode, an unknown or missing `type`, a content_type other than
//   application/x-protobuf, a body over `maxMessageBytes` or a `user_id` not in `requireUserId` goes
//   straight to the dead-letter queue with the reason.
// If moving a message to a retry or dead-letter queue fails, the original is not acked: the broker
// delivers it again (at-least-once; a consumer may see a message twice, never zero times).

import type { Channel, ConsumeMessage, Options } from "amqplib";
import { runInCallContext } from "../call-context.js";
import type { EventDesc, MethodDesc } from "../descriptors.js";
import {
  applyInterceptors,
  requestMessage,
  type CallRequest,
  type Interceptor,
} from "../interceptor.js";
import type { Metadata } from "../metadata.js";
import { bindingKey } from "../routing.js";
import { Code, StatusError, messageOf } from "../status.js";
import { ChannelKeeper } from "./channel-keeper.js";
import { deliveryCallContext, eventMethod } from "./delivery-call.js";
import type { AmqpConnection } from "./connection.js";
import {
  BROKER_DEATH_HEADERS,
  CONTENT_TYPE_PROTOBUF,
  HEADER_ATTEMPT,
  HEADER_ATTEMPTS,
  HEADER_DEAD_LETTERED_AT,
  HEADER_ERROR,
  HEADER_FIRST_FAILED_AT,
  HEADER_ORIGINAL_EXCHANGE,
  HEADER_ORIGINAL_ROUTING_KEY,
  HEADER_ORIGINAL_USER_ID,
  headerInt,
  copiedProperties,
  headersToMetadata,
  republishableHeaders,
} from "./headers.js";
import { Publisher } from "./publisher.js";
import type { Logger } from "../telemetry/logger.js";
import { logTraceIds, startDelivery, type DeliveryTrace } from "./telemetry.js";
import { metricsEnabled } from "../telemetry/metrics.js";
import { activeTracer } from "../telemetry/otel.js";
import {
  bindEvent,
  declareConsumerQueues,
  declareEventExchange,
  resolveQueueType,
  retryQueueName,
  type QueueType,
} from "./topology.js";

export interface DeliveryContext {
  messageId: string | undefined;
  /** The AMQP `type` property: the message's full name. */
  typeName: string | undefined;
  /** The routing key the event was first published with (also on retried deliveries). */
  routingKey: string;
  /** The exchange the event was first published to. */
  exchange: string;
  metadata: Metadata;
  redelivered: boolean;
  /** 1-based: 1 on the first delivery, 2 on the first retry... */
  attempt: number;
  /** When the event was published, epoch milliseconds (the wire carries seconds). */
  timestamp: number | undefined;
  /**
   * Aborted when the delivery can no longer be acked (its channel or connection lost): the broker
   * will redeliver it. Publishes and calls the handler makes inherit it (docs/call-context.md).
   */
  signal: AbortSignal;
  /**
   * The AMQP `user_id` the broker validated against the publisher's login (kept across retries).
   * Undefined when the publisher did not set it.
   */
  userId: string | undefined;
  /** Values interceptors attached (a verified identity: claimsOf(delivery) with @grabbit/runtime/auth). */
  values: Map<string | symbol, unknown>;
}

export type EventHandler<T> = (event: T, delivery: DeliveryContext) => Promise<void> | void;

export interface EventConsumerOptions {
  /** The work queue, chosen by the consuming service; competing consumers share it. */
  queue: string;
  /** Unacked deliveries the broker sends at once. Default 32. */
  prefetch?: number;
  /** Handlers running at once. Default: prefetch. */
  concurrency?: number;
  retry?: {
    /** Deliveries in all, the first included, before dead-lettering. Default 5. */
    maxAttempts?: number;
    /** Delay before each retry; the last one repeats. Default [1000, 5000, 30000]. */
    delaysMs?: number[];
  };
  /** "auto" (default) = quorum where the broker supports it. Retry and dead-letter queues use the same type. */
  queueType?: "auto" | QueueType;
  /** Default `${queue}.dlq`. */
  deadLetterQueue?: string;
  /** Declare every queue with x-expires (temporary consumers and tests): deleted after this long unused. */
  queueExpiresMs?: number;
  /**
   * Quorum queues only: after this many deliveries of one message (broker redeliveries after a
   * crash or a lost connection included) the broker moves it to the DLQ itself. A guard against
   * messages that kill the consumer process before it can dead-letter them. Default: no limit.
   */
  deliveryLimit?: number;
  /**
   * Server interceptors around every handler (transport "amqp", side "server"): the request's
   * metadata are the headers, `message` the decoded event, `peer` the user_id, `method.path`
   * "event:<full type name>". A StatusError they throw counts as the handler's (see the codes above:
   * UNAUTHENTICATED from an auth interceptor dead-letters at once with the reason).
   */
  interceptors?: Interceptor[];
  /**
   * Accept only events whose `user_id` (validated by the broker against the publisher's login) is
   * one of these; others, user_id-less ones included, are dead-lettered. Only a copy that came back
   * through the default exchange (our own retry path, which publishers without rights on
   * `amq.default` cannot use) may carry the original user_id in a header.
   */
  requireUserId?: string | string[];
  /** Bodies larger than this are dead-lettered undecoded. Default: no limit (the broker's max_message_size). */
  maxMessageBytes?: number;
  /** Called when a handler fails (the message is retried or dead-lettered anyway); for logging. */
  onHandlerError?: (err: unknown, delivery: DeliveryContext) => void;
  /** Errors with no caller to report to (a failed re-subscription, a failed move to the DLQ). Default: the connection's reportError. */
  onError?: (err: Error) => void;
  /**
   * Where handler failures (warn, per failed attempt), dead-lettered messages (warn) and errors with
   * no caller (error) are logged, with queue, message id and trace id. Default: the connection's logger.
   */
  logger?: Logger;
}

/** Why a message was dead-lettered, as grabbit.reason (low cardinality; the text says more). */
type DeadLetterReason =
  | "user_id"
  | "too_large"
  | "content_type"
  | "unknown_type"
  | "undecodable"
  | "permanent_error"
  | "retries_exhausted";

interface Registration {
  event: EventDesc;
  handler: EventHandler<any>;
  /** Routing placeholders a headers exchange sends as headers: not user metadata. */
  routingHeaders: ReadonlySet<string>;
  /** What interceptors see as the call's method. */
  method: MethodDesc;
}

/** Handler errors that no retry can fix. */
const PERMANENT = new Set<Code>([
  Code.INVALID_ARGUMENT,
  Code.FAILED_PRECONDITION,
  Code.UNAUTHENTICATED,
  Code.PERMISSION_DENIED,
]);

const DEFAULT_DELAYS = [1000, 5000, 30000];

export class EventConsumer {
  readonly queue: string;
  readonly deadLetterQueue: string;
  private readonly prefetch: number;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly delaysMs: number[];
  private readonly registrations = new Map<string, Registration>();
  private readonly bindings: { event: EventDesc; filter: Record<string, unknown> | undefined }[] =
    [];
  private keeper: ChannelKeeper<Channel> | undefined;
  private consumerTag: string | undefined;
  /** Aborted when its channel closes: handlers of deliveries from it learn they will be redelivered. */
  private readonly channelAborts = new WeakMap<Channel, AbortController>();
  private retryPublisher: Publisher | undefined;
  private untrack: (() => void) | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private stopped = false;
  /** Deliveries received while `concurrency` handlers were busy. */
  private readonly backlog: { msg: ConsumeMessage; ch: Channel; signal: AbortSignal }[] = [];
  private running = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private queueType: QueueType | undefined;
  private readonly logger: Logger;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly options: EventConsumerOptions,
  ) {
    if (!options.queue) throw new TypeError("EventConsumer needs a queue name");
    this.queue = options.queue;
    this.logger = options.logger ?? connection.logger;
    this.deadLetterQueue = options.deadLetterQueue ?? `${options.queue}.dlq`;
    this.prefetch = Math.max(1, options.prefetch ?? 32);
    this.concurrency = Math.max(1, options.concurrency ?? this.prefetch);
    this.maxAttempts = Math.max(1, options.retry?.maxAttempts ?? 5);
    const delays = options.retry?.delaysMs ?? DEFAULT_DELAYS;
    this.delaysMs = (delays.length > 0 ? delays : DEFAULT_DELAYS).map((d) =>
      Math.max(1, Math.floor(d)),
    );
  }

  /** The queue type in use once started. */
  get type(): QueueType | undefined {
    return this.queueType;
  }

  /**
   * Handles one event type on this queue (several types may share it: dispatch is by the AMQP `type`
   * property). `filter` gives values for routing placeholders; call again with another filter to bind
   * more keys for the same type (with the same handler).
   */
  on<T>(event: EventDesc<T>, handler: EventHandler<T>, filter?: Record<string, unknown>): this {
    if (this.starting) throw new Error("EventConsumer.on() must be called before start()");
    // Fail here, not at start(): a direct exchange needs every placeholder in the filter.
    if (event.exchangeKind === "topic" || event.exchangeKind === "direct")
      bindingKey(event, filter ?? {});
    const name = event.type.typeName;
    const existing = this.registrations.get(name);
    if (existing && existing.handler !== handler)
      throw new Error(
        `a different handler is already registered for ${name} on queue "${this.queue}"`,
      );
    this.registrations.set(name, {
      event,
      handler,
      routingHeaders: new Set(
        event.exchangeKind === "headers" ? event.routingFields.map((f) => f.toLowerCase()) : [],
      ),
      method: eventMethod(event),
    });
    this.bindings.push({ event, filter });
    return this;
  }

  /** Declares exchanges, queues and bindings and starts consuming; all again after every reconnect. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error("the consumer was stopped"));
    this.starting ??= this.doStart().catch(async (err) => {
      // Leave nothing behind that would retry on the next session; start() may be called again.
      await this.keeper?.close();
      this.keeper = undefined;
      this.untrack?.();
      await this.retryPublisher?.close();
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    if (this.registrations.size === 0)
      throw new Error(`EventConsumer on "${this.queue}" has no handlers: call on() first`);
    this.retryPublisher = new Publisher(this.connection, {
      maxInFlight: Math.max(this.prefetch, 16),
      track: false,
      logger: this.logger,
    });
    this.keeper = new ChannelKeeper<Channel>(this.connection, {
      owner: `consumer of queue "${this.queue}"`,
      confirm: false,
      setup: (ch) => this.subscribe(ch),
      onLost: (ch) => this.onChannelClosed(ch),
      onError: (err) =>
        this.reportError(toStatus(err, `cannot subscribe to queue "${this.queue}"`)),
    });
    this.untrack = this.connection.track({ close: () => this.stop() });
    try {
      // A session lost mid-setup is retried on the next one; a refusal from a live broker is the caller's.
      await this.keeper.startOrFail();
    } catch (err) {
      throw toStatus(err, `cannot subscribe to queue "${this.queue}"`);
    }
  }

  /**
   * Stops handing out deliveries, waits for the running handlers and their acks (or moves to a retry
   * or dead-letter queue), then cancels the subscription and closes the channel: deliveries not
   * started go back to the queue unhandled, with the channel.
   */
  close(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  /** @deprecated Renamed `close()` (one shutdown verb across the runtime); this name goes in the next release. */
  stop(): Promise<void> {
    return this.close();
  }

  private async drainAndClose(): Promise<void> {
    // The order matters. RabbitMQ 3.10 quorum queues do not reliably honour an ack that follows the
    // basic.cancel of the consumer it was delivered to when the channel closes soon after (measured:
    // 200 acks sent after the cancel, the channel closed at once, 166 of them came back as
    // redeliveries; sent before the cancel, none did). So: no new handler starts from here
    // (onDelivery and run hold what arrives), the running ones finish and ack, and only then is the
    // consumer cancelled. What is held is not nacked (the broker would deliver it straight back to
    // this still-subscribed consumer, and a quorum queue counts a nack as a failed delivery); it is
    // returned when the channel closes. At most `prefetch` deliveries are held: the broker sends no
    // more while they are unacked.
    this.stopped = true;
    this.untrack?.();
    if (this.running > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const ch = this.keeper?.current;
    const tag = this.consumerTag;
    if (ch && tag) await ch.cancel(tag).catch(() => undefined);
    this.backlog.splice(0);
    await this.retryPublisher?.close();
    await this.keeper?.close();
  }

  /** Declares the topology and consumes on `ch` (the keeper's; run again for every new one). */
  private async subscribe(ch: Channel): Promise<void> {
    const type = resolveQueueType(this.connection, this.options.queueType);
    this.queueType = type;
    const seen = new Set<string>();
    for (const { event } of this.bindings) {
      if (seen.has(event.exchange)) continue;
      seen.add(event.exchange);
      await declareEventExchange(ch, event);
    }
    await declareConsumerQueues(ch, {
      queue: this.queue,
      type,
      deadLetterQueue: this.deadLetterQueue,
      retryDelaysMs: this.delaysMs,
      ...(this.options.queueExpiresMs !== undefined
        ? { expiresMs: this.options.queueExpiresMs }
        : {}),
      ...(this.options.deliveryLimit !== undefined
        ? { deliveryLimit: this.options.deliveryLimit }
        : {}),
    });
    for (const { event, filter } of this.bindings) await bindEvent(ch, this.queue, event, filter);
    await ch.prefetch(this.prefetch);
    if (this.stopped) return;
    const abort = new AbortController();
    this.channelAborts.set(ch, abort);
    const reply = await ch.consume(this.queue, (msg) => this.onDelivery(ch, msg, abort.signal), {
      noAck: false,
    });
    this.consumerTag = reply.consumerTag;
  }

  private onChannelClosed(ch: Channel): void {
    // Unacked deliveries on this channel go back to the queue: tell their handlers.
    this.channelAborts
      .get(ch)
      ?.abort(
        new StatusError(Code.UNAVAILABLE, "the channel closed; the message will be redelivered"),
      );
    for (let i = this.backlog.length - 1; i >= 0; i--)
      if (this.backlog[i]!.ch === ch) this.backlog.splice(i, 1);
    // The keeper subscribes again: on this session if it lives, else on the next one.
    if (this.keeper?.current === undefined) this.consumerTag = undefined;
  }

  private onDelivery(ch: Channel, msg: ConsumeMessage | null, signal: AbortSignal): void {
    if (msg === null) {
      // The broker cancelled us (queue deleted or a quorum leader moved): subscribe again.
      if (!this.stopped)
        this.keeper?.replace(
          ch,
          new Error(`the broker cancelled the consumer of queue "${this.queue}"`),
        );
      return;
    }
    // Stopping: held unacked, returned to the queue when stop() closes the channel.
    if (this.stopped) return;
    if (this.running >= this.concurrency) {
      this.backlog.push({ msg, ch, signal });
      return;
    }
    this.run(msg, ch, signal);
  }

  private run(msg: ConsumeMessage, ch: Channel, signal: AbortSignal): void {
    this.running++;
    let done: Promise<void>;
    try {
      done = this.handle(msg, ch, signal);
    } catch (err) {
      done = Promise.reject(err);
    }
    // One reaction per delivery, both callbacks made once (not a .catch().finally() pair per message).
    done.then(this.afterHandle, this.afterHandleFailed);
  }

  private readonly afterHandle = (): void => {
    this.running--;
    // Stopping: the backlog stays unhandled (stop() hands it back with the channel).
    const next = this.stopped ? undefined : this.backlog.shift();
    if (next) this.run(next.msg, next.ch, next.signal);
    else if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
  };

  private readonly afterHandleFailed = (err: unknown): void => {
    try {
      this.reportError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.afterHandle();
    }
  };

  private handle(msg: ConsumeMessage, ch: Channel, signal: AbortSignal): Promise<void> {
    const props = msg.properties;
    const headers = (props.headers ?? {}) as Record<string, unknown>;
    const attempt = headerInt(headers, HEADER_ATTEMPT) ?? 1;
    // Telemetry off (no tracer, no meter provider): nothing to describe the delivery to.
    if (activeTracer() === undefined && !metricsEnabled())
      return this.process(msg, ch, signal, headers, attempt, undefined);
    return this.traced(msg, ch, signal, headers, attempt);
  }

  private async traced(
    msg: ConsumeMessage,
    ch: Channel,
    signal: AbortSignal,
    headers: Record<string, unknown>,
    attempt: number,
  ): Promise<void> {
    const props = msg.properties;
    // A process span per attempt (child of the producer's context) and the consume metrics, while registered.
    const trace = startDelivery({
      queue: this.queue,
      routingKey: stringHeader(headers, HEADER_ORIGINAL_ROUTING_KEY) ?? msg.fields.routingKey,
      messageId: typeof props.messageId === "string" ? props.messageId : undefined,
      correlationId: typeof props.correlationId === "string" ? props.correlationId : undefined,
      deliveryTag: msg.fields.deliveryTag,
      bodySize: msg.content.length,
      attempt,
      headers,
    });
    if (trace === undefined) return this.process(msg, ch, signal, headers, attempt, undefined);
    try {
      await trace.run(() => this.process(msg, ch, signal, headers, attempt, trace));
    } finally {
      trace.end();
    }
  }

  private async process(
    msg: ConsumeMessage,
    ch: Channel,
    signal: AbortSignal,
    headers: Record<string, unknown>,
    attempt: number,
    trace: DeliveryTrace | undefined,
  ): Promise<void> {
    const props = msg.properties;
    // Our retry copies come back through the default exchange and carry the user_id in a header.
    const userId =
      typeof props.userId === "string"
        ? props.userId
        : msg.fields.exchange === ""
          ? stringHeader(headers, HEADER_ORIGINAL_USER_ID)
          : undefined;
    const allowed = this.options.requireUserId;
    if (
      allowed !== undefined &&
      (userId === undefined || !(Array.isArray(allowed) ? allowed : [allowed]).includes(userId))
    ) {
      return this.deadLetter(
        msg,
        ch,
        userId === undefined
          ? "the message has no user_id and this consumer requires one"
          : `user_id ${JSON.stringify(userId)} may not publish to this consumer`,
        attempt,
        "user_id",
        trace,
      );
    }
    const max = this.options.maxMessageBytes;
    if (max !== undefined && msg.content.length > max) {
      return this.deadLetter(
        msg,
        ch,
        `the message body is ${msg.content.length} bytes, over the limit of ${max} (maxMessageBytes)`,
        attempt,
        "too_large",
        trace,
      );
    }
    if (props.contentType !== CONTENT_TYPE_PROTOBUF) {
      return this.deadLetter(
        msg,
        ch,
        `unsupported content_type ${JSON.stringify(props.contentType ?? null)} (expected ${CONTENT_TYPE_PROTOBUF})`,
        attempt,
        "content_type",
        trace,
      );
    }
    const typeName = typeof props.type === "string" ? props.type : undefined;
    const reg = typeName ? this.registrations.get(typeName) : undefined;
    if (!reg) {
      return this.deadLetter(
        msg,
        ch,
        typeName
          ? `no handler for message type ${typeName} on queue ${this.queue}`
          : "the message has no type property",
        attempt,
        "unknown_type",
        trace,
      );
    }
    let event: unknown;
    try {
      event = reg.event.type.decode(msg.content);
    } catch (err) {
      return this.deadLetter(
        msg,
        ch,
        `cannot decode ${typeName}: ${messageOf(err)}`,
        attempt,
        "undecodable",
        trace,
      );
    }
    const delivery: DeliveryContext = {
      messageId: typeof props.messageId === "string" ? props.messageId : undefined,
      typeName,
      routingKey: stringHeader(headers, HEADER_ORIGINAL_ROUTING_KEY) ?? msg.fields.routingKey,
      exchange: stringHeader(headers, HEADER_ORIGINAL_EXCHANGE) ?? msg.fields.exchange,
      metadata: headersToMetadata(headers, reg.routingHeaders),
      redelivered: msg.fields.redelivered,
      attempt,
      timestamp: typeof props.timestamp === "number" ? props.timestamp * 1000 : undefined,
      signal,
      userId,
      values: new Map(),
    };
    trace?.handlerStarted();
    try {
      // The handler serves this event as a server serves a call: what it publishes or calls on
      // the way carries the event's authorization and trace headers, and stops with its signal.
      await runInCallContext(deliveryCallContext(reg.method, delivery), () =>
        this.invoke(reg, event, delivery, signal, userId),
      );
    } catch (err) {
      trace?.handlerFinished(err);
      safe(() => this.options.onHandlerError?.(err, delivery));
      const reason = messageOf(err);
      const permanent = err instanceof StatusError && PERMANENT.has(err.code);
      const final = permanent || attempt >= this.maxAttempts;
      this.log(
        "warn",
        msg,
        headers,
        trace,
        { attempt, max_attempts: this.maxAttempts, type: typeName, err },
        `handler failed on queue "${this.queue}" (attempt ${attempt} of ${this.maxAttempts}${final ? "" : ", will be retried"}): ${reason}`,
      );
      if (final) {
        return this.deadLetter(
          msg,
          ch,
          permanent ? reason : `${reason} (gave up after ${attempt} attempts)`,
          attempt,
          permanent ? "permanent_error" : "retries_exhausted",
          trace,
        );
      }
      return this.retry(msg, ch, attempt, err, trace);
    }
    trace?.handlerFinished();
    trace?.acked();
    safe(() => ch.ack(msg));
  }

  /** The handler, behind the server interceptors when there are any. */
  private async invoke(
    reg: Registration,
    event: unknown,
    delivery: DeliveryContext,
    signal: AbortSignal,
    userId: string | undefined,
  ): Promise<void> {
    const interceptors = this.options.interceptors;
    if (!interceptors || interceptors.length === 0) return reg.handler(event, delivery);
    const req: CallRequest = {
      method: reg.method,
      transport: "amqp",
      side: "server",
      metadata: delivery.metadata,
      deadline: undefined,
      signal,
      stream: false,
      message: event,
      values: delivery.values,
      peer: userId,
    };
    await applyInterceptors(async (r) => {
      // An interceptor may pass on other metadata or a changed message; the handler sees those.
      delivery.metadata = r.metadata;
      await reg.handler(requestMessage(r), delivery);
      return { stream: false, message: undefined, metadata: {} };
    }, interceptors)(req);
  }

  private async retry(
    msg: ConsumeMessage,
    ch: Channel,
    attempt: number,
    err: unknown,
    trace: DeliveryTrace | undefined,
  ): Promise<void> {
    const delay = this.delaysMs[Math.min(attempt - 1, this.delaysMs.length - 1)]!;
    trace?.retry(err, attempt + 1, delay);
    const props = copyProperties(msg);
    props.headers[HEADER_ATTEMPT] = attempt + 1;
    props.headers[HEADER_FIRST_FAILED_AT] ??= Date.now();
    await this.move(msg, ch, retryQueueName(this.queue, delay), props, trace);
  }

  private async deadLetter(
    msg: ConsumeMessage,
    ch: Channel,
    reason: string,
    attempt: number,
    kind: DeadLetterReason,
    trace: DeliveryTrace | undefined,
  ): Promise<void> {
    trace?.deadLetter(kind, reason, this.deadLetterQueue);
    const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
    this.log(
      "warn",
      msg,
      headers,
      trace,
      { reason, reason_kind: kind, attempts: attempt, dead_letter_queue: this.deadLetterQueue },
      `dead-lettering a message from queue "${this.queue}" to "${this.deadLetterQueue}": ${reason}`,
    );
    const props = copyProperties(msg);
    props.headers[HEADER_ERROR] = reason;
    props.headers[HEADER_ATTEMPTS] = attempt;
    const now = Date.now();
    props.headers[HEADER_FIRST_FAILED_AT] ??= now;
    props.headers[HEADER_DEAD_LETTERED_AT] = now;
    await this.move(msg, ch, this.deadLetterQueue, props, trace);
  }

  /** One log line about a message: queue, message id, trace ids, and `fields`. */
  private log(
    level: "warn" | "error",
    msg: ConsumeMessage,
    headers: Record<string, unknown>,
    trace: DeliveryTrace | undefined,
    fields: Record<string, unknown>,
    text: string,
  ): void {
    const messageId = msg.properties.messageId;
    const record: Record<string, unknown> = {
      queue: this.queue,
      message_id: typeof messageId === "string" ? messageId : undefined,
      ...fields,
    };
    const ids = logTraceIds(headers, trace?.ctx);
    if (ids !== undefined) Object.assign(record, ids);
    try {
      this.logger[level](record, text);
    } catch {
      // A logger that throws must not stop the consumer.
    }
  }

  // Copy first (confirmed), ack second: a crash between the two duplicates, never loses.
  private async move(
    msg: ConsumeMessage,
    ch: Channel,
    queue: string,
    props: Options.Publish & { headers: Record<string, unknown> },
    trace: DeliveryTrace | undefined,
    bare = false,
  ): Promise<void> {
    try {
      await this.retryPublisher!.publish("", queue, msg.content, props, { mandatory: true });
    } catch (err) {
      if (!bare && err instanceof StatusError && err.code === Code.INVALID_ARGUMENT) {
        // The copy cannot be encoded (headers amqplib cannot write, or over its 64 KB table): requeueing
        // would loop on it forever, so keep it in the DLQ with grabbit's headers only.
        const headers: Record<string, unknown> = {
          [HEADER_ERROR]: `${typeof props.headers[HEADER_ERROR] === "string" ? `${props.headers[HEADER_ERROR]}; ` : ""}its headers could not be copied and were dropped (${err.rawMessage})`,
          [HEADER_ATTEMPTS]:
            props.headers[HEADER_ATTEMPTS] ?? headerInt(props.headers, HEADER_ATTEMPT) ?? 1,
          [HEADER_ORIGINAL_EXCHANGE]:
            stringHeader(props.headers, HEADER_ORIGINAL_EXCHANGE) ?? msg.fields.exchange,
          [HEADER_ORIGINAL_ROUTING_KEY]:
            stringHeader(props.headers, HEADER_ORIGINAL_ROUTING_KEY) ?? msg.fields.routingKey,
        };
        return this.move(msg, ch, this.deadLetterQueue, { ...props, headers }, trace, true);
      }
      safe(() => ch.nack(msg, false, true));
      trace?.requeued(err);
      const error = new StatusError(
        Code.UNAVAILABLE,
        `could not move a message from "${this.queue}" to "${queue}": ${messageOf(err)}`,
        { cause: err },
      );
      this.log(
        "error",
        msg,
        (msg.properties.headers ?? {}) as Record<string, unknown>,
        trace,
        { err: error, to: queue },
        `${error.message}; it goes back to the queue`,
      );
      this.notify(error);
      return;
    }
    safe(() => ch.ack(msg));
  }

  /** An error with no caller: logged (error, with the queue), then to onError or the connection's listeners. */
  private reportError(err: Error): void {
    try {
      this.logger.error({ queue: this.queue, err }, err.message);
    } catch {
      // A logger that throws must not stop the consumer.
    }
    this.notify(err);
  }

  private notify(err: Error): void {
    if (this.options.onError) safe(() => this.options.onError!(err));
    else this.connection.notifyError(err);
  }
}

function toStatus(err: unknown, context: string): StatusError {
  if (err instanceof StatusError) return err;
  const text = messageOf(err);
  const code = /PRECONDITION_FAILED/.test(text)
    ? Code.FAILED_PRECONDITION
    : /NOT_FOUND/.test(text)
      ? Code.NOT_FOUND
      : /ACCESS_REFUSED/.test(text)
        ? Code.PERMISSION_DENIED
        : Code.UNAVAILABLE;
  return new StatusError(code, `${context}: ${text}`, { cause: err });
}

function stringHeader(headers: Record<string, unknown>, name: string): string | undefined {
  const v = headers[name];
  return typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
}

/** The message's properties for a copy: everything kept but per-message TTL and broker death records. */
function copyProperties(
  msg: ConsumeMessage,
): Options.Publish & { headers: Record<string, unknown> } {
  const p = msg.properties;
  const headers: Record<string, unknown> = republishableHeaders(p.headers ?? {});
  for (const h of BROKER_DEATH_HEADERS) delete headers[h];
  // Where it was first published, so retried deliveries still report it and the DLQ keeps it.
  headers[HEADER_ORIGINAL_EXCHANGE] ??= msg.fields.exchange;
  headers[HEADER_ORIGINAL_ROUTING_KEY] ??= msg.fields.routingKey;
  // user_id itself cannot be copied (the broker checks it against our login): keep it as a header.
  if (typeof p.userId === "string") headers[HEADER_ORIGINAL_USER_ID] = p.userId;
  else if (msg.fields.exchange !== "") delete headers[HEADER_ORIGINAL_USER_ID]; // set by the publisher, not by us
  return { ...copiedProperties(p), headers };
}

function safe(f: () => void): void {
  try {
    f();
  } catch {
    // The channel is gone: the broker redelivers what was not acked.
  }
}
