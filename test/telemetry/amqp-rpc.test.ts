// Tracing, metrics and failure logs of RPC over RabbitMQ, on the real broker with the real
// OpenTelemetry SDK (in-memory exporters): the CLIENT span and the SERVER span continuing it
// through the request's traceparent header, the messaging attributes (request queue, correlation id
// as conversation id), the handler inside the server span (an event it publishes is the server
// span's child), durations by method and status, and a failed call logged once by the server.
import amqp from "amqplib";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, EventPublisher, serveAmqp } from "@grabbit/runtime/amqp";
import { activeTracer } from "@grabbit/runtime/telemetry";
import { AMQP_URL } from "../support/broker.js";
import { Janitor, orderEvent } from "../amqp/fixtures.js";
import { echoService, type Echo } from "../amqp-rpc/fixture.js";
import { capturedLogs, count, sdkPerBlock, type CapturedLogs } from "./sdk.js";
import { until } from "../outbox/support.js";

let serverConn: AmqpConnection;
let clientConn: AmqpConnection;
let log: CapturedLogs;
const janitor = new Janitor();
const queues: string[] = [];
const closables: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  log = capturedLogs();
  // The server's logger comes from its connection.
  serverConn = await AmqpConnection.connect({
    urls: AMQP_URL,
    name: "telemetry-rpc-server",
    logger: log.logger,
  });
  clientConn = await AmqpConnection.connect({ urls: AMQP_URL, name: "telemetry-rpc-client" });
});
afterEach(async () => {
  await Promise.allSettled(closables.splice(0).map((c) => c.close()));
  await janitor.cleanup();
});
afterAll(async () => {
  const admin = await amqp.connect(AMQP_URL);
  const ch = await admin.createChannel();
  for (const q of queues) {
    await ch.deleteQueue(q).catch(() => {});
    await ch.deleteQueue(`${q}.dlq`).catch(() => {});
  }
  await admin.close();
  await clientConn.close();
  await serverConn.close();
});

async function setup(handlers: Record<string, (req: Echo) => unknown>) {
  const service = echoService();
  queues.push(service.amqp!.requestQueue);
  const server = await serveAmqp(serverConn, service, handlers);
  const client = new AmqpRpcTransport(clientConn);
  closables.push(client, server);
  return { service, client };
}

describe("with no provider registered", () => {
  it("calls work and carry no trace context; a failure is logged by the server with the caller's trace id", async () => {
    expect(activeTracer()).toBeUndefined();
    let seen: Record<string, unknown> | undefined;
    const { service, client } = await setup({
      echo: (req) => req,
      fail: () => {
        throw new Error("database exploded");
      },
    });
    const echoed = await client.unary(
      service.methods.echo,
      { text: "plain", delayMs: 0 },
      { onResponseMetadata: (m) => (seen = m) },
    );
    expect(echoed.text).toBe("plain");
    expect(seen?.["traceparent"]).toBeUndefined();
    log.lines.length = 0;
    const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await expect(
      client.unary(
        service.methods.fail,
        { text: "x", delayMs: 0 },
        { metadata: { traceparent: own } },
      ),
    ).rejects.toMatchObject({ code: Code.UNKNOWN });
    await until(() => log.lines.length > 0, "the failure log", 10_000);
    expect(log.records()[0]).toMatchObject({
      level: "error",
      method: service.methods.fail.path,
      code: "UNKNOWN",
      transport: "amqp",
      queue: service.amqp!.requestQueue,
      trace_id: "0af7651916cd43dd8448eb211c80319c",
    });
  });
});

