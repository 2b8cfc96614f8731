// RPC over RabbitMQ: typed client + server vs plain amqplib doing the same request/reply (direct
// reply-to, same headers, same queue type, TCP_NODELAY, same message codec) on the same broker.
// Latency: sequential calls, p50/p99. Throughput: 64 calls in flight. The two sides alternate in
// rounds so that a noisy neighbour hurts both alike. bench/peers-amqp.bench.ts reuses the grabbit side.
import { randomBytes, randomUUID } from "node:crypto";
import amqp from "amqplib";
import type { MessageType, ServiceDesc } from "../runtime/src/index.js";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "../runtime/src/amqp/index.js";
import { figure, type Figure } from "./figure.js";

const URL = process.env.AMQP_URL ?? "amqp://127.0.0.1";
export const IN_FLIGHT = 64;
// The request queue's type for both sides; quorum is what serveAmqp declares by default.
export const QUEUE_TYPE = process.env.BENCH_RPC_QUEUE === "classic" ? "classic" : "quorum";

/** message Ping { bytes payload = 1; uint32 seq = 2; } encoded by hand: a small message. */
export interface Ping {
  payload: Uint8Array;
  seq: number;
}

export const PingType: MessageType<Ping> = {
  typeName: "grabbit.bench.v1.Ping",
  encode(m) {
    // payload < 128 bytes and seq < 2^28 in this bench, so lengths and varints stay short.
    const seqBytes = varint(m.seq);
    const out = new Uint8Array(2 + m.payload.length + 1 + seqBytes.length);
    out[0] = 0x0a;
    out[1] = m.payload.length;
    out.set(m.payload, 2);
    out[2 + m.payload.length] = 0x10;
    out.set(seqBytes, 3 + m.payload.length);
    return out;
  },
  decode(b) {
    if (b[0] !== 0x0a) throw new Error("not a Ping");
    const len = b[1]!;
    const payload = b.subarray(2, 2 + len);
    let seq = 0;
    let shift = 0;
    for (let i = 3 + len; i < b.length; i++) {
      seq |= (b[i]! & 0x7f) << shift;
      shift += 7;
      if ((b[i]! & 0x80) === 0) break;
    }
    return { payload, seq };
  },
};

function varint(n: number): Uint8Array {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Uint8Array.from(bytes);
}

export const payload = randomBytes(32);

export function service(queue: string): ServiceDesc {
  return {
    typeName: queue,
    transports: ["amqp"],
    amqp: { requestQueue: queue, prefetch: IN_FLIGHT * 2 },
    methods: {
      ping: {
        name: "Ping",
        path: `/${queue}/Ping`,
        kind: "unary",
        input: PingType,
        output: PingType,
        idempotent: true,
      },
    },
  };
}

export type Call = (seq: number) => Promise<unknown>;

export interface Side {
  call: Call;
  close(): Promise<void>;
}

/** grabbit: AmqpConnection (noDelay is its default) + AmqpRpcTransport + serveAmqp. */
export async function grabbitSide(queue: string): Promise<Side> {
  const serverConn = await AmqpConnection.connect({ urls: URL, name: "bench-rpc-server" });
  const clientConn = await AmqpConnection.connect({ urls: URL, name: "bench-rpc-client" });
  const svc = service(queue);
  const server = await serveAmqp(
    serverConn,
    svc,
    { ping: (req: Ping) => req },
    { queueType: QUEUE_TYPE },
  );
  const transport = new AmqpRpcTransport(clientConn);
  const method = svc.methods.ping!;
  return {
    call: (seq) => transport.unary(method, { payload, seq }),
    async close() {
      await transport.close();
      await server.close();
      await clientConn.close();
      await serverConn.close();
    },
  };
}

