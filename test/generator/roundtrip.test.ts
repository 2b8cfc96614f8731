// Generated code against the real transports: every call kind over gRPC, one handler object served
// over gRPC and RabbitMQ at once, and events on every exchange kind with typed filters.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { GrpcServer } from "@grabbit/runtime/grpc";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { generateFixtures } from "../support/buf.js";

let m: any; // ts-proto messages of kitchen.v1
let g: any; // grabbit's generated kitchen.v1 code
let connection: AmqpConnection;
const servers: GrpcServer[] = [];
const cleanup: (() => Promise<unknown>)[] = [];

async function* from<T>(items: T[]): AsyncIterable<T> {
  for (const item of items) yield item;
}

beforeAll(async () => {
  const { out, stderr } = generateFixtures("roundtrip");
  expect(stderr).toBe("");
  m = await import(pathToFileURL(join(out, "kitchen/v1/kitchen.ts")).href);
  g = await import(pathToFileURL(join(out, "kitchen/v1/kitchen.grabbit.ts")).href);
  connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "generator-roundtrip" });
});

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  for (const server of servers) await server.close({ graceMs: 1000 });
  await connection?.close();
});

async function grpcServer(add: (server: GrpcServer) => void): Promise<string> {
  const server = new GrpcServer();
  add(server);
  servers.push(server);
  return `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
}

describe("generated gRPC code", () => {
  it("carries all four call kinds and escaped member names through one handlers object", async () => {
    const address = await grpcServer((server) =>
      g.addEverythingGrpcService(server, {
        unary: (req: any) => ({ ...req, text: `echo ${req.text}` }),
        unary2: (req: any) => req,
        async *serverStream(inner: any) {
          for (let i = 0; i < 3; i++) yield { ...inner, name: `${inner.name}-${i}` };
        },
        async clientStream(dates: AsyncIterable<any>) {
          let total = 0;
          for await (const d of dates) total += d.millis;
          return { body: `sum=${total}` };
        },
        async *bidi(items: AsyncIterable<any>) {
          for await (const item of items)
            yield { ...item, someField: item.someField.toUpperCase() };
        },
        empty: () => ({}),
        delete: () => ({ seconds: 42, nanos: 0 }),
        constructor$: (req: any) => ({ ...req, text: "constructor" }),
        then$: (req: any) => ({ ...req, text: "then" }),
        toString$: (req: any) => ({ ...req, text: "toString" }),
        transport$: (req: any) => ({ ...req, text: "transport" }),
        close$: (req: any) => ({ ...req, text: "close" }),
      }),
    );
    const client = g.createEverythingGrpcClient(address);
    // A client with a `then` member would be swallowed by await; the generated one is not.
    expect(await Promise.resolve(client)).toBe(client);

    const outer = m.Outer.fromPartial({
      text: "hi",
      byName: { a: { name: "x", kind: 1 } },
      maybe: "set",
    });
    const echoed = await client.unary(outer);
    expect(echoed.text).toBe("echo hi");
    expect(echoed.byName.a).toEqual({ name: "x", kind: 1 });
    expect(echoed.maybe).toBe("set");

    const streamed: string[] = [];
    for await (const inner of client.serverStream(m.Outer_Inner.fromPartial({ name: "n" })))
      streamed.push(inner.name);
    expect(streamed).toEqual(["n-0", "n-1", "n-2"]);

    const summed = await client.clientStream(
      from([1, 2, 3].map((millis) => m.DateMessage.fromPartial({ millis }))),
    );
    expect(summed.body).toBe("sum=6");

    const upper: string[] = [];
    for await (const item of client.bidi(
      from(["a", "b"].map((someField) => m.snakeCaseMessage.fromPartial({ someField }))),
    ))
      upper.push(item.someField);
    expect(upper).toEqual(["A", "B"]);

    expect(await client.delete(outer)).toEqual({ seconds: 42, nanos: 0 });
    for (const name of ["constructor", "then", "toString", "transport", "close"])
      expect((await client[`${name}$`](outer)).text).toBe(name);
    await client.close();
    await expect(client.unary(outer)).rejects.toMatchObject({ code: 14 });
  });
});

describe("one implementation on both transports", () => {
  it("serves OrdersService over gRPC and RabbitMQ with the same handlers and method deadlines", async () => {
    const seen: string[] = [];
    const handlers = {
      getOrder: (req: any, ctx: any) => {
        seen.push(`${ctx.transport}:${ctx.deadline !== undefined}`);
        return m.Order.fromPartial({
          orderId: req.orderId,
          tier: m.Tier.TIER_GOLD,
          total: { currency: "EUR", units: 5 },
        });
      },
      cancelOrder: () => {
        throw new Error("not today");
      },
    };
    const address = await grpcServer((server) => g.addOrdersGrpcService(server, handlers));
    const rpcServer = await g.serveOrdersAmqp(connection, handlers);
    cleanup.push(() => rpcServer.close());
    cleanup.push(async () => {
      const channel = await (await connection.waitForSession()).createChannel();
      await channel.deleteQueue("kitchen.orders.rpc");
      await channel.close();
    });

    for (const client of [
      g.createOrdersGrpcClient(address),
      g.createOrdersAmqpClient(connection),
    ]) {
      const order = await client.getOrder(m.GetOrderRequest.fromPartial({ orderId: "o-7" }));
      expect(order).toEqual({
        orderId: "o-7",
        tier: m.Tier.TIER_GOLD,
        total: { currency: "EUR", units: 5 },
      });
      await expect(
        client.cancelOrder(m.GetOrderRequest.fromPartial({ orderId: "o-7" })),
      ).rejects.toMatchObject({ code: 2, rawMessage: "not today" });
    }
    // Both transports applied the method's default deadline (timeout_ms: 250 in the proto).
    expect(seen).toEqual(["grpc:true", "amqp:true"]);
  });
});

describe("generated events", () => {
  async function collect<T>(
    consumer: any,
    count: number,
  ): Promise<{ events: T[]; done: Promise<void> }> {
    const events: T[] = [];
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    await consumer.start(async (event: T) => {
      events.push(event);
      if (events.length === count) resolve();
    });
    cleanup.push(() => consumer.close());
    return { events, done };
  }

  it("routes by typed filters on topic, direct, fanout and headers exchanges", async () => {
    const opts = (name: string) => ({
      queue: uniqueName(name),
      queueExpiresMs: 60_000,
      queueType: "classic" as const,
    });
    const gold = await collect<any>(
      new g.OrderCreatedConsumer(connection, {
        ...opts("gold"),
        filter: { tier: m.Tier.TIER_GOLD },
      }),
      1,
    );
    const level3 = await collect<any>(
      new g.AuditLoggedConsumer(connection, { ...opts("audit"), filter: { level: 3 } }),
      1,
    );
    const everyone = await collect<any>(new g.BroadcastConsumer(connection, opts("fanout")), 2);
    const core = await collect<any>(
      new g.TaggedConsumer(connection, { ...opts("tags"), filter: { team: "core" } }),
      1,
    );

    const orders = new g.OrderCreatedPublisher(connection);
    // mandatory: an event no queue is bound for is reported, not dropped.
    await expect(
      orders.publish(
        m.OrderCreated.fromPartial({ orderId: "silver", region: "eu", tier: m.Tier.TIER_SILVER }),
      ),
    ).rejects.toMatchObject({
      name: "UnroutableError",
    });
    await orders.publish(
      m.OrderCreated.fromPartial({ orderId: "gold", region: "eu", tier: m.Tier.TIER_GOLD }),
    );
    const audit = new g.AuditLoggedPublisher(connection);
    await expect(
      audit.publish(m.AuditLogged.fromPartial({ level: 1, text: "nobody listens" })),
    ).rejects.toMatchObject({ name: "UnroutableError" });
    await audit.publish(m.AuditLogged.fromPartial({ level: 3, text: "warn" }));
    const broadcast = new g.BroadcastPublisher(connection);
    await broadcast.publish(m.Broadcast.fromPartial({ text: "one" }));
    await broadcast.publish(m.Broadcast.fromPartial({ text: "two" }));
    const tagged = new g.TaggedPublisher(connection);
    await expect(
      tagged.publish(m.Tagged.fromPartial({ team: "ops", urgent: true })),
    ).rejects.toMatchObject({ name: "UnroutableError" });
    await tagged.publish(m.Tagged.fromPartial({ team: "core", urgent: false }));

    await Promise.all([gold.done, level3.done, everyone.done, core.done]);
    expect(gold.events.map((e) => e.orderId)).toEqual(["gold"]);
    expect(level3.events.map((e) => e.text)).toEqual(["warn"]);
    expect(everyone.events.map((e) => e.text).sort()).toEqual(["one", "two"]);
    expect(core.events.map((e) => e.team)).toEqual(["core"]);
  });
});
