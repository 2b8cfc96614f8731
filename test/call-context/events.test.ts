// The call context on RabbitMQ events, against the real broker: a consumer handler serves the event
// it handles, so what it publishes carries that event's authorization and trace context on; a
// publish inside a cancelled or expired call fails instead of waiting for its confirm.
import { getEventListeners } from "node:events";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ConsumeMessage } from "amqplib";
import {
  Code,
  currentCallContext,
  runInCallContext,
  StatusError,
  type HandlerContext,
  type Interceptor,
  type Metadata,
} from "@grabbit/runtime";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  type PublishOptions,
} from "@grabbit/runtime/amqp";
import {
  Janitor,
  OrderCancelled,
  OrderCreated,
  deferred,
  orderEvent,
  type Order,
} from "../amqp/fixtures.js";

let conn: AmqpConnection;
const janitor = new Janitor();
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ name: "grabbit-call-context-test" });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await janitor.cleanup();
});
afterAll(async () => {
  await conn.close();
});

const TOKEN = "Bearer event-token";
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function publisher(event: ReturnType<typeof orderEvent>): EventPublisher<Order> {
  const p = new EventPublisher(conn, event);
  closers.push(() => p.close());
  return p;
}

/** A queue bound to every key of `exchange`, declared here so that nothing published to it is unroutable. */
async function tap(exchange: string): Promise<string> {
  const queue = janitor.queue("tap");
  const ch = await janitor.channel();
  await ch.assertExchange(exchange, "topic", { durable: true });
  await ch.assertQueue(queue, { durable: false });
  await ch.bindQueue(queue, exchange, "#");
  await ch.close();
  return queue;
}

function header(msg: ConsumeMessage, name: string): string | undefined {
  const v = (msg.properties.headers ?? {})[name] as unknown;
  return v === undefined ? undefined : Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
}

/**
 * A consumer of OrderCreated on `in` whose handler publishes an OrderCancelled to `out` with
 * `options`, and reports the call context it ran in.
 */
async function relay(options: PublishOptions, interceptors: Interceptor[] = []) {
  const inbound = orderEvent(
    janitor.exchange("in"),
    "topic",
    "order.{region}.created",
    OrderCreated,
  );
  const outbound = orderEvent(
    janitor.exchange("out"),
    "topic",
    "order.{region}.cancelled",
    OrderCancelled,
  );
  const out = await tap(outbound.exchange);
  const forward = publisher(outbound);
  const seen = deferred<HandlerContext | undefined>();
  const consumer = new EventConsumer(conn, {
    queue: janitor.queue("relay", [50]),
    queueType: "classic",
    retry: { delaysMs: [50] },
    interceptors,
  });
  closers.push(() => consumer.close());
  consumer.on(inbound, async (order) => {
    seen.resolve(currentCallContext());
    await forward.publish(order, options);
  });
  await consumer.start();
  return { inbound, out, seen: seen.promise };
}

describe("a consumer handler serves the event it handles", () => {
  it("its publishes carry the consumed event's authorization and traceparent on, beside their own metadata", async () => {
    const { inbound, out, seen } = await relay({ metadata: { "x-request-id": "r1" } });
    await publisher(inbound).publish(
      { id: "o1", region: "eu", amount: 3 },
      { metadata: { authorization: TOKEN, traceparent: TRACEPARENT, "x-not-inherited": "1" } },
    );
    const forwarded = await janitor.next(out);
    expect(forwarded.properties.type).toBe("test.v1.OrderCancelled");
    expect(header(forwarded, "authorization")).toBe(TOKEN);
    expect(header(forwarded, "traceparent")).toBe(TRACEPARENT);
    expect(header(forwarded, "x-request-id")).toBe("r1");
    expect(header(forwarded, "x-not-inherited")).toBeUndefined();
    // What the handler ran in: the event as a call, with no deadline.
    const ctx = await seen;
    expect(ctx?.transport).toBe("amqp");
    expect(ctx?.method.path).toBe("event:test.v1.OrderCreated");
    expect(ctx?.deadline).toBeUndefined();
    expect(ctx?.metadata.authorization).toBe(TOKEN);
    expect(() => ctx?.sendHeaders()).toThrow(StatusError);
  });

  it("an authorization the publish sets itself wins, and inherit: false carries nothing on", async () => {
    for (const [options, expected] of [
      [
        { metadata: { authorization: "Bearer own" } },
        { authorization: "Bearer own", traceparent: TRACEPARENT },
      ],
      [{ inherit: false }, { authorization: undefined, traceparent: undefined }],
    ] as const) {
      const { inbound, out } = await relay(options);
      await publisher(inbound).publish(
        { id: "o2", region: "eu", amount: 3 },
        { metadata: { authorization: TOKEN, traceparent: TRACEPARENT } },
      );
      const forwarded = await janitor.next(out);
      expect(header(forwarded, "authorization"), JSON.stringify(options)).toBe(
        expected.authorization,
      );
      expect(header(forwarded, "traceparent"), JSON.stringify(options)).toBe(expected.traceparent);
    }
  });

  it("inherits the metadata a server interceptor passed on to the handler", async () => {
    // An interceptor that swaps the caller's token for the service's own before the handler runs.
    const exchange: Interceptor = (next) => (req) =>
      next({
        ...req,
        metadata: { ...req.metadata, authorization: "Bearer exchanged" } as Metadata,
      });
    const { inbound, out } = await relay({}, [exchange]);
    await publisher(inbound).publish(
      { id: "o3", region: "eu", amount: 3 },
      { metadata: { authorization: TOKEN } },
    );
    expect(header(await janitor.next(out), "authorization")).toBe("Bearer exchanged");
  });
});

