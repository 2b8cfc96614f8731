// Identity on events: a bearer token added by the publisher's interceptor and verified by the
// consumer's; events without a valid one are dead-lettered at once with the reason. The broker-checked
// AMQP user_id: set by EventPublisher, required by the consumer, kept across retries, not forgeable
// by a header. And size limits on both ends.
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  HEADER_ERROR,
  HEADER_ATTEMPTS,
  type DeliveryContext,
} from "@grabbit/runtime/amqp";
import { bearerToken, claimsOf, requireJwt } from "@grabbit/runtime/auth";
import { AMQP_URL } from "../support/broker.js";
import { Janitor, OrderCreated, deferred, orderEvent, type Order } from "../amqp/fixtures.js";

const SECRET = "events-secret-that-is-at-least-32-bytes";
const key = new TextEncoder().encode(SECRET);
const token = (sub: string, expSec = 300) =>
  new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setAudience("events")
    .setExpirationTime(Math.floor(Date.now() / 1000) + expSec)
    .sign(key);

let conn: AmqpConnection;
const janitor = new Janitor();
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ urls: AMQP_URL, name: "security-events-test" });
});
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await conn.close();
  await janitor.cleanup();
});

/** A started consumer on a fresh queue bound to a fresh exchange, and a publisher for it. */
async function setup(opts: {
  consumer?: Partial<ConstructorParameters<typeof EventConsumer>[1]>;
  publisher?: ConstructorParameters<typeof EventPublisher>[2];
  handler: (o: Order, d: DeliveryContext) => Promise<void> | void;
}) {
  const exchange = janitor.exchange("sec");
  const queue = janitor.queue("sec", [50]);
  const event = orderEvent(exchange);
  const consumer = new EventConsumer(conn, {
    queue,
    queueExpiresMs: 600_000,
    retry: { maxAttempts: 3, delaysMs: [50] },
    ...opts.consumer,
  });
  consumer.on(event, opts.handler);
  await consumer.start();
  const publisher = new EventPublisher(conn, event, opts.publisher ?? {});
  closers.push(
    () => publisher.close(),
    () => consumer.close(),
  );
  return { exchange, queue, event, consumer, publisher };
}

describe("bearer tokens on events", () => {
  it("a valid token reaches the handler as claims; bad ones are dead-lettered once, with the reason", async () => {
    const seen: string[] = [];
    const got = deferred<DeliveryContext>();
    const { queue, publisher, exchange } = await setup({
      consumer: { interceptors: [requireJwt({ keys: { secret: SECRET }, audience: "events" })] },
      handler: (o, d) => {
        seen.push(o.id);
        got.resolve(d);
      },
    });
    const signed = new EventPublisher(conn, orderEvent(exchange), {
      interceptors: [bearerToken(() => token("billing"))],
    });
    closers.push(() => signed.close());
    await signed.publish({ id: "good", region: "eu", amount: 1 });
    const d = await got.promise;
    expect(claimsOf(d)?.sub).toBe("billing");
    expect(d.metadata.authorization).toMatch(/^Bearer /);

    // No token, an expired one, one for another audience, one signed with another key.
    await publisher.publish({ id: "none", region: "eu", amount: 1 });
    await publisher.publish(
      { id: "expired", region: "eu", amount: 1 },
      { metadata: { authorization: `Bearer ${await token("billing", -3600)}` } },
    );
    const otherAud = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setAudience("rpc")
      .setExpirationTime("5m")
      .sign(key);
    await publisher.publish(
      { id: "aud", region: "eu", amount: 1 },
      { metadata: { authorization: `Bearer ${otherAud}` } },
    );
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setAudience("events")
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode("x".repeat(40)));
    await publisher.publish(
      { id: "forged", region: "eu", amount: 1 },
      { metadata: { authorization: `Bearer ${forged}` } },
    );
    const reasons: Record<string, string> = {};
    for (let i = 0; i < 4; i++) {
      const m = await janitor.next(`${queue}.dlq`);
      const o = OrderCreated.decode(m.content);
      reasons[o.id] = String(m.properties.headers?.[HEADER_ERROR]);
      // Permanent: dead-lettered on the first attempt, never retried.
      expect(m.properties.headers?.[HEADER_ATTEMPTS]).toBe(1);
    }
    expect(reasons.none).toMatch(/authorization header is missing/);
    expect(reasons.expired).toMatch(/expired/);
    expect(reasons.aud).toMatch(/aud/);
    expect(reasons.forged).toMatch(/signature/);
    expect(seen).toEqual(["good"]);
  });

  it("PERMISSION_DENIED and UNAUTHENTICATED from a handler are permanent too", async () => {
    let calls = 0;
    const { queue, publisher } = await setup({
      handler: (o) => {
        calls++;
        throw new StatusError(
          o.id === "deny" ? Code.PERMISSION_DENIED : Code.UNAUTHENTICATED,
          `no ${o.id}`,
        );
      },
    });
    await publisher.publish({ id: "deny", region: "eu", amount: 1 });
    const first = await janitor.next(`${queue}.dlq`);
    await publisher.publish({ id: "unauth", region: "eu", amount: 1 });
    const second = await janitor.next(`${queue}.dlq`);
    expect([first, second].map((m) => m.properties.headers?.[HEADER_ERROR])).toEqual([
      "[PERMISSION_DENIED] no deny",
      "[UNAUTHENTICATED] no unauth",
    ]);
    expect([first, second].map((m) => m.properties.headers?.[HEADER_ATTEMPTS])).toEqual([1, 1]);
    expect(calls).toBe(2);
  });
});

