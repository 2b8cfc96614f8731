// The RPC wire contract (SPEC.md), checked against plain amqplib on each side: what another
// language's client or server would see and send.
import { BinaryReader } from "@bufbuild/protobuf/wire";
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
        req.text === "fail"
          ? {
              "rpc-status": Code.FAILED_PRECONDITION,
              "rpc-message": "not in this state",
              "x-why": "state",
            }
          : { "rpc-status": 0, "x-reply": "r1" };
      ch.publish(
        "",
        m.properties.replyTo,
        req.text === "fail"
          ? Buffer.alloc(0)
          : Buffer.from(EchoType.encode({ text: `raw ${req.text}`, delayMs: 0 })),
        {
          correlationId: m.properties.correlationId,
          headers,
        },
      );
      ch.ack(m);
    });

    const t = new AmqpRpcTransport(conn);
    let md: Record<string, string> | undefined;
    const res = await t.unary(
      service.methods.echo,
      { text: "hi", delayMs: 5 },
      {
        timeoutMs: 5000,
        metadata: { authorization: "Bearer t", traceparent: "00-1-2-01" },
        onResponseMetadata: (m) => (md = m),
      },
    );
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
      echo: (
        req: { text: string; delayMs: number },
        ctx: { metadata: Record<string, string>; responseMetadata: Record<string, string> },
      ) => {
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
      ch.publish(
        "",
        service.amqp!.requestQueue,
        Buffer.from(EchoType.encode({ text: "abc", delayMs: 3 })),
        {
          correlationId,
          replyTo: "amq.rabbitmq.reply-to",
          contentType: "application/x-protobuf",
          type: EchoType.typeName,
          messageId: "m-" + correlationId,
          expiration: "10000",
          headers: { "rpc-method": method, "rpc-timeout-ms": 10000, "x-tenant": "acme" },
        },
      );
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

  it("error details travel as a google.rpc.Status in rpc-status-details-bin, both ways", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const detail = {
      typeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
      value: Uint8Array.from([0x0a, 0x03, 0x66, 0x6f, 0x6f]),
    };
    const server = await serveAmqp(conn, service, {
      fail: () => {
        throw new StatusError(Code.FAILED_PRECONDITION, "stock too low", { details: [detail] });
      },
    });
    // A plain client reads the header as bytes and decodes it with nothing but the protobuf wire format.
    const ch = await raw.createChannel();
    const replies: amqp.ConsumeMessage[] = [];
    await ch.consume("amq.rabbitmq.reply-to", (m) => m && replies.push(m), { noAck: true });
    ch.publish(
      "",
      service.amqp!.requestQueue,
      Buffer.from(EchoType.encode({ text: "x", delayMs: 0 })),
      {
        correlationId: "d-1",
        replyTo: "amq.rabbitmq.reply-to",
        contentType: "application/x-protobuf",
        type: EchoType.typeName,
        headers: { "rpc-method": service.methods.fail.path },
      },
    );
    while (replies.length < 1) await new Promise((r) => setTimeout(r, 10));
    const bytes = replies[0]!.properties.headers!["rpc-status-details-bin"] as Buffer;
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect(decodeStatus(bytes)).toEqual({
      code: Code.FAILED_PRECONDITION,
      message: "stock too low",
      details: [[detail.typeUrl, Buffer.from(detail.value).toString("hex")]],
    });

    // The typed client gets them as StatusError.details.
    const transport = new AmqpRpcTransport(conn);
    const err = await transport.unary(service.methods.fail, { text: "x", delayMs: 0 }).then(
      () => undefined,
      (e: unknown) => e as StatusError,
    );
    if (!(err instanceof StatusError)) throw new Error("expected a StatusError");
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.details.map((d) => [d.typeUrl, Buffer.from(d.value).toString("hex")])).toEqual([
      [detail.typeUrl, "0a03666f6f"],
    ]);
    await transport.close();
    await ch.close();
    await server.close();
  });

  it("a plain server's malformed details header keeps the status and drops the details", async () => {
    const queue = `rpc-wire-bad-details-${Math.random().toString(16).slice(2)}`;
    queues.push(queue);
    const ch = await raw.createChannel();
    await ch.assertQueue(queue, { durable: false, autoDelete: true });
    await ch.consume(queue, (m) => {
      if (!m) return;
      ch.publish("", m.properties.replyTo, Buffer.alloc(0), {
        correlationId: m.properties.correlationId,
        headers: {
          "rpc-status": Code.ABORTED,
          "rpc-message": "conflict",
          "rpc-status-details-bin": Buffer.from([0x1a, 0xff]),
        },
      });
      ch.ack(m);
    });
    const transport = new AmqpRpcTransport(conn);
    const method = { ...echoService().methods.fail, requestQueue: queue };
    const err = await transport.unary(method, { text: "x", delayMs: 0 }).then(
      () => undefined,
      (e: unknown) => e as StatusError,
    );
    if (!(err instanceof StatusError)) throw new Error("expected a StatusError");
    expect(err.code).toBe(Code.ABORTED);
    expect(err.rawMessage).toBe("conflict");
    expect(err.details).toEqual([]);
    await transport.close();
    await ch.close();
  });

  it("metadata too large for an AMQP header still gets the status to the caller, without it", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const problems: Error[] = [];
    const server = await serveAmqp(
      conn,
      service,
      {
        fail: () => {
          throw new StatusError(Code.RESOURCE_EXHAUSTED, "quota", {
            metadata: { "x-huge": "y".repeat(200_000) },
          });
        },
      },
      { onError: (e) => problems.push(e) },
    );
    const transport = new AmqpRpcTransport(conn);
    const err = await transport
      .unary(service.methods.fail, { text: "x", delayMs: 0 }, { timeoutMs: 10_000 })
      .then(
        () => undefined,
        (e: unknown) => e as StatusError,
      );
    if (!(err instanceof StatusError)) throw new Error("expected a StatusError");
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.rawMessage).toMatch(
      /^quota \(the reply's metadata and error details were dropped: /,
    );
    expect(err.metadata["x-huge"]).toBeUndefined();
    expect(problems.map((p) => p.message).join("\n")).toMatch(/dropped/);
    await transport.close();
    await server.close();
  });
});

/** google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }, read by hand. */
function decodeStatus(bytes: Uint8Array): {
  code: number;
  message: string;
  details: [string, string][];
} {
  const r = new BinaryReader(bytes);
  const out = { code: 0, message: "", details: [] as [string, string][] };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1) out.code = r.int32();
    else if (field === 2) out.message = r.string();
    else if (field === 3) {
      const any = new BinaryReader(r.bytes());
      let typeUrl = "";
      let value = "";
      while (any.pos < any.len) {
        const [f, w] = any.tag();
        if (f === 1) typeUrl = any.string();
        else if (f === 2) value = Buffer.from(any.bytes()).toString("hex");
        else any.skip(w, f);
      }
      out.details.push([typeUrl, value]);
    } else r.skip(wire, field);
  }
  return out;
}
