// Size limits refuse oversized messages with RESOURCE_EXHAUSTED and a sentence naming the limit,
// before anything is sent (publishers, RPC client) or decoded (RPC server); a server's oversized
// response is replaced by the status, not sent.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, Publisher, serveAmqp } from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";
import { echoService, type Echo } from "../amqp-rpc/fixture.js";

let conn: AmqpConnection;
const queues: string[] = [];
beforeAll(async () => {
  conn = await AmqpConnection.connect({ urls: AMQP_URL, name: "hostile-limits-test" });
});
afterAll(async () => {
  const ch = await (await conn.waitForSession()).createChannel();
  for (const q of queues) await ch.deleteQueue(q).catch(() => {});
  await conn.close();
});

async function statusOf(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StatusError);
    return err as StatusError;
  }
  throw new Error("expected a refusal");
}

describe("message size limits", () => {
  it("a Publisher refuses a body over maxMessageBytes without queueing it", async () => {
    const publisher = new Publisher(conn, { maxMessageBytes: 1000 });
    const err = await statusOf(publisher.publish("", "nowhere", new Uint8Array(1001)));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/1001 bytes, over the limit of 1000/);
    expect(publisher.pending).toBe(0);
    expect(publisher.stats.published).toBe(0);
    await publisher.close();
  });

  it("RPC: the client refuses a big request before sending; the server refuses a big response", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue, `${service.amqp!.requestQueue}.dlq`);
    let handled = 0;
    const server = await serveAmqp(
      conn,
      service,
      {
        async echo(req: Echo) {
          handled++;
          return { text: req.text.repeat(100), delayMs: 0 };
        },
      },
      { maxMessageBytes: 4096 },
    );
    const client = new AmqpRpcTransport(conn, { maxMessageBytes: 4096, timeoutMs: 20_000 });
    const big = await statusOf(
      client.unary(service.methods.echo, { text: "x".repeat(5000), delayMs: 0 }),
    );
    expect(big.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(big.message).toMatch(/the request is 500\d bytes, over the limit of 4096/);
    expect(handled).toBe(0);
    // 100 x 50 bytes = over the server's limit on the way back.
    const reply = await statusOf(
      client.unary(service.methods.echo, { text: "y".repeat(50), delayMs: 0 }),
    );
    expect(reply.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(reply.message).toMatch(/the response is 500\d bytes, over the limit of 4096/);
    expect(handled).toBe(1);
    expect(await client.unary(service.methods.echo, { text: "z", delayMs: 0 })).toEqual({
      text: "z".repeat(100),
      delayMs: 0,
    });
    await client.close();
    await server.close();
  });
});
