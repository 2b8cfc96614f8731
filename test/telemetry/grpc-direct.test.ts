// The gRPC transport's direct path with telemetry: unary calls on a client and a server without
// interceptors record their spans and durations without going through the interceptor chain. The
// same conventions as grpc.test.ts (which covers the chain, with interceptors on both sides).
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createJsonLogger, type HandlerContext } from "@grabbit/runtime";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { TRACE_CONTEXT_VALUE } from "@grabbit/runtime/telemetry";
import { statusOf, TestService, testHandlers, type Req, type Res } from "../grpc/fixtures.js";
import { count, sdkPerBlock } from "./sdk.js";
import { until } from "../outbox/support.js";

const M = TestService.methods;

const logLines: string[] = [];
let server: GrpcServer;
let client: GrpcTransport;
let port: number;

beforeAll(async () => {
  const base = testHandlers().handlers;
  server = new GrpcServer({
    logger: createJsonLogger({ level: "debug", write: (l) => logLines.push(l) }),
  }).add(TestService, {
    ...base,
    async echo(req: Req, ctx: HandlerContext): Promise<Res> {
      const active = trace.getActiveSpan()?.spanContext();
      await trace.getTracer("test").startActiveSpan("handler-work", async (span) => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        span.end();
      });
      const value = ctx.values.get(TRACE_CONTEXT_VALUE);
      const stored = value === undefined ? undefined : trace.getSpanContext(value as never);
      return {
        text: req.text,
        metadata: ctx.metadata,
        values: {
          traceId: active?.traceId ?? null,
          spanId: active?.spanId ?? null,
          storedSpanId: stored?.spanId ?? null,
        },
      };
    },
  });
  port = await server.listen();
  client = new GrpcTransport(`127.0.0.1:${port}`);
});
afterAll(async () => {
  client.close();
  await server.close({ graceMs: 1000 });
});

describe("no provider", () => {
  it("nothing is traced and a caller's traceparent travels untouched", async () => {
    const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const res = await client.unary(M.echo, { text: "plain" }, { metadata: { traceparent: own } });
    expect(res.metadata?.["traceparent"]).toBe(own);
    expect(res.values).toEqual({ traceId: null, spanId: null, storedSpanId: null });
  });
});

