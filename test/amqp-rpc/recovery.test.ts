// RPC when things go wrong in the network, and with several servers: connections cut mid-call
// through a TcpProxy (the shared broker is never touched), and competing servers on one queue.
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";
import { brokerProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { echoService, eventually, sleep } from "./fixture.js";

let admin: amqp.ChannelModel;
const queues: string[] = [];
const cleanup: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  admin = await amqp.connect(AMQP_URL);
});

afterAll(async () => {
  // Reverse order: transports and servers before their connections and proxies.
  for (const c of cleanup.reverse()) await c.close().catch(() => {});
  const ch = await admin.createChannel();
  for (const q of queues) {
    await ch.deleteQueue(q).catch(() => {});
    await ch.deleteQueue(`${q}.dlq`).catch(() => {});
  }
  await admin.close();
});

async function connect(url: string, name: string): Promise<AmqpConnection> {
  const conn = await AmqpConnection.connect({
    urls: url,
    name,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
  });
  cleanup.push(conn);
  return conn;
}

async function proxy(): Promise<TcpProxy> {
  const p = await brokerProxy();
  cleanup.push({ close: () => p.stop() });
  return p;
}

/** Settles every promise and reports each outcome; never waits on a timer of its own. */
async function outcomes(calls: Promise<unknown>[]): Promise<(string | number)[]> {
  const settled = await Promise.allSettled(calls);
  return settled.map((s) =>
    s.status === "fulfilled"
      ? "ok"
      : s.reason instanceof StatusError
        ? s.reason.code
        : String(s.reason),
  );
}

