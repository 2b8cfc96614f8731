// Tracing, metrics and logs of events over RabbitMQ, on the real broker with the real OpenTelemetry
// SDK (in-memory exporters): the producer span and its traceparent as a plain AMQP header, a
// process span per delivery attempt with the retry and dead-letter decisions, one trace from a
// gRPC call through the event it publishes to the consumer's handling, and the metric values of a
// known run. The first block runs before any provider is registered.
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  EVENT_DEAD_LETTER,
  EVENT_RETRY,
} from "@grabbit/runtime/amqp";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { activeTracer } from "@grabbit/runtime/telemetry";
import { countdown, Janitor, orderEvent, type Order } from "../amqp/fixtures.js";
import { TestService, testHandlers, type Req, type Res } from "../grpc/fixtures.js";
import { capturedLogs, count, sdkPerBlock, sum, type CapturedLogs } from "./sdk.js";
import { until } from "../outbox/support.js";

const TRACEPARENT = /^00-([\da-f]{32})-([\da-f]{16})-01$/;

const janitor = new Janitor();
const closers: (() => Promise<unknown>)[] = [];
let conn: AmqpConnection;
let log: CapturedLogs;

beforeAll(async () => {
  log = capturedLogs();
  conn = await AmqpConnection.connect({ name: "grabbit-telemetry-events", logger: log.logger });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => {});
  await janitor.cleanup();
});
afterAll(async () => {
  await conn.close();
});

/** A raw queue bound to `exchange` for every key, to read what was published as another client would. */
async function rawQueue(exchange: string): Promise<string> {
  const q = janitor.queue("raw");
  const ch = await janitor.channel();
  await ch.assertExchange(exchange, "topic", { durable: true });
  await ch.assertQueue(q, { durable: false, autoDelete: false });
  await ch.bindQueue(q, exchange, "#");
  await ch.close();
  return q;
}

function publisher(exchange: string): EventPublisher<Order> {
  const p = new EventPublisher(conn, orderEvent(exchange));
  closers.push(() => p.close());
  return p;
}

/** A consumer with fast retries whose handler is `handler`. */
async function consumer(
  exchange: string,
  handler: (o: Order) => Promise<void> | void,
  maxAttempts = 3,
): Promise<EventConsumer> {
  const queue = janitor.queue("tel", [20]);
  const c = new EventConsumer(conn, {
    queue,
    queueType: "classic",
    retry: { maxAttempts, delaysMs: [20] },
  }).on(orderEvent(exchange), handler);
  await c.start();
  closers.push(() => c.close());
  return c;
}

describe("with no provider registered", () => {
  it("events flow, no trace context is added, and a failed handler is still logged with the caller's trace id", async () => {
    expect(activeTracer()).toBeUndefined();
    const exchange = janitor.exchange("tel-off");
    const raw = await rawQueue(exchange);
    const seen = countdown(1);
    await consumer(
      exchange,
      () => {
        seen.hit();
        throw new StatusError(Code.INVALID_ARGUMENT, "refused for good");
      },
      1,
    );
    const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await publisher(exchange).publish({ id: "plain", region: "eu", amount: 1 });
    await publisher(exchange).publish(
      { id: "own", region: "eu", amount: 2 },
      { messageId: "m-own", metadata: { traceparent: own } },
    );
    const [first, second] = [await janitor.next(raw), await janitor.next(raw)];
    expect(first.properties.headers?.["traceparent"]).toBeUndefined();
    // The caller's own traceparent travels untouched when nothing traces.
    expect(second.properties.headers?.["traceparent"]).toBe(own);
    await seen.done;
    await until(
      () =>
        log
          .records()
          .some(
            (r) => r["message_id"] === "m-own" && String(r["msg"]).startsWith("dead-lettering"),
          ),
      "the dead-letter log line",
      20_000,
    );
    const records = log.records().filter((r) => r["message_id"] === "m-own");
    expect(records.find((r) => String(r["msg"]).startsWith("handler failed"))).toMatchObject({
      level: "warn",
      attempt: 1,
      trace_id: "0af7651916cd43dd8448eb211c80319c",
    });
    expect(records.find((r) => String(r["msg"]).startsWith("dead-lettering"))).toMatchObject({
      level: "warn",
      reason_kind: "permanent_error",
      trace_id: "0af7651916cd43dd8448eb211c80319c",
    });
  });
});

