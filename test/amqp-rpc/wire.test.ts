// The RPC wire contract (SPEC.md), checked against plain amqplib on each side: what another
// language's client or server would see and send.
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";
import { EchoType, echoService } from "./fixture.js";

let conn: AmqpConnection;
let raw: amqp.ChannelModel;
const queues: string[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ urls: AMQP_URL, name: "rpc-wire-test" });
  raw = await amqp.connect(AMQP_URL);
});

afterAll(async () => {
  const ch = await raw.createChannel();
  for (const q of queues) {
    await ch.deleteQueue(q).catch(() => {});
    await ch.deleteQueue(`${q}.dlq`).catch(() => {});
  }
  await raw.close();
  await conn.close();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("RPC wire contract", () => {
  it("a typed client sends what the contract says and reads a plain server's replies", async () => {
    const service = echoService();
    const q = service.amqp!.requestQueue;
    queues.push(q);
    const ch = await raw.createChannel();
    await ch.assertQueue(q, { durable: true, arguments: { "x-queue-type": "quorum" } });
    const seen: amqp.ConsumeMessage[] = [];
    await ch.consume(q, (m) => {
      if (!m) return;
      seen.push(m);
      const req = EchoType.decode(m.content);
      const headers: Record<string, unknown> =
        req.text === "fail" ? { "rpc-status": Code.FAILED_PRECONDITION, "rpc-message": "not in this state", "x-why": "state" } : { "rpc-status": 0, "x-reply": "r1" };
      ch.publish("", m.properties.replyTo, req.text === "fail" ? Buffer.alloc(0) : Buffer.from(EchoType.encode({ text: `raw ${req.text}`, delayMs: 0 })), {
        correlationId: m.properties.correlationId,
        headers,
      });
      ch.ack(m);
    });

    const t = new AmqpRpcTransport(conn);
    let md: Record<string, string> | undefined;
    const res = await t.unary(service.methods.echo, { text: "hi", delayMs: 5 }, {
      timeoutMs: 5000,
      metadata: { authorization: "Bearer t", traceparent: "00-1-2-01" },
      onResponseMetadata: (m) => (md = m),
    });
    expect(res).toEqual({ text: "raw hi", delayMs: 0 });
    expect(md).toEqual({ "x-reply": "r1" });

    const m = seen[0]!;
    expect(m.fields.exchange).toBe("");
    expect(m.fields.routingKey).toBe(q);
    expect(m.properties.correlationId).toMatch(UUID);
    expect(m.properties.messageId).toMatch(UUID);
    expect(m.properties.replyTo).toMatch(/^amq\.rabbitmq\.reply-to\./);
    expect(m.properties.contentType).toBe("application/x-protobuf");
    expect(m.properties.type).toBe(EchoType.typeName);
    const h = m.properties.headers!;
    expect(h["rpc-method"]).toBe(service.methods.echo.path);
    expect(h["authorization"]).toBe("Bearer t");
    expect(h["traceparent"]).toBe("00-1-2-01");
    const timeout = Number(h["rpc-timeout-ms"]);
    expect(Number.isInteger(timeout) && timeout > 0 && timeout <= 5000).toBe(true);
    expect(m.properties.expiration).toBe(String(timeout));
    expect(EchoType.decode(m.content)).toEqual({ text: "hi", delayMs: 5 });

    const err = await t.unary(service.methods.echo, { text: "fail", delayMs: 0 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StatusError);
    expect((err as StatusError).code).toBe(Code.FAILED_PRECONDITION);
    expect((err as StatusError).rawMessage).toBe("not in this state");
    expect((err as StatusError).metadata).toEqual({ "x-why": "state" });
    await t.close();
    await ch.close();
  });

  it("a typed server answers a plain client as the contract says", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const server = await serveAmqp(conn, service, {
      echo: (req: { text: string; delayMs: number }, ctx: { metadata: Record<string, string>; responseMetadata: Record<string, string> }) => {
        ctx.responseMetadata["x-tenant-seen"] = ctx.metadata["x-tenant"] ?? "";
        return { text: req.text.toUpperCase(), delayMs: req.delayMs };
      },
      fail: () => {
        throw new StatusError(Code.PERMISSION_DENIED, "not yours");
      },
    });
    const ch = await raw.createChannel();
    const replies: amqp.ConsumeMessage[] = [];
    await ch.consume("amq.rabbitmq.reply-to", (m) => m && replies.push(m), { noAck: true });
    const send = (method: string, correlationId: string) =>
      ch.publish("", service.amqp!.requestQueue, Buffer.from(EchoType.encode({ text: "abc", delayMs: 3 })), {
        correlationId,
        replyTo: "amq.rabbitmq.reply-to",
        contentType: "application/x-protobuf",
        type: EchoType.typeName,
        messageId: "m-" + correlationId,
        expiration: "10000",
        headers: { "rpc-method": method, "rpc-timeout-ms": 10000, "x-tenant": "acme" },
      });
    send(service.methods.echo.path, "ok-1");
    send(service.methods.fail.path, "err-1");
    while (replies.length < 2) await new Promise((r) => setTimeout(r, 10));
    const ok = replies.find((r) => r.properties.correlationId === "ok-1")!;
    expect(ok.properties.headers!["rpc-status"]).toBe(0);
    expect(ok.properties.headers!["rpc-message"]).toBeUndefined();
    expect(ok.properties.headers!["x-tenant-seen"]).toBe("acme");
    expect(ok.properties.contentType).toBe("application/x-protobuf");
    expect(ok.properties.type).toBe(EchoType.typeName);
    expect(EchoType.decode(ok.content)).toEqual({ text: "ABC", delayMs: 3 });
    const bad = replies.find((r) => r.properties.correlationId === "err-1")!;
    expect(bad.properties.headers!["rpc-status"]).toBe(Code.PERMISSION_DENIED);
    expect(bad.properties.headers!["rpc-message"]).toBe("not yours");
    expect(bad.content.length).toBe(0);
    await ch.close();
    await server.close();
  });
});