/** The same exchange with plain amqplib: what a careful hand-written client and server would do. */
async function rawSide(queue: string): Promise<Side> {
  const serverModel = await amqp.connect(URL, { noDelay: true });
  const clientModel = await amqp.connect(URL, { noDelay: true });
  const sch = await serverModel.createChannel();
  await sch.assertQueue(queue, {
    durable: true,
    ...(QUEUE_TYPE === "quorum" ? { arguments: { "x-queue-type": "quorum" } } : {}),
  });
  await sch.prefetch(IN_FLIGHT * 2);
  await sch.consume(queue, (m) => {
    if (!m) return;
    const req = PingType.decode(m.content);
    sch.publish("", m.properties.replyTo, Buffer.from(PingType.encode(req)), {
      correlationId: m.properties.correlationId,
      contentType: "application/x-protobuf",
      type: PingType.typeName,
      headers: { "rpc-status": 0 },
    });
    sch.ack(m);
  });
  const cch = await clientModel.createChannel();
  const pending = new Map<string, (m: amqp.ConsumeMessage) => void>();
  await cch.consume(
    "amq.rabbitmq.reply-to",
    (m) => {
      if (!m) return;
      const done = pending.get(m.properties.correlationId);
      if (!done) return;
      pending.delete(m.properties.correlationId);
      done(m);
    },
    { noAck: true },
  );
  const path = `/${queue}/Ping`;
  return {
    call: (seq) =>
      new Promise((resolve) => {
        const id = randomUUID();
        pending.set(id, (m) => resolve(PingType.decode(m.content)));
        cch.publish("", queue, Buffer.from(PingType.encode({ payload, seq })), {
          correlationId: id,
          messageId: id,
          replyTo: "amq.rabbitmq.reply-to",
          contentType: "application/x-protobuf",
          type: PingType.typeName,
          expiration: "30000",
          headers: { "rpc-method": path, "rpc-timeout-ms": 30000 },
          mandatory: true,
        });
      }),
    async close() {
      await clientModel.close();
      await serverModel.close();
    },
  };
}

export async function sequential(call: Call, n: number, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await call(i);
    into.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
}

/** Calls per second with IN_FLIGHT outstanding; adds the process CPU time used (client and server, µs) to `cpu`. */
export async function concurrent(
  call: Call,
  n: number,
  cpu?: { us: number; calls: number },
): Promise<number> {
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < n) await call(next++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  if (cpu) {
    const used = process.cpuUsage(cpuStart);
    cpu.us += used.user + used.system;
    cpu.calls += n;
  }
  return n / elapsed;
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  // Many short alternating rounds: on a shared, noisy machine a burst of load then lands on both sides.
  const rounds = quick ? 6 : 20;
  const seqCalls = quick ? 150 : 400;
  const rateCalls = quick ? 1000 : 2500;
  const qGrabbit = `bench.rpc.grabbit.${randomUUID().slice(0, 8)}`;
  const qRaw = `bench.rpc.raw.${randomUUID().slice(0, 8)}`;
  const grabbit = await grabbitSide(qGrabbit);
  const raw = await rawSide(qRaw);
  const lat = { grabbit: [] as number[], raw: [] as number[] };
  const rate = { grabbit: [] as number[], raw: [] as number[] };
  // CPU per call is steadier than wall time on a shared machine: what the library itself costs.
  const cpu = { grabbit: { us: 0, calls: 0 }, raw: { us: 0, calls: 0 } };
  try {
    // Warm-up: JIT, channel buffers, quorum queue leaders.
    await sequential(grabbit.call, 300, []);
    await sequential(raw.call, 300, []);
    await concurrent(grabbit.call, 1000);
    await concurrent(raw.call, 1000);
    for (let r = 0; r < rounds; r++) {
      // Alternate which side goes first so that drift over the run does not favour one.
      const order = r % 2 === 0 ? (["grabbit", "raw"] as const) : (["raw", "grabbit"] as const);
      for (const side of order)
        await sequential(side === "grabbit" ? grabbit.call : raw.call, seqCalls, lat[side]);
      for (const side of order)
        rate[side].push(
          await concurrent(side === "grabbit" ? grabbit.call : raw.call, rateCalls, cpu[side]),
        );
    }
  } finally {
    await grabbit.close();
    await raw.close();
    const admin = await amqp.connect(URL);
    const ch = await admin.createChannel();
    for (const q of [qGrabbit, qRaw, `${qGrabbit}.dlq`]) await ch.deleteQueue(q).catch(() => {});
    await admin.close();
  }
  lat.grabbit.sort((a, b) => a - b);
  lat.raw.sort((a, b) => a - b);
  const base = `raw amqplib request/reply (direct reply-to, noDelay, ${QUEUE_TYPE} queue)`;
  return {
    amqp_rpc_p50_ms: figure(
      percentile(lat.grabbit, 50),
      percentile(lat.raw, 50),
      "ms",
      "lower-is-better",
      base,
    ),
    amqp_rpc_p99_ms: figure(
      percentile(lat.grabbit, 99),
      percentile(lat.raw, 99),
      "ms",
      "lower-is-better",
      base,
    ),
    amqp_rpc_calls_per_s: figure(
      median(rate.grabbit),
      median(rate.raw),
      "calls/s",
      "higher-is-better",
      `${base}, ${IN_FLIGHT} in flight`,
    ),
    amqp_rpc_cpu_us_per_call: figure(
      cpu.grabbit.us / cpu.grabbit.calls,
      cpu.raw.us / cpu.raw.calls,
      "µs CPU",
      "lower-is-better",
      `${base}, client+server in one process`,
    ),
  };
}
