// Typed event publishing: one EventPublisher per event type, on a (possibly shared) Publisher.

import { randomUUID } from "node:crypto";
import type { Options } from "amqplib";
import { inheritCallOptions } from "../call-context.js";
import type { EventDesc, MethodDesc } from "../descriptors.js";
import {
  applyInterceptors,
  requestMessage,
  type CallRequest,
  type Interceptor,
} from "../interceptor.js";
import type { Metadata } from "../metadata.js";
import { renderRoutingKey } from "../routing.js";
import { Code, StatusError, messageOf } from "../status.js";
import type { AmqpConnection, AmqpSession } from "./connection.js";
import { CONTENT_TYPE_PROTOBUF, metadataToHeaders } from "./headers.js";
import {
  type OutgoingMessage,
  Publisher,
  PublishManyError,
  type RawPublishOptions,
} from "./publisher.js";
import { startPublish } from "./telemetry.js";
import { declareEventExchange } from "./topology.js";

const MANDATORY = { mandatory: true } as const;
const NEVER = new AbortController().signal;

export interface PublishOptions {
  /** Default: a new UUID. Give your own to make re-publishing idempotent for consumers. */
  messageId?: string;
  /** Sent as headers of the same names (reserved names are skipped). */
  metadata?: Metadata;
  timeoutMs?: number;
  /**
   * Absolute deadline (epoch ms or Date) for the broker's confirm; the earlier of this and timeoutMs
   * wins. One already past refuses the event unsent (DEADLINE_EXCEEDED).
   */
  deadline?: number | Date;
  /** Overrides the event's declared persistence. */
  persistent?: boolean;
  /** Per-message TTL. */
  expirationMs?: number;
  priority?: number;
  /** Aborting stops the wait for the confirm: the publish fails with CANCELLED (or the signal's reason). */
  signal?: AbortSignal;
  /**
   * Inside a handler (a served RPC or a consumed event), a publish inherits the served call's
   * deadline, cancellation and `authorization`, `traceparent`, `tracestate` and `baggage` headers
   * that `metadata` does not set (docs/call-context.md). `false` publishes with these options only.
   */
  inherit?: boolean;
}

export interface PublishManyOptions extends Omit<PublishOptions, "messageId"> {
  /** One per event, in order (default: new UUIDs). Re-publishing with the same ids lets consumers drop the copies. */
  messageIds?: readonly string[];
}

export interface EventPublisherOptions {
  /** Declare the event's exchange (durable, of its kind) on every session. Default true. */
  declareExchange?: boolean;
  timeoutMs?: number;
  /** Share one confirm channel and window between several event publishers. */
  publisher?: Publisher;
  /**
   * Client interceptors (transport "amqp", side "client", `method.path` "event:<full type name>",
   * `message` the event): they may add metadata, such as `authorization` with bearerToken().
   */
  interceptors?: Interceptor[];
  /**
   * Sent as the AMQP `user_id`: the broker refuses the publish (PERMISSION_DENIED) unless it equals
   * the connection's user, so consumers can trust it (EventConsumerOptions.requireUserId).
   */
  userId?: string;
  /** Encoded events larger than this are refused with RESOURCE_EXHAUSTED, never sent. Default: no limit. */
  maxMessageBytes?: number;
}

/**
 * Publishes one event type per the wire contract: to its exchange with the rendered routing key,
 * mandatory, content_type application/x-protobuf, type = full message name, message_id, timestamp
 * (seconds), delivery_mode 2 unless transient, metadata as headers. On a headers exchange the
 * routing placeholders are sent as headers too.
 */
export class EventPublisher<T> {
  private readonly publisher: Publisher;
  private readonly ownsPublisher: boolean;
  private readonly timeoutMs: number | undefined;
  private declared = false;
  private declaring: Promise<void> | undefined;
  private readonly unregister: (() => void) | undefined;
  private readonly interceptors: Interceptor[] | undefined;
  private readonly method: MethodDesc;
  private readonly userId: string | undefined;
  private readonly maxMessageBytes: number;

  constructor(
    private readonly connection: AmqpConnection,
    readonly event: EventDesc<T>,
    options: EventPublisherOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs;
    this.userId = options.userId;
    this.maxMessageBytes = options.maxMessageBytes ?? Infinity;
    const typeName = event.type.typeName;
    this.method = {
      name: typeName.slice(typeName.lastIndexOf(".") + 1),
      path: `event:${typeName}`,
      kind: "unary",
      input: event.type,
      output: event.type,
      idempotent: false,
    };
    this.interceptors =
      options.interceptors && options.interceptors.length > 0 ? options.interceptors : undefined;
    this.ownsPublisher = options.publisher === undefined;
    this.publisher =
      options.publisher ??
      new Publisher(
        connection,
        options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {},
      );
    if (options.declareExchange ?? true) {
      this.unregister = connection.onSession((session) => this.declare(session));
    } else {
      this.declared = true;
    }
  }

