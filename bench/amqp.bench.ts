// Typed events vs raw amqplib on the same broker, same queue, same messages.
// publish_confirmed: EventPublisher vs a raw confirm channel at its best, which is the fastest of two
//   patterns (pipelined batches + waitForConfirms; a sliding window of confirm callbacks), each with
//   Nagle and with noDelay, honouring 'drain'.
// consume: EventConsumer (manual ack after the handler) vs raw consume + decode + ack, same prefetch.
// Every round runs every side in rotating order; each figure is the median of a side's rounds.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import type { Channel, ConfirmChannel } from "amqplib";
import type { Order } from "../test/support/messages.js";
import { renderRoutingKey } from "../runtime/src/routing.js";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  declareConsumerQueues,
} from "../runtime/src/amqp/index.js";
import { figure, median, publishSliding, type Figure } from "./figure.js";
import { tick, tickEvent } from "./tick.js";

type TickMsg = Order;

const URL_ = process.env.AMQP_URL ?? "amqp://127.0.0.1";
/** Unconfirmed messages a sliding-window publisher keeps outstanding: the Publisher's default window. */
const WINDOW = 4096;
const suffix = Math.random().toString(16).slice(2, 10);
const exchange = `grabbit-bench-${suffix}`;
const queue = `grabbit-bench-${suffix}`;
const event = tickEvent("bench.v1.Tick", exchange);
const Tick = event.type;

/** BENCH_VERBOSE=1 prints every round to stderr, with this process's CPU time per message. */
let cpuMark = process.cpuUsage();
/** CPU time (µs) per message of each side's rounds, for the CPU figures. */
const cpuPerMsg: Record<string, number[]> = {};
function log(what: string, rate: number, n: number): number {
  const cpu = process.cpuUsage(cpuMark);
  (cpuPerMsg[what] ??= []).push((cpu.user + cpu.system) / n);
  if (process.env.BENCH_VERBOSE)
    process.stderr.write(
      `  ${what}: ${Math.round(rate)} msg/s, ${((cpu.user + cpu.system) / n).toFixed(1)} us CPU/msg\n`,
    );
  return rate;
}
function mark(): void {
  cpuMark = process.cpuUsage();
}

function rawProps() {
  return {
    contentType: "application/x-protobuf",
    type: Tick.typeName,
    messageId: randomUUID(),
    timestamp: Math.floor(Date.now() / 1000),
    deliveryMode: 2,
    mandatory: true,
  };
}

/** Raw pattern 1: pipelined batches of 1,000, then waitForConfirms (amqplib's documented way). */
async function rawPublishBatches(ch: ConfirmChannel, n: number): Promise<number> {
  const batch = 1000;
  const start = performance.now();
  for (let sent = 0; sent < n; ) {
    const end = Math.min(n, sent + batch);
    for (; sent < end; sent++) {
      const t = tick(sent);
      const ok = ch.publish(
        exchange,
        renderRoutingKey(event, t),
        Buffer.from(Tick.encode(t)),
        rawProps(),
      );
      if (!ok) await new Promise((r) => ch.once("drain", r));
    }
    await ch.waitForConfirms();
  }
  return n / ((performance.now() - start) / 1000);
}

/** Raw pattern 2: a sliding window of WINDOW unconfirmed messages, refilled from each confirm callback. */
function rawPublishSliding(ch: ConfirmChannel, n: number): Promise<number> {
  const start = performance.now();
  return new Promise<number>((resolve, reject) => {
    let sent = 0;
    let confirmed = 0;
    let waitingForDrain = false;
    const onConfirm = (err: unknown) => {
      if (err) return reject(err);
      if (++confirmed === n) resolve(n / ((performance.now() - start) / 1000));
      else pump();
    };
    const pump = () => {
      while (!waitingForDrain && sent < n && sent - confirmed < WINDOW) {
        const t = tick(sent++);
        if (
          !ch.publish(
            exchange,
            renderRoutingKey(event, t),
            Buffer.from(Tick.encode(t)),
            rawProps(),
            onConfirm,
          )
        ) {
          waitingForDrain = true;
          ch.once("drain", () => {
            waitingForDrain = false;
            pump();
          });
        }
      }
    };
    pump();
  });
}

