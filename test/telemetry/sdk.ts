// The real OpenTelemetry SDK wired as an application would, with in-memory exporters: spans are
// read from the exporter, metrics collected on demand through a reader.
import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import {
  MeterProvider,
  MetricReader,
  type DataPoint,
  type Histogram,
  type MetricData,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from "@opentelemetry/sdk-trace-base";
import { createJsonLogger, type Logger } from "@grabbit/runtime";

/** A pull reader: collect() whenever the test wants the current values. */
class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export interface Sdk {
  spans(): ReadableSpan[];
  /** All metric data points, by metric name. */
  metrics(): Promise<Map<string, MetricData>>;
  reset(): void;
  shutdown(): Promise<void>;
}

/**
 * The SDK for one describe block: started before its tests, reset before each (then `onReset`, e.g.
 * emptying captured log lines), shut down after them. The object returned stands for the running SDK.
 */
export function sdkPerBlock(
  options: { traces?: boolean; metrics?: boolean } = {},
  onReset?: () => void,
): Sdk {
  let sdk: Sdk | undefined;
  const running = (): Sdk => {
    if (sdk === undefined)
      throw new Error("the SDK is used outside the describe block that starts it");
    return sdk;
  };
  beforeAll(() => {
    sdk = startSdk(options);
  });
  afterAll(() => running().shutdown());
  beforeEach(() => {
    running().reset();
    onReset?.();
  });
  return {
    spans: () => running().spans(),
    metrics: () => running().metrics(),
    reset: () => running().reset(),
    shutdown: () => running().shutdown(),
  };
}

export function startSdk(options: { traces?: boolean; metrics?: boolean } = {}): Sdk {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  let reader = new TestReader();
  let meterProvider = new MeterProvider({ readers: [reader] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
  );
  if (options.traces !== false) trace.setGlobalTracerProvider(tracerProvider);
  if (options.metrics !== false) metrics.setGlobalMeterProvider(meterProvider);
  return {
    spans: () => exporter.getFinishedSpans(),
    async metrics() {
      const { resourceMetrics } = await reader.collect();
      const out = new Map<string, MetricData>();
      for (const scope of resourceMetrics.scopeMetrics)
        for (const metric of scope.metrics) out.set(metric.descriptor.name, metric);
      return out;
    },
    reset() {
      exporter.reset();
      // A fresh provider forgets the values: the runtime sees a new meter and remakes its instruments.
      if (options.metrics !== false) {
        metrics.disable();
        reader = new TestReader();
        meterProvider = new MeterProvider({ readers: [reader] });
        metrics.setGlobalMeterProvider(meterProvider);
      }
    },
    async shutdown() {
      trace.disable();
      metrics.disable();
      propagation.disable();
      context.disable();
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}

/** The data points of a metric whose attributes include `match`. */
export function points<T>(
  metric: MetricData | undefined,
  match: Record<string, unknown> = {},
): DataPoint<T>[] {
  if (metric === undefined) return [];
  return (metric.dataPoints as DataPoint<T>[]).filter((p) =>
    Object.entries(match).every(([k, v]) => p.attributes[k] === v),
  );
}

/** The sum of a counter's points matching `match`. */
export function sum(metric: MetricData | undefined, match: Record<string, unknown> = {}): number {
  return points<number>(metric, match).reduce((total, p) => total + p.value, 0);
}

/** The number of values a histogram recorded for points matching `match`. */
export function count(metric: MetricData | undefined, match: Record<string, unknown> = {}): number {
  return points<Histogram>(metric, match).reduce((total, p) => total + p.value.count, 0);
}

/** A logger whose JSON lines the test reads back. */
export interface CapturedLogs {
  lines: string[];
  logger: Logger;
  records(): Record<string, unknown>[];
}

export function capturedLogs(): CapturedLogs {
  const out: string[] = [];
  return {
    lines: out,
    logger: createJsonLogger({ level: "debug", write: (l) => out.push(l) }),
    records: () => out.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