  // Not async: the hot path hands back the Publisher's own promise, with no extra promise or
  // microtask per message.
  publish(event: T, options: PublishOptions = {}): Promise<void> {
    // Outside a handler this is `options` itself: nothing is copied on the hot path.
    options = inheritCallOptions(options) as PublishOptions;
    if (!this.interceptors) return this.send(event, options, options.metadata);
    return this.intercepted(event, options);
  }

  /**
   * Publishes a batch of events under one promise: it resolves once the broker has confirmed every
   * one, and otherwise rejects with a PublishManyError (which failed and why) once each has settled.
   * Each event gets what publish() gives it (its own message_id, routing key, a re-send on a new
   * channel until confirmed); `options` apply to each. An event that does not encode, or is over
   * maxMessageBytes, refuses the whole batch before any is sent. With interceptors, each event goes
   * through them as its own publish.
   */
  publishMany(events: readonly T[], options: PublishManyOptions = {}): Promise<void> {
    if (options.messageIds !== undefined && options.messageIds.length !== events.length) {
      return Promise.reject(
        new StatusError(
          Code.INVALID_ARGUMENT,
          `messageIds has ${options.messageIds.length} ids for ${events.length} events; no event was sent`,
        ),
      );
    }
    if (events.length === 0) return Promise.resolve();
    options = inheritCallOptions(options) as PublishManyOptions;
    if (!this.interceptors) return this.sendMany(events, options);
    const ids = options.messageIds;
    return Promise.allSettled(
      events.map((event, i) =>
        this.intercepted(event, ids ? { ...options, messageId: ids[i] } : options),
      ),
    ).then((outcomes) => {
      const errors = outcomes.map((o) =>
        o.status === "rejected"
          ? o.reason instanceof Error
            ? o.reason
            : new Error(String(o.reason))
          : undefined,
      );
      const failed = errors.filter((e) => e !== undefined).length;
      if (failed > 0) throw new PublishManyError(errors, failed);
    });
  }

  private intercepted(event: T, options: PublishOptions): Promise<void> {
    const req: CallRequest = {
      method: this.method,
      transport: "amqp",
      side: "client",
      metadata: { ...options.metadata },
      deadline: epochMs(options.deadline),
      signal: options.signal ?? NEVER,
      stream: false,
      message: event,
      values: new Map(),
      peer: undefined,
    };
    return applyInterceptors(async (r) => {
      await this.send(requestMessage(r) as T, options, r.metadata);
      return { stream: false, message: undefined, metadata: {} };
    }, this.interceptors!)(req).then(() => undefined);
  }

