// RabbitMQ messaging against the Node libraries a team would otherwise pick, on the same broker with
// the same messages (the same protobuf bytes and properties: persistent, mandatory, a message_id,
// content type and type):
//   publish: confirmed persistent publishing with a sliding window of WINDOW unconfirmed messages;
//     grabbit's EventPublisher vs rabbitmq-client's Publisher (confirm: true), amqp-connection-manager's
//     ChannelWrapper (confirms on) and a rascal publication with confirm: true.
//   consume: decode + ack of N messages at the same prefetch, timed from the first delivery to the
//     last (no side pays its setup or shutdown in the figure); grabbit's EventConsumer vs
//     rabbitmq-client's Consumer, amqp-connection-manager's consume and a rascal subscription.
//   rpc: request/reply over direct reply-to with 64 calls in flight and sequentially; grabbit's
//     AmqpRpcTransport + serveAmqp vs rabbitmq-client's RPCClient + a Consumer replying, the same
//     quorum request queue and codec (amqp-connection-manager and rascal have no RPC).
// amqp-contract (@amqp-contract/*) is not measured: @amqp-contract/worker needs @amqp-contract/core,
// which the npm registry does not serve (404), and there is no client package to publish with.
// Every side gets TCP_NODELAY, grabbit's default (each peer's option for it is set).
// Rounds interleave grabbit and each peer (grabbit, peer, grabbit, peer...) in rotating order; a side's
// figure is the median of its rounds; CPU per message is this process's CPU time (process.cpuUsage)
// summed over a side's rounds, divided by its messages.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import type { ConfirmChannel } from "amqplib";
import { Connection as RmqConnection } from "rabbitmq-client";
import amqpcm from "amqp-connection-manager";
import rascal from "rascal";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  declareConsumerQueues,
} from "../runtime/src/amqp/index.js";
import { figure, median, peerVersion, publishSliding, type Figure } from "./figure.js";
import { tick, tickEvent } from "./tick.js";
import {
  IN_FLIGHT,
  PingType,
  QUEUE_TYPE,
  concurrent,
  grabbitSide,
  payload,
  percentile,
  sequential,
  type Call,
  type Ping,
} from "./amqp-rpc.bench.js";

const URL_ = process.env.AMQP_URL ?? "amqp://127.0.0.1";
const WINDOW = 4096;
const PREFETCH = 200;
const suffix = Math.random().toString(16).slice(2, 10);
const exchange = `grabbit-bench-peers-${suffix}`;
const queue = `grabbit-bench-peers-${suffix}`;
const event = tickEvent("bench.v1.PeerTick", exchange);
const Tick = event.type;
const body = (i: number) => {
  const b = Tick.encode(tick(i));
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
};
const props = () => ({
  contentType: "application/x-protobuf",
  type: Tick.typeName,
  messageId: randomUUID(),
  timestamp: Math.floor(Date.now() / 1000),
});

const PEERS = {
  rabbitmq_client: `rabbitmq-client ${peerVersion("rabbitmq-client")}`,
  amqp_connection_manager: `amqp-connection-manager ${peerVersion("amqp-connection-manager")}`,
  rascal: `rascal ${peerVersion("rascal")}`,
};
type Peer = keyof typeof PEERS;

interface Tally {
  rates: number[];
  cpuUs: number;
  n: number;
}
const tally = (): Tally => ({ rates: [], cpuUs: 0, n: 0 });
async function measure(t: Tally, n: number, run: () => Promise<number>): Promise<void> {
  const before = process.cpuUsage();
  t.rates.push(await run());
  const used = process.cpuUsage(before);
  t.cpuUs += used.user + used.system;
  t.n += n;
  if (process.env.BENCH_VERBOSE)
    process.stderr.write(
      `  ${Math.round(t.rates.at(-1)!)} /s, ${((used.user + used.system) / n).toFixed(1)} µs CPU each\n`,
    );
}

/** grabbit, peer, grabbit, peer...: every peer once per round after a grabbit run, peers in rotating order. */
function schedule<T extends string>(peers: T[], r: number): ("grabbit" | T)[] {
  const rotated = [...peers.slice(r % peers.length), ...peers.slice(0, r % peers.length)];
  return rotated.flatMap((p) => ["grabbit" as const, p]);
}

/** What one consume round measured: the steady-state rate and the CPU the process spent meanwhile. */
interface ConsumeRound {
  rate: number;
  cpuUs: number;
}

/**
 * Consumes until `n` messages were handled; each side hands `onMessage` the decoded amount. The clock
 * and the CPU meter run from the first delivery to the n-th, so that neither a side's setup (grabbit's
 * start() declares its topology and retry queues, rascal's subscribe() opens and checks its channel,
 * amqp-connection-manager opens a channel, rabbitmq-client's Consumer connects in the background) nor
 * its shutdown (grabbit drains its handlers, then cancels) lands in the figure: every side is measured
 * doing the same thing, n - 1 deliveries handled and acked at the same prefetch on an open channel.
 */
