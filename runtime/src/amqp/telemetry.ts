// The RabbitMQ side's tracing and metrics, on top of the transport-neutral helpers in ../telemetry:
// producer spans for publishes (events and the outbox relay), a process span per delivery attempt
// with the retry and dead-letter decisions on it, and the gauges that read live objects
// (publishers' outstanding confirms, connections' state by node).
//
// Every entry point checks once whether a tracer or meter provider is registered and returns
// undefined otherwise, so the hot paths build no attributes and allocate nothing when nothing records.

import type { Attributes, Context, Span } from "@opentelemetry/api";
import {
  errorType,
  metricsEnabled,
  observeGauges,
  recordConsumed,
  recordConsumeRetry,
  recordDeadLettered,
  recordProcess,
  recordPublish,
} from "../telemetry/metrics.js";
import { activeTracer, otelApi, traceIdsFor, type TraceIds } from "../telemetry/otel.js";
import { messageOf } from "../status.js";
import {
  ATTR_ERROR_TYPE,
  ATTR_GRABBIT_CONNECTION_STATE,
  ATTR_GRABBIT_DELIVERY_ATTEMPT,
  ATTR_GRABBIT_NODE,
  ATTR_GRABBIT_REASON,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_BODY_SIZE,
  ATTR_MESSAGING_MESSAGE_CONVERSATION_ID,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_RABBITMQ_DELIVERY_TAG,
  ATTR_MESSAGING_RABBITMQ_ROUTING_KEY,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_RABBITMQ,
  METRIC_GRABBIT_CONNECTION_STATE,
  METRIC_GRABBIT_PUBLISH_CONFIRMS_OUTSTANDING,
} from "../telemetry/semconv.js";

const api = otelApi();

/** What happened to a delivery: "ack", "retry", "dead_letter", or "requeue" (handed back to the broker). */
export const ATTR_GRABBIT_OUTCOME = "grabbit.outcome";
/** On a retry event: the delay before the next attempt, in ms. */
export const ATTR_GRABBIT_RETRY_DELAY_MS = "grabbit.retry.delay_ms";
/** On a dead-letter event: the queue the message was moved to. */
export const ATTR_GRABBIT_DEAD_LETTER_QUEUE = "grabbit.dead_letter.queue";
/** Span event names of the consumer's decisions. */
export const EVENT_RETRY = "retry";
export const EVENT_DEAD_LETTER = "dead_letter";

/** "host:port" of a broker URL (5672, or 5671 for amqps, when it names no port). */
export function nodeOf(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname.replace(/^\[|\]$/g, "") || "localhost";
    return `${host}:${u.port || (u.protocol === "amqps:" ? "5671" : "5672")}`;
  } catch {
    return url;
  }
}

// --- Publishing ---------------------------------------------------------------------------------

export interface PublishSpec {
  exchange: string;
  routingKey: string;
  messageId: string | undefined;
  bodySize: number;
  /**
   * Headers whose trace context the span continues (a stored outbox row's: a new trace when they
   * carry none). Default: the active context.
   */
  parentHeaders?: Record<string, unknown> | undefined;
}

/** One publish being recorded: its PRODUCER span (when tracing) and its duration (when metrics are on). */
export class PublishTrace {
  private readonly start = performance.now();
  private ended = false;
  constructor(
    private readonly span: Span | undefined,
    /** The context holding `span`. */
    private readonly ctx: Context | undefined,
    private readonly exchange: string,
    private readonly metrics: boolean,
  ) {}

  /** True when there is a span (and so a context to write into the headers). */
  get traced(): boolean {
    return this.ctx !== undefined;
  }

  /**
   * Writes the span's context into `headers` (traceparent, tracestate, baggage; replacing any the
   * caller put there) and returns them. Also when the span is not recording (sampled out): the flag
   * travels and the consumer agrees.
   */
  inject(headers: Record<string, unknown>): Record<string, unknown> {
    if (this.ctx !== undefined) api!.propagation.inject(this.ctx, headers);
    return headers;
  }

