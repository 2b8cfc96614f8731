// OpenTelemetry through `@opentelemetry/api` alone, an optional peer dependency: loaded once when
// this module loads, and when it is absent, or present with no SDK registered, every helper here
// answers "off" (undefined) after a couple of property reads, so instrumented code skips its work.
//
// The API keeps its registrations (tracer and meter providers, propagator, context manager) on a
// process-wide global, so the copy loaded here with require() sees what an application registered
// through `import` of the same major version.

import { createRequire } from "node:module";
import type * as OtelApi from "@opentelemetry/api";
import type { Context, Meter, MeterProvider, Tracer, TracerProvider } from "@opentelemetry/api";
import type { Metadata } from "../metadata.js";

export type { Context, Meter, Span, Tracer } from "@opentelemetry/api";

/** The instrumentation scope name of everything the runtime records. */
export const INSTRUMENTATION_NAME = "@grabbit/runtime";

const require = createRequire(import.meta.url);

function load(): typeof OtelApi | undefined {
  try {
    return require("@opentelemetry/api") as typeof OtelApi;
  } catch {
    return undefined;
  }
}

function runtimeVersion(): string {
  try {
    // The same relative path from src/telemetry (tests) and dist/telemetry (the package).
    return (require("../../package.json") as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

const api = load();

/** The runtime package's version, recorded as the instrumentation scope version. */
export const INSTRUMENTATION_VERSION = runtimeVersion();

/** The loaded API, or undefined when `@opentelemetry/api` is not installed. */
export function otelApi(): typeof OtelApi | undefined {
  return api;
}

// What the API hands out when nothing is registered: its own no-op provider and meter.
const noopTracerProvider =
  api === undefined ? undefined : new api.ProxyTracerProvider().getDelegate();
const noopMeter = api?.createNoopMeter();

let tracerSource: TracerProvider | undefined;
let tracer: Tracer | undefined;

/**
 * The runtime's tracer, or undefined when no tracer provider is registered (or the API is absent).
 * Cheap enough to call per message: a global lookup, then a cached tracer of that provider.
 */
export function activeTracer(): Tracer | undefined {
  if (api === undefined) return undefined;
  const global = api.trace.getTracerProvider() as TracerProvider & {
    getDelegate?: () => TracerProvider;
  };
  // The global is a proxy; its delegate is the SDK's provider once one is registered.
  const provider = typeof global.getDelegate === "function" ? global.getDelegate() : global;
  if (provider === noopTracerProvider) return undefined;
  if (provider !== tracerSource) {
    tracerSource = provider;
    tracer = provider.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
  }
  return tracer;
}

let meterSource: MeterProvider | undefined;
let meter: Meter | undefined;

/** The runtime's meter, or undefined when no meter provider is registered (or the API is absent). */
export function activeMeter(): Meter | undefined {
  if (api === undefined) return undefined;
  const provider = api.metrics.getMeterProvider();
  if (provider !== meterSource) {
    meterSource = provider;
    const m = provider.getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
    meter = m === noopMeter ? undefined : m;
  }
  return meter;
}

/**
 * Writes the trace context of `ctx` (default: the active one) into `metadata` through the globally
 * registered propagator: W3C `traceparent`, `tracestate` and `baggage` with the SDK's usual setup.
 * These are plain entries of the same names on both transports (gRPC metadata, AMQP headers).
 */
export function injectTraceContext(metadata: Metadata, ctx?: Context): Metadata {
  if (api !== undefined) api.propagation.inject(ctx ?? api.context.active(), metadata);
  return metadata;
}

/**
 * The context that `metadata` carries (its `traceparent`, `tracestate`, `baggage`), on top of `base`
 * (default: the root context, as for a call arriving from elsewhere). Undefined without the API.
 */
export function extractTraceContext(metadata: Metadata, base?: Context): Context | undefined {
  if (api === undefined) return undefined;
  return api.propagation.extract(base ?? api.ROOT_CONTEXT, metadata);
}

/** Trace correlation fields for a log record, in OpenTelemetry's log names. */
export interface TraceIds {
  trace_id: string;
  span_id: string;
}

const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}/;

/**
 * The trace a log record belongs to: the active span's (or `ctx`'s) when one is valid, else the one
 * named by a `traceparent` entry of `metadata`, so that logs carry the caller's trace id even in a
 * process that records no spans.
 */
export function traceIdsFor(metadata?: Metadata, ctx?: Context): TraceIds | undefined {
  if (api !== undefined) {
    const spanContext = api.trace.getSpanContext(ctx ?? api.context.active());
    if (spanContext !== undefined && api.isSpanContextValid(spanContext))
      return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
  }
  const header = metadata?.["traceparent"];
  if (header === undefined) return undefined;
  const match = TRACEPARENT.exec(header.trim().toLowerCase());
  if (match === null || /^0+$/.test(match[1]!)) return undefined;
  return { trace_id: match[1]!, span_id: match[2]! };
}