describe("with the SDK registered", () => {
  const sdk = sdkPerBlock({}, () => {
    log.lines.length = 0;
  });

  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

  it("client span > server span (continuing the request's traceparent) > the handler's publish, with the RPC and messaging attributes", async () => {
    const exchange = janitor.exchange("tel-rpc");
    // Somewhere for the event to go (a mandatory publish nobody receives is refused).
    const sink = janitor.queue("tel-rpc-sink");
    const ch = await janitor.channel();
    await ch.assertExchange(exchange, "topic", { durable: true });
    await ch.assertQueue(sink, { durable: false });
    await ch.bindQueue(sink, exchange, "#");
    await ch.close();
    const events = new EventPublisher(serverConn, orderEvent(exchange));
    closables.push(events);
    let inHandler: string | undefined;
    const { service, client } = await setup({
      echo: async (req) => {
        inHandler = trace.getActiveSpan()?.spanContext().spanId;
        await events.publish({ id: req.text, region: "eu", amount: 1 });
        return req;
      },
    });
    const root = await trace.getTracer("test").startActiveSpan("caller", async (span) => {
      await client.unary(service.methods.echo, { text: "traced", delayMs: 0 });
      span.end();
      return span.spanContext();
    });
    await until(
      () => sdk.spans().some((s) => s.kind === SpanKind.SERVER),
      "the server span",
      10_000,
    );
    const spans = sdk.spans().filter((s) => s.spanContext().traceId === root.traceId);
    const method = service.methods.echo.path.slice(1);
    const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT && s.name === method)!;
    const serverSpan = spans.find((s) => s.kind === SpanKind.SERVER && s.name === method)!;
    const producer = spans.find((s) => s.name === `publish ${exchange}`)!;
    expect(parentOf(clientSpan)).toBe(root.spanId);
    expect(parentOf(serverSpan)).toBe(clientSpan.spanContext().spanId);
    expect(inHandler).toBe(serverSpan.spanContext().spanId);
    expect(parentOf(producer)).toBe(serverSpan.spanContext().spanId);

    const queue = service.amqp!.requestQueue;
    expect(clientSpan.attributes).toMatchObject({
      "rpc.system.name": "grabbit_amqp",
      "rpc.method": method,
      "rpc.status_code": "OK",
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "send",
      "messaging.destination.name": queue,
    });
    expect(serverSpan.attributes).toMatchObject({
      "rpc.system.name": "grabbit_amqp",
      "rpc.method": method,
      "rpc.status_code": "OK",
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "process",
      "messaging.destination.name": queue,
    });
    const conversation = clientSpan.attributes["messaging.message.conversation_id"];
    expect(typeof conversation).toBe("string");
    expect(serverSpan.attributes["messaging.message.conversation_id"]).toBe(conversation);
    expect(serverSpan.attributes["messaging.message.body.size"]).toBeGreaterThan(0);
  });

  it("a request refused before any handler runs (a method the server lacks) still has its SERVER span, in error, in the caller's trace", async () => {
    const { service, client } = await setup({});
    const root = await trace.getTracer("test").startActiveSpan("caller", async (span) => {
      await expect(
        client.unary(service.methods.missing, { text: "", delayMs: 0 }),
      ).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
      span.end();
      return span.spanContext();
    });
    await until(
      () => sdk.spans().some((s) => s.kind === SpanKind.SERVER),
      "the server span",
      10_000,
    );
    const serverSpan = sdk.spans().find((s) => s.kind === SpanKind.SERVER)!;
    expect(serverSpan.spanContext().traceId).toBe(root.traceId);
    expect(serverSpan.status.code).toBe(SpanStatusCode.ERROR);
    expect(serverSpan.attributes["rpc.status_code"]).toBe("UNIMPLEMENTED");
  });

  it("a stream over RabbitMQ: a CLIENT and a SERVER span for the call, the server's continuing the client's", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const server = await serveAmqp(serverConn, service, {
      async *watch(req: Echo) {
        for (let i = 0; i < 3; i++) yield { text: req.text, delayMs: i };
      },
    });
    const client = new AmqpRpcTransport(clientConn);
    closables.push(client, server);
    const got: number[] = [];
    for await (const m of client.serverStream(service.methods.watch, { text: "s", delayMs: 0 }))
      got.push(m.delayMs);
    expect(got).toEqual([0, 1, 2]);
    await until(
      () =>
        sdk.spans().some((s) => s.kind === SpanKind.SERVER) &&
        sdk.spans().some((s) => s.kind === SpanKind.CLIENT),
      "both spans",
      10_000,
    );
    const method = service.methods.watch.path.slice(1);
    const clientSpan = sdk.spans().find((s) => s.kind === SpanKind.CLIENT && s.name === method)!;
    const serverSpan = sdk.spans().find((s) => s.kind === SpanKind.SERVER && s.name === method)!;
    expect(serverSpan.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
    expect(serverSpan.attributes["rpc.status_code"]).toBe("OK");
  });

  it("durations by method and status on both sides; a failed call ends both spans in error and is logged once with the trace id", async () => {
    const { service, client } = await setup({
      echo: (req) => req,
      fail: () => {
        throw new Error("database exploded");
      },
      slow: () => {
        throw new StatusError(Code.NOT_FOUND, "no such thing");
      },
    });
    for (let i = 0; i < 3; i++)
      await client.unary(service.methods.echo, { text: `ok-${i}`, delayMs: 0 });
    await expect(
      client.unary(service.methods.fail, { text: "x", delayMs: 0 }),
    ).rejects.toMatchObject({ code: Code.UNKNOWN });
    await expect(
      client.unary(service.methods.slow, { text: "x", delayMs: 0 }),
    ).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await until(
      () => sdk.spans().filter((s) => s.kind === SpanKind.SERVER).length === 5,
      "five server spans",
      10_000,
    );

    const m = await sdk.metrics();
    const echo = service.methods.echo.path.slice(1);
    const fail = service.methods.fail.path.slice(1);
    const slow = service.methods.slow.path.slice(1);
    const amqpRpc = { "rpc.system.name": "grabbit_amqp" };
    expect(
      count(m.get("rpc.client.call.duration"), {
        ...amqpRpc,
        "rpc.method": echo,
        "rpc.status_code": "OK",
      }),
    ).toBe(3);
    expect(
      count(m.get("rpc.server.call.duration"), {
        ...amqpRpc,
        "rpc.method": echo,
        "rpc.status_code": "OK",
      }),
    ).toBe(3);
    expect(
      count(m.get("rpc.client.call.duration"), {
        ...amqpRpc,
        "rpc.method": fail,
        "rpc.status_code": "UNKNOWN",
        "error.type": "UNKNOWN",
      }),
    ).toBe(1);
    expect(
      count(m.get("rpc.server.call.duration"), {
        ...amqpRpc,
        "rpc.method": fail,
        "rpc.status_code": "UNKNOWN",
        "error.type": "UNKNOWN",
      }),
    ).toBe(1);
    // NOT_FOUND is the caller's failure: an error for the client, not for the server.
    expect(
      count(m.get("rpc.client.call.duration"), {
        ...amqpRpc,
        "rpc.method": slow,
        "error.type": "NOT_FOUND",
      }),
    ).toBe(1);
    expect(
      count(m.get("rpc.server.call.duration"), {
        ...amqpRpc,
        "rpc.method": slow,
        "rpc.status_code": "NOT_FOUND",
      }),
    ).toBe(1);
    expect(
      count(m.get("rpc.server.call.duration"), {
        ...amqpRpc,
        "rpc.method": slow,
        "error.type": "NOT_FOUND",
      }),
    ).toBe(0);

    const failServer = sdk.spans().find((s) => s.kind === SpanKind.SERVER && s.name === fail)!;
    const failClient = sdk.spans().find((s) => s.kind === SpanKind.CLIENT && s.name === fail)!;
    expect(failServer.status).toMatchObject({
      code: SpanStatusCode.ERROR,
      message: "database exploded",
    });
    expect(failClient.status.code).toBe(SpanStatusCode.ERROR);
    expect(failServer.events.some((e) => e.name === "exception")).toBe(true);

    await until(
      () => log.records().some((r) => r["method"] === service.methods.fail.path),
      "the failure log",
      10_000,
    );
    const failures = log.records().filter((r) => r["method"] === service.methods.fail.path);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      level: "error",
      code: "UNKNOWN",
      transport: "amqp",
      queue: service.amqp!.requestQueue,
      message_id: failServer.attributes["messaging.message.id"],
      trace_id: failServer.spanContext().traceId,
      span_id: failServer.spanContext().spanId,
    });
    expect(log.records().find((r) => r["method"] === service.methods.slow.path)).toMatchObject({
      level: "debug",
      code: "NOT_FOUND",
    });
  });
});