  /**
   * Ends the span (error status and error.type when `err`) and records the publish; once. The
   * publisher calls it as it settles the message (RawPublishOptions.settled).
   */
  end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const error = err === undefined ? undefined : errorType(err);
    if (this.span !== undefined) {
      if (error !== undefined && this.span.isRecording()) {
        this.span.setAttribute(ATTR_ERROR_TYPE, error);
        this.span.setStatus({ code: api!.SpanStatusCode.ERROR, message: messageOf(err) });
      }
      this.span.end();
    }
    if (this.metrics)
      recordPublish({
        exchange: this.exchange,
        durationSeconds: (performance.now() - this.start) / 1000,
        ...(error !== undefined ? { error } : {}),
      });
  }
}

// The span attributes every publish to an exchange (every delivery from a queue) shares, made once
// and cloned per message: a spread of a fixed-shape object is far cheaper than an object literal of
// computed keys, and the clone keeps one hidden class for the SDK to iterate. Bounded, in case an
// application publishes to unboundedly many exchanges (the outbox relay publishes to what rows name).
const TEMPLATE_LIMIT = 1_000;
const publishTemplates = new Map<string, Attributes>();
const deliveryTemplates = new Map<string, Attributes>();

function template(cache: Map<string, Attributes>, key: string, make: () => Attributes): Attributes {
  let attributes = cache.get(key);
  if (attributes === undefined) {
    if (cache.size >= TEMPLATE_LIMIT) cache.clear();
    attributes = make();
    cache.set(key, attributes);
  }
  return attributes;
}

/**
 * Starts recording a publish: a PRODUCER span `publish <exchange>` child of the context in
 * `parentHeaders` (or the active one), whose context inject() writes into the message's headers, and the start of
 * messaging.client.operation.duration. Undefined when neither provider is registered.
 */
