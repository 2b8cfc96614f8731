// `npm run bench -- --only codec`: what the message library costs in publish and consume.
// One order event (bench/proto/bench/v1/codec.proto: strings, int64, an enum, 3 nested lines, a map)
// through the runtime's MessageType of each library, as the generated descriptors build it:
// tsProtoType over ts-proto's codec, protobufEsType over protoc-gen-es's schema.
//   encode_*: what a publish pays, from the value the application hands in, built in the loop
//             (ts-proto: its interface; protobuf-es: a plain init literal, which create() completes,
//             as a generated publisher takes it); and from values built beforehand (protobuf-es: a
//             message create()d beforehand, which create() passes through).
//   decode_*: what a consume pays, from the bytes.
//   publish_* / consume_*: the same through EventPublisher and EventConsumer on the real broker,
//             CPU time per message of this process (the broker's round trips dominate wall time).
// Figures: value is protobuf-es, baseline is ts-proto (a ratio above 1: protobuf-es is cheaper).
import { create } from "@bufbuild/protobuf";
import {
  protobufEsType,
  tsProtoType,
  type EventDesc,
  type MessageType,
} from "../runtime/src/index.js";
import { AmqpConnection, EventConsumer, EventPublisher } from "../runtime/src/amqp/index.js";
import {
  OrderPlaced as TsOrderPlaced,
  OrderPlaced_Status as TsStatus,
} from "./gen/bench/v1/codec.js";
import { OrderPlaced_Status as EsStatus, OrderPlacedSchema } from "./gen/bench/v1/codec_pb.js";
import { figure, median, publishSliding, type Figure } from "./figure.js";

const URL_ = process.env.AMQP_URL ?? "amqp://127.0.0.1";
const TYPE = "bench.v1.OrderPlaced";
const tsType = tsProtoType(TYPE, TsOrderPlaced);
const esType = protobufEsType(OrderPlacedSchema);

const lines = (i: number) =>
  [0, 1, 2].map((k) => ({ sku: `sku-${k}-${i % 97}`, quantity: k + 1, unitPrice: 9.99 + k }));
const labels = { channel: "web", campaign: "winter" };
const tsValue = (i: number): TsOrderPlaced => ({
  orderId: `o-${i}`,
  region: "eu-west",
  amountCents: 12_345 + i,
  status: TsStatus.STATUS_PAID,
  lines: lines(i),
  labels,
});
const esInit = (i: number) => ({
  orderId: `o-${i}`,
  region: "eu-west",
  amountCents: BigInt(12_345 + i),
  status: EsStatus.PAID,
  lines: lines(i),
  labels,
});

/** CPU time (µs) per call of `fn` over n calls, after a warm-up. */
function cpuPer(n: number, fn: (i: number) => unknown): number {
  for (let i = 0; i < Math.min(n, 2_000); i++) fn(i);
  const start = process.cpuUsage();
  let sink = 0;
  for (let i = 0; i < n; i++) sink += fn(i) ? 1 : 0;
  const used = process.cpuUsage(start);
  if (sink < 0) throw new Error("unreachable");
  return (used.user + used.system) / n;
}

function event<T>(type: MessageType<T>, exchange: string): EventDesc<T> {
  return {
    type,
    exchange,
    exchangeKind: "topic",
    routingKeyTemplate: "order",
    routingFields: [],
    persistent: false,
    routingValues: () => ({}),
  };
}

