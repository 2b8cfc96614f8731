// What tracing costs: the same work with the OpenTelemetry SDK registered and with nothing
// registered ("off", the runtime's state without an SDK), in the same run. Three states:
// - traces: BasicTracerProvider + BatchSpanProcessor with an exporter that drops every batch, the W3C
//   propagators and an AsyncLocalStorage context manager (what a traced service registers): the
//   issue's "tracing on", reported as tracing_*;
// - all: the same plus a MeterProvider with a periodic reader and a dropping exporter (the runtime's
//   metrics are recorded too), reported as telemetry_*;
// - off: all of it unregistered (the API's globals disabled), so the runtime sees no provider.
// The runtime checks for a provider per call, so the states alternate within one process: every
// round runs every workload in every state, in rotating order, and a figure is the median of its rounds.
// Workloads (client and server in this one process, so both sides are traced when on):
// - publish: a typed EventPublisher with confirms, a sliding window of 4,096 (as amqp.bench.ts);
// - consume: an EventConsumer on a queue filled by the typed publisher in the same state (so when on,
//   each message carries a traceparent to extract);
// - AMQP RPC and gRPC unary: the echo service, 64 calls in flight.
// The module disables every registration before it returns, so it leaves no provider behind.
import { randomBytes } from "node:crypto";
import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  CompositePropagator,
  ExportResultCode,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
  type ExportResult,
} from "@opentelemetry/core";
import {
  AggregationTemporality,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import type { ServiceDesc } from "../runtime/src/index.js";
import {
  AmqpConnection,
  AmqpRpcTransport,
  EventConsumer,
  EventPublisher,
  declareConsumerQueues,
  serveAmqp,
} from "../runtime/src/amqp/index.js";
import { GrpcTransport } from "../runtime/src/grpc/index.js";
import type { Order } from "../test/support/messages.js";
import { figure, median, publishSliding, type Figure } from "./figure.js";
import { tickEvent } from "./tick.js";
import {
  BenchEcho,
  benchEchoHandlers,
  benchRequest,
  startGrpcBenchServer,
  unaryThroughput,
} from "./grpc.bench.js";

const AMQP_URL = process.env.AMQP_URL ?? "amqp://127.0.0.1";
const WINDOW = 4096;

/** Takes every batch and drops it: the cost of the SDK without the cost of a network. */
class DroppingSpanExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.spans += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
}

