// Metric instruments, made through the OpenTelemetry metrics API on first use and remade when the
// registered meter provider changes. Each record function is a no-op (one global lookup) when no
// meter provider is registered or the API is absent, so transports call them unconditionally.
//
// Attributes are kept low-cardinality: exchange and queue names, methods, status codes, reasons;
// never routing keys, message ids or correlation ids (those belong on spans).

import type {
  Attributes,
  BatchObservableCallback,
  Counter,
  Histogram,
  Meter,
  Observable,
} from "@opentelemetry/api";
import { codeName, type Code, StatusError, UnroutableError } from "../status.js";
import { activeMeter } from "./otel.js";
import {
  ATTR_ERROR_TYPE,
  ATTR_GRABBIT_CONNECTION_STATE,
  ATTR_GRABBIT_NODE,
  ATTR_GRABBIT_REASON,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  DURATION_BUCKETS_SECONDS,
  MESSAGING_SYSTEM_RABBITMQ,
  METRIC_GRABBIT_CONNECTION_RECONNECTS,
  METRIC_GRABBIT_CONNECTION_STATE,
  METRIC_GRABBIT_CONSUME_DEAD_LETTERED,
  METRIC_GRABBIT_CONSUME_RETRIES,
  METRIC_GRABBIT_OUTBOX_BACKLOG,
  METRIC_GRABBIT_OUTBOX_OLDEST_AGE,
  METRIC_GRABBIT_PUBLISH_CONFIRMS_OUTSTANDING,
  METRIC_GRABBIT_PUBLISH_REFUSED,
  METRIC_GRABBIT_PUBLISH_RESENT,
  METRIC_GRABBIT_PUBLISH_UNROUTABLE,
  METRIC_MESSAGING_CLIENT_CONSUMED_MESSAGES,
  METRIC_MESSAGING_CLIENT_OPERATION_DURATION,
  METRIC_MESSAGING_CLIENT_SENT_MESSAGES,
  METRIC_MESSAGING_PROCESS_DURATION,
  METRIC_RPC_CLIENT_CALL_DURATION,
  METRIC_RPC_SERVER_CALL_DURATION,
  type MessagingOperationType,
  type RpcSystem,
} from "./semconv.js";

interface Instruments {
  readonly meter: Meter;
  readonly rpcClientDuration: Histogram;
  readonly rpcServerDuration: Histogram;
  readonly sent: Counter;
  readonly consumed: Counter;
  readonly operationDuration: Histogram;
  readonly processDuration: Histogram;
  readonly resent: Counter;
  readonly refused: Counter;
  readonly unroutable: Counter;
  readonly retries: Counter;
  readonly deadLettered: Counter;
  readonly reconnects: Counter;
}

function durationHistogram(meter: Meter, name: string, description: string): Histogram {
  return meter.createHistogram(name, {
    description,
    unit: "s",
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
  });
}

function create(meter: Meter): Instruments {
  const counter = (name: string, description: string, unit = "{message}") =>
    meter.createCounter(name, { description, unit });
  return {
    meter,
    rpcClientDuration: durationHistogram(
      meter,
      METRIC_RPC_CLIENT_CALL_DURATION,
      "Duration of outgoing RPCs.",
    ),
    rpcServerDuration: durationHistogram(
      meter,
      METRIC_RPC_SERVER_CALL_DURATION,
      "Duration of incoming RPCs.",
    ),
    sent: counter(
      METRIC_MESSAGING_CLIENT_SENT_MESSAGES,
      "Messages the producer attempted to send to the broker.",
    ),
    consumed: counter(
      METRIC_MESSAGING_CLIENT_CONSUMED_MESSAGES,
      "Messages delivered to the application.",
    ),
    operationDuration: durationHistogram(
      meter,
      METRIC_MESSAGING_CLIENT_OPERATION_DURATION,
      "Duration of messaging operations (send until confirmed, settle).",
    ),
    processDuration: durationHistogram(
      meter,
      METRIC_MESSAGING_PROCESS_DURATION,
      "Duration of processing a delivered message (the handler).",
    ),
    resent: counter(
      METRIC_GRABBIT_PUBLISH_RESENT,
      "Publishes sent again after a connection loss or a nack.",
    ),
    refused: counter(
      METRIC_GRABBIT_PUBLISH_REFUSED,
      "Publishes refused to their callers (nacked, or not confirmed in time).",
    ),
    unroutable: counter(
      METRIC_GRABBIT_PUBLISH_UNROUTABLE,
      "Mandatory publishes the broker returned as unroutable.",
    ),
    retries: counter(
      METRIC_GRABBIT_CONSUME_RETRIES,
      "Deliveries scheduled for another attempt after the handler failed.",
    ),
    deadLettered: counter(
      METRIC_GRABBIT_CONSUME_DEAD_LETTERED,
      "Messages dead-lettered, by reason.",
    ),
    reconnects: counter(
      METRIC_GRABBIT_CONNECTION_RECONNECTS,
      "Connections re-established after a loss, by broker node.",
      "{reconnect}",
    ),
  };
}

