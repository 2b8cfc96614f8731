// The permissions docs/security.md prescribes, checked on the real broker: a vhost and one user per
// role (event publisher, event consumer, RPC server, RPC client) with exactly the documented
// configure/write/read regexes. Each role does its whole job (declare, publish with user_id, consume,
// retry, dead-letter, serve, call) and is refused outside its rights. Names are unique and everything
// is deleted afterwards.
import { rabbitmqctl } from "../support/broker.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import {
  AmqpConnection,
  AmqpRpcTransport,
  EventConsumer,
  EventPublisher,
  HEADER_ERROR,
  serveAmqp,
} from "@grabbit/runtime/amqp";
import { OrderCreated, deferred, orderEvent } from "../amqp/fixtures.js";
import { echoMethod } from "../amqp-rpc/fixture.js";

const id = randomBytes(4).toString("hex");
const VHOST = `grabbit-sec-${id}`;
const EXCHANGE = "shop.orders";
const QUEUE = "billing.order-created";
const SERVICE = "shop.v1.Orders";
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");

/** The regexes of docs/security.md, filled in for this test's names. */
const ROLES = {
  publisher: { configure: `^${esc(EXCHANGE)}$`, write: `^${esc(EXCHANGE)}$`, read: "^$" },
  consumer: {
    configure: `^(${esc(EXCHANGE)}|${esc(QUEUE)}(\\.retry\\.[0-9]+|\\.dlq)?)$`,
    write: `^(amq\\.default|${esc(QUEUE)})$`,
    read: `^(${esc(EXCHANGE)}|${esc(QUEUE)}(\\.retry\\.[0-9]+|\\.dlq)?)$`,
  },
  // Streams and cancellation: each side's inbox (server-named amq.gen-*), the cancel exchange.
  rpcServer: {
    configure: `^(${esc(SERVICE)}(\\.dlq)?|amq\\.gen-.*|grabbit\\.rpc\\.cancel)$`,
    write: "^(amq\\.default|amq\\.gen-.*)$",
    read: `^(${esc(SERVICE)}|amq\\.gen-.*|grabbit\\.rpc\\.cancel)$`,
  },
  rpcClient: {
    configure: "^(amq\\.gen-.*|grabbit\\.rpc\\.cancel)$",
    write: "^(amq\\.default|grabbit\\.rpc\\.cancel)$",
    read: "^amq\\.gen-.*$",
  },
} as const;
type Role = keyof typeof ROLES;
const user = (role: Role) => `grabbit-${role}-${id}`;
const PASSWORD = randomBytes(12).toString("hex");

const conns: AmqpConnection[] = [];
async function connect(role: Role): Promise<AmqpConnection> {
  const host = new URL(process.env.AMQP_URL ?? "amqp://127.0.0.1").host;
  const c = await AmqpConnection.connect({
    urls: `amqp://${user(role)}:${PASSWORD}@${host}/${encodeURIComponent(VHOST)}`,
    name: `least-privilege-${role}`,
    onError: () => {},
  });
  conns.push(c);
  return c;
}

beforeAll(async () => {
  await rabbitmqctl("add_vhost", VHOST);
  for (const role of Object.keys(ROLES) as Role[]) {
    await rabbitmqctl("add_user", user(role), PASSWORD);
    const p = ROLES[role];
    await rabbitmqctl("set_permissions", "-p", VHOST, user(role), p.configure, p.write, p.read);
  }
}, 240_000);

afterAll(async () => {
  for (const c of conns) await c.close().catch(() => {});
  for (const role of Object.keys(ROLES) as Role[])
    await rabbitmqctl("delete_user", user(role)).catch(() => {});
  // Deleting the vhost deletes its exchanges and queues with it.
  await rabbitmqctl("delete_vhost", VHOST).catch(() => {});
  expect(await rabbitmqctl("list_vhosts", "--quiet")).not.toContain(VHOST);
}, 240_000);

async function refused(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StatusError);
    return err as StatusError;
  }
  throw new Error("the broker allowed what the permissions should refuse");
}