class DroppingMetricExporter implements PushMetricExporter {
  export(_metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    done({ code: ExportResultCode.SUCCESS });
  }
  selectAggregationTemporality(): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

type State = "off" | "traces" | "all";
const STATES: readonly State[] = ["off", "traces", "all"];

function publishEvents(pub: EventPublisher<Order>, n: number): Promise<number> {
  return publishSliding(n, WINDOW, (i) => pub.publish({ id: `t-${i}`, region: "eu", amount: i }));
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 5));
  const nPub = quick ? 3_000 : 10_000;
  const nCon = quick ? 3_000 : 10_000;
  const rateMs = quick ? 400 : 1_000;
  const tag = randomBytes(4).toString("hex");
  const exchange = `grabbit-bench-tracing-${tag}`;
  const queue = `grabbit-bench-tracing-${tag}`;
  const rpcQueue = `bench.rpc.tracing.${tag}`;
  const event = tickEvent("bench.v1.TracedTick", exchange);
  const echo: ServiceDesc = {
    ...BenchEcho,
    amqp: { requestQueue: rpcQueue, prefetch: 128 },
    methods: { echo: { ...BenchEcho.methods.echo, requestQueue: rpcQueue } },
  };

  // The SDK, built once and registered or unregistered per run.
  const spanExporter = new DroppingSpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(spanExporter)],
  });
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new DroppingMetricExporter(),
        exportIntervalMillis: 5_000,
      }),
    ],
  });
  const contextManager = new AsyncLocalStorageContextManager();
  const propagator = new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
  });
  const setState = (state: State) => {
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
    if (state === "off") return;
    context.setGlobalContextManager(contextManager.enable());
    propagation.setGlobalPropagator(propagator);
    trace.setGlobalTracerProvider(tracerProvider);
    if (state === "all") metrics.setGlobalMeterProvider(meterProvider);
  };

  const connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "bench-tracing" });
  const admin = await (await connection.waitForSession()).createChannel();
  const grpcServer = await startGrpcBenchServer();
  const rpcServer = await serveAmqp(connection, echo, benchEchoHandlers, { queueType: "classic" });
  const rpcClient = new AmqpRpcTransport(connection);
  const grpcClient = new GrpcTransport(grpcServer.address);
  const request = benchRequest(1);
  const pub = new EventPublisher(connection, event);
  const rates: Record<string, Record<State, number[]>> = {};
  try {
    await admin.assertExchange(exchange, "topic", { durable: true });
    await declareConsumerQueues(admin, {
      queue,
      type: "classic",
      deadLetterQueue: `${queue}.dlq`,
      retryDelaysMs: [1000],
    });
    await admin.bindQueue(queue, exchange, "tick.*");

    const consume = async (n: number): Promise<number> => {
      await publishEvents(pub, n); // the fill, in the same state, outside the timing
      let count = 0;
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      const consumer = new EventConsumer(connection, {
        queue,
        prefetch: 200,
        queueType: "classic",
        retry: { delaysMs: [1000] },
      });
      consumer.on(event, () => {
        if (++count === n) done();
      });
      const start = performance.now();
      await consumer.start();
      await finished;
      const rate = n / ((performance.now() - start) / 1000);
      await consumer.close();
      return rate;
    };
    const workloads: Record<string, (state: State) => Promise<number>> = {
      publish_confirmed: async () => {
        const rate = await publishEvents(pub, nPub);
        await admin.purgeQueue(queue);
        return rate;
      },
      consume: () => consume(nCon),
      amqp_rpc_calls_per_s: () =>
        unaryThroughput(() => rpcClient.unary(echo.methods.echo!, request), 64, rateMs),
      grpc_unary_calls_per_s: () =>
        unaryThroughput(() => grpcClient.unary(BenchEcho.methods.echo, request), 64, rateMs),
    };
    for (const k of Object.keys(workloads)) rates[k] = { off: [], traces: [], all: [] };
    // Warm up both states alike (JIT, channels, connections, the SDK's first spans).
    for (const state of STATES) {
      setState(state);
      await publishEvents(pub, 1000);
      await admin.purgeQueue(queue);
      await unaryThroughput(() => rpcClient.unary(echo.methods.echo!, request), 64, 200);
      await unaryThroughput(() => grpcClient.unary(BenchEcho.methods.echo, request), 64, 200);
    }
    for (let r = 0; r < rounds; r++) {
      for (const [name, work] of Object.entries(workloads)) {
        const states = STATES.map((_, i) => STATES[(i + r) % STATES.length]!);
        for (const state of states) {
          setState(state);
          const rate = await work(state);
          rates[name]![state].push(rate);
          if (process.env.BENCH_VERBOSE)
            process.stderr.write(`  ${name} ${state}: ${Math.round(rate)}/s\n`);
        }
      }
    }
    setState("traces");
    await tracerProvider.forceFlush();
    if (spanExporter.spans === 0)
      throw new Error("tracing on recorded no span: the runtime did not see the provider");
    if (process.env.BENCH_VERBOSE)
      process.stderr.write(`  spans exported while on: ${spanExporter.spans}\n`);
  } finally {
    setState("off");
    await pub.close();
    await rpcServer.close();
    await rpcClient.close();
    grpcClient.close();
    await grpcServer.close();
    for (const q of [queue, `${queue}.dlq`, `${queue}.retry.1000`, rpcQueue, `${rpcQueue}.dlq`])
      await admin.deleteQueue(q).catch(() => {});
    await admin.deleteExchange(exchange).catch(() => {});
    await admin.close().catch(() => {});
    await connection.close();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  }

  const what: Record<string, [string, string]> = {
    publish_confirmed: ["msg/s", `typed EventPublisher with confirms, window ${WINDOW}`],
    consume: ["msg/s", "typed EventConsumer, prefetch 200, manual ack"],
    amqp_rpc_calls_per_s: [
      "calls/s",
      "RPC over RabbitMQ (classic queue), client and server in this process, 64 in flight",
    ],
    grpc_unary_calls_per_s: [
      "calls/s",
      "gRPC unary, client and server in this process, 64 in flight",
    ],
  };
  const figures: Record<string, Figure> = {};
  for (const [name, { off, traces, all }] of Object.entries(rates)) {
    const [unit, desc] = what[name]!;
    const how = `${desc}; medians of ${rounds} rounds, the states in rotating order`;
    figures[`tracing_${name}`] = figure(
      median(traces),
      median(off),
      unit,
      "higher-is-better",
      `the same with no provider registered (tracer provider only; ${how})`,
    );
    figures[`telemetry_${name}`] = figure(
      median(all),
      median(off),
      unit,
      "higher-is-better",
      `the same with no provider registered (tracer and meter providers; ${how})`,
    );
  }
  return figures;
}