function consumeUntil(
  n: number,
  start: (onMessage: (amount: number) => void) => Promise<() => Promise<void>>,
): Promise<ConsumeRound> {
  return new Promise<ConsumeRound>((resolve, reject) => {
    let count = 0;
    let sum = 0;
    let stop: (() => Promise<void>) | undefined;
    let done = false;
    let t0 = 0;
    let cpu0: NodeJS.CpuUsage | undefined;
    let result: ConsumeRound | undefined;
    const finish = () => {
      if (sum < 0) reject(new Error("unreachable"));
      void stop!().then(() => resolve(result!), reject);
    };
    start((amount) => {
      sum += amount;
      if (++count === 1) {
        cpu0 = process.cpuUsage();
        t0 = performance.now();
      } else if (count === n) {
        const ms = performance.now() - t0;
        const used = process.cpuUsage(cpu0);
        result = { rate: (n - 1) / (ms / 1000), cpuUs: ((used.user + used.system) * n) / (n - 1) };
        done = true;
        if (stop) finish();
      }
    }).then((s) => {
      stop = s;
      if (done) finish();
    }, reject);
  });
}

/** One consume round into `t`: the rate, and the CPU per message scaled to n messages. */
async function measureConsume(
  t: Tally,
  n: number,
  run: () => Promise<ConsumeRound>,
): Promise<void> {
  const r = await run();
  t.rates.push(r.rate);
  t.cpuUs += r.cpuUs;
  t.n += n;
  if (process.env.BENCH_VERBOSE)
    process.stderr.write(`  ${Math.round(r.rate)} /s, ${(r.cpuUs / n).toFixed(1)} µs CPU each\n`);
}