let cached: Instruments | undefined;

/** The instruments of the registered meter provider, or undefined when there is none. */
function instruments(): Instruments | undefined {
  const meter = activeMeter();
  if (meter === undefined) return undefined;
  if (cached?.meter !== meter) {
    cached = create(meter);
    for (const registration of gauges) attach(registration, meter);
  }
  return cached;
}

/** True when a meter provider is registered: callers may skip preparing what only metrics need. */
export function metricsEnabled(): boolean {
  return instruments() !== undefined;
}

/**
 * The low-cardinality `error.type` of a failure: a StatusError's code name ("DEADLINE_EXCEEDED"),
 * "unroutable" for an UnroutableError, else the error's name ("TypeError"), else "_OTHER".
 */
export function errorType(err: unknown): string {
  if (err instanceof UnroutableError) return "unroutable";
  if (err instanceof StatusError) return codeName(err.code);
  if (err instanceof Error && err.name) return err.name;
  return "_OTHER";
}

// --- RPC ---------------------------------------------------------------------------------------

export interface RpcCallRecord {
  side: "client" | "server";
  system: RpcSystem;
  /** Fully qualified method, "demo.v1.Orders/Get" (rpc.method). */
  method: string;
  code: Code;
  /** Whether this code counts as a failure on this side (error.type is set then). */
  failed: boolean;
  durationSeconds: number;
}

export function rpcCallAttributes(
  record: Omit<RpcCallRecord, "durationSeconds" | "side">,
): Attributes {
  const name = codeName(record.code);
  const attributes: Attributes = {
    [ATTR_RPC_SYSTEM_NAME]: record.system,
    [ATTR_RPC_METHOD]: record.method,
    [ATTR_RPC_STATUS_CODE]: name,
  };
  if (record.failed) attributes[ATTR_ERROR_TYPE] = name;
  return attributes;
}

/** rpc.client.call.duration or rpc.server.call.duration, by method and status code. */
export function recordRpcCall(record: RpcCallRecord): void {
  recordRpcDuration(
    record.side,
    record.system,
    record.method,
    record.code,
    record.failed,
    record.durationSeconds,
  );
}

// The attributes of RPC durations, made once per system, method, code and failure rather than per
// call: a few distinct objects per method, which the SDK only reads. Bounded, in case methods are
// many (names come from descriptors, but a server's interceptors could see anything).
const rpcAttributeCache = new Map<string, Map<string, Attributes[]>>();
const RPC_ATTRIBUTE_CACHE_LIMIT = 10_000;
let rpcAttributeCacheSize = 0;

function cachedRpcCallAttributes(
  system: RpcSystem,
  method: string,
  code: Code,
  failed: boolean,
): Attributes {
  let bySystem = rpcAttributeCache.get(system);
  if (bySystem === undefined) rpcAttributeCache.set(system, (bySystem = new Map()));
  let byCode = bySystem.get(method);
  if (byCode === undefined) {
    if (rpcAttributeCacheSize >= RPC_ATTRIBUTE_CACHE_LIMIT) {
      rpcAttributeCache.clear();
      rpcAttributeCacheSize = 0;
      rpcAttributeCache.set(system, (bySystem = new Map()));
    }
    bySystem.set(method, (byCode = []));
    rpcAttributeCacheSize++;
  }
  const index = code * 2 + (failed ? 1 : 0);
  return (byCode[index] ??= rpcCallAttributes({ system, method, code, failed }));
}

/** recordRpcCall without the record object, for the per-call paths. */
export function recordRpcDuration(
  side: "client" | "server",
  system: RpcSystem,
  method: string,
  code: Code,
  failed: boolean,
  durationSeconds: number,
): void {
  const m = instruments();
  if (m === undefined) return;
  (side === "client" ? m.rpcClientDuration : m.rpcServerDuration).record(
    durationSeconds,
    cachedRpcCallAttributes(system, method, code, failed),
  );
}