describe("AMQP RPC under failure and load", () => {
  it("spreads calls over several servers competing on one queue", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const served = [0, 0, 0];
    for (let i = 0; i < 3; i++) {
      const conn = await connect(AMQP_URL, `rpc-compete-${i}`);
      const server = await serveAmqp(
        conn,
        service,
        {
          echo: async (req: { text: string; delayMs: number }) => {
            served[i]!++;
            await sleep(req.delayMs);
            return { text: `server ${i}`, delayMs: 0 };
          },
        },
        { prefetch: 2 },
      );
      cleanup.push(server);
    }
    const clientConn = await connect(AMQP_URL, "rpc-compete-client");
    const t = new AmqpRpcTransport(clientConn);
    cleanup.push(t);
    const results = await Promise.all(
      Array.from({ length: 60 }, () => t.unary(service.methods.echo, { text: "", delayMs: 20 })),
    );
    expect(results).toHaveLength(60);
    expect(served.reduce((a, b) => a + b, 0)).toBe(60);
    // Each server took part: with prefetch 2 and 60 calls at once, none can take them all.
    for (const n of served) expect(n).toBeGreaterThan(0);
    expect(new Set(results.map((r) => r.text)).size).toBe(3);
  });

  it("fails calls in flight with UNAVAILABLE when the client's connection is cut, and works after recovery", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const serverConn = await connect(AMQP_URL, "rpc-cut-server");
    let entered = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const server = await serveAmqp(serverConn, service, {
      slow: async () => {
        entered++;
        await released;
        return { text: "slow", delayMs: 0 };
      },
      echo: (req: { text: string; delayMs: number }) => req,
    });
    cleanup.push(server);

    const p = await proxy();
    const clientConn = await connect(p.url, "rpc-cut-client");
    const t = new AmqpRpcTransport(clientConn, { timeoutMs: 0 }); // no deadline: only the cut can end these calls
    cleanup.push(t);
    expect((await t.unary(service.methods.echo, { text: "before", delayMs: 0 })).text).toBe(
      "before",
    );

    // 40 calls: 16 in handlers (the service's prefetch), the rest still queued in the broker.
    const calls = Array.from({ length: 40 }, () =>
      t.unary(service.methods.slow, { text: "", delayMs: 0 }),
    );
    await eventually(() => entered === 16, "a prefetch's worth of calls to reach the handler");
    p.cutAll();
    const results = await outcomes(calls);
    expect(results).toEqual(Array(40).fill(Code.UNAVAILABLE));
    expect(t.inFlight).toBe(0);
    release();

    // Fail-fast while down, then calls succeed once the connection is back.
    let answer: string | undefined;
    await eventually(async () => {
      try {
        answer = (
          await t.unary(service.methods.echo, { text: "after", delayMs: 0 }, { timeoutMs: 2000 })
        ).text;
        return true;
      } catch (err) {
        expect(err).toBeInstanceOf(StatusError);
        expect([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]).toContain((err as StatusError).code);
        return false;
      }
    }, "a call to succeed after reconnecting");
    expect(answer).toBe("after");
  });

  it("keeps calls waiting across a server's connection loss: the request is redelivered and answered", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const p = await proxy();
    const serverConn = await connect(p.url, "rpc-cut-server-side");
    let entered = 0;
    let firstGate!: () => void;
    const gate = new Promise<void>((r) => (firstGate = r));
    const server = await serveAmqp(serverConn, service, {
      slow: async (req: { text: string; delayMs: number }) => {
        entered++;
        // The first delivery hangs until the cut; the redelivery answers at once.
        if (entered <= 3) await gate;
        return { text: `done ${req.text}`, delayMs: 0 };
      },
    });
    cleanup.push(server);

    const clientConn = await connect(AMQP_URL, "rpc-cut-server-side-client");
    const t = new AmqpRpcTransport(clientConn, { timeoutMs: 0 });
    cleanup.push(t);
    const calls = ["a", "b", "c"].map((text) =>
      t.unary(service.methods.slow, { text, delayMs: 0 }),
    );
    await eventually(() => entered === 3, "three calls to reach the handler");
    p.cutAll();
    firstGate();
    const results = await Promise.all(calls);
    expect(results.map((r) => r.text)).toEqual(["done a", "done b", "done c"]);
    // The cut requests were unacked, so the broker redelivered them (at-least-once).
    await eventually(() => entered >= 6, "the cut requests to be redelivered");
  });

  it("re-declares and consumes again when its request queue is deleted under it", async () => {
    const service = echoService();
    const q = service.amqp!.requestQueue;
    queues.push(q);
    const conn = await connect(AMQP_URL, "rpc-requeue-server");
    const errors: Error[] = [];
    cleanup.push(
      await serveAmqp(
        conn,
        service,
        { echo: (req: { text: string; delayMs: number }) => req },
        { onError: (e) => errors.push(e) },
      ),
    );
    const t = new AmqpRpcTransport(conn);
    cleanup.push(t);
    expect((await t.unary(service.methods.echo, { text: "one", delayMs: 0 })).text).toBe("one");
    const ch = await admin.createChannel();
    await ch.deleteQueue(q);
    await ch.close();
    await eventually(async () => {
      const r = await t
        .unary(service.methods.echo, { text: "two", delayMs: 0 }, { timeoutMs: 2000 })
        .catch((e: StatusError) => e.code);
      return typeof r === "object" && r.text === "two";
    }, "calls to work again");
    expect(errors.some((e) => e.message.includes("cancelled the consumer"))).toBe(true);
  });

  it("re-opens its reply channel when only that channel dies (the connection stays up)", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const conn = await connect(AMQP_URL, "rpc-channel-death");
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    cleanup.push(
      await serveAmqp(conn, service, {
        echo: (req: { text: string; delayMs: number }) => req,
        slow: async () => {
          await released;
          return { text: "slow", delayMs: 0 };
        },
      }),
    );
    const t = new AmqpRpcTransport(conn, { timeoutMs: 0 });
    cleanup.push(t);
    expect((await t.unary(service.methods.echo, { text: "a", delayMs: 0 })).text).toBe("a");
    const waiting = t.unary(service.methods.slow, { text: "", delayMs: 0 });
    await eventually(() => t.inFlight === 1, "the slow call to be sent");
    // White-box: close the transport's own channel, as a channel-level error would.
    await (t as unknown as { link: { channel: amqp.Channel } }).link.channel.close();
    expect(await waiting.catch((e: StatusError) => e.code)).toBe(Code.UNAVAILABLE);
    release();
    expect(conn.connected).toBe(true);
    await eventually(async () => {
      const r = await t
        .unary(service.methods.echo, { text: "b", delayMs: 0 }, { timeoutMs: 2000 })
        .catch((e: StatusError) => e.code);
      return typeof r === "object" && r.text === "b";
    }, "calls to work on a new channel");
  });

  it("waits for the connection with waitForReady instead of failing fast", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const serverConn = await connect(AMQP_URL, "rpc-ready-server");
    cleanup.push(
      await serveAmqp(serverConn, service, {
        echo: (req: { text: string; delayMs: number }) => req,
      }),
    );
    const p = await proxy();
    const clientConn = await connect(p.url, "rpc-ready-client");
    const eager = new AmqpRpcTransport(clientConn);
    const patient = new AmqpRpcTransport(clientConn, { waitForReady: true });
    cleanup.push(eager, patient);
    expect((await patient.unary(service.methods.echo, { text: "up", delayMs: 0 })).text).toBe("up");

    p.refuse(true);
    p.cutAll();
    await eventually(() => !clientConn.connected, "the client to notice the cut");
    const failFast = await eager
      .unary(service.methods.echo, { text: "x", delayMs: 0 })
      .catch((e: StatusError) => e.code);
    expect(failFast).toBe(Code.UNAVAILABLE);
    const waiting = patient.unary(
      service.methods.echo,
      { text: "waited", delayMs: 0 },
      { timeoutMs: 30_000 },
    );
    p.refuse(false);
    expect((await waiting).text).toBe("waited");
  });
});
