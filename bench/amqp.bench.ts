// Typed events vs raw amqplib on the same broker, same queue, same messages.
// publish_confirmed: EventPublisher (window of 1000 confirms) vs a raw confirm channel publishing
//   pipelined batches and waiting with waitForConfirms, honouring 'drain' (raw amqplib at its best).
// consume: EventConsumer (manual ack after the handler) vs raw consume + decode + ack, same prefetch.
// Rounds alternate which side goes first; each figure keeps the best round of each side.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import type { Channel, ConfirmChannel } from "amqplib";
import { type Order, orderType } from "../test/support/messages.js";
import type { EventDesc } from "../runtime/src/index.js";
import { renderRoutingKey } from "../runtime/src/routing.js";
import { AmqpConnection, EventConsumer, EventPublisher, declareConsumerQueues } from "../runtime/src/amqp/index.js";
import { figure, type Figure } from "./figure.js";

type TickMsg = Order;
const Tick = orderType("bench.v1.Tick");

const URL_ = process.env.AMQP_URL ?? "amqp://127.0.0.1";
const suffix = Math.random().toString(16).slice(2, 10);
const exchange = `grabbit-bench-${suffix}`;
const queue = `grabbit-bench-${suffix}`;
const event: EventDesc<TickMsg> = {
  type: Tick,
  exchange,
  exchangeKind: "topic",
  routingKeyTemplate: "tick.{region}",
  routingFields: ["region"],
  persistent: true,
  routingValues: (t: TickMsg) => ({ region: t.region }),
};

/** BENCH_VERBOSE=1 prints every round to stderr, with this process's CPU time per message. */
let cpuMark = process.cpuUsage();
function log(what: string, rate: number, n: number): number {
  const cpu = process.cpuUsage(cpuMark);
  if (process.env.BENCH_VERBOSE) process.stderr.write(`  ${what}: ${Math.round(rate)} msg/s, ${((cpu.user + cpu.system) / n).toFixed(1)} us CPU/msg\n`);
  return rate;
}
function mark(): void {
  cpuMark = process.cpuUsage();
}

function tick(i: number): TickMsg {
  return { id: `t-${i}`, region: "eu", amount: i };
}

async function rawPublish(ch: ConfirmChannel, n: number): Promise<number> {
  const batch = 1000;
  const start = performance.now();
  for (let sent = 0; sent < n; ) {
    const end = Math.min(n, sent + batch);
    for (; sent < end; sent++) {
      const t = tick(sent);
      const ok = ch.publish(exchange, renderRoutingKey(event, t), Buffer.from(Tick.encode(t)), {
        contentType: "application/x-protobuf",
        type: Tick.typeName,
        messageId: randomUUID(),
        timestamp: Math.floor(Date.now() / 1000),
        deliveryMode: 2,
        mandatory: true,
      });
      if (!ok) await new Promise((r) => ch.once("drain", r));
    }
    await ch.waitForConfirms();
  }
  return n / ((performance.now() - start) / 1000);
}

async function typedPublish(pub: EventPublisher<TickMsg>, n: number): Promise<number> {
  const start = performance.now();
  const all: Promise<void>[] = new Array(n);
  for (let i = 0; i < n; i++) all[i] = pub.publish(tick(i));
  await Promise.all(all);
  return n / ((performance.now() - start) / 1000);
}

async function fill(ch: ConfirmChannel, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t = tick(i);
    const ok = ch.publish(exchange, "tick.eu", Buffer.from(Tick.encode(t)), {
      contentType: "application/x-protobuf",
      type: Tick.typeName,
      messageId: randomUUID(),
      deliveryMode: 1,
    });
    if (!ok) await new Promise((r) => ch.once("drain", r));
    if (i % 1000 === 999) await ch.waitForConfirms();
  }
  await ch.waitForConfirms();
}

async function rawConsume(ch: Channel, n: number, prefetch: number): Promise<number> {
  await ch.prefetch(prefetch);
  let count = 0;
  let sum = 0;
  let tag = "";
  const start = performance.now();
  await new Promise<void>((resolve, reject) => {
    ch.consume(queue, (msg) => {
      if (!msg) return;
      if (msg.properties.contentType === "application/x-protobuf" && msg.properties.type === Tick.typeName) sum += Tick.decode(msg.content).amount;
      ch.ack(msg);
      if (++count === n) resolve();
    }).then((ok) => (tag = ok.consumerTag), reject);
  });
  const rate = n / ((performance.now() - start) / 1000);
  await ch.cancel(tag);
  if (sum < 0) throw new Error("unreachable");
  return rate;
}

