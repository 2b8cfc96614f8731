// Connection losses at the worst moment, found by the load test: amqplib settles channel.close()
// only on the broker's CloseOk, and a channel opened while the connection is being torn down may
// never hear back. Either one, awaited inside a session setup, used to stop recovery for good.
// No timers decide anything here: a hang shows as the test's own timeout.
import { describe, expect, it } from "vitest";
import { AmqpConnection, EventPublisher, type AmqpSession } from "@grabbit/runtime/amqp";
import type { Channel } from "amqplib";
import { brokerProxy } from "../support/tcp-proxy.js";
import { faultHarness, orderEvent } from "../amqp/fixtures.js";

const { janitor, closers, proxied } = faultHarness("grabbit-loss-test", {
  initialDelayMs: 10,
  maxDelayMs: 50,
});

/** The next session after `session`. */
function nextSession(conn: AmqpConnection, session: AmqpSession): Promise<AmqpSession> {
  return new Promise((resolve) => {
    const on = (s: AmqpSession) => {
      if (s.id === session.id) return;
      conn.off("connected", on);
      resolve(s);
    };
    conn.on("connected", on);
  });
}

describe("connection lost at the worst moment", () => {
  it("channel.close() settles when the connection drops before the broker's CloseOk", {
    timeout: 30_000,
  }, async () => {
    const { proxy, conn } = await proxied();
    const session = await conn.waitForSession();
    const ch = await session.createChannel();
    const closing = ch.close();
    // Same tick: the Close frame is still in the socket's buffer when the connection goes.
    proxy.cutAll();
    await closing.catch(() => {});
    await session.closed;
    expect(session.open).toBe(false);
  });

  it("connection.close() finishes when the connection drops before the broker's CloseOk", {
    timeout: 30_000,
  }, async () => {
    const proxy = await brokerProxy();
    closers.push(() => proxy.stop());
    const conn = await AmqpConnection.connect({
      urls: proxy.url,
      name: "grabbit-loss-close",
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    const session = await conn.waitForSession();
    // The cut lands right after the Close frame is handed to the socket.
    const model = session.connection;
    const close = model.close.bind(model);
    model.close = () => {
      const closing = close();
      proxy.cutAll();
      return closing;
    };
    await conn.close();
    expect(session.open).toBe(false);
    expect(conn.connected).toBe(false);
  });

  it("a session setup that closes a channel as the cut lands does not stop recovery", {
    timeout: 30_000,
  }, async () => {
    const { proxy, conn } = await proxied();
    const first = await conn.waitForSession();
    let armed = true;
    let runs = 0;
    conn.onSession(
      async (session) => {
        runs++;
        const ch = await session.createChannel();
        const closing = ch.close();
        if (armed) {
          armed = false;
          proxy.cutAll();
        }
        await closing;
      },
      { now: false },
    );
    // Lose the first session so the setup runs on the second, where it is cut mid-close; the
    // connection must still come back (the second session never becomes ready).
    const next = nextSession(conn, first);
    proxy.cutAll();
    const s = await next;
    expect(armed).toBe(false);
    expect(s.id).toBeGreaterThan(first.id + 1);
    expect(s.open).toBe(true);
    expect(runs).toBeGreaterThanOrEqual(2);
  });

  it("a channel opened from a close handler while the connection goes down fails instead of hanging", {
    timeout: 30_000,
  }, async () => {
    const { proxy, conn } = await proxied();
    const session = await conn.waitForSession();
    const ch = await session.createChannel();
    let reopened: Promise<Channel> | undefined;
    // What a component does when its channel closes and the session still says it is open.
    ch.on("close", () => (reopened ??= session.createChannel()));
    proxy.cutAll();
    await session.closed;
    expect(reopened).toBeDefined();
    await expect(reopened).rejects.toThrow();
  });

  it("an event publisher keeps publishing when cuts land during its exchange declaration", {
    timeout: 120_000,
  }, async () => {
    const { proxy, conn } = await proxied();
    const exchange = janitor.exchange("declare-cut");
    const event = orderEvent(exchange, "topic", "order.{region}");
    const q = janitor.queue("declare-cut");
    const ch = await janitor.channel();
    await ch.assertExchange(exchange, "topic", { durable: true });
    await ch.assertQueue(q, { durable: true });
    await ch.bindQueue(q, exchange, "#");
    const pub = new EventPublisher(conn, event, { timeoutMs: 60_000 });
    closers.push(() => pub.close());
    // Cut right after every new session starts its setups, a few times over.
    let cuts = 0;
    conn.on("connected", () => {
      if (cuts < 5) {
        cuts++;
        setImmediate(() => proxy.cutAll());
      }
    });
    conn.onSession(() => {
      if (cuts < 5) queueMicrotask(() => proxy.cutAll());
    });
    proxy.cutAll();
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        pub.publish({ id: String(i), region: "eu", amount: i }),
      ),
    );
    expect(await janitor.messageCount(q)).toBeGreaterThanOrEqual(200);
  });
});
