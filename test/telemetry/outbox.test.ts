// The outbox keeps the trace of the transaction that wrote an event, across a relay restart: the
// relay's publish span continues it and the consumer's process span is in the same trace. Also the
// outbox gauges, and the connection's reconnect counter, state gauge and loss log. Real
// PostgreSQL, real broker, real OpenTelemetry SDK (in-memory exporters).
import { SpanKind, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJsonLogger } from "@grabbit/runtime";
import { AmqpConnection, EventConsumer } from "@grabbit/runtime/amqp";
import { Outbox, OutboxRelay } from "@grabbit/runtime/outbox";
import { metricsEnabled } from "@grabbit/runtime/telemetry";
import { countdown, orderEvent } from "../amqp/fixtures.js";
import { brokerProxy } from "../support/tcp-proxy.js";
import { outboxTestContext, uniqueTable, until } from "../outbox/support.js";
import { points, startSdk, sum, type Sdk } from "./sdk.js";

const ctx = outboxTestContext("grabbit-telemetry-outbox");
const { janitor, closers, tables } = ctx;

describe("outbox and connection telemetry with the SDK registered", () => {
  let sdk: Sdk;
  beforeAll(() => {
    sdk = startSdk();
  });
  afterAll(() => sdk.shutdown());

  it("an event written inside a span is published and consumed in that trace, after the relay that saw it first was replaced", async () => {
    sdk.reset();
    const outbox = new Outbox({ table: uniqueTable("outbox_tel"), partitions: 4 });
    tables.push(outbox.table, outbox.partitionTable);
    await outbox.install(ctx.db);
    const exchange = janitor.exchange("tel-ob");
    const event = orderEvent(exchange);
    const queue = janitor.queue("tel-ob", [50]);
    const handled = countdown(1);
    let handlerTrace: string | undefined;
    const consumer = new EventConsumer(ctx.conn, {
      queue,
      queueType: "classic",
      retry: { delaysMs: [50] },
    }).on(event, () => {
      handlerTrace = trace.getActiveSpan()?.spanContext().traceId;
      handled.hit();
    });
    await consumer.start();
    closers.push(() => consumer.close());

    // The business transaction, inside its own span; the span ends long before the relay sends.
    const writer = await trace.getTracer("test").startActiveSpan("place-order", async (span) => {
      await ctx.db.transaction((tx) =>
        outbox.add(tx, event, { id: "o-1", region: "eu", amount: 5 }, { messageId: "m-outbox" }),
      );
      span.end();
      return span.spanContext();
    });
    const { rows } = await ctx.db.query(`SELECT headers FROM ${outbox.table}`);
    expect((rows[0] as { headers: Record<string, unknown> }).headers["traceparent"]).toBe(
      `00-${writer.traceId}-${writer.spanId}-01`,
    );

    // A first relay starts and is stopped (the process restarts) before it sends anything...
    const first = new OutboxRelay(ctx.db, ctx.conn, outbox, { pollMs: 20 });
    expect(await first.backlog()).toMatchObject({ backlog: 1 });
    await first.close();
    // ...and a new one publishes the row.
    const second = new OutboxRelay(ctx.db, ctx.conn, outbox, { pollMs: 20 }).start();
    closers.push(() => second.close());
    await handled.done;
    await until(() => sdk.spans().some((s) => s.name === `process ${queue}`), "the process span");

    const producer = sdk.spans().find((s) => s.name === `publish ${exchange}`)!;
    const processSpan = sdk.spans().find((s) => s.name === `process ${queue}`)!;
    expect(producer.kind).toBe(SpanKind.PRODUCER);
    expect(producer.spanContext().traceId).toBe(writer.traceId);
    expect(producer.parentSpanContext?.spanId).toBe(writer.spanId);
    expect(producer.attributes["messaging.message.id"]).toBe("m-outbox");
    expect(processSpan.spanContext().traceId).toBe(writer.traceId);
    expect(processSpan.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
    expect(handlerTrace).toBe(writer.traceId);

    // The gauges of the running relay: nothing left, so no age either.
    await until(() => second.stats.sent === 1, "the row marked sent");
    const m = await sdk.metrics();
    expect(
      points<number>(m.get("grabbit.outbox.backlog"), { "grabbit.outbox.table": outbox.table }).map(
        (p) => p.value,
      ),
    ).toEqual([0]);
    expect(
      points<number>(m.get("grabbit.outbox.oldest_age"), {
        "grabbit.outbox.table": outbox.table,
      }).map((p) => p.value),
    ).toEqual([0]);
    expect(
      sum(m.get("messaging.client.sent.messages"), { "messaging.destination.name": exchange }),
    ).toBe(1);
  });

  it("a lost connection is logged (warn, with the node), counted as a reconnect and shows in the state gauge", async () => {
    sdk.reset();
    const out: string[] = [];
    const proxy = await brokerProxy();
    closers.push(() => proxy.stop());
    const conn = await AmqpConnection.connect({
      urls: proxy.url,
      name: "telemetry-reconnect",
      reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
      logger: createJsonLogger({ level: "info", write: (l) => out.push(l) }),
    });
    closers.push(() => conn.close());
    const node = `127.0.0.1:${new URL(proxy.url).port}`;
    // The runtime moves its gauges to a newly registered meter provider (sdk.reset() made one) on
    // its next look at the provider; anything recorded does that, and so does this.
    expect(metricsEnabled()).toBe(true);
    const stateOf = async () =>
      points<number>((await sdk.metrics()).get("grabbit.connection.state"), {
        "grabbit.connection.node": node,
      });
    expect(
      (await stateOf()).map((p) => [p.attributes["grabbit.connection.state"], p.value]),
    ).toEqual([["connected", 1]]);

    const back = new Promise<void>((resolve) => conn.once("connected", () => resolve()));
    proxy.cutAll();
    await back;
    const records = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(
      records.find(
        (r) => r["level"] === "warn" && String(r["msg"]).startsWith("lost the connection"),
      ),
    ).toMatchObject({ node });
    expect(records.find((r) => String(r["msg"]).startsWith("reconnected"))).toMatchObject({
      level: "info",
      node,
      reconnects: 1,
    });
    const m = await sdk.metrics();
    expect(sum(m.get("grabbit.connection.reconnects"), { "grabbit.connection.node": node })).toBe(
      1,
    );
    expect(
      (await stateOf()).map((p) => [p.attributes["grabbit.connection.state"], p.value]),
    ).toEqual([["connected", 1]]);
    expect(conn.metricState).toBe("connected");
    await conn.close();
    expect(conn.metricState).toBe("closed");
  });
});
