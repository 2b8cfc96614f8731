// Tracing, metrics and failure logs of the gRPC transport, on a real grpc-js server on loopback with
// the real OpenTelemetry SDK (in-memory exporters). The first block runs before any provider is
// registered: calls work, nothing is traced, and a provider registered later is picked up.
import * as grpc from "@grpc/grpc-js";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { pino } from "pino";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type HandlerContext, type Interceptor } from "@grabbit/runtime";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { activeTracer, grpcTargetAddress } from "@grabbit/runtime/telemetry";
import {
  collect,
  fromArray,
  statusOf,
  TestService,
  testHandlers,
  type Req,
  type Res,
} from "../grpc/fixtures.js";
import { capturedLogs, count, points, sdkPerBlock, type CapturedLogs } from "./sdk.js";
import { until } from "../outbox/support.js";

const M = TestService.methods;
const TRACEPARENT = /^00-([\da-f]{32})-([\da-f]{16})-0[01]$/;

/** The test service, with an echo that also reports the span it runs in and starts a child span. */
function handlers() {
  const base = testHandlers().handlers;
  return {
    ...base,
    async echo(req: Req, ctx: HandlerContext): Promise<Res> {
      const active = trace.getActiveSpan()?.spanContext();
      await trace.getTracer("test").startActiveSpan("handler-work", async (span) => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        span.end();
      });
      return {
        text: req.text,
        metadata: ctx.metadata,
        values: { traceId: active?.traceId ?? null, spanId: active?.spanId ?? null },
      };
    },
  };
}

let server: GrpcServer;
let client: GrpcTransport;
let port: number;
let log: CapturedLogs;
/** Interceptors record the span active when they run. */
const seenByInterceptor: { client?: string | undefined; server?: string | undefined } = {};
const clientSpy: Interceptor = (next) => async (req) => {
  seenByInterceptor.client = trace.getActiveSpan()?.spanContext().spanId;
  return next(req);
};
const serverSpy: Interceptor = (next) => async (req) => {
  seenByInterceptor.server = trace.getActiveSpan()?.spanContext().spanId;
  return next(req);
};

beforeAll(async () => {
  log = capturedLogs();
  server = new GrpcServer({ logger: log.logger, interceptors: [serverSpy] }).add(
    TestService,
    handlers(),
  );
  port = await server.listen();
  client = new GrpcTransport(`127.0.0.1:${port}`, { interceptors: [clientSpy] });
});
afterAll(async () => {
  client.close();
  await server.close({ graceMs: 1000 });
});

describe("with no provider registered", () => {
  it("calls work, nothing is traced, metadata is left alone, failures are still logged with the caller's trace id", async () => {
    expect(activeTracer()).toBeUndefined();
    const res = await client.unary(M.echo, { text: "plain" });
    expect(res.text).toBe("plain");
    expect(res.metadata?.["traceparent"]).toBeUndefined();
    expect(res.values).toEqual({ traceId: null, spanId: null });
    // A traceparent the caller set itself travels untouched and names the trace in the server's log.
    const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect(
      (await client.unary(M.echo, {}, { metadata: { traceparent: own } })).metadata?.[
        "traceparent"
      ],
    ).toBe(own);
    log.lines.length = 0;
    expect(
      (
        await statusOf(
          client.unary(M.fail, { text: "no provider" }, { metadata: { traceparent: own } }),
        )
      ).code,
    ).toBe(Code.UNKNOWN);
    await until(() => log.lines.length > 0, "log.lines.length > 0", 2_000);
    expect(log.records()[0]).toMatchObject({
      level: "error",
      method: "/test.v1.Test/Fail",
      code: "UNKNOWN",
      trace_id: "0af7651916cd43dd8448eb211c80319c",
    });
  });
});