async function fill(ch: ConfirmChannel, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    if (!ch.publish(exchange, "tick.eu", body(i), { ...props(), deliveryMode: 1 }))
      await new Promise((r) => ch.once("drain", r));
    if (i % 1000 === 999) await ch.waitForConfirms();
  }
  await ch.waitForConfirms();
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const n = quick ? 3_000 : 10_000;
  const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 5));
  const admin = await amqp.connect(URL_);
  const ach = await admin.createConfirmChannel();
  const conn = await AmqpConnection.connect({ urls: URL_, name: "grabbit-bench-peers" });
  // rabbitmq-client takes no default credentials (amqplib's are guest/guest): name them.
  const rmqUrl = new URL(URL_);
  if (!rmqUrl.username) [rmqUrl.username, rmqUrl.password] = ["guest", "guest"];
  const rmq = new RmqConnection({
    url: rmqUrl.href,
    connectionName: "bench-rabbitmq-client",
    noDelay: true,
  });
  rmq.on("error", () => {});
  const acm = amqpcm.connect([URL_], { connectionOptions: { noDelay: true } });
  let broker: rascal.BrokerAsPromised | undefined;
  const out: Record<string, Figure> = {};
  const qRpc = {
    grabbit: `bench.peers.rpc.grabbit.${suffix}`,
    rmq: `bench.peers.rpc.rmq.${suffix}`,
  };
  try {
    await ach.assertExchange(exchange, "topic", { durable: true });
    await declareConsumerQueues(ach, {
      queue,
      type: "classic",
      deadLetterQueue: `${queue}.dlq`,
      retryDelaysMs: [1000],
    });
    await ach.bindQueue(queue, exchange, "tick.*");
    await rmq.onConnect(10_000);
    // rascal checks the exchange and queue when it starts: after they are declared.
    broker = await rascal.BrokerAsPromised.create(
      rascal.withDefaultConfig({
        vhosts: {
          "/": {
            // socketOptions go to net.connect through amqplib; the typings list only a few of them.
            connection: { url: URL_, socketOptions: { noDelay: true } as { timeout?: number } },
            exchanges: { [exchange]: { assert: false, check: true } },
            queues: { [queue]: { assert: false, check: true } },
            publications: {
              tick: {
                exchange,
                routingKey: "tick.eu",
                confirm: true,
                options: { persistent: true, mandatory: true },
              },
            },
            subscriptions: { ticks: { queue, prefetch: PREFETCH } },
          },
        },
      }),
    );
    broker.on("error", () => {});
    const rascalBroker = broker;

    // ---- publish ----
    const pub = new EventPublisher(conn, event);
    const rmqPub = rmq.createPublisher({ confirm: true });
    const acmCh = acm.createChannel({ json: false, confirm: true });
    await acmCh.waitForConnect();
    const rascalPublish = (i: number) =>
      rascalBroker.publish("tick", body(i), { options: props() }).then(
        (publication) =>
          new Promise<void>((resolve, reject) => {
            publication.once("success", () => resolve());
            publication.once("error", reject);
          }),
      );
    const publishers: Record<"grabbit" | Peer, (i: number) => Promise<unknown>> = {
      grabbit: (i) => pub.publish(tick(i)),
      rabbitmq_client: (i) =>
        rmqPub.send(
          { exchange, routingKey: "tick.eu", durable: true, mandatory: true, ...props() },
          body(i),
        ),
      amqp_connection_manager: (i) =>
        acmCh.publish(exchange, "tick.eu", body(i), {
          ...props(),
          persistent: true,
          mandatory: true,
        }),
      rascal: rascalPublish,
    };
    const pubT: Record<string, Tally> = {};
    for (const [side, p] of Object.entries(publishers)) {
      pubT[side] = tally();
      await publishSliding(1000, WINDOW, async (i) => void (await p(i)));
    }
    await ach.purgeQueue(queue);
    for (let r = 0; r < rounds; r++) {
      for (const side of schedule(Object.keys(PEERS) as Peer[], r)) {
        await measure(pubT[side]!, n, () =>
          publishSliding(n, WINDOW, async (i) => void (await publishers[side](i))),
        );
        await ach.purgeQueue(queue);
      }
    }
    await pub.close();
    await rmqPub.close();
    await acmCh.close();

    // ---- consume ----
    // grabbit decodes (and checks content type and type) itself; the peers hand over bytes, decoded here.
    const decode = (content: Buffer) => Tick.decode(content).amount;
    const consumers: Record<
      "grabbit" | Peer,
      (onMessage: (amount: number) => void) => Promise<() => Promise<void>>
    > = {
      async grabbit(onMessage) {
        const consumer = new EventConsumer(conn, {
          queue,
          prefetch: PREFETCH,
          queueType: "classic",
          retry: { delaysMs: [1000] },
        });
        consumer.on(event, (t) => onMessage(t.amount));
        await consumer.start();
        return () => consumer.close();
      },
      async rabbitmq_client(onMessage) {
        // passive: the queue exists with grabbit's arguments; rabbitmq-client would declare it plainly.
        const sub = rmq.createConsumer(
          { queue, queueOptions: { passive: true }, qos: { prefetchCount: PREFETCH } },
          (msg) => onMessage(decode(msg.body as Buffer)),
        );
        sub.on("error", () => {});
        return () => sub.close();
      },
      async amqp_connection_manager(onMessage) {
        const ch = acm.createChannel({ json: false, confirm: false });
        await ch.waitForConnect();
        await ch.consume(
          queue,
          (msg) => {
            onMessage(decode(msg.content));
            ch.ack(msg);
          },
          { prefetch: PREFETCH },
        );
        return () => ch.close();
      },
      async rascal(onMessage) {
        const sub = await rascalBroker.subscribe("ticks");
        sub.on("message", (_msg, content: Buffer, ackOrNack: () => void) => {
          onMessage(decode(content));
          ackOrNack();
        });
        sub.on("error", () => {});
        return () => sub.cancel();
      },
    };
    const conT: Record<string, Tally> = Object.fromEntries(
      Object.keys(consumers).map((k) => [k, tally()]),
    );
    for (const start of Object.values(consumers)) {
      await fill(ach, 1000);
      await consumeUntil(1000, start);
    }
    await ach.purgeQueue(queue);
    for (let r = 0; r < rounds; r++) {
      for (const side of schedule(Object.keys(PEERS) as Peer[], r)) {
        await fill(ach, n);
        await measureConsume(conT[side]!, n, () => consumeUntil(n, consumers[side]));
        await ach.purgeQueue(queue);
      }
    }

    for (const peer of Object.keys(PEERS) as Peer[]) {
      const name = PEERS[peer];
      const g = pubT.grabbit!;
      const p = pubT[peer]!;
      out[`peer_publish_confirmed_${peer}`] = figure(
        median(g.rates),
        median(p.rates),
        "msg/s",
        "higher-is-better",
        `${name}, confirmed persistent publish, window ${WINDOW} (medians of ${rounds} rounds)`,
      );
      out[`peer_publish_cpu_us_per_msg_${peer}`] = figure(
        g.cpuUs / g.n,
        p.cpuUs / p.n,
        "µs CPU",
        "lower-is-better",
        `${name}, confirmed persistent publish`,
      );
      const gc = conT.grabbit!;
      const pc = conT[peer]!;
      out[`peer_consume_${peer}`] = figure(
        median(gc.rates),
        median(pc.rates),
        "msg/s",
        "higher-is-better",
        `${name}, consume + decode + ack, prefetch ${PREFETCH} (medians of ${rounds} rounds)`,
      );
      out[`peer_consume_cpu_us_per_msg_${peer}`] = figure(
        gc.cpuUs / gc.n,
        pc.cpuUs / pc.n,
        "µs CPU",
        "lower-is-better",
        `${name}, consume + decode + ack`,
      );
    }

    // ---- RPC: grabbit vs rabbitmq-client's RPCClient ----
    Object.assign(out, await rpc(rmq, qRpc, quick));
  } finally {
    for (const q of [
      queue,
      `${queue}.dlq`,
      `${queue}.retry.1000`,
      qRpc.grabbit,
      qRpc.rmq,
      `${qRpc.grabbit}.dlq`,
    ])
      await ach.deleteQueue(q).catch(() => {});
    await ach.deleteExchange(exchange).catch(() => {});
    await broker?.shutdown().catch(() => {});
    await acm.close().catch(() => {});
    await rmq.close().catch(() => {});
    await conn.close().catch(() => {});
    await admin.close().catch(() => {});
  }
  return out;
}