/** Typed, as an application that keeps at most WINDOW publishes outstanding would write it. */
function typedPublishSliding(pub: EventPublisher<TickMsg>, n: number): Promise<number> {
  return publishSliding(n, WINDOW, (i) => pub.publish(tick(i)));
}

/** Typed, in batches of 1,000 with publishMany (one promise per batch), as raw pattern 1 does. */
async function typedPublishMany(pub: EventPublisher<TickMsg>, n: number): Promise<number> {
  const batch = 1000;
  const start = performance.now();
  for (let sent = 0; sent < n; ) {
    const events: TickMsg[] = [];
    for (const end = Math.min(n, sent + batch); sent < end; sent++) events.push(tick(sent));
    await pub.publishMany(events);
  }
  return n / ((performance.now() - start) / 1000);
}

/** Typed, naively: every publish at once, the publisher's own window doing the pacing. */
async function typedPublishAll(pub: EventPublisher<TickMsg>, n: number): Promise<number> {
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
      if (
        msg.properties.contentType === "application/x-protobuf" &&
        msg.properties.type === Tick.typeName
      )
        sum += Tick.decode(msg.content).amount;
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
  const consumer = new EventConsumer(conn, {
    queue,
    prefetch,
    queueType: "classic",
    retry: { delaysMs: [1000] },
  });
  consumer.on(event, (t) => {
    sum += t.amount;
    if (++count === n) done();
  });
  const start = performance.now();
  await consumer.start();
  await finished;
  const rate = n / ((performance.now() - start) / 1000);
  await consumer.close();
  if (sum < 0) throw new Error("unreachable");
  return rate;
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const nPub = quick ? 3_000 : 10_000;
  const nCon = quick ? 3_000 : 10_000;
  const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 7));
  const prefetch = 200;

  // Raw amqplib gets both socket settings (Nagle on, its default, and TCP_NODELAY), each measured in
  // every round; the baseline is the better of the two medians.
  const raw = await amqp.connect(URL_);
  raw.on("error", () => {});
  const rawNoDelay = await amqp.connect(URL_, { noDelay: true });
  rawNoDelay.on("error", () => {});
  const conn = await AmqpConnection.connect({ urls: URL_, name: "grabbit-bench" });
  const admin = await raw.createChannel();
  try {
    await admin.assertExchange(exchange, "topic", { durable: true });
    await declareConsumerQueues(admin, {
      queue,
      type: "classic",
      deadLetterQueue: `${queue}.dlq`,
      retryDelaysMs: [1000],
    });
    await admin.bindQueue(queue, exchange, "tick.*");

    const rawCh = await raw.createConfirmChannel();
    const rawChs = [rawCh, await rawNoDelay.createConfirmChannel()];
    const pub = new EventPublisher(conn, event);
    // Raw amqplib in two patterns, each with Nagle and with TCP_NODELAY; typed in two idioms. Every
    // round runs every side once, in rotating order; a side's figure is the median of its rounds.
    const pubSides: Record<string, (n: number) => Promise<number>> = {
      "raw batches nagle": (n) => rawPublishBatches(rawChs[0]!, n),
      "raw batches noDelay": (n) => rawPublishBatches(rawChs[1]!, n),
      "raw sliding nagle": (n) => rawPublishSliding(rawChs[0]!, n),
      "raw sliding noDelay": (n) => rawPublishSliding(rawChs[1]!, n),
      "typed sliding": (n) => typedPublishSliding(pub, n),
      "typed all at once": (n) => typedPublishAll(pub, n),
      "typed publishMany": (n) => typedPublishMany(pub, n),
    };
    // Warm every side up alike (JIT, channels, the exchange declaration) outside the timing.
    for (const run of Object.values(pubSides)) await run(1000);
    await admin.purgeQueue(queue);

    const rotate = <T>(xs: T[], r: number): T[] => [
      ...xs.slice(r % xs.length),
      ...xs.slice(0, r % xs.length),
    ];
    const pubRates: Record<string, number[]> = Object.fromEntries(
      Object.keys(pubSides).map((k) => [k, []]),
    );
    for (let r = 0; r < rounds; r++) {
      for (const name of rotate(Object.keys(pubSides), r)) {
        mark();
        pubRates[name]!.push(log(name, await pubSides[name]!(nPub), nPub));
        await admin.purgeQueue(queue);
      }
    }
    await pub.close();
    const pubMedians = Object.fromEntries(Object.entries(pubRates).map(([k, v]) => [k, median(v)]));
    const [bestRawName, bestRawRate] = Object.entries(pubMedians)
      .filter(([k]) => k.startsWith("raw"))
      .reduce((a, b) => (b[1] > a[1] ? b : a));
    const typedRate = pubMedians["typed sliding"]!;

    const conRates = { nagle: [] as number[], noDelay: [] as number[], typed: [] as number[] };
    const consumeChs = [await raw.createChannel(), await rawNoDelay.createChannel()];
    for (let r = 0; r < rounds; r++) {
      const sides = [
        async () =>
          conRates.nagle.push(
            log(
              "raw consume nagle",
              (mark(), await rawConsume(consumeChs[0]!, nCon, prefetch)),
              nCon,
            ),
          ),
        async () =>
          conRates.noDelay.push(
            log(
              "raw consume noDelay",
              (mark(), await rawConsume(consumeChs[1]!, nCon, prefetch)),
              nCon,
            ),
          ),
        async () =>
          conRates.typed.push(
            log("typed consume", (mark(), await typedConsume(conn, nCon, prefetch)), nCon),
          ),
      ];
      for (const side of rotate(sides, r)) {
        await fill(rawCh, nCon);
        await side();
        await admin.purgeQueue(queue);
      }
    }
    const bestRaw = (rates: { nagle: number[]; noDelay: number[] }) =>
      Math.max(median(rates.nagle), median(rates.noDelay));
    return {
      publish_confirmed: figure(
        typedRate,
        bestRawRate,
        "msg/s",
        "higher-is-better",
        `raw amqplib confirm channel at its best: ${bestRawName} (medians of ${rounds} rounds; batches of 1,000 + waitForConfirms, or a sliding window of ${WINDOW}, each with Nagle and noDelay)`,
      ),
      // The same pattern on both sides (a sliding window of WINDOW, TCP_NODELAY): what the typed layer costs.
      publish_cpu_us_per_msg: figure(
        median(cpuPerMsg["typed sliding"]!),
        median(cpuPerMsg["raw sliding noDelay"]!),
        "µs CPU",
        "lower-is-better",
        `raw amqplib sliding window of ${WINDOW} with noDelay, one callback for all confirms (medians of ${rounds} rounds)`,
      ),
      publish_confirmed_all_at_once: figure(
        pubMedians["typed all at once"]!,
        bestRawRate,
        "msg/s",
        "higher-is-better",
        `same baseline; typed side publishes all ${nPub} at once and lets the publisher's window pace them`,
      ),
      publish_many_confirmed: figure(
        pubMedians["typed publishMany"]!,
        bestRawRate,
        "msg/s",
        "higher-is-better",
        `same baseline; typed side publishes batches of 1,000 with publishMany, one promise per batch`,
      ),
      // The same pattern on both sides (batches of 1,000, then one wait for their confirms).
      publish_many_cpu_us_per_msg: figure(
        median(cpuPerMsg["typed publishMany"]!),
        Math.min(
          median(cpuPerMsg["raw batches nagle"]!),
          median(cpuPerMsg["raw batches noDelay"]!),
        ),
        "µs CPU",
        "lower-is-better",
        `raw amqplib batches of 1,000 + waitForConfirms, the cheaper of Nagle/noDelay (medians of ${rounds} rounds)`,
      ),
      consume_cpu_us_per_msg: figure(
        median(cpuPerMsg["typed consume"]!),
        Math.min(
          median(cpuPerMsg["raw consume nagle"]!),
          median(cpuPerMsg["raw consume noDelay"]!),
        ),
        "µs CPU",
        "lower-is-better",
        `raw amqplib consume + decode + ack, the cheaper of Nagle/noDelay (medians of ${rounds} rounds)`,
      ),
      consume: figure(
        median(conRates.typed),
        bestRaw(conRates),
        "msg/s",
        "higher-is-better",
        `raw amqplib consume + decode + ack, same prefetch (better of Nagle/noDelay; medians of ${rounds} rounds)`,
      ),
    };
  } finally {
    for (const q of [queue, `${queue}.dlq`, `${queue}.retry.1000`])
      await admin.deleteQueue(q).catch(() => {});
    await admin.deleteExchange(exchange).catch(() => {});
    await conn.close();
    await raw.close().catch(() => {});
    await rawNoDelay.close().catch(() => {});
  }
}