async function typedConsume(conn: AmqpConnection, n: number, prefetch: number): Promise<number> {
  let count = 0;
  let sum = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const consumer = new EventConsumer(conn, { queue, prefetch, queueType: "classic", retry: { delaysMs: [1000] } });
  consumer.on(event, (t) => {
    sum += t.amount;
    if (++count === n) done();
  });
  const start = performance.now();
  await consumer.start();
  await finished;
  const rate = n / ((performance.now() - start) / 1000);
  await consumer.stop();
  if (sum < 0) throw new Error("unreachable");
  return rate;
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const nPub = quick ? 3_000 : 10_000;
  const nCon = quick ? 3_000 : 10_000;
  const rounds = quick ? 2 : 4;
  const prefetch = 200;

  // Raw amqplib gets both socket settings (Nagle on, its default, and TCP_NODELAY); rounds alternate
  // between them and the baseline is the best either achieved.
  const raw = await amqp.connect(URL_);
  raw.on("error", () => {});
  const rawNoDelay = await amqp.connect(URL_, { noDelay: true });
  rawNoDelay.on("error", () => {});
  const conn = await AmqpConnection.connect({ urls: URL_, name: "grabbit-bench" });
  const admin = await raw.createChannel();
  try {
    await admin.assertExchange(exchange, "topic", { durable: true });
    await declareConsumerQueues(admin, { queue, type: "classic", deadLetterQueue: `${queue}.dlq`, retryDelaysMs: [1000] });
    await admin.bindQueue(queue, exchange, "tick.*");

    const rawCh = await raw.createConfirmChannel();
    const rawChs = [rawCh, await rawNoDelay.createConfirmChannel()];
    const pub = new EventPublisher(conn, event);
    // Warm both sides up alike (JIT, channels, the exchange declaration) outside the timing.
    for (const ch of rawChs) await rawPublish(ch, 1000);
    await typedPublish(pub, 1000);
    await admin.purgeQueue(queue);

    let bestRawPub = 0;
    let bestTypedPub = 0;
    // Alternate which side goes first: the shared broker's load drifts between rounds.
    for (let r = 0; r < rounds; r++) {
      const sides = [
        async () => (bestRawPub = Math.max(bestRawPub, log(`raw publish ${r % 2 ? "noDelay" : "nagle"}`, (mark(), await rawPublish(rawChs[r % 2]!, nPub)), nPub))),
        async () => (bestTypedPub = Math.max(bestTypedPub, log("typed publish", (mark(), await typedPublish(pub, nPub)), nPub))),
      ];
      for (const side of r % 2 ? sides.reverse() : sides) {
        await side();
        await admin.purgeQueue(queue);
      }
    }
    await pub.close();

    let bestRawCon = 0;
    let bestTypedCon = 0;
    const consumeChs = [await raw.createChannel(), await rawNoDelay.createChannel()];
    for (let r = 0; r < rounds; r++) {
      const sides = [
        async () => (bestRawCon = Math.max(bestRawCon, log(`raw consume ${r % 2 ? "noDelay" : "nagle"}`, (mark(), await rawConsume(consumeChs[r % 2]!, nCon, prefetch)), nCon))),
        async () => (bestTypedCon = Math.max(bestTypedCon, log("typed consume", (mark(), await typedConsume(conn, nCon, prefetch)), nCon))),
      ];
      for (const side of r % 2 ? sides.reverse() : sides) {
        await fill(rawCh, nCon);
        await side();
        await admin.purgeQueue(queue);
      }
    }
    return {
      publish_confirmed: figure(bestTypedPub, bestRawPub, "msg/s", "higher-is-better", "raw amqplib confirm channel, pipelined batches + waitForConfirms (best of Nagle/noDelay)"),
      consume: figure(bestTypedCon, bestRawCon, "msg/s", "higher-is-better", "raw amqplib consume + decode + ack, same prefetch (best of Nagle/noDelay)"),
    };
  } finally {
    for (const q of [queue, `${queue}.dlq`, `${queue}.retry.1000`]) await admin.deleteQueue(q).catch(() => {});
    await admin.deleteExchange(exchange).catch(() => {});
    await conn.close();
    await raw.close().catch(() => {});
    await rawNoDelay.close().catch(() => {});
  }
}