// --- Messaging ---------------------------------------------------------------------------------

/** The attributes shared by messaging metrics: system, operation, destination, error. */
export function messagingAttributes(
  type: MessagingOperationType,
  operationName: string,
  destination: string,
  error?: string,
): Attributes {
  const attributes: Attributes = {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
    [ATTR_MESSAGING_OPERATION_TYPE]: type,
    [ATTR_MESSAGING_OPERATION_NAME]: operationName,
    [ATTR_MESSAGING_DESTINATION_NAME]: destination,
  };
  if (error !== undefined) attributes[ATTR_ERROR_TYPE] = error;
  return attributes;
}

export interface PublishRecord {
  /** The exchange ("" for the default exchange, as for RPC requests and replies). */
  exchange: string;
  /** From the publish call until the broker confirmed it (or it failed). */
  durationSeconds: number;
  /** error.type when the publish failed: see errorType(). */
  error?: string;
  /** messaging.operation.name; default "publish". */
  operationName?: string;
}

/** One publish attempt that reached the broker: messaging.client.sent.messages and its duration. */
export function recordPublish(record: PublishRecord): void {
  const m = instruments();
  if (m === undefined) return;
  const attributes = messagingAttributes(
    "send",
    record.operationName ?? "publish",
    record.exchange,
    record.error,
  );
  m.sent.add(1, attributes);
  m.operationDuration.record(record.durationSeconds, attributes);
}

/** A delivery handed to the application: messaging.client.consumed.messages. */
export function recordConsumed(record: { queue: string; error?: string }): void {
  instruments()?.consumed.add(
    1,
    messagingAttributes("receive", "deliver", record.queue, record.error),
  );
}

/** One run of a handler over a delivery: messaging.process.duration. */
export function recordProcess(record: {
  queue: string;
  durationSeconds: number;
  error?: string;
}): void {
  instruments()?.processDuration.record(
    record.durationSeconds,
    messagingAttributes("process", "process", record.queue, record.error),
  );
}

/** An ack, nack or reject: messaging.client.operation.duration with operation type "settle". */
export function recordSettle(record: {
  queue: string;
  operationName: "ack" | "nack" | "reject";
  durationSeconds: number;
  error?: string;
}): void {
  instruments()?.operationDuration.record(
    record.durationSeconds,
    messagingAttributes("settle", record.operationName, record.queue, record.error),
  );
}

/** A publish sent again (after a connection loss or a nack): grabbit.publish.resent. */
export function recordPublishResent(record: { exchange: string; reason: string }): void {
  instruments()?.resent.add(1, {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
    [ATTR_MESSAGING_DESTINATION_NAME]: record.exchange,
    [ATTR_GRABBIT_REASON]: record.reason,
  });
}

/** A publish refused to its caller: grabbit.publish.refused. */
export function recordPublishRefused(record: { exchange: string; reason: string }): void {
  instruments()?.refused.add(1, {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
    [ATTR_MESSAGING_DESTINATION_NAME]: record.exchange,
    [ATTR_GRABBIT_REASON]: record.reason,
  });
}

/** A mandatory publish returned unroutable: grabbit.publish.unroutable. */
export function recordPublishUnroutable(record: { exchange: string }): void {
  instruments()?.unroutable.add(1, {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
    [ATTR_MESSAGING_DESTINATION_NAME]: record.exchange,
  });
}

/** A failed delivery scheduled for another attempt: grabbit.consume.retries. */
export function recordConsumeRetry(record: { queue: string; error?: string }): void {
  const attributes: Attributes = {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
    [ATTR_MESSAGING_DESTINATION_NAME]: record.queue,
  };
  if (record.error !== undefined) attributes[ATTR_ERROR_TYPE] = record.error;
  instruments()?.retries.add(1, attributes);
}

/**
 * A message dead-lettered: grabbit.consume.dead_lettered by reason (low cardinality, such as
 * "retries_exhausted", "undecodable", "no_reply_to", "rejected").
 */
export function recordDeadLettered(record: { queue: string; reason: string }): void {
  instruments()?.deadLettered.add(1, {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
    [ATTR_MESSAGING_DESTINATION_NAME]: record.queue,
    [ATTR_GRABBIT_REASON]: record.reason,
  });
}

/** A connection re-established, to `node` ("host:port"): grabbit.connection.reconnects. */
export function recordReconnect(record: { node: string }): void {
  instruments()?.reconnects.add(1, {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
    [ATTR_GRABBIT_NODE]: record.node,
  });
}

