// The OpenTelemetry SDK for one of the example's services, from the standard OTEL_* environment
// variables; each main.ts calls startTelemetry() first, before it creates its grabbit transports.
//
// Nothing is registered, and the SDK is not even loaded, unless an OTLP endpoint is set:
//   OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318; /v1/traces and /v1/metrics are appended),
//   or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (full URLs, one signal each).
// Then, as any OpenTelemetry SDK reads them:
//   OTEL_EXPORTER_OTLP_PROTOCOL (and _TRACES_/_METRICS_PROTOCOL): http/protobuf (default) or http/json
//   OTEL_SERVICE_NAME: overrides the service's own name (bridge, processor, reporter)
//   OTEL_RESOURCE_ATTRIBUTES: more resource attributes, e.g. deployment.environment.name=dev
//   OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: "none" turns one signal off
//   OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_COMPRESSION, OTEL_BSP_* (the exporters and the
//   batch span processor read these themselves), OTEL_METRIC_EXPORT_INTERVAL (ms, default 60000).
//
// The runtime needs no more than what is registered here: a tracer provider, a meter provider, the
// W3C trace-context and baggage propagators and an AsyncLocalStorage context manager.

import { context, metrics, propagation, trace } from "@opentelemetry/api";

export type ServiceName = "bridge" | "processor" | "reporter";

export interface Telemetry {
  /** What is exported, for a log line: "traces and metrics (http/json) to http://...", or "". */
  readonly description: string;
  /** Exports what is still buffered and unregisters; call it last, after the service closed. */
  shutdown(): Promise<void>;
}

type Protocol = "http/protobuf" | "http/json";

function env(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/** Whether a signal is to be exported: an endpoint for it is set and its exporter is not "none". */
function wanted(signal: "TRACES" | "METRICS"): boolean {
  if (env(`OTEL_${signal}_EXPORTER`)?.toLowerCase() === "none") return false;
  return (
    env(`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`) !== undefined ||
    env("OTEL_EXPORTER_OTLP_ENDPOINT") !== undefined
  );
}

function protocolOf(signal: "TRACES" | "METRICS", service: string): Protocol {
  const given =
    env(`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`) ??
    env("OTEL_EXPORTER_OTLP_PROTOCOL") ??
    "http/protobuf";
  if (given === "http/json" || given === "http/protobuf") return given;
  console.error(
    `${service}: OTEL_EXPORTER_OTLP_PROTOCOL=${given} is not supported by the example (http/protobuf or http/json); using http/protobuf`,
  );
  return "http/protobuf";
}

const off: Telemetry = { description: "", shutdown: async () => {} };

export async function startTelemetry(service: ServiceName): Promise<Telemetry> {
  const traces = wanted("TRACES");
  const meters = wanted("METRICS");
  if (!traces && !meters) return off;

  // Loaded only now: a run without an endpoint does not pay for loading the SDK.
  const [
    { AsyncLocalStorageContextManager },
    { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator },
    { detectResources, envDetector, resourceFromAttributes },
  ] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
  ]);

  // The service's own name unless OTEL_SERVICE_NAME says otherwise (the env detector's attributes win).
  const resource = resourceFromAttributes({
    "service.name": service,
    "service.namespace": "grabbit-example",
  }).merge(detectResources({ detectors: [envDetector] }));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
  );

  const stops: (() => Promise<void>)[] = [];
  const described: string[] = [];
  if (traces) {
    const protocol = protocolOf("TRACES", service);
    const { BasicTracerProvider, BatchSpanProcessor } = await import(
      "@opentelemetry/sdk-trace-base"
    );
    // The exporters read their endpoint, headers and compression from the environment.
    const { OTLPTraceExporter } =
      protocol === "http/json"
        ? await import("@opentelemetry/exporter-trace-otlp-http")
        : await import("@opentelemetry/exporter-trace-otlp-proto");
    const provider = new BasicTracerProvider({
      resource,
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
    });
    trace.setGlobalTracerProvider(provider);
    stops.push(() => provider.shutdown());
    described.push(`traces (${protocol})`);
  }
  if (meters) {
    const protocol = protocolOf("METRICS", service);
    const { MeterProvider, PeriodicExportingMetricReader } = await import(
      "@opentelemetry/sdk-metrics"
    );
    const { OTLPMetricExporter } =
      protocol === "http/json"
        ? await import("@opentelemetry/exporter-metrics-otlp-http")
        : await import("@opentelemetry/exporter-metrics-otlp-proto");
    const interval = Number(env("OTEL_METRIC_EXPORT_INTERVAL") ?? 60_000);
    const reader = new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter(),
      exportIntervalMillis: interval,
      exportTimeoutMillis: Math.min(30_000, interval),
    });
    const provider = new MeterProvider({ resource, readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    stops.push(() => provider.shutdown());
    described.push(`metrics (${protocol})`);
  }
  const where =
    env("OTEL_EXPORTER_OTLP_ENDPOINT") ??
    env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ??
    env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
  return {
    description: `${described.join(" and ")} to ${where} as service.name ${String(resource.attributes["service.name"])}`,
    async shutdown() {
      // Flushes the batch span processor and the last metric collection before anything is unregistered.
      const results = await Promise.allSettled(stops.map((stop) => stop()));
      trace.disable();
      metrics.disable();
      propagation.disable();
      context.disable();
      for (const r of results)
        if (r.status === "rejected")
          console.error(
            `${service}: exporting telemetry at shutdown failed: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`,
          );
    },
  };
}