  private send(event: T, options: PublishOptions, metadata: Metadata | undefined): Promise<void> {
    // Publishing before the first declaration finished would hit a missing exchange.
    if (!this.declared)
      return this.ensureDeclared(options).then(() => this.send(event, options, metadata));
    let m: OutgoingMessage;
    try {
      m = this.outgoing(event, options, metadata, options.messageId);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const deadline = epochMs(options.deadline);
    if (
      m.settled === undefined &&
      timeoutMs === undefined &&
      deadline === undefined &&
      !options.signal
    )
      return this.publisher.publish(m.exchange, m.routingKey, m.content, m.properties, MANDATORY);
    const raw: RawPublishOptions = { mandatory: true, timeoutMs, deadline, signal: options.signal };
    // The trace ends as the publisher settles the message: no promise of its own per publish.
    if (m.settled !== undefined) raw.settled = m.settled;
    return this.publisher.publish(m.exchange, m.routingKey, m.content, m.properties, raw);
  }

  private sendMany(events: readonly T[], options: PublishManyOptions): Promise<void> {
    if (!this.declared)
      return this.ensureDeclared(options).then(() => this.sendMany(events, options));
    const messages: OutgoingMessage[] = [];
    for (let i = 0; i < events.length; i++) {
      try {
        messages.push(
          this.outgoing(events[i]!, options, options.metadata, options.messageIds?.[i]),
        );
      } catch (err) {
        const refused = new StatusError(
          err instanceof StatusError ? err.code : Code.INVALID_ARGUMENT,
          `event ${i} of the batch: ${messageOf(err)}; no event of the batch was sent`,
          { cause: err },
        );
        for (const m of messages) m.settled?.end(refused);
        return Promise.reject(refused);
      }
    }
    return this.publisher.publishMany(messages, {
      mandatory: true,
      timeoutMs: options.timeoutMs ?? this.timeoutMs,
      deadline: epochMs(options.deadline),
      signal: options.signal,
    });
  }

  /** The event as the wire contract sends it; throws a StatusError when it cannot be sent. */
  private outgoing(
    event: T,
    options: PublishOptions,
    metadata: Metadata | undefined,
    messageId: string = randomUUID(),
  ): OutgoingMessage {
    const desc = this.event;
    let content: Uint8Array;
    try {
      content = desc.type.encode(event);
    } catch (err) {
      throw StatusError.from(err, Code.INVALID_ARGUMENT);
    }
    if (content.byteLength > this.maxMessageBytes) {
      throw new StatusError(
        Code.RESOURCE_EXHAUSTED,
        `the encoded ${desc.type.typeName} is ${content.byteLength} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes)`,
      );
    }
    let headers: Record<string, unknown> | undefined;
    if (metadata) headers = metadataToHeaders(metadata);
    if (desc.exchangeKind === "headers" && desc.routingFields.length > 0) {
      headers ??= {};
      const values = desc.routingValues(event);
      for (const field of desc.routingFields) headers[field] = values[field] ?? "";
    }
    const persistent = options.persistent ?? desc.persistent;
    const routingKey = renderRoutingKey(desc, event);
    // A PRODUCER span (its traceparent into the headers) and the publish metrics, while registered.
    const trace = startPublish({
      exchange: desc.exchange,
      routingKey,
      messageId,
      bodySize: content.byteLength,
    });
    if (trace?.traced) headers = trace.inject(headers ?? {});
    const props: Options.Publish = {
      contentType: CONTENT_TYPE_PROTOBUF,
      type: desc.type.typeName,
      messageId,
      timestamp: Math.floor(Date.now() / 1000),
      deliveryMode: persistent ? 2 : 1,
      mandatory: true,
    };
    // No table at all when there is nothing to send: amqplib makes each headers object the
    // prototype of a new one, which costs more than the whole rest of the properties.
    if (headers) props.headers = headers;
    if (this.userId !== undefined) props.userId = this.userId;
    if (options.expirationMs !== undefined)
      props.expiration = String(Math.max(0, Math.floor(options.expirationMs)));
    if (options.priority !== undefined) props.priority = options.priority;
    return { exchange: desc.exchange, routingKey, content, properties: props, settled: trace };
  }

  /** Waits for this publisher's confirms (and closes its own Publisher; a shared one stays open). */
  async close(): Promise<void> {
    this.unregister?.();
    if (this.ownsPublisher) await this.publisher.close();
  }

  private async declare(session: AmqpSession): Promise<void> {
    const ch = await session.createChannel();
    try {
      await declareEventExchange(ch, this.event);
      this.declared = true;
    } finally {
      await ch.close().catch(() => {});
    }
  }

  private async ensureDeclared(options: PublishOptions): Promise<void> {
    this.declaring ??= (async () => {
      const timeoutAt = Date.now() + (options.timeoutMs ?? this.timeoutMs ?? 30_000);
      const deadline = Math.min(timeoutAt, epochMs(options.deadline) ?? timeoutAt);
      for (;;) {
        const session = await this.connection.waitForSession({
          timeoutMs: Math.max(0, deadline - Date.now()),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        if (this.declared) return;
        try {
          await this.declare(session);
          return;
        } catch (err) {
          // The connection went during the declaration: try again on the next session, within the timeout.
          if (!session.open) continue;
          const text = String(err);
          const code = /PRECONDITION_FAILED/.test(text)
            ? Code.FAILED_PRECONDITION
            : /ACCESS_REFUSED/.test(text)
              ? Code.PERMISSION_DENIED
              : Code.UNAVAILABLE;
          throw new StatusError(
            code,
            `could not declare exchange "${this.event.exchange}": ${messageOf(err)}`,
            { cause: err },
          );
        }
      }
    })().finally(() => (this.declaring = undefined));
    return this.declaring;
  }
}

function epochMs(deadline: number | Date | undefined): number | undefined {
  return deadline instanceof Date ? deadline.getTime() : deadline;
}