describe("with the SDK registered", () => {
  const sdk = sdkPerBlock({}, () => {
    log.lines.length = 0;
  });

  const spansNamed = (name: string): ReadableSpan[] => sdk.spans().filter((s) => s.name === name);
  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

  it("publish is a PRODUCER span under the caller's, and traceparent arrives as a plain string header another client reads", async () => {
    const exchange = janitor.exchange("tel-pub");
    const raw = await rawQueue(exchange);
    const withBaggage = propagation.setBaggage(
      context.active(),
      propagation.createBaggage({ tenant: { value: "acme" } }),
    );
    const root = await context.with(withBaggage, () =>
      trace.getTracer("test").startActiveSpan("caller", async (span) => {
        await publisher(exchange).publish(
          { id: "o-1", region: "eu", amount: 3 },
          { messageId: "m-1" },
        );
        span.end();
        return span.spanContext();
      }),
    );
    const [producer] = spansNamed(`publish ${exchange}`);
    expect(producer).toBeDefined();
    expect(producer!.kind).toBe(SpanKind.PRODUCER);
    expect(producer!.spanContext().traceId).toBe(root.traceId);
    expect(parentOf(producer!)).toBe(root.spanId);
    expect(producer!.attributes).toMatchObject({
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.destination.name": exchange,
      "messaging.rabbitmq.destination.routing_key": "order.eu.created",
      "messaging.message.id": "m-1",
    });
    expect(producer!.attributes["messaging.message.body.size"]).toBeGreaterThan(0);

    // Read with plain amqplib, as a consumer in another language would.
    const msg = await janitor.next(raw);
    const header = msg.properties.headers?.["traceparent"];
    expect(typeof header).toBe("string");
    const match = TRACEPARENT.exec(header as string);
    expect(match?.[1]).toBe(root.traceId);
    expect(match?.[2]).toBe(producer!.spanContext().spanId);
    expect(msg.properties.headers?.["baggage"]).toBe("tenant=acme");
  });

  it("a consumer that fails twice then succeeds: three process spans under the producer, the retries visible; one that always fails: the dead-letter decision", async () => {
    const exchange = janitor.exchange("tel-retry");
    const failures = new Map<string, number>();
    const done = countdown(2);
    await consumer(
      exchange,
      (o) => {
        const n = (failures.get(o.id) ?? 0) + 1;
        failures.set(o.id, n);
        if (o.id === "bad" || n <= 2) {
          if (o.id === "bad" && n === 3) done.hit();
          throw new Error(`failure ${n} of ${o.id}`);
        }
        done.hit();
      },
      3,
    );
    const pub = publisher(exchange);
    await pub.publish({ id: "flaky", region: "eu", amount: 1 }, { messageId: "m-flaky" });
    await pub.publish({ id: "bad", region: "eu", amount: 2 }, { messageId: "m-bad" });
    await done.done;
    const processName = (s: ReadableSpan) =>
      s.name.startsWith("process ") && s.kind === SpanKind.CONSUMER;
    await until(() => sdk.spans().filter(processName).length === 6, "six process spans", 20_000);

    const producers = spansNamed(`publish ${exchange}`);
    const producerOf = (id: string) =>
      producers.find((s) => s.attributes["messaging.message.id"] === id)!;
    const attemptsOf = (id: string) =>
      sdk
        .spans()
        .filter((s) => processName(s) && s.attributes["messaging.message.id"] === id)
        .sort(
          (a, b) =>
            Number(a.attributes["grabbit.delivery.attempt"]) -
            Number(b.attributes["grabbit.delivery.attempt"]),
        );

    const flaky = attemptsOf("m-flaky");
    expect(flaky.map((s) => s.attributes["grabbit.delivery.attempt"])).toEqual([1, 2, 3]);
    for (const span of flaky) {
      // Each attempt is a child of the producer span (the retried copies keep its traceparent).
      expect(span.spanContext().traceId).toBe(producerOf("m-flaky").spanContext().traceId);
      expect(parentOf(span)).toBe(producerOf("m-flaky").spanContext().spanId);
      expect(span.attributes["messaging.destination.name"]).toBe(
        span.name.slice("process ".length),
      );
    }
    expect(flaky.slice(0, 2).map((s) => s.attributes["grabbit.outcome"])).toEqual([
      "retry",
      "retry",
    ]);
    expect(
      flaky
        .slice(0, 2)
        .every(
          (s) =>
            s.status.code === SpanStatusCode.ERROR && s.events.some((e) => e.name === EVENT_RETRY),
        ),
    ).toBe(true);
    expect(flaky[0]!.events.find((e) => e.name === EVENT_RETRY)?.attributes).toMatchObject({
      "grabbit.delivery.attempt": 2,
      "grabbit.retry.delay_ms": 20,
    });
    expect(flaky[0]!.events.some((e) => e.name === "exception")).toBe(true);
    expect(flaky[2]!.attributes["grabbit.outcome"]).toBe("ack");
    expect(flaky[2]!.status.code).toBe(SpanStatusCode.UNSET);

    const bad = attemptsOf("m-bad");
    expect(bad.map((s) => s.attributes["grabbit.outcome"])).toEqual([
      "retry",
      "retry",
      "dead_letter",
    ]);
    const last = bad[2]!;
    expect(last.status.code).toBe(SpanStatusCode.ERROR);
    expect(last.attributes["grabbit.reason"]).toBe("retries_exhausted");
    const dead = last.events.find((e) => e.name === EVENT_DEAD_LETTER);
    expect(dead?.attributes?.["grabbit.reason"]).toBe("retries_exhausted");
    expect(String(dead?.attributes?.["grabbit.dead_letter.queue"])).toMatch(/\.dlq$/);

    // Logged: each failed attempt (warn, attempt number) and the dead-letter (warn, reason), with ids.
    await until(
      () => log.records().some((r) => String(r["msg"]).startsWith("dead-lettering")),
      "the dead-letter log line",
      20_000,
    );
    const failedLogs = log
      .records()
      .filter((r) => r["message_id"] === "m-bad" && String(r["msg"]).startsWith("handler failed"));
    expect(failedLogs.map((r) => r["attempt"])).toEqual([1, 2, 3]);
    expect(
      failedLogs.every(
        (r) => r["level"] === "warn" && r["trace_id"] === producerOf("m-bad").spanContext().traceId,
      ),
    ).toBe(true);
    // The span id is the attempt's own process span.
    expect(failedLogs[0]!["span_id"]).toBe(bad[0]!.spanContext().spanId);
    const deadLog = log
      .records()
      .find((r) => r["message_id"] === "m-bad" && String(r["msg"]).startsWith("dead-lettering"));
    expect(deadLog).toMatchObject({
      level: "warn",
      reason_kind: "retries_exhausted",
      trace_id: producerOf("m-bad").spanContext().traceId,
    });
    expect(String(deadLog!["queue"])).toBe(last.attributes["messaging.destination.name"]);
  });

  it("metric values after a known run: N published, M retried, K dead-lettered, by queue and reason", async () => {
    const exchange = janitor.exchange("tel-metrics");
    const failures = new Map<string, number>();
    const settled = countdown(5);
    const c = await consumer(
      exchange,
      (o) => {
        const n = (failures.get(o.id) ?? 0) + 1;
        failures.set(o.id, n);
        if (o.id.startsWith("bad") && n === 2) settled.hit();
        if (o.id.startsWith("bad") || (o.id === "flaky" && n === 1)) throw new Error("no");
        settled.hit();
      },
      2,
    );
    const pub = publisher(exchange);
    // 5 events: 2 fine, 1 that fails once, 2 that always fail (maxAttempts 2).
    for (const id of ["a", "b", "flaky", "bad-1", "bad-2"])
      await pub.publish({ id, region: "eu", amount: 1 });
    await settled.done;
    await until(
      () => sdk.spans().filter((s) => s.name === `process ${c.queue}`).length === 8,
      "eight process spans",
      20_000,
    );
    const m = await sdk.metrics();
    expect(
      sum(m.get("messaging.client.sent.messages"), { "messaging.destination.name": exchange }),
    ).toBe(5);
    expect(
      count(m.get("messaging.client.operation.duration"), {
        "messaging.destination.name": exchange,
        "messaging.operation.type": "send",
      }),
    ).toBe(5);
    // 2 + 2 (flaky) + 2 + 2 (bad, two attempts each) deliveries, as many handler runs.
    expect(
      sum(m.get("messaging.client.consumed.messages"), { "messaging.destination.name": c.queue }),
    ).toBe(8);
    expect(
      count(m.get("messaging.process.duration"), { "messaging.destination.name": c.queue }),
    ).toBe(8);
    expect(
      count(m.get("messaging.process.duration"), {
        "messaging.destination.name": c.queue,
        "error.type": "Error",
      }),
    ).toBe(5);
    // Retried: flaky once, each bad once; dead-lettered: the two bad ones.
    expect(sum(m.get("grabbit.consume.retries"), { "messaging.destination.name": c.queue })).toBe(
      3,
    );
    expect(
      sum(m.get("grabbit.consume.dead_lettered"), {
        "messaging.destination.name": c.queue,
        "grabbit.reason": "retries_exhausted",
      }),
    ).toBe(2);
    expect(await janitor.messageCount(c.deadLetterQueue)).toBe(2);
  });

  it("one trace: gRPC call > server span > the handler's publish > the consumer's process span", async () => {
    const exchange = janitor.exchange("tel-grpc");
    const pub = publisher(exchange);
    const handled = countdown(1);
    let inHandler: string | undefined;
    await consumer(exchange, () => {
      inHandler = trace.getActiveSpan()?.spanContext().spanId;
      handled.hit();
    });
    const server = new GrpcServer({ logger: log.logger }).add(TestService, {
      ...testHandlers().handlers,
      async echo(req: Req): Promise<Res> {
        await pub.publish({ id: req.text ?? "", region: "eu", amount: 1 });
        return { text: req.text };
      },
    });
    const port = await server.listen();
    closers.push(() => server.close({ graceMs: 1000 }));
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    closers.push(async () => client.close());

    const root = await trace.getTracer("test").startActiveSpan("bridge-request", async (span) => {
      await client.unary(TestService.methods.echo, { text: "via-grpc" });
      span.end();
      return span.spanContext();
    });
    await handled.done;
    await until(
      () => sdk.spans().some((s) => s.name.startsWith("process ")),
      "the process span",
      20_000,
    );
    const spans = sdk.spans().filter((s) => s.spanContext().traceId === root.traceId);
    const byName = (pred: (s: ReadableSpan) => boolean) => spans.find(pred)!;
    const grpcClient = byName((s) => s.kind === SpanKind.CLIENT && s.name === "test.v1.Test/Echo");
    const grpcServer = byName((s) => s.kind === SpanKind.SERVER && s.name === "test.v1.Test/Echo");
    const producer = byName((s) => s.name === `publish ${exchange}`);
    const consumerSpan = byName((s) => s.name.startsWith("process "));
    expect(parentOf(grpcClient)).toBe(root.spanId);
    expect(parentOf(grpcServer)).toBe(grpcClient.spanContext().spanId);
    expect(parentOf(producer)).toBe(grpcServer.spanContext().spanId);
    expect(parentOf(consumerSpan)).toBe(producer.spanContext().spanId);
    // The handler ran inside the process span.
    expect(inHandler).toBe(consumerSpan.spanContext().spanId);
  });
});