/** CPU µs per message to publish n (confirmed, a window of 1,024) and to consume them back. */
async function overBroker<T>(
  conn: AmqpConnection,
  type: MessageType<T>,
  value: (i: number) => T,
  n: number,
  tag: string,
): Promise<{ publish: number; consume: number }> {
  const suffix = `${tag}-${Math.random().toString(16).slice(2, 8)}`;
  const desc = event(type, `grabbit-bench-codec-${suffix}`);
  const queue = `grabbit-bench-codec-${suffix}`;
  const consumer = new EventConsumer(conn, { queue, prefetch: 500, queueType: "classic" });
  let count = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  let started = false;
  let consumeStart = process.cpuUsage();
  consumer.on(desc, () => {
    if (!started) {
      started = true;
      consumeStart = process.cpuUsage();
    }
    if (++count === n) done();
  });
  // Declare queue and binding, then stop consuming while the queue fills: publish and consume are measured apart.
  await consumer.start();
  await consumer.stop();
  const publisher = new EventPublisher(conn, desc);
  const pubStart = process.cpuUsage();
  await publishSliding(n, 1_024, (i) => publisher.publish(value(i)));
  const pubUsed = process.cpuUsage(pubStart);
  await publisher.close();
  const again = new EventConsumer(conn, { queue, prefetch: 500, queueType: "classic" });
  again.on(desc, () => {
    if (!started) {
      started = true;
      consumeStart = process.cpuUsage();
    }
    if (++count === n) done();
  });
  await again.start();
  await all;
  const conUsed = process.cpuUsage(consumeStart);
  await again.stop();
  const session = await conn.waitForSession();
  const ch = await session.createChannel();
  for (const q of [queue, `${queue}.dlq`]) await ch.deleteQueue(q).catch(() => {});
  await ch.deleteExchange(desc.exchange).catch(() => {});
  await ch.close().catch(() => {});
  return {
    publish: (pubUsed.user + pubUsed.system) / n,
    consume: (conUsed.user + conUsed.system) / n,
  };
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const n = quick ? 20_000 : 100_000;
  const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 3 : 7));
  const tsBytes = Array.from({ length: 1_000 }, (_, i) => tsType.encode(tsValue(i)));
  const esBytes = Array.from({ length: 1_000 }, (_, i) => esType.encode(esInit(i)));
  // The two libraries write the same bytes for the same event: the wire does not depend on the choice.
  if (Buffer.compare(Buffer.from(tsBytes[7]!), Buffer.from(esBytes[7]!)) !== 0)
    throw new Error("codec bench: ts-proto and protobuf-es encode the event differently");
  const esMessages = Array.from({ length: 1_000 }, (_, i) => create(OrderPlacedSchema, esInit(i)));
  const tsValues = Array.from({ length: 1_000 }, (_, i) => tsValue(i));

  const m: Record<string, number[]> = {};
  const add = (k: string, v: number) => (m[k] ??= []).push(v);
  for (let r = 0; r < rounds; r++) {
    add(
      "encode ts-proto",
      cpuPer(n, (i) => tsType.encode(tsValue(i))),
    );
    add(
      "encode protobuf-es init",
      cpuPer(n, (i) => esType.encode(esInit(i))),
    );
    add(
      "encode ts-proto built",
      cpuPer(n, (i) => tsType.encode(tsValues[i % 1_000]!)),
    );
    add(
      "encode protobuf-es message",
      cpuPer(n, (i) => esType.encode(esMessages[i % 1_000]!)),
    );
    add(
      "decode ts-proto",
      cpuPer(n, (i) => tsType.decode(tsBytes[i % 1_000]!)),
    );
    add(
      "decode protobuf-es",
      cpuPer(n, (i) => esType.decode(esBytes[i % 1_000]!)),
    );
  }

  const nBroker = quick ? 5_000 : 20_000;
  const brokerRounds = quick ? 2 : 5;
  const conn = await AmqpConnection.connect({ urls: URL_, name: "grabbit-bench-codec" });
  try {
    for (let r = 0; r < brokerRounds; r++) {
      // Alternate which library goes first, so neither always meets a warmer broker.
      const sides = [
        async () => {
          const t = await overBroker(conn, tsType, tsValue, nBroker, "ts");
          add("publish ts-proto", t.publish);
          add("consume ts-proto", t.consume);
        },
        async () => {
          const e = await overBroker(conn, esType, esInit, nBroker, "es");
          add("publish protobuf-es", e.publish);
          add("consume protobuf-es", e.consume);
        },
      ];
      for (const side of r % 2 ? sides.reverse() : sides) await side();
    }
  } finally {
    await conn.close();
  }
  const med = (k: string) => median(m[k]!);
  const base = (what: string) =>
    `ts-proto (${what}; medians of ${rounds} rounds of ${n.toLocaleString("en")})`;
  const baseBroker = (what: string) =>
    `ts-proto (${what}; medians of ${brokerRounds} rounds of ${nBroker.toLocaleString("en")} on the broker)`;
  return {
    codec_encode_us: figure(
      med("encode protobuf-es init"),
      med("encode ts-proto"),
      "µs CPU",
      "lower-is-better",
      base("encode; protobuf-es from a plain init literal, create() + toBinary"),
    ),
    codec_encode_message_us: figure(
      med("encode protobuf-es message"),
      med("encode ts-proto built"),
      "µs CPU",
      "lower-is-better",
      base("encode of values built beforehand; protobuf-es from a message create()d beforehand"),
    ),
    codec_decode_us: figure(
      med("decode protobuf-es"),
      med("decode ts-proto"),
      "µs CPU",
      "lower-is-better",
      base("decode"),
    ),
    codec_publish_cpu_us_per_msg: figure(
      med("publish protobuf-es"),
      med("publish ts-proto"),
      "µs CPU",
      "lower-is-better",
      baseBroker("EventPublisher, confirmed, window 1,024"),
    ),
    codec_consume_cpu_us_per_msg: figure(
      med("consume protobuf-es"),
      med("consume ts-proto"),
      "µs CPU",
      "lower-is-better",
      baseBroker("EventConsumer, prefetch 500, ack after the handler"),
    ),
  };
}