describe("with the SDK registered", () => {
  const sdk = sdkPerBlock({}, () => {
    logLines.length = 0;
  });
  const one = (name: string, kind?: SpanKind): ReadableSpan => {
    const found = sdk
      .spans()
      .filter((s) => s.name === name && (kind === undefined || s.kind === kind));
    expect(found, `${name} spans`).toHaveLength(1);
    return found[0]!;
  };

  it("one trace: caller > client span > server span > handler span; the handler sees the span in ctx.values", async () => {
    const res = await trace.getTracer("test").startActiveSpan("caller", async (root) => {
      try {
        return await client.unary(M.echo, { text: "traced" });
      } finally {
        root.end();
      }
    });
    await until(() => sdk.spans().length >= 4, "sdk.spans().length >= 4", 2_000);
    const root = one("caller");
    const clientSpan = one("test.v1.Test/Echo", SpanKind.CLIENT);
    const serverSpan = one("test.v1.Test/Echo", SpanKind.SERVER);
    const work = one("handler-work");
    expect(clientSpan.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.isRemote).toBe(true);
    expect(work.parentSpanContext?.spanId).toBe(serverSpan.spanContext().spanId);
    const spanId = serverSpan.spanContext().spanId;
    expect(res.values).toEqual({
      traceId: root.spanContext().traceId,
      spanId,
      storedSpanId: spanId,
    });
    expect(clientSpan.attributes).toEqual({
      "rpc.system.name": "grpc",
      "rpc.method": "test.v1.Test/Echo",
      "rpc.status_code": "OK",
      "server.address": "127.0.0.1",
      "server.port": port,
    });
    expect(serverSpan.attributes).toMatchObject({
      "rpc.system.name": "grpc",
      "rpc.method": "test.v1.Test/Echo",
      "rpc.status_code": "OK",
      "network.peer.address": "127.0.0.1",
    });
    expect(typeof serverSpan.attributes["network.peer.port"]).toBe("number");
  });

  it("the call's traceparent replaces one the caller put in the metadata, and the caller's object is left alone", async () => {
    const own = {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "x-app": "1",
    };
    const res = await client.unary(M.echo, {}, { metadata: own });
    const clientSpan = one("test.v1.Test/Echo", SpanKind.CLIENT);
    expect(res.metadata?.["traceparent"]).toContain(clientSpan.spanContext().spanId);
    expect(res.metadata?.["x-app"]).toBe("1");
    expect(own.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  });

  it("failures: a caller's error on the client span only; a handler's error on the server span, logged with its trace id", async () => {
    expect(
      (await statusOf(client.unary(M.fail, { code: Code.NOT_FOUND, text: "no such order" }))).code,
    ).toBe(Code.NOT_FOUND);
    await until(() => sdk.spans().length >= 2, "sdk.spans().length >= 2", 2_000);
    expect(one("test.v1.Test/Fail", SpanKind.CLIENT).status).toEqual({
      code: SpanStatusCode.ERROR,
      message: "no such order",
    });
    expect(one("test.v1.Test/Fail", SpanKind.SERVER).status.code).toBe(SpanStatusCode.UNSET);
    sdk.reset();
    logLines.length = 0;
    const responseMetadata: Record<string, string>[] = [];
    const err = await statusOf(
      client.unary(
        M.fail,
        { text: "database exploded" },
        { onResponseMetadata: (m) => responseMetadata.push(m) },
      ),
    );
    expect(err.code).toBe(Code.UNKNOWN);
    await until(
      () => sdk.spans().length >= 2 && logLines.length > 0,
      "sdk.spans().length >= 2 && logLines.length > 0",
      2_000,
    );
    const clientSpan = one("test.v1.Test/Fail", SpanKind.CLIENT);
    const serverSpan = one("test.v1.Test/Fail", SpanKind.SERVER);
    expect(clientSpan.attributes).toMatchObject({
      "rpc.status_code": "UNKNOWN",
      "error.type": "UNKNOWN",
    });
    expect(serverSpan.status).toEqual({ code: SpanStatusCode.ERROR, message: "database exploded" });
    expect(serverSpan.events.map((e) => e.name)).toEqual(["exception"]);
    expect(JSON.parse(logLines[0]!)).toMatchObject({
      level: "error",
      trace_id: serverSpan.spanContext().traceId,
      span_id: serverSpan.spanContext().spanId,
    });
  });

  it("metrics: durations by method and status on both sides", async () => {
    for (let i = 0; i < 3; i++)
      await client.unary(
        M.echo,
        { text: String(i) },
        i === 0 ? { onResponseMetadata: () => {} } : undefined,
      );
    await statusOf(client.unary(M.fail, { code: Code.INTERNAL }));
    const m = await sdk.metrics();
    expect(
      count(m.get("rpc.client.call.duration"), {
        "rpc.method": "test.v1.Test/Echo",
        "rpc.status_code": "OK",
        "rpc.system.name": "grpc",
      }),
    ).toBe(3);
    expect(
      count(m.get("rpc.server.call.duration"), {
        "rpc.method": "test.v1.Test/Echo",
        "rpc.status_code": "OK",
      }),
    ).toBe(3);
    expect(
      count(m.get("rpc.client.call.duration"), {
        "rpc.method": "test.v1.Test/Fail",
        "error.type": "INTERNAL",
      }),
    ).toBe(1);
    expect(
      count(m.get("rpc.server.call.duration"), {
        "rpc.method": "test.v1.Test/Fail",
        "error.type": "INTERNAL",
      }),
    ).toBe(1);
  });
});