describe("a publish inside a served call", () => {
  function call(signal: AbortSignal, deadline?: number): HandlerContext {
    return {
      method: {
        name: "Get",
        path: "/test.v1.Orders/Get",
        kind: "unary",
        input: OrderCreated,
        output: OrderCreated,
        idempotent: false,
      },
      transport: "grpc",
      metadata: { authorization: TOKEN },
      deadline,
      signal,
      responseHeaders: {},
      sendHeaders() {},
      responseMetadata: {},
      peer: undefined,
      values: new Map(),
    };
  }

  it("fails CANCELLED, unsent, when the call was cancelled already", async () => {
    const event = orderEvent(janitor.exchange("cancelled"));
    const out = await tap(event.exchange);
    const pub = publisher(event);
    const cancelled = new AbortController();
    cancelled.abort();
    const err = await runInCallContext(call(cancelled.signal), () =>
      pub.publish({ id: "never", region: "eu", amount: 1 }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect((err as StatusError).code).toBe(Code.CANCELLED);
    // The next publish on the same channel arrives first: the cancelled one was never sent.
    await pub.publish({ id: "after", region: "eu", amount: 1 });
    const next = await janitor.next(out);
    expect(OrderCreated.decode(next.content).id).toBe("after");
  });

  it("stops waiting for its confirm with CANCELLED when the call is cancelled meanwhile", async () => {
    const pub = publisher(orderEvent(janitor.exchange("midway")));
    await pub
      .publish({ id: "warm-up", region: "eu", amount: 1 }, { metadata: {} })
      .catch(() => undefined); // declares the exchange
    const controller = new AbortController();
    const pending = runInCallContext(call(controller.signal), () =>
      pub.publish({ id: "midway", region: "eu", amount: 1 }),
    );
    // No confirm can have come back yet: that takes a round trip to the broker, and none ran since publish().
    controller.abort(new StatusError(Code.CANCELLED, "the client cancelled the call"));
    await expect(pending).rejects.toMatchObject({
      code: Code.CANCELLED,
      rawMessage: "the client cancelled the call",
    });
  });

  it("fails DEADLINE_EXCEEDED, unsent, when the call's deadline has passed", async () => {
    const pub = publisher(orderEvent(janitor.exchange("late")));
    const err = await runInCallContext(call(new AbortController().signal, Date.now() - 1), () =>
      pub.publish({ id: "late", region: "eu", amount: 1 }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect((err as StatusError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect((err as StatusError).message).toMatch(/not sent/);
  });

  it("with inherit: false is not the call's: it goes out although the call was cancelled", async () => {
    const event = orderEvent(janitor.exchange("detached"));
    const out = await tap(event.exchange);
    const pub = publisher(event);
    const cancelled = new AbortController();
    cancelled.abort();
    await runInCallContext(call(cancelled.signal, Date.now() - 1), () =>
      pub.publish({ id: "own", region: "eu", amount: 1 }, { inherit: false }),
    );
    const msg = await janitor.next(out);
    expect(OrderCreated.decode(msg.content).id).toBe("own");
    expect(header(msg, "authorization")).toBeUndefined();
  });
});

describe("many publishes inside one call", () => {
  it("share one abort listener on the call's signal, and all fail CANCELLED when it aborts", async () => {
    const pub = publisher(orderEvent(janitor.exchange("many")));
    await pub.publish({ id: "warm-up", region: "eu", amount: 1 }).catch(() => undefined); // declares the exchange
    const controller = new AbortController();
    const ctx = {
      method: {
        name: "Get",
        path: "/test.v1.Orders/Get",
        kind: "unary",
        input: OrderCreated,
        output: OrderCreated,
        idempotent: false,
      },
      transport: "grpc",
      metadata: {},
      deadline: undefined,
      signal: controller.signal,
      responseHeaders: {},
      sendHeaders() {},
      responseMetadata: {},
      peer: undefined,
      values: new Map(),
    } satisfies HandlerContext;
    const pending = runInCallContext(ctx, () =>
      Array.from({ length: 50 }, (_, i) => pub.publish({ id: `m${i}`, region: "eu", amount: 1 })),
    );
    // One listener for the 50: a listener each would walk the signal's list on every add and remove.
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    controller.abort();
    const outcomes = await Promise.allSettled(pending);
    expect(
      outcomes.map((o) => (o.status === "rejected" ? (o.reason as StatusError).code : "fulfilled")),
    ).toEqual(Array(50).fill(Code.CANCELLED));
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});
