// The metric helpers the transports call, against the real SDK: names, units, attributes and values
// after a known number of calls; nothing recorded and nothing thrown without a meter provider.
import { describe, expect, it } from "vitest";
import type { Histogram } from "@opentelemetry/sdk-metrics";
import { Code, StatusError, UnroutableError } from "@grabbit/runtime";
import * as t from "@grabbit/runtime/telemetry";
import { count, points, sdkPerBlock, sum } from "./sdk.js";

describe("without a meter provider", () => {
  it("records nothing, throws nothing, and says so", () => {
    expect(t.activeMeter()).toBeUndefined();
    expect(t.metricsEnabled()).toBe(false);
    t.recordPublish({ exchange: "x", durationSeconds: 0.1 });
    t.recordRpcCall({
      side: "client",
      system: "grpc",
      method: "a.B/C",
      code: Code.OK,
      failed: false,
      durationSeconds: 0.1,
    });
    t.recordDeadLettered({ queue: "q", reason: "retries_exhausted" });
    let reads = 0;
    const stop = t.observeConfirmsOutstanding(() => ++reads);
    stop();
    expect(reads).toBe(0);
  });
});

describe("with the SDK's meter provider", () => {
  const sdk = sdkPerBlock({ traces: false });

  it("errorType names failures with low cardinality", () => {
    expect(t.errorType(new StatusError(Code.DEADLINE_EXCEEDED, "late"))).toBe("DEADLINE_EXCEEDED");
    expect(t.errorType(new UnroutableError("x", "k"))).toBe("unroutable");
    expect(t.errorType(new TypeError("t"))).toBe("TypeError");
    expect(t.errorType("a string")).toBe("_OTHER");
  });

  it("recordRpcCall: client and server durations in seconds, by method, status and error", async () => {
    for (let i = 0; i < 3; i++)
      t.recordRpcCall({
        side: "client",
        system: "grpc",
        method: "demo.v1.Orders/Get",
        code: Code.OK,
        failed: false,
        durationSeconds: 0.02,
      });
    t.recordRpcCall({
      side: "client",
      system: "grpc",
      method: "demo.v1.Orders/Get",
      code: Code.NOT_FOUND,
      failed: true,
      durationSeconds: 0.5,
    });
    t.recordRpcCall({
      side: "server",
      system: "grabbit_amqp",
      method: "demo.v1.Orders/Get",
      code: Code.NOT_FOUND,
      failed: false,
      durationSeconds: 0.01,
    });
    const m = await sdk.metrics();
    const client = m.get("rpc.client.call.duration");
    expect(client?.descriptor.unit).toBe("s");
    expect(
      count(client, {
        "rpc.method": "demo.v1.Orders/Get",
        "rpc.status_code": "OK",
        "rpc.system.name": "grpc",
      }),
    ).toBe(3);
    const [notFound] = points<Histogram>(client, { "rpc.status_code": "NOT_FOUND" });
    expect(notFound?.value.count).toBe(1);
    expect(notFound?.value.sum).toBeCloseTo(0.5);
    expect(notFound?.attributes["error.type"]).toBe("NOT_FOUND");
    const server = m.get("rpc.server.call.duration");
    const [serverPoint] = points<Histogram>(server);
    expect(serverPoint?.attributes).toEqual({
      "rpc.system.name": "grabbit_amqp",
      "rpc.method": "demo.v1.Orders/Get",
      "rpc.status_code": "NOT_FOUND",
    });
  });

  it("recordPublish: sent messages and operation duration, failures with error.type", async () => {
    for (let i = 0; i < 5; i++) t.recordPublish({ exchange: "orders", durationSeconds: 0.003 });
    t.recordPublish({ exchange: "orders", durationSeconds: 1, error: "unroutable" });
    t.recordPublish({ exchange: "", durationSeconds: 0.001, operationName: "rpc.request" });
    const m = await sdk.metrics();
    const sent = m.get("messaging.client.sent.messages");
    expect(sent?.descriptor.unit).toBe("{message}");
    expect(sum(sent, { "messaging.destination.name": "orders" })).toBe(6);
    expect(sum(sent, { "messaging.destination.name": "orders", "error.type": "unroutable" })).toBe(
      1,
    );
    expect(
      sum(sent, { "messaging.destination.name": "", "messaging.operation.name": "rpc.request" }),
    ).toBe(1);
    const [ok] = points(sent, { "messaging.destination.name": "orders", "error.type": undefined });
    expect(ok?.attributes).toEqual({
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.destination.name": "orders",
    });
    expect(
      count(m.get("messaging.client.operation.duration"), { "messaging.operation.type": "send" }),
    ).toBe(7);
  });

  it("recordConsumed, recordProcess and recordSettle", async () => {
    for (let i = 0; i < 4; i++) t.recordConsumed({ queue: "reporter" });
    t.recordProcess({ queue: "reporter", durationSeconds: 0.2 });
    t.recordProcess({ queue: "reporter", durationSeconds: 0.4, error: "TypeError" });
    t.recordSettle({ queue: "reporter", operationName: "ack", durationSeconds: 0.001 });
    const m = await sdk.metrics();
    expect(
      sum(m.get("messaging.client.consumed.messages"), {
        "messaging.destination.name": "reporter",
        "messaging.operation.type": "receive",
      }),
    ).toBe(4);
    const process = m.get("messaging.process.duration");
    expect(count(process, { "messaging.operation.type": "process" })).toBe(2);
    expect(points<Histogram>(process, { "error.type": "TypeError" })[0]?.value.sum).toBeCloseTo(
      0.4,
    );
    expect(
      count(m.get("messaging.client.operation.duration"), {
        "messaging.operation.type": "settle",
        "messaging.operation.name": "ack",
      }),
    ).toBe(1);
  });

  it("grabbit counters: re-sends, refusals, unroutable, retries, dead letters by reason, reconnects by node", async () => {
    t.recordPublishResent({ exchange: "orders", reason: "connection_lost" });
    t.recordPublishResent({ exchange: "orders", reason: "connection_lost" });
    t.recordPublishRefused({ exchange: "orders", reason: "nack" });
    t.recordPublishUnroutable({ exchange: "orders" });
    for (let i = 0; i < 3; i++) t.recordConsumeRetry({ queue: "reporter", error: "UNAVAILABLE" });
    t.recordDeadLettered({ queue: "reporter", reason: "retries_exhausted" });
    t.recordDeadLettered({ queue: "reporter", reason: "undecodable" });
    t.recordDeadLettered({ queue: "reporter", reason: "retries_exhausted" });
    t.recordReconnect({ node: "rabbit-2:5672" });
    const m = await sdk.metrics();
    expect(sum(m.get("grabbit.publish.resent"), { "grabbit.reason": "connection_lost" })).toBe(2);
    expect(sum(m.get("grabbit.publish.refused"), { "grabbit.reason": "nack" })).toBe(1);
    expect(
      sum(m.get("grabbit.publish.unroutable"), { "messaging.destination.name": "orders" }),
    ).toBe(1);
    expect(
      sum(m.get("grabbit.consume.retries"), {
        "messaging.destination.name": "reporter",
        "error.type": "UNAVAILABLE",
      }),
    ).toBe(3);
    const dead = m.get("grabbit.consume.dead_lettered");
    expect(sum(dead, { "grabbit.reason": "retries_exhausted" })).toBe(2);
    expect(sum(dead, { "grabbit.reason": "undecodable" })).toBe(1);
    expect(
      sum(m.get("grabbit.connection.reconnects"), { "grabbit.connection.node": "rabbit-2:5672" }),
    ).toBe(1);
  });

  it("observable gauges: confirms outstanding, connection state, outbox backlog and age; unregistering stops them", async () => {
    let outstanding = 7;
    let reads = 0;
    const stopConfirms = t.observeConfirmsOutstanding(() => (reads++, outstanding), {
      "grabbit.connection.name": "publisher",
    });
    const stopState = t.observeConnectionState(() => [
      { node: "rabbit-1:5672", state: "connected" },
      { node: "rabbit-2:5672", state: "connecting" },
    ]);
    const stopOutbox = t.observeOutbox(async () => ({ backlog: 12, oldestAgeSeconds: 3.5 }));
    let m = await sdk.metrics();
    expect(points<number>(m.get("grabbit.publish.confirms.outstanding"))[0]?.value).toBe(7);
    expect(
      points<number>(m.get("grabbit.publish.confirms.outstanding"))[0]?.attributes[
        "grabbit.connection.name"
      ],
    ).toBe("publisher");
    const state = m.get("grabbit.connection.state");
    expect(
      points<number>(state, {
        "grabbit.connection.node": "rabbit-2:5672",
        "grabbit.connection.state": "connecting",
      })[0]?.value,
    ).toBe(1);
    expect(points(state)).toHaveLength(2);
    expect(points<number>(m.get("grabbit.outbox.backlog"))[0]?.value).toBe(12);
    expect(m.get("grabbit.outbox.oldest_age")?.descriptor.unit).toBe("s");
    expect(points<number>(m.get("grabbit.outbox.oldest_age"))[0]?.value).toBe(3.5);
    outstanding = 2;
    m = await sdk.metrics();
    expect(points<number>(m.get("grabbit.publish.confirms.outstanding"))[0]?.value).toBe(2);
    expect(reads).toBe(2);
    stopConfirms();
    stopState();
    stopOutbox();
    outstanding = 99;
    m = await sdk.metrics();
    expect(reads).toBe(2);
    expect(
      points<number>(m.get("grabbit.publish.confirms.outstanding")).map((p) => p.value),
    ).not.toContain(99);
  });

  it("gauges registered before a provider is registered attach when one is", async () => {
    sdk.reset(); // a new provider: the runtime remakes instruments and re-attaches gauges on next use
    const stop = t.observeConfirmsOutstanding(() => 41);
    t.recordReconnect({ node: "n:1" }); // any recording notices the provider
    const m = await sdk.metrics();
    expect(points<number>(m.get("grabbit.publish.confirms.outstanding"))[0]?.value).toBe(41);
    stop();
  });
});