describe("least-privilege users in a dedicated vhost", () => {
  it("publisher and consumer do their jobs (user_id, retry, DLQ) and nothing else", async () => {
    const event = orderEvent(EXCHANGE);
    const consumerConn = await connect("consumer");
    const publisherConn = await connect("publisher");
    const seen: { id: string; attempt: number; userId: string | undefined }[] = [];
    const done = deferred();
    const consumer = new EventConsumer(consumerConn, {
      queue: QUEUE,
      retry: { maxAttempts: 3, delaysMs: [50] },
      requireUserId: user("publisher"),
    });
    consumer.on(event, (o, d) => {
      seen.push({ id: o.id, attempt: d.attempt, userId: d.userId });
      if (o.id === "bad") throw new StatusError(Code.INVALID_ARGUMENT, "refused by the handler");
      if (d.attempt === 1) throw new Error("transient");
      done.resolve();
    });
    await consumer.start();
    const publisher = new EventPublisher(publisherConn, event, { userId: user("publisher") });
    await publisher.publish({ id: "bad", region: "eu", amount: 1 });
    await publisher.publish({ id: "ok", region: "eu", amount: 1 });
    await done.promise;
    expect(seen.filter((s) => s.id === "ok")).toEqual([
      { id: "ok", attempt: 1, userId: user("publisher") },
      { id: "ok", attempt: 2, userId: user("publisher") },
    ]);
    // The consumer may read its own DLQ (to inspect or replay).
    const ch = await (await consumerConn.waitForSession()).createChannel();
    const dead = await ch.get(`${QUEUE}.dlq`, { noAck: true });
    expect(dead && OrderCreated.decode(dead.content).id).toBe("bad");
    expect(dead && dead.properties.headers?.[HEADER_ERROR]).toBe(
      "[INVALID_ARGUMENT] refused by the handler",
    );
    await ch.close();

    // Outside its rights: another exchange, another queue, reading the consumer's queue.
    const other = new EventPublisher(publisherConn, orderEvent("shop.payments"));
    expect((await refused(other.publish({ id: "x", region: "eu", amount: 1 }))).code).toBe(
      Code.PERMISSION_DENIED,
    );
    const sneaky = new EventConsumer(publisherConn, { queue: QUEUE });
    sneaky.on(event, () => {});
    expect((await refused(sneaky.start())).code).toBe(Code.PERMISSION_DENIED);
    const greedy = new EventConsumer(consumerConn, { queue: "billing.someone-elses" });
    greedy.on(event, () => {});
    const err = await refused(greedy.start());
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(err.message).toMatch(/ACCESS_REFUSED.*billing\.someone-elses/);
    // The publisher cannot pass as the consumer's user.
    const liar = new EventPublisher(publisherConn, event, { userId: user("consumer") });
    expect((await refused(liar.publish({ id: "y", region: "eu", amount: 1 }))).code).toBe(
      Code.PERMISSION_DENIED,
    );
    await publisher.close();
    await consumer.close();
  });

  it("an RPC server and client do their jobs and nothing else", async () => {
    const method = echoMethod(SERVICE, "Echo");
    const count = echoMethod(SERVICE, "Count", "server_streaming");
    const service = {
      typeName: SERVICE,
      transports: ["amqp" as const],
      amqp: { requestQueue: SERVICE, prefetch: 4 },
      methods: { echo: method, count },
    };
    const server = await serveAmqp(await connect("rpcServer"), service, {
      echo: async (req: { text: string; delayMs: number }) => ({
        text: `re: ${req.text}`,
        delayMs: 0,
      }),
      async *count(req: { text: string; delayMs: number }) {
        for (let i = 1; i <= req.delayMs; i++) yield { text: req.text, delayMs: i };
      },
    });
    const clientConn = await connect("rpcClient");
    const client = new AmqpRpcTransport(clientConn, { timeoutMs: 20_000 });
    expect(await client.unary(method, { text: "hi", delayMs: 0 })).toEqual({
      text: "re: hi",
      delayMs: 0,
    });
    // Streams work with these rights: both inboxes are declared, frames flow.
    const streamed: number[] = [];
    for await (const m of client.serverStream(count, { text: "s", delayMs: 3 }))
      streamed.push(m.delayMs);
    expect(streamed).toEqual([1, 2, 3]);

    // The client may not serve (declare or consume the request queue), the server no other service.
    const impostor = await refused(
      serveAmqp(clientConn, service, { echo: async () => ({ text: "fake", delayMs: 0 }) }),
    );
    expect(impostor.code).toBe(Code.PERMISSION_DENIED);
    expect(impostor.message).toMatch(/ACCESS_REFUSED/);
    const otherName = "shop.v1.Payments";
    const otherService = {
      ...service,
      typeName: otherName,
      amqp: { requestQueue: otherName, prefetch: 1 },
      methods: { echo: echoMethod(otherName, "Echo") },
    };
    const serverConn2 = await connect("rpcServer");
    const elsewhere = await refused(
      serveAmqp(serverConn2, otherService, { echo: async () => ({ text: "", delayMs: 0 }) }),
    );
    expect(elsewhere.code).toBe(Code.PERMISSION_DENIED);
    expect(elsewhere.message).toMatch(/ACCESS_REFUSED.*shop\.v1\.Payments/);
    // The client cannot declare queues of its own either (configure "^$").
    const ch = await (await clientConn.waitForSession()).createChannel();
    await expect(ch.assertQueue(`${SERVICE}.mine`)).rejects.toThrow(/ACCESS_REFUSED/);
    await client.close();
    await server.close();
  });
});
