// A single broker stopped and started (a private node: the shared broker is never restarted):
// durable queues and every confirmed message survive, the consumer and the RPC server resume by
// themselves, and no publish or call hangs while the broker is away.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AmqpConnection,
  AmqpRpcTransport,
  EventConsumer,
  EventPublisher,
  serveAmqp,
} from "@grabbit/runtime/amqp";
import { Code, StatusError } from "@grabbit/runtime";
import { orderEvent } from "../amqp/fixtures.js";
import { echoService } from "../amqp-rpc/fixture.js";
import { uniqueName } from "../support/broker.js";
import { Cluster } from "../support/cluster.js";
import { tmpdir } from "node:os";
import { join } from "node:path";

const broker = new Cluster({
  size: 1,
  basePort: 47011,
  namePrefix: "grabbit-single",
  epmdPort: 47379,
  dir: join(tmpdir(), "grabbit-single-broker"),
});
const connections: AmqpConnection[] = [];

beforeAll(async () => {
  await broker.start({ fresh: true });
}, 120_000);
afterAll(async () => {
  for (const c of connections) await c.close().catch(() => {});
  await broker.stop();
});

async function connect(name: string): Promise<AmqpConnection> {
  const c = await AmqpConnection.connect({
    urls: broker.urls,
    name,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
    onError: () => {},
  });
  connections.push(c);
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a single broker stopped and started", () => {
  it("keeps every confirmed message and the durable queues; consumer and RPC server resume", async () => {
    const event = orderEvent(uniqueName("grabbit-single-ex"), "topic", "order.{region}");
    const queue = uniqueName("grabbit-single-q");
    const consumerConn = await connect("single-consumer");
    const seen = new Set<string>();
    let seenAfterRestart = 0;
    let restarted = false;
    const consumer = new EventConsumer(consumerConn, { queue, queueType: "quorum", prefetch: 50 });
    await consumer
      .on(event, (o) => {
        seen.add(o.id);
        if (restarted) seenAfterRestart++;
      })
      .start();

    // A second queue on the same events with no consumer during the outage: what it holds when the
    // broker stops must still be there after the restart (durable queue, persistent messages).
    const parkedQueue = uniqueName("grabbit-single-parked");
    const declareOnly = new EventConsumer(consumerConn, {
      queue: parkedQueue,
      queueType: "quorum",
    });
    await declareOnly.on(event, () => {}).start();
    await declareOnly.close();

    const service = echoService();
    const serverConn = await connect("single-rpc-server");
    await serveAmqp(serverConn, service, {
      echo: (req: { text: string }) => ({ text: `echo ${req.text}`, delayMs: 0 }),
    });
    const client = new AmqpRpcTransport(await connect("single-rpc-client"), { timeoutMs: 2_000 });

    const pub = new EventPublisher(await connect("single-publisher"), event, { timeoutMs: 30_000 });
    const confirmed = new Set<string>();
    const refused: string[] = [];
    const publishes: Promise<void>[] = [];
    const calls = { ok: 0, failed: new Map<string, number>() };
    let running = true;
    let n = 0;
    const load = (async () => {
      while (running) {
        const id = `m${n++}`;
        publishes.push(
          pub.publish({ id, region: "eu", amount: 1 }).then(
            () => void confirmed.add(id),
            (err: unknown) => void refused.push(`${id}: ${String(err)}`),
          ),
        );
        if (n % 4 === 0) {
          client.unary(service.methods.echo, { text: id, delayMs: 0 }).then(
            () => calls.ok++,
            (err: unknown) => {
              const code = Code[StatusError.from(err).code] ?? "UNKNOWN";
              calls.failed.set(code, (calls.failed.get(code) ?? 0) + 1);
            },
          );
        }
        await sleep(5);
      }
    })();

    await sleep(1_500);
    const node = broker.nodes[0]!;
    await broker.ctl(node, "stop"); // the whole node, as an operator would for maintenance
    await sleep(1_500);
    await broker.startNode(0);
    restarted = true;
    await sleep(3_000);
    running = false;
    await load;
    await Promise.all(publishes); // every publish settles: none hangs

    // After the restart the RPC server answers again.
    const after = await client.unary(service.methods.echo, { text: "after", delayMs: 0 });
    expect(after.text).toBe("echo after");

    const until = Date.now() + 20_000;
    while ([...confirmed].some((id) => !seen.has(id)) && Date.now() < until) await sleep(100);
    const lost = [...confirmed].filter((id) => !seen.has(id));
    console.log(
      `FIGURES single-broker restart: published=${n} confirmed=${confirmed.size} refused=${refused.length} lost=${lost.length} consumed=${seen.size} consumed-after-restart=${seenAfterRestart} rpc-ok=${calls.ok} rpc-failed=${JSON.stringify(Object.fromEntries(calls.failed))}`,
    );
    expect(lost).toEqual([]);
    expect(seenAfterRestart).toBeGreaterThan(0);

    const parked = new Set<string>();
    const late = new EventConsumer(consumerConn, {
      queue: parkedQueue,
      queueType: "quorum",
      prefetch: 200,
    });
    await late.on(event, (o) => void parked.add(o.id)).start();
    while (parked.size < confirmed.size && Date.now() < until + 20_000) await sleep(100);
    await late.close();
    expect([...confirmed].filter((id) => !parked.has(id))).toEqual([]);
    // Publishes wait for the broker within their timeout (30 s): none is refused for a short restart.
    expect(refused).toEqual([]);
    // Calls while the broker was away fail fast, never by hanging: only UNAVAILABLE or a deadline.
    for (const code of calls.failed.keys())
      expect(["UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(code);
    await consumer.close();
  });
});