describe("AMQP user_id", () => {
  it("the publisher sets it, the broker vouches for it, the consumer requires it, retries keep it", async () => {
    const users: (string | undefined)[] = [];
    const done = deferred();
    const { publisher, queue, exchange } = await setup({
      consumer: { requireUserId: ["guest", "billing"] },
      publisher: { userId: "guest" },
      handler: (o, d) => {
        users.push(d.userId);
        // Fail the first attempt so the second one arrives through the retry queue.
        if (d.attempt === 1) throw new StatusError(Code.UNAVAILABLE, "try again");
        done.resolve();
      },
    });
    await publisher.publish({ id: "1", region: "eu", amount: 1 });
    await done.promise;
    expect(users).toEqual(["guest", "guest"]);

    // A user_id other than the login: the broker refuses it, the publish rejects.
    const liar = new EventPublisher(conn, orderEvent(exchange), { userId: "billing" });
    closers.push(() => liar.close());
    const err = await liar.publish({ id: "2", region: "eu", amount: 1 }).then(
      () => undefined,
      (e: unknown) => e as StatusError,
    );
    expect(err?.code).toBe(Code.PERMISSION_DENIED);

    // No user_id, or only a forged header claiming one: dead-lettered with the reason.
    const plain = new EventPublisher(conn, orderEvent(exchange));
    closers.push(() => plain.close());
    await plain.publish({ id: "3", region: "eu", amount: 1 });
    const ch = await janitor.channel();
    ch.publish(
      exchange,
      "order.eu.created",
      Buffer.from(OrderCreated.encode({ id: "4", region: "eu", amount: 1 })),
      {
        contentType: "application/x-protobuf",
        type: OrderCreated.typeName,
        headers: { "x-grabbit-original-user-id": "billing" },
      },
    );
    const reasons = [await janitor.next(`${queue}.dlq`), await janitor.next(`${queue}.dlq`)].map(
      (m) => String(m.properties.headers?.[HEADER_ERROR]),
    );
    expect(reasons).toEqual([
      "the message has no user_id and this consumer requires one",
      "the message has no user_id and this consumer requires one",
    ]);
    expect(users).toEqual(["guest", "guest"]);
  });
});

describe("message size limits", () => {
  it("the event publisher refuses an oversized event before sending it; the consumer dead-letters one", async () => {
    const handled: string[] = [];
    const { queue, exchange } = await setup({
      consumer: { maxMessageBytes: 1024 },
      publisher: { maxMessageBytes: 1024 },
      handler: (o) => void handled.push(o.id),
    });
    const limited = new EventPublisher(conn, orderEvent(exchange), { maxMessageBytes: 1024 });
    closers.push(() => limited.close());
    const err = await limited.publish({ id: "x".repeat(2000), region: "eu", amount: 1 }).then(
      () => undefined,
      (e: unknown) => e as StatusError,
    );
    expect(err?.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err?.message).toMatch(/over the limit of 1024/);
    // Another publisher with no limit of its own: the consumer's limit applies.
    const unlimited = new EventPublisher(conn, orderEvent(exchange));
    closers.push(() => unlimited.close());
    await unlimited.publish({ id: "y".repeat(5000), region: "eu", amount: 1 });
    const dead = await janitor.next(`${queue}.dlq`);
    expect(String(dead.properties.headers?.[HEADER_ERROR])).toMatch(
      /^the message body is 50\d\d bytes, over the limit of 1024/,
    );
    expect(handled).toEqual([]);
  });
});