describe("with the SDK registered", () => {
  const sdk = sdkPerBlock({}, () => {
    log.lines.length = 0;
  });

  const byName = (name: string) => sdk.spans().filter((s) => s.name === name);
  const one = (name: string, kind?: SpanKind): ReadableSpan => {
    const found = byName(name).filter((s) => kind === undefined || s.kind === kind);
    expect(found, `${name} spans`).toHaveLength(1);
    return found[0]!;
  };

  it("one trace: caller's span > client span > server span > the handler's span, with the conventions' attributes", async () => {
    const tracer = trace.getTracer("test");
    const res = await tracer.startActiveSpan("bridge-request", async (root) => {
      try {
        return await client.unary(M.echo, { text: "traced" });
      } finally {
        root.end();
      }
    });
    expect(res.text).toBe("traced");
    await until(() => sdk.spans().length >= 4, "sdk.spans().length >= 4", 2_000);
    const root = one("bridge-request");
    const clientSpan = one("test.v1.Test/Echo", SpanKind.CLIENT);
    const serverSpan = one("test.v1.Test/Echo", SpanKind.SERVER);
    const work = one("handler-work");
    const traceId = root.spanContext().traceId;
    for (const span of [clientSpan, serverSpan, work])
      expect(span.spanContext().traceId).toBe(traceId);
    expect(clientSpan.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.isRemote).toBe(true);
    expect(work.parentSpanContext?.spanId).toBe(serverSpan.spanContext().spanId);
    // The handler ran inside the server span; interceptors ran inside the client and server spans.
    expect(res.values).toEqual({ traceId, spanId: serverSpan.spanContext().spanId });
    expect(seenByInterceptor.client).toBe(clientSpan.spanContext().spanId);
    expect(seenByInterceptor.server).toBe(serverSpan.spanContext().spanId);

    expect(clientSpan.instrumentationScope.name).toBe("@grabbit/runtime");
    expect(clientSpan.attributes).toEqual({
      "rpc.system.name": "grpc",
      "rpc.method": "test.v1.Test/Echo",
      "rpc.status_code": "OK",
      "server.address": "127.0.0.1",
      "server.port": port,
    });
    expect(clientSpan.status.code).toBe(SpanStatusCode.UNSET);
    expect(serverSpan.attributes).toMatchObject({
      "rpc.system.name": "grpc",
      "rpc.method": "test.v1.Test/Echo",
      "rpc.status_code": "OK",
      "network.peer.address": "127.0.0.1",
    });
    expect(typeof serverSpan.attributes["network.peer.port"]).toBe("number");
    expect(serverSpan.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("the trace context arrives as plain gRPC metadata, readable by any gRPC server, with baggage", async () => {
    // A bare grpc-js server, no grabbit: what another language's server would see.
    const raw = new grpc.Server();
    let seen: grpc.Metadata | undefined;
    raw.addService(
      {
        Echo: {
          path: "/test.v1.Test/Echo",
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
          seen = call.metadata;
          cb(null, Buffer.from("{}"));
        },
      },
    );
    const rawPort = await new Promise<number>((resolve, reject) =>
      raw.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const rawClient = new GrpcTransport(`127.0.0.1:${rawPort}`);
    try {
      const bag = propagation.createBaggage({ tenant: { value: "acme" } });
      await context.with(propagation.setBaggage(context.active(), bag), () =>
        rawClient.unary(M.echo, {}, { metadata: { "x-app": "1" } }),
      );
      const header = seen?.get("traceparent");
      expect(header).toHaveLength(1);
      expect(typeof header![0]).toBe("string");
      const match = TRACEPARENT.exec(header![0] as string);
      expect(match).not.toBeNull();
      const clientSpan = one("test.v1.Test/Echo", SpanKind.CLIENT);
      expect(match![1]).toBe(clientSpan.spanContext().traceId);
      expect(match![2]).toBe(clientSpan.spanContext().spanId);
      expect(seen?.get("baggage")).toEqual(["tenant=acme"]);
      expect(seen?.get("x-app")).toEqual(["1"]);
    } finally {
      rawClient.close();
      raw.forceShutdown();
    }
  });

  it("a caller's error: client span fails with the code, server span keeps UNSET, logged at debug", async () => {
    const err = await statusOf(
      client.unary(M.fail, { code: Code.NOT_FOUND, text: "no such order" }),
    );
    expect(err.code).toBe(Code.NOT_FOUND);
    await until(
      () => sdk.spans().length >= 2 && log.lines.length > 0,
      "sdk.spans().length >= 2 && log.lines.length > 0",
      2_000,
    );
    const clientSpan = one("test.v1.Test/Fail", SpanKind.CLIENT);
    const serverSpan = one("test.v1.Test/Fail", SpanKind.SERVER);
    expect(clientSpan.status).toEqual({ code: SpanStatusCode.ERROR, message: "no such order" });
    expect(clientSpan.attributes).toMatchObject({
      "rpc.status_code": "NOT_FOUND",
      "error.type": "NOT_FOUND",
    });
    expect(serverSpan.status.code).toBe(SpanStatusCode.UNSET);
    expect(serverSpan.attributes["rpc.status_code"]).toBe("NOT_FOUND");
    expect(serverSpan.attributes["error.type"]).toBeUndefined();
    expect(log.records()).toEqual([
      expect.objectContaining({ level: "debug", code: "NOT_FOUND", method: "/test.v1.Test/Fail" }),
    ]);
  });

  it("a failing handler: server span ERROR with the exception, logged once at error with method and trace id", async () => {
    const err = await statusOf(client.unary(M.fail, { text: "database exploded" }));
    expect(err.code).toBe(Code.UNKNOWN);
    await until(
      () => sdk.spans().length >= 2 && log.lines.length > 0,
      "sdk.spans().length >= 2 && log.lines.length > 0",
      2_000,
    );
    const serverSpan = one("test.v1.Test/Fail", SpanKind.SERVER);
    expect(serverSpan.status).toEqual({ code: SpanStatusCode.ERROR, message: "database exploded" });
    expect(serverSpan.attributes).toMatchObject({
      "rpc.status_code": "UNKNOWN",
      "error.type": "UNKNOWN",
    });
    expect(serverSpan.events.map((e) => e.name)).toEqual(["exception"]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const records = log.records();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      level: "error",
      method: "/test.v1.Test/Fail",
      code: "UNKNOWN",
      transport: "grpc",
      trace_id: serverSpan.spanContext().traceId,
      span_id: serverSpan.spanContext().spanId,
      err: { type: "Error", message: "database exploded" },
    });
    expect(String(records[0]!["msg"])).toContain("database exploded");
  });

  it("streams: spans end when the stream does, with the stream's status; streaming handlers run in the server span", async () => {
    expect((await collect(client.serverStream(M.count, { n: 3 }))).map((r) => r.n)).toEqual([
      0, 1, 2,
    ]);
    expect((await client.clientStream(M.sum, fromArray<Req>([{ n: 1 }, { n: 2 }]))).n).toBe(3);
    expect(
      (
        await collect(client.bidiStream(M.chat, fromArray<Req>([{ text: "a" }, { text: "b" }])))
      ).map((r) => r.text),
    ).toEqual(["re: a", "re: b"]);
    const failed = await statusOf(collect(client.serverStream(M.failStream, { n: 2 })));
    expect(failed.code).toBe(Code.RESOURCE_EXHAUSTED);
    await until(() => sdk.spans().length >= 8, "sdk.spans().length >= 8", 2_000);
    for (const name of ["Count", "Sum", "Chat"]) {
      const c = one(`test.v1.Test/${name}`, SpanKind.CLIENT);
      const s = one(`test.v1.Test/${name}`, SpanKind.SERVER);
      expect(s.parentSpanContext?.spanId).toBe(c.spanContext().spanId);
      expect(c.attributes["rpc.status_code"]).toBe("OK");
      expect(s.attributes["rpc.status_code"]).toBe("OK");
    }
    const c = one("test.v1.Test/FailStream", SpanKind.CLIENT);
    expect(c.status.code).toBe(SpanStatusCode.ERROR);
    expect(c.attributes["rpc.status_code"]).toBe("RESOURCE_EXHAUSTED");
    expect(one("test.v1.Test/FailStream", SpanKind.SERVER).attributes["rpc.status_code"]).toBe(
      "RESOURCE_EXHAUSTED",
    );
  });

  it("a streaming handler's own spans are children of the server span", async () => {
    const local = new GrpcServer({ logger: log.logger }).add(TestService, {
      async *count(req: Req) {
        for (let i = 0; i < (req.n ?? 0); i++) {
          trace.getTracer("test").startSpan(`item-${i}`).end();
          yield { n: i };
        }
      },
    });
    const localPort = await local.listen();
    const localClient = new GrpcTransport(`127.0.0.1:${localPort}`);
    try {
      expect(await collect(localClient.serverStream(M.count, { n: 2 }))).toHaveLength(2);
      await until(() => sdk.spans().length >= 4, "sdk.spans().length >= 4", 2_000);
      const serverSpan = one("test.v1.Test/Count", SpanKind.SERVER);
      for (const name of ["item-0", "item-1"])
        expect(one(name).parentSpanContext?.spanId).toBe(serverSpan.spanContext().spanId);
    } finally {
      localClient.close();
      await local.close({ graceMs: 1000 });
    }
  });

  it("metrics: call durations by method and status on both sides after a known number of calls", async () => {
    for (let i = 0; i < 3; i++) await client.unary(M.echo, { text: String(i) });
    await statusOf(client.unary(M.fail, { code: Code.NOT_FOUND }));
    await statusOf(client.unary(M.fail, { code: Code.INTERNAL }));
    await until(
      () => sdk.spans().filter((s) => s.kind === SpanKind.SERVER).length >= 5,
      "sdk.spans().filter((s) => s.kind === SpanKind.SERVER).length >= 5",
      2_000,
    );
    const m = await sdk.metrics();
    const clientDuration = m.get("rpc.client.call.duration");
    const serverDuration = m.get("rpc.server.call.duration");
    expect(clientDuration?.descriptor.unit).toBe("s");
    expect(
      count(clientDuration, {
        "rpc.method": "test.v1.Test/Echo",
        "rpc.status_code": "OK",
        "rpc.system.name": "grpc",
      }),
    ).toBe(3);
    expect(
      count(serverDuration, { "rpc.method": "test.v1.Test/Echo", "rpc.status_code": "OK" }),
    ).toBe(3);
    expect(
      count(clientDuration, { "rpc.method": "test.v1.Test/Fail", "error.type": "NOT_FOUND" }),
    ).toBe(1);
    expect(
      count(serverDuration, {
        "rpc.method": "test.v1.Test/Fail",
        "rpc.status_code": "NOT_FOUND",
        "error.type": undefined,
      }),
    ).toBe(1);
    expect(
      count(serverDuration, { "rpc.method": "test.v1.Test/Fail", "error.type": "INTERNAL" }),
    ).toBe(1);
    // The client's duration covers the server's.
    const [c] = points<{ sum: number }>(clientDuration, { "rpc.method": "test.v1.Test/Echo" });
    const [s] = points<{ sum: number }>(serverDuration, { "rpc.method": "test.v1.Test/Echo" });
    expect(c!.value.sum).toBeGreaterThan(s!.value.sum);
  });

  it("a pino logger on the server gets the failure with the trace id", async () => {
    const chunks: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString("utf8"));
        done();
      },
    });
    const local = new GrpcServer({ logger: pino({ level: "warn" }, sink) }).add(
      TestService,
      handlers(),
    );
    const localPort = await local.listen();
    const localClient = new GrpcTransport(`127.0.0.1:${localPort}`);
    try {
      await statusOf(
        localClient.unary(M.fail, { code: Code.UNAVAILABLE, text: "downstream down" }),
      );
      await until(() => chunks.length > 0, "chunks.length > 0", 2_000);
      const record = JSON.parse(chunks[0]!) as Record<string, unknown>;
      const serverSpan = one("test.v1.Test/Fail", SpanKind.SERVER);
      expect(record).toMatchObject({
        level: 40,
        method: "/test.v1.Test/Fail",
        code: "UNAVAILABLE",
        trace_id: serverSpan.spanContext().traceId,
      });
    } finally {
      localClient.close();
      await local.close({ graceMs: 1000 });
    }
  });

  it("a server without a logger option writes the failure to stderr as JSON", async () => {
    const local = new GrpcServer().add(TestService, handlers());
    const localPort = await local.listen();
    const localClient = new GrpcTransport(`127.0.0.1:${localPort}`);
    const original = process.stderr.write;
    let written = "";
    process.stderr.write = ((chunk: string | Uint8Array) => {
      written += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      return true;
    }) as typeof process.stderr.write;
    try {
      await statusOf(localClient.unary(M.fail, { text: "to stderr" }));
      await until(() => written.includes("\n"), 'written.includes("\\n")', 2_000);
    } finally {
      process.stderr.write = original;
      localClient.close();
      await local.close({ graceMs: 1000 });
    }
    const record = JSON.parse(written.trim().split("\n")[0]!) as Record<string, unknown>;
    expect(record).toMatchObject({
      level: "error",
      method: "/test.v1.Test/Fail",
      code: "UNKNOWN",
      trace_id: one("test.v1.Test/Fail", SpanKind.SERVER).spanContext().traceId,
    });
  });
});

describe("grpcTargetAddress", () => {
  it("parses targets as the conventions say", () => {
    expect(grpcTargetAddress("grpc.io:50051")).toEqual({
      serverAddress: "grpc.io",
      serverPort: 50051,
    });
    expect(grpcTargetAddress("dns:///grpc.io:50051")).toEqual({
      serverAddress: "grpc.io",
      serverPort: 50051,
    });
    expect(grpcTargetAddress("dns://1.2.3.4/grpc.io:50051")).toEqual({
      serverAddress: "grpc.io",
      serverPort: 50051,
    });
    expect(grpcTargetAddress("[::1]:50051")).toEqual({ serverAddress: "::1", serverPort: 50051 });
    expect(grpcTargetAddress("unix:///run/app.sock")).toEqual({ serverAddress: "/run/app.sock" });
    expect(grpcTargetAddress("ipv4:10.0.0.1:50051,10.0.0.2:50051")).toEqual({
      serverAddress: "ipv4:10.0.0.1:50051,10.0.0.2:50051",
    });
  });
});
