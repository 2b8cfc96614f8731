import { afterEach, describe, expect, it } from "vitest";
import {
  AmqpConnection,
  Publisher,
  quorumLostMessage,
  redactUrl,
  type AmqpConnectionEvents,
  type AmqpSession,
} from "@grabbit/runtime/amqp";
import { Code, StatusError } from "@grabbit/runtime";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { TcpProxy, brokerProxy } from "../support/tcp-proxy.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => {});
});

function nextEvent<T = unknown>(
  emitter: AmqpConnection,
  name: keyof AmqpConnectionEvents,
): Promise<T> {
  return new Promise((resolve) =>
    emitter.once(name, (...args: unknown[]) => resolve(args[0] as T)),
  );
}

describe("AmqpConnection", () => {
  it("connects, reports the broker's quorum support and runs setups now and on every session", async () => {
    const proxy = await brokerProxy();
    cleanup.push(() => proxy.stop());
    const conn = await AmqpConnection.connect({
      urls: proxy.url,
      name: "grabbit-test",
      reconnect: { initialDelayMs: 20 },
    });
    cleanup.push(() => conn.close());
    expect(conn.connected).toBe(true);
    expect(conn.supportsQuorumQueues()).toBe(true);

    const seen: number[] = [];
    const order: string[] = [];
    conn.onSession(async (s) => {
      seen.push(s.id);
      order.push("a");
    });
    conn.onSession(async () => {
      order.push("b");
    });
    // The "now" run of a setup is asynchronous; wait for it through a second session cycle instead of a timer.
    const first = await conn.waitForSession();
    const reconnected = nextEvent<AmqpSession>(conn, "connected");
    const disconnected = nextEvent(conn, "disconnected");
    proxy.cutAll();
    await disconnected;
    expect(conn.connected).toBe(false);
    const second = await reconnected;
    expect(second.id).toBeGreaterThan(first.id);
    await first.closed; // the old session reports its loss
    expect(seen).toEqual([first.id, second.id]);
    expect(order).toEqual(["a", "b", "a", "b"]);
    // The new session is usable.
    const ch = await second.createChannel();
    const q = await ch.assertQueue("", { exclusive: true });
    expect(q.queue).toMatch(/^amq\.gen/);
    await ch.close();
  });

  it("keeps retrying while the broker refuses connections and recovers when it accepts again", async () => {
    const proxy = await brokerProxy();
    cleanup.push(() => proxy.stop());
    const conn = await AmqpConnection.connect({
      urls: proxy.url,
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    cleanup.push(() => conn.close());
    proxy.refuse(true);
    let attempts = 0;
    const threeFailures = new Promise<void>((resolve) =>
      conn.on("reconnecting", () => {
        if (++attempts === 3) resolve();
      }),
    );
    proxy.cutAll();
    await threeFailures;
    expect(conn.connected).toBe(false);
    await expect(conn.waitForSession({ timeoutMs: 1 })).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
    });
    proxy.refuse(false);
    const session = await conn.waitForSession();
    expect(session.open).toBe(true);
    expect(conn.connected).toBe(true);
  });

  it("fails over to the next URL when the first is down", async () => {
    const dead = new TcpProxy("127.0.0.1", 1);
    await dead.start();
    dead.refuse(true);
    cleanup.push(() => dead.stop());
    const conn = await AmqpConnection.connect({ urls: [dead.url, AMQP_URL] });
    cleanup.push(() => conn.close());
    const session = await conn.waitForSession();
    expect(session.url).toBe(new URL(AMQP_URL).toString().replace(/\/\/[^@]*@/, "//"));
  });

  it("spreads connections over the nodes by shuffling the list (urlOrder given keeps it) and says where each is", async () => {
    // Three "nodes": three proxies in front of the shared broker.
    const proxies = await Promise.all([brokerProxy(), brokerProxy(), brokerProxy()]);
    cleanup.push(() => Promise.all(proxies.map((p) => p.stop())));
    const urls = proxies.map((p) => p.url);
    // What the connection reports: the URLs without credentials.
    const shown = urls.map(redactUrl);
    const shuffled: AmqpConnection[] = [];
    for (let i = 0; i < 12; i++) shuffled.push(await AmqpConnection.connect({ urls }));
    cleanup.push(() => Promise.all(shuffled.map((c) => c.close())));
    const nodes = new Set(shuffled.map((c) => c.node));
    // All twelve on one node would happen once in 3^11 runs.
    expect(nodes.size).toBeGreaterThan(1);
    for (const c of shuffled) expect([...c.nodes].sort()).toEqual([...shown].sort());

    const given = await AmqpConnection.connect({ urls, urlOrder: "given" });
    cleanup.push(() => given.close());
    expect(given.nodes).toEqual(shown);
    expect(given.node).toBe(shown[0]);
    // After the node is lost the connection reports the next one, with the reconnect counted.
    const connected = new Promise<{ node: string; reconnects: number }>((resolve) =>
      given.once("connected", (_s: unknown, i: { node: string; reconnects: number }) => resolve(i)),
    );
    proxies[0]!.refuse(true);
    proxies[0]!.cutAll();
    expect(await connected).toEqual({ node: shown[1], reconnects: 1 });
    expect(given.node).toBe(shown[1]);
    expect(() => new Publisher(given)).not.toThrow();
    await expect(AmqpConnection.connect({ urls, urlOrder: "random" as "given" })).rejects.toThrow(
      /urlOrder must be "shuffle" or "given"/,
    );
  });

  it("probes which nodes answer, and calls a cluster with no majority up a lost quorum", async () => {
    const up = await brokerProxy();
    const down1 = new TcpProxy("127.0.0.1", 1);
    const down2 = new TcpProxy("127.0.0.1", 1);
    await down1.start();
    await down2.start();
    await down1.stop();
    await down2.stop();
    cleanup.push(() => up.stop());
    const conn = await AmqpConnection.connect({
      urls: [up.url, down1.url, down2.url],
      urlOrder: "given",
    });
    cleanup.push(() => conn.close());
    const probe = await conn.probeNodes();
    expect(probe).toEqual({
      total: 3,
      reachable: 1,
      down: [redactUrl(down1.url), redactUrl(down2.url)],
      quorumLost: true,
    });
    expect(quorumLostMessage(probe)).toMatch(/lost its quorum: 1 of 3 nodes answer/);
  });

  it("rejects connect() with UNAVAILABLE when every URL is down and attempts run out", async () => {
    const dead = new TcpProxy("127.0.0.1", 1);
    await dead.start();
    dead.refuse(true);
    cleanup.push(() => dead.stop());
    const err = await AmqpConnection.connect({
      urls: dead.url,
      reconnect: { initialDelayMs: 5, maxAttempts: 2 },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).not.toContain("guest:guest");
  });

  it("close() closes tracked resources first and never reconnects", async () => {
    const proxy = await brokerProxy();
    cleanup.push(() => proxy.stop());
    const conn = await AmqpConnection.connect({
      urls: proxy.url,
      reconnect: { initialDelayMs: 5 },
    });
    const events: string[] = [];
    const session = await conn.waitForSession();
    conn.track({
      async close() {
        // Still usable while tracked resources drain.
        const ch = await session.createChannel();
        await ch.checkQueue("amq.rabbitmq.trace").catch(() => undefined);
        events.push("tracked closed");
      },
    });
    conn.on("reconnecting", () => events.push("reconnecting"));
    await conn.close();
    events.push("connection closed");
    await session.closed;
    expect(events).toEqual(["tracked closed", "connection closed"]);
    expect(conn.connected).toBe(false);
    await expect(conn.waitForSession()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
  });

  it("a channel error does not take the connection down", async () => {
    const conn = await AmqpConnection.connect();
    cleanup.push(() => conn.close());
    const session = await conn.waitForSession();
    const ch = await session.createChannel();
    const closed = new Promise<void>((r) => ch.once("close", r));
    await expect(ch.checkQueue(uniqueName("missing"))).rejects.toThrow(/NOT_FOUND/);
    await closed;
    expect(session.open).toBe(true);
    expect(conn.connected).toBe(true);
  });

  it("negotiates the heartbeat asked for, and unregistered setups stop running", async () => {
    const proxy = await brokerProxy();
    cleanup.push(() => proxy.stop());
    const conn = await AmqpConnection.connect({
      urls: proxy.url,
      heartbeatSeconds: 7,
      reconnect: { initialDelayMs: 5 },
    });
    cleanup.push(() => conn.close());
    const session = await conn.waitForSession();
    expect((session.connection.connection as unknown as { heartbeat: number }).heartbeat).toBe(7);
    const calls: string[] = [];
    const off = conn.onSession(() => void calls.push("removed"), { now: false });
    conn.onSession(() => void calls.push("kept"), { now: false });
    off();
    const next = nextEvent(conn, "connected");
    proxy.cutAll();
    await next;
    expect(calls).toEqual(["kept"]);
  });

  it("waitForSession honours an abort signal while disconnected", async () => {
    const proxy = await brokerProxy();
    cleanup.push(() => proxy.stop());
    const conn = await AmqpConnection.connect({
      urls: proxy.url,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
    });
    cleanup.push(() => conn.close());
    proxy.refuse(true);
    const lost = nextEvent(conn, "disconnected");
    proxy.cutAll();
    await lost;
    const ac = new AbortController();
    const waiting = conn.waitForSession({ signal: ac.signal });
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: Code.CANCELLED });
  });

  it("with noDelay, frames written in one tick leave the socket in a few writes, not one per frame", async () => {
    const counts: Record<string, number> = {};
    for (const noDelay of [true]) {
      const conn = await AmqpConnection.connect({ noDelay });
      cleanup.push(() => conn.close());
      const session = await conn.waitForSession();
      const socket = (
        session.connection.connection as unknown as {
          stream: { _write: Function; _writev?: Function };
        }
      ).stream;
      const p = new Publisher(conn);
      await p.publish("", "grabbit-nowhere", new Uint8Array([0]), {}, { mandatory: false });
      let writes = 0;
      const write = socket._write;
      const writev = socket._writev;
      socket._write = function (this: unknown, ...args: unknown[]) {
        writes++;
        return write.apply(this, args);
      };
      if (writev) {
        socket._writev = function (this: unknown, ...args: unknown[]) {
          writes++;
          return writev.apply(this, args);
        };
      }
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          p.publish("", "grabbit-nowhere", new Uint8Array([i]), {}, { mandatory: false }),
        ),
      );
      counts[String(noDelay)] = writes;
      await p.close();
    }
    // 200 publishes are 200 frames (200 writes without the cork); corked, they leave in a handful.
    expect(counts["true"]).toBeLessThan(20);
  });
});