export function startPublish(spec: PublishSpec): PublishTrace | undefined {
  const tracer = activeTracer();
  const metrics = metricsEnabled();
  if (tracer === undefined || api === undefined)
    return metrics ? new PublishTrace(undefined, undefined, spec.exchange, true) : undefined;
  const attributes: Attributes = {
    ...template(publishTemplates, spec.exchange, () => ({
      [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
      [ATTR_MESSAGING_OPERATION_TYPE]: "send",
      [ATTR_MESSAGING_OPERATION_NAME]: "publish",
      [ATTR_MESSAGING_DESTINATION_NAME]: spec.exchange,
      [ATTR_MESSAGING_RABBITMQ_ROUTING_KEY]: "",
      [ATTR_MESSAGING_MESSAGE_BODY_SIZE]: 0,
    })),
  };
  attributes[ATTR_MESSAGING_RABBITMQ_ROUTING_KEY] = spec.routingKey;
  attributes[ATTR_MESSAGING_MESSAGE_BODY_SIZE] = spec.bodySize;
  if (spec.messageId !== undefined) attributes[ATTR_MESSAGING_MESSAGE_ID] = spec.messageId;
  const parent =
    spec.parentHeaders !== undefined
      ? api.propagation.extract(api.ROOT_CONTEXT, spec.parentHeaders)
      : api.context.active();
  const span = tracer.startSpan(
    `publish ${spec.exchange === "" ? "amq.default" : spec.exchange}`,
    { kind: api.SpanKind.PRODUCER, attributes },
    parent,
  );
  return new PublishTrace(span, api.trace.setSpan(parent, span), spec.exchange, metrics);
}

/** Writes the active context (traceparent, tracestate, baggage) into `headers` while a tracer is registered. */
export function injectActiveContext(headers: Record<string, unknown>): void {
  if (api === undefined || activeTracer() === undefined) return;
  api.propagation.inject(api.context.active(), headers);
}

/** The active span, while a tracer is registered (for per-call attributes set after the span began). */
export function activeSpan(): Span | undefined {
  if (api === undefined || activeTracer() === undefined) return undefined;
  return api.trace.getActiveSpan();
}

/** Trace ids for a log record about a message: the span's when recording, else the traceparent header's. */
export function logTraceIds(
  headers: Record<string, unknown> | undefined,
  ctx?: Context,
): TraceIds | undefined {
  const traceparent = headers?.["traceparent"];
  return traceIdsFor(typeof traceparent === "string" ? { traceparent } : undefined, ctx);
}

// --- Consuming ----------------------------------------------------------------------------------

export interface DeliverySpec {
  queue: string;
  routingKey: string;
  messageId: string | undefined;
  correlationId: string | undefined;
  deliveryTag: number;
  bodySize: number;
  attempt: number;
  headers: Record<string, unknown>;
}

/**
 * One delivery attempt being recorded: a CONSUMER span `process <queue>` (child of the producer's
 * context from the headers), the handler's duration, and the decision taken: acked, retried (span
 * event `retry`) or dead-lettered (span event `dead_letter`, with the reason).
 */
export class DeliveryTrace {
  private readonly start = performance.now();
  private handlerStart = 0;
  private ended = false;

  constructor(
    readonly span: Span | undefined,
    /** The context with `span`; undefined without a span. */
    readonly ctx: Context | undefined,
    private readonly queue: string,
    private readonly metrics: boolean,
  ) {}

  /** Runs `fn` inside the span's context (as is without one). */
  run<R>(fn: () => R): R {
    return this.ctx === undefined || api === undefined ? fn() : api.context.with(this.ctx, fn);
  }

  handlerStarted(): void {
    this.handlerStart = performance.now();
  }

  /** The handler (with its interceptors) finished: messaging.process.duration, and the exception on the span. */
  handlerFinished(err?: unknown): void {
    if (this.metrics) {
      const durationSeconds = (performance.now() - (this.handlerStart || this.start)) / 1000;
      recordProcess({
        queue: this.queue,
        durationSeconds,
        ...(err !== undefined ? { error: errorType(err) } : {}),
      });
    }
    if (err !== undefined && this.span?.isRecording()) {
      if (err instanceof Error) this.span.recordException(err);
      this.fail(err);
    }
  }

  retry(err: unknown, nextAttempt: number, delayMs: number): void {
    if (this.metrics) recordConsumeRetry({ queue: this.queue, error: errorType(err) });
    if (this.span?.isRecording()) {
      this.span.addEvent(EVENT_RETRY, {
        [ATTR_GRABBIT_DELIVERY_ATTEMPT]: nextAttempt,
        [ATTR_GRABBIT_RETRY_DELAY_MS]: delayMs,
      });
      this.span.setAttribute(ATTR_GRABBIT_OUTCOME, "retry");
    }
  }

  deadLetter(reason: string, text: string, deadLetterQueue: string): void {
    if (this.metrics) recordDeadLettered({ queue: this.queue, reason });
    if (this.span?.isRecording()) {
      this.span.addEvent(EVENT_DEAD_LETTER, {
        [ATTR_GRABBIT_REASON]: reason,
        [ATTR_GRABBIT_DEAD_LETTER_QUEUE]: deadLetterQueue,
        "exception.message": text,
      });
      this.span.setAttribute(ATTR_GRABBIT_OUTCOME, "dead_letter");
      this.span.setAttribute(ATTR_GRABBIT_REASON, reason);
      this.fail(text, reason);
    }
  }

  acked(): void {
    if (this.span?.isRecording()) this.span.setAttribute(ATTR_GRABBIT_OUTCOME, "ack");
  }

  /** The message went back to the broker (a move to a retry or dead-letter queue failed). */
  requeued(err: unknown): void {
    if (this.span?.isRecording()) {
      this.span.setAttribute(ATTR_GRABBIT_OUTCOME, "requeue");
      this.fail(err);
    }
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.span?.end();
  }

  private fail(err: unknown, type?: string): void {
    const span = this.span!;
    span.setAttribute(ATTR_ERROR_TYPE, type ?? errorType(err));
    span.setStatus({
      code: api!.SpanStatusCode.ERROR,
      message: typeof err === "string" ? err : messageOf(err),
    });
  }
}

/** Starts recording a delivery attempt; undefined when neither provider is registered. */
export function startDelivery(spec: DeliverySpec): DeliveryTrace | undefined {
  const tracer = activeTracer();
  const metrics = metricsEnabled();
  if (metrics) recordConsumed({ queue: spec.queue });
  if (tracer === undefined || api === undefined)
    return metrics ? new DeliveryTrace(undefined, undefined, spec.queue, true) : undefined;
  const attributes: Attributes = {
    ...template(deliveryTemplates, spec.queue, () => ({
      [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
      [ATTR_MESSAGING_OPERATION_TYPE]: "process",
      [ATTR_MESSAGING_OPERATION_NAME]: "process",
      [ATTR_MESSAGING_DESTINATION_NAME]: spec.queue,
      [ATTR_MESSAGING_RABBITMQ_ROUTING_KEY]: "",
      [ATTR_MESSAGING_RABBITMQ_DELIVERY_TAG]: 0,
      [ATTR_MESSAGING_MESSAGE_BODY_SIZE]: 0,
      [ATTR_GRABBIT_DELIVERY_ATTEMPT]: 1,
    })),
  };
  attributes[ATTR_MESSAGING_RABBITMQ_ROUTING_KEY] = spec.routingKey;
  attributes[ATTR_MESSAGING_RABBITMQ_DELIVERY_TAG] = spec.deliveryTag;
  attributes[ATTR_MESSAGING_MESSAGE_BODY_SIZE] = spec.bodySize;
  attributes[ATTR_GRABBIT_DELIVERY_ATTEMPT] = spec.attempt;
  if (spec.messageId !== undefined) attributes[ATTR_MESSAGING_MESSAGE_ID] = spec.messageId;
  if (spec.correlationId !== undefined)
    attributes[ATTR_MESSAGING_MESSAGE_CONVERSATION_ID] = spec.correlationId;
  // One message per delivery: the process span is the producer's child (the conventions' advice
  // for single-message processing), so the consumer's work is in the publisher's trace.
  const parent = api.propagation.extract(api.ROOT_CONTEXT, spec.headers);
  const span = tracer.startSpan(
    `process ${spec.queue}`,
    { kind: api.SpanKind.CONSUMER, attributes },
    parent,
  );
  return new DeliveryTrace(span, api.trace.setSpan(parent, span), spec.queue, metrics);
}

// --- Gauges of live objects ----------------------------------------------------------------------

/** Something with a node and a count to report per collection. */
interface Reporter<T> {
  readonly items: Set<T>;
  unregister: (() => void) | undefined;
}

function watch<T>(reporter: Reporter<T>, item: T, register: () => () => void): () => void {
  reporter.items.add(item);
  reporter.unregister ??= register();
  return () => {
    reporter.items.delete(item);
    if (reporter.items.size === 0) {
      reporter.unregister?.();
      reporter.unregister = undefined;
    }
  };
}

/** What a publisher reports: messages accepted and not yet confirmed, and the node it publishes to. */
export interface ConfirmSource {
  readonly pending: number;
  readonly node: string;
}

const publishers: Reporter<ConfirmSource> = { items: new Set(), unregister: undefined };

/**
 * Counts `source` in grabbit.publish.confirms.outstanding (summed over the process's publishers,
 * by node) until the returned function is called.
 */
export function watchConfirms(source: ConfirmSource): () => void {
  return watch(publishers, source, () => {
    const spec = {
      name: METRIC_GRABBIT_PUBLISH_CONFIRMS_OUTSTANDING,
      description: "Publishes sent and not yet confirmed by the broker.",
      unit: "{message}",
    };
    return observeGauges([spec], (observe) => {
      const byNode = new Map<string, number>();
      for (const p of publishers.items) byNode.set(p.node, (byNode.get(p.node) ?? 0) + p.pending);
      for (const [node, n] of byNode)
        observe(spec.name, n, {
          [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
          [ATTR_GRABBIT_NODE]: node,
        });
    });
  });
}

/** What a connection reports: the node it is on (or trying) and its state. */
export interface StateSource {
  readonly metricNode: string;
  readonly metricState: "connected" | "connecting" | "closed";
}

const connections: Reporter<StateSource> = { items: new Set(), unregister: undefined };

/** Counts `source` in grabbit.connection.state (connections by node and state) until the returned function is called. */
export function watchConnectionState(source: StateSource): () => void {
  return watch(connections, source, () => {
    const spec = {
      name: METRIC_GRABBIT_CONNECTION_STATE,
      description: "Connections by broker node and state.",
      unit: "{connection}",
    };
    return observeGauges([spec], (observe) => {
      const counts = new Map<string, { node: string; state: string; n: number }>();
      for (const c of connections.items) {
        const key = `${c.metricNode}\u0000${c.metricState}`;
        const entry = counts.get(key);
        if (entry) entry.n++;
        else counts.set(key, { node: c.metricNode, state: c.metricState, n: 1 });
      }
      for (const { node, state, n } of counts.values()) {
        observe(spec.name, n, {
          [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
          [ATTR_GRABBIT_NODE]: node,
          [ATTR_GRABBIT_CONNECTION_STATE]: state,
        });
      }
    });
  });
}