async function rpc(
  rmq: RmqConnection,
  q: { grabbit: string; rmq: string },
  quick: boolean,
): Promise<Record<string, Figure>> {
  const rounds = quick ? 4 : 12;
  const seqCalls = quick ? 150 : 400;
  const rateCalls = quick ? 1000 : 2500;
  const grabbit = await grabbitSide(q.grabbit);
  const server = rmq.createConsumer(
    {
      queue: q.rmq,
      queueOptions: {
        durable: true,
        ...(QUEUE_TYPE === "quorum" ? { arguments: { "x-queue-type": "quorum" } } : {}),
      },
      qos: { prefetchCount: IN_FLIGHT * 2 },
    },
    async (req, reply) => {
      const ping = PingType.decode(req.body as Buffer);
      const b = PingType.encode(ping);
      await reply(Buffer.from(b.buffer, b.byteOffset, b.byteLength), {
        contentType: "application/x-protobuf",
        type: PingType.typeName,
      });
    },
  );
  const client = rmq.createRPCClient({ confirm: false, timeout: 30_000 });
  const rmqCall: Call = async (seq) => {
    const b = PingType.encode({ payload, seq });
    const res = await client.send(
      {
        routingKey: q.rmq,
        contentType: "application/x-protobuf",
        type: PingType.typeName,
        messageId: randomUUID(),
        mandatory: true,
      },
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    );
    return PingType.decode(res.body as Buffer) as Ping;
  };
  const lat = { grabbit: [] as number[], rmq: [] as number[] };
  const rate = { grabbit: [] as number[], rmq: [] as number[] };
  const cpu = { grabbit: { us: 0, calls: 0 }, rmq: { us: 0, calls: 0 } };
  const calls = { grabbit: grabbit.call, rmq: rmqCall };
  try {
    await new Promise((r) => setTimeout(r, 200)); // the consumer's queue declaration
    for (const c of Object.values(calls)) {
      await sequential(c, 300, []);
      await concurrent(c, 1000);
    }
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? (["grabbit", "rmq"] as const) : (["rmq", "grabbit"] as const);
      for (const side of order) await sequential(calls[side], seqCalls, lat[side]);
      for (const side of order)
        rate[side].push(await concurrent(calls[side], rateCalls, cpu[side]));
    }
  } finally {
    await client.close();
    await server.close();
    await grabbit.close();
  }
  lat.grabbit.sort((a, b) => a - b);
  lat.rmq.sort((a, b) => a - b);
  const base = `${PEERS.rabbitmq_client} RPCClient + Consumer reply (direct reply-to, ${QUEUE_TYPE} queue)`;
  return {
    peer_amqp_rpc_p50_ms_rabbitmq_client: figure(
      percentile(lat.grabbit, 50),
      percentile(lat.rmq, 50),
      "ms",
      "lower-is-better",
      `${base}, sequential`,
    ),
    peer_amqp_rpc_p99_ms_rabbitmq_client: figure(
      percentile(lat.grabbit, 99),
      percentile(lat.rmq, 99),
      "ms",
      "lower-is-better",
      `${base}, sequential`,
    ),
    peer_amqp_rpc_calls_per_s_rabbitmq_client: figure(
      median(rate.grabbit),
      median(rate.rmq),
      "calls/s",
      "higher-is-better",
      `${base}, ${IN_FLIGHT} in flight`,
    ),
    peer_amqp_rpc_cpu_us_per_call_rabbitmq_client: figure(
      cpu.grabbit.us / cpu.grabbit.calls,
      cpu.rmq.us / cpu.rmq.calls,
      "µs CPU",
      "lower-is-better",
      `${base}, client+server in one process`,
    ),
  };
}