// --- Observable gauges -------------------------------------------------------------------------

export interface GaugeSpec {
  name: string;
  description: string;
  unit: string;
}

/** Reports one value of one of the registration's gauges (by name). */
export type ObserveGauge = (name: string, value: number, attributes?: Attributes) => void;

interface GaugeRegistration {
  readonly specs: readonly GaugeSpec[];
  readonly read: (observe: ObserveGauge) => void | Promise<void>;
  attached:
    | { meter: Meter; callback: BatchObservableCallback; observables: Observable[] }
    | undefined;
}

const gauges = new Set<GaugeRegistration>();

function attach(registration: GaugeRegistration, meter: Meter): void {
  detach(registration);
  const byName = new Map<string, Observable>();
  for (const spec of registration.specs)
    byName.set(
      spec.name,
      meter.createObservableGauge(spec.name, { description: spec.description, unit: spec.unit }),
    );
  const callback: BatchObservableCallback = (result) =>
    registration.read((name, value, attributes) => {
      const observable = byName.get(name);
      if (observable !== undefined) result.observe(observable, value, attributes);
    });
  const observables = [...byName.values()];
  meter.addBatchObservableCallback(callback, observables);
  registration.attached = { meter, callback, observables };
}

function detach(registration: GaugeRegistration): void {
  const attached = registration.attached;
  if (attached === undefined) return;
  attached.meter.removeBatchObservableCallback(attached.callback, attached.observables);
  registration.attached = undefined;
}

/**
 * Registers observable gauges read at each collection by `read`, which may be async (a database
 * query). Returns the function that unregisters them. Registered before a meter provider is, they
 * attach once one is and the runtime records anything; register the SDK first to be sure.
 */
export function observeGauges(
  specs: readonly GaugeSpec[],
  read: (observe: ObserveGauge) => void | Promise<void>,
): () => void {
  const registration: GaugeRegistration = { specs, read, attached: undefined };
  gauges.add(registration);
  const m = instruments();
  if (m !== undefined && registration.attached === undefined) attach(registration, m.meter);
  return () => {
    gauges.delete(registration);
    detach(registration);
  };
}

/** grabbit.publish.confirms.outstanding: publishes sent and not yet confirmed by the broker. */
export function observeConfirmsOutstanding(
  read: () => number,
  attributes?: Attributes,
): () => void {
  const spec = {
    name: METRIC_GRABBIT_PUBLISH_CONFIRMS_OUTSTANDING,
    description: "Publishes sent and not yet confirmed by the broker.",
    unit: "{message}",
  };
  return observeGauges([spec], (observe) =>
    observe(spec.name, read(), {
      [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
      ...attributes,
    }),
  );
}

/**
 * grabbit.connection.state: 1 for each broker node with the state it is in ("connected",
 * "connecting", "closed"), so that a dashboard shows which node each connection uses.
 */
export function observeConnectionState(
  read: () => Iterable<{ node: string; state: string }>,
  attributes?: Attributes,
): () => void {
  const spec = {
    name: METRIC_GRABBIT_CONNECTION_STATE,
    description: "Connections by broker node and state (1 per connection).",
    unit: "{connection}",
  };
  return observeGauges([spec], (observe) => {
    for (const { node, state } of read()) {
      observe(spec.name, 1, {
        [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
        [ATTR_GRABBIT_NODE]: node,
        [ATTR_GRABBIT_CONNECTION_STATE]: state,
        ...attributes,
      });
    }
  });
}

/**
 * grabbit.outbox.backlog (rows not yet published) and grabbit.outbox.oldest_age (seconds since
 * the oldest of them was written; 0 when there is none), from one read per collection.
 */
export function observeOutbox(
  read: () => Promise<{ backlog: number; oldestAgeSeconds: number | undefined }>,
  attributes?: Attributes,
): () => void {
  const backlog = {
    name: METRIC_GRABBIT_OUTBOX_BACKLOG,
    description: "Outbox rows not yet published.",
    unit: "{row}",
  };
  const age = {
    name: METRIC_GRABBIT_OUTBOX_OLDEST_AGE,
    description: "Age of the oldest unpublished outbox row.",
    unit: "s",
  };
  return observeGauges([backlog, age], async (observe) => {
    const state = await read();
    observe(backlog.name, state.backlog, attributes);
    observe(age.name, state.oldestAgeSeconds ?? 0, attributes);
  });
}
