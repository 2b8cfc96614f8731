// A 100,000-message server stream over RabbitMQ against the same stream over gRPC (issue 12): the
// same handler serves it on each transport. Every measured stream gets a fresh server process and a
// fresh client process, so that each side's memory is its own (no earlier run's or bench module's
// heap counted). Messages are bench.v1.Echo of about 100 bytes (the RPC benches' request). Each round
// runs every side once, in rotating order (drift on this shared machine lands on all sides alike);
// figures are medians over the rounds.
//
// Figures: messages per second as the client reads them (first request to last message), and the
// peak RSS and heap of the client and of the server during the stream (sampled every 10 ms). AMQP
// is measured with the default window (64 messages of credit) and, to show what the window costs,
// with 256 and 1024 (`streamWindow`). A raw amqplib stream (one request, then the messages published
// straight to the client's queue, back-pressure from the socket only: no credit, no numbering) shows
// what the broker and amqplib carry on this machine; the same with each message carrying what a
// grabbit `message` frame carries (its headers and properties) separates the cost of that format
// from the cost of the runtime's own code and of the credit.
import { fork, type ChildProcess } from "node:child_process";
import amqplib from "amqplib";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { MethodDesc, ServiceDesc } from "../runtime/src/index.js";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "../runtime/src/amqp/index.js";
import { GrpcServer, GrpcTransport } from "../runtime/src/grpc/index.js";
import { figure, median, type Figure } from "./figure.js";
import { benchRequest, EchoType, type Echo } from "./grpc.bench.js";

const AMQP_URL = process.env.AMQP_URL ?? "amqp://127.0.0.1";
const MB = 1024 * 1024;
const SAMPLE_MS = 10;

/** bench.v1.StreamService { rpc Flood(Echo) returns (stream Echo); } on a queue of the run's own. */
function streamService(queue: string): ServiceDesc<{ flood: MethodDesc<Echo, Echo> }> {
  const typeName = "bench.v1.StreamService";
  return {
    typeName,
    transports: ["grpc", "amqp"],
    amqp: { requestQueue: queue, prefetch: 16, queueType: "classic" },
    methods: {
      flood: {
        name: "Flood",
        path: `/${typeName}/Flood`,
        kind: "server_streaming",
        input: EchoType,
        output: EchoType,
        idempotent: false,
        requestQueue: queue,
      },
    },
  };
}

/** The one handler both transports serve: `request.id` messages, numbered from 1. */
const floodHandlers = {
  async *flood(request: Echo): AsyncGenerator<Echo> {
    for (let i = 1; i <= request.id; i++) yield benchRequest(i);
  },
};

/** Peak RSS and heap since the last reset, sampled; and the CPU time used since then. */
class MemoryWatch {
  rss = 0;
  heap = 0;
  private cpuAtReset = process.cpuUsage();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  sample(): void {
    const m = process.memoryUsage();
    this.rss = Math.max(this.rss, m.rss);
    this.heap = Math.max(this.heap, m.heapUsed);
  }

  reset(): void {
    this.rss = 0;
    this.heap = 0;
    this.cpuAtReset = process.cpuUsage();
    this.sample();
  }

  /** CPU time (user + system) since the last reset, in microseconds. */
  cpuUs(): number {
    const used = process.cpuUsage(this.cpuAtReset);
    return used.user + used.system;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

interface Side {
  /** The figure's key part. */
  name: string;
  transport: "grpc" | "amqp" | "raw";
  /** Raw: publish each message with a grabbit message frame's headers and properties. */
  framed?: boolean;
  /** AMQP: the client's streamWindow (default: the transport's). */
  window?: number;
}

interface Sample {
  rate: number;
  clientRss: number;
  clientHeap: number;
  /** CPU time per message, µs: steadier than the rate when neighbours load the machine. */
  clientCpuUs: number;
  serverRss: number;
  serverHeap: number;
  serverCpuUs: number;
}

/** Talks to a child over IPC: sends `request`, resolves with its next message. */
function ask<T>(child: ChildProcess, request: unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`the stream bench child exited with ${code} before answering`));
    child.once("message", (m) => {
      child.off("exit", onExit);
      resolve(m as T);
    });
    child.once("exit", onExit);
    if (request !== undefined) child.send(request as object);
  });
}

function forkSelf(role: "server" | "client", env: Record<string, string>): ChildProcess {
  // BENCH_CPU_PROF_DIR=dir writes a CPU profile of every server and client process there.
  const profile = process.env.BENCH_CPU_PROF_DIR
    ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`]
    : [];
  return fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx", ...profile],
    env: { ...process.env, GRABBIT_STREAM_BENCH: role, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

function mb(bytes: number): number {
  return Math.round(bytes / MB);
}

/** One measured stream: a fresh server and client for `side`, the stream read once, both stopped. */
async function measure(side: Side, count: number): Promise<Sample> {
  const queue = `bench.stream.${randomBytes(3).toString("hex")}`;
  const server = forkSelf("server", { QUEUE: queue, TRANSPORT: side.transport });
  let client: ChildProcess | undefined;
  try {
    const { address } = await ask<{ address: string }>(server, undefined);
    client = forkSelf("client", {
      QUEUE: queue,
      ADDRESS: address,
      TRANSPORT: side.transport,
      WINDOW: String(side.window ?? ""),
      COUNT: String(count),
      FRAMED: side.framed ? "1" : "",
    });
    await ask(client, undefined); // warmed up: connected, a first short stream read
    await ask(server, "reset");
    const result = await ask<
      { rate: number; rss: number; heap: number; cpuUs: number } | { error: string }
    >(client, "go");
    if ("error" in result) throw new Error(`the ${side.name} stream failed: ${result.error}`);
    const memory = await ask<{ rss: number; heap: number; cpuUs: number }>(server, "peak");
    return {
      rate: result.rate,
      clientRss: result.rss,
      clientHeap: result.heap,
      clientCpuUs: result.cpuUs / count,
      serverRss: memory.rss,
      serverHeap: memory.heap,
      serverCpuUs: memory.cpuUs / count,
    };
  } finally {
    // Disconnecting lets the client exit by itself (and write its profile, when asked for one).
    if (client?.connected) client.disconnect();
    await ask(server, "stop").catch(() => undefined);
  }
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3));
  const count = Number(process.env.BENCH_STREAM_MESSAGES ?? 100_000);
  const sides: Side[] = [
    { name: "grpc", transport: "grpc" },
    { name: "amqp", transport: "amqp" },
    { name: "amqp_w256", transport: "amqp", window: 256 },
    { name: "amqp_w1024", transport: "amqp", window: 1024 },
    { name: "raw", transport: "raw" },
    { name: "raw_framed", transport: "raw", framed: true },
  ];
  // BENCH_STREAM_SIDES=amqp,raw measures some sides only (to profile them); no figures then.
  const only = process.env.BENCH_STREAM_SIDES?.split(",");
  if (only) sides.splice(0, sides.length, ...sides.filter((s) => only.includes(s.name)));
  const samples = new Map<string, Sample[]>(sides.map((s) => [s.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = [...sides.slice(r % sides.length), ...sides.slice(0, r % sides.length)];
    for (const side of order) {
      const sample = await measure(side, count);
      samples.get(side.name)!.push(sample);
      if (process.env.BENCH_VERBOSE) {
        process.stderr.write(
          `  ${side.name}: ${Math.round(sample.rate)} msg/s; client ${sample.clientCpuUs.toFixed(1)} µs CPU/msg, RSS ${mb(sample.clientRss)} MB, heap ${mb(sample.clientHeap)} MB; ` +
            `server ${sample.serverCpuUs.toFixed(1)} µs CPU/msg, RSS ${mb(sample.serverRss)} MB, heap ${mb(sample.serverHeap)} MB\n`,
        );
      }
    }
  }

  if (only) return {};
  const med = (name: string, pick: (s: Sample) => number) => median(samples.get(name)!.map(pick));
  const grpcName = `gRPC, the same ${count.toLocaleString("en")}-message server stream and handler`;
  const figures: Record<string, Figure> = {};
  for (const side of sides.filter((s) => s.transport === "amqp")) {
    const suffix = side.window === undefined ? "" : `_window_${side.window}`;
    const against =
      side.window === undefined ? grpcName : `${grpcName}; AMQP with streamWindow ${side.window}`;
    figures[`stream_amqp_vs_grpc_msgs_per_s${suffix}`] = figure(
      med(side.name, (s) => s.rate),
      med("grpc", (s) => s.rate),
      "msg/s",
      "higher-is-better",
      against,
    );
    if (side.window !== undefined) continue;
    figures.stream_amqp_vs_grpc_client_peak_rss_mb = figure(
      med(side.name, (s) => s.clientRss) / MB,
      med("grpc", (s) => s.clientRss) / MB,
      "MB",
      "lower-is-better",
      `${grpcName}; the reading client process`,
    );
    figures.stream_amqp_vs_grpc_client_peak_heap_mb = figure(
      med(side.name, (s) => s.clientHeap) / MB,
      med("grpc", (s) => s.clientHeap) / MB,
      "MB",
      "lower-is-better",
      `${grpcName}; the reading client process`,
    );
    figures.stream_amqp_vs_grpc_server_peak_rss_mb = figure(
      med(side.name, (s) => s.serverRss) / MB,
      med("grpc", (s) => s.serverRss) / MB,
      "MB",
      "lower-is-better",
      `${grpcName}; the server process`,
    );
    figures.stream_amqp_vs_grpc_client_cpu_us_per_msg = figure(
      med(side.name, (s) => s.clientCpuUs),
      med("grpc", (s) => s.clientCpuUs),
      "µs CPU",
      "lower-is-better",
      `${grpcName}; the reading client process`,
    );
    figures.stream_amqp_vs_grpc_server_cpu_us_per_msg = figure(
      med(side.name, (s) => s.serverCpuUs),
      med("grpc", (s) => s.serverCpuUs),
      "µs CPU",
      "lower-is-better",
      `${grpcName}; the server process`,
    );
    figures.stream_amqp_vs_grpc_server_peak_heap_mb = figure(
      med(side.name, (s) => s.serverHeap) / MB,
      med("grpc", (s) => s.serverHeap) / MB,
      "MB",
      "lower-is-better",
      `${grpcName}; the server process`,
    );
  }
  figures.stream_amqp_vs_raw_amqplib_msgs_per_s = figure(
    med("amqp", (s) => s.rate),
    med("raw", (s) => s.rate),
    "msg/s",
    "higher-is-better",
    "raw amqplib: one request, then the messages published to the client's queue with back-pressure from the socket only (no credit, no numbering)",
  );
  figures.stream_amqp_window_1024_vs_raw_amqplib_framed_msgs_per_s = figure(
    med("amqp_w1024", (s) => s.rate),
    med("raw_framed", (s) => s.rate),
    "msg/s",
    "higher-is-better",
    "raw amqplib as above, each message with a grabbit message frame's headers (rpc-frame, rpc-seq) and properties (correlation_id, type, mandatory); AMQP with streamWindow 1024",
  );
  return figures;
}

// ---- child entries ------------------------------------------------------------------------------

/** The raw baseline's request: how many messages (to its reply_to), and whether framed as grabbit frames them. */
const RAW_COUNT_HEADER = "x-count";
const RAW_FRAMED_HEADER = "x-framed";
/** A correlation id as long as the UUIDs grabbit sends. */
const RAW_CORRELATION_ID = "6f1c9a52-8d0e-4b7a-9c3f-2e5d8a1b7c40";

/**
 * Server: serves the stream on one transport; "reset" starts a memory window, "peak" reports it,
 * "stop" closes everything and deletes the queue.
 */
async function serve(env: NodeJS.ProcessEnv): Promise<void> {
  const queue = env.QUEUE!;
  let address = "";
  let stop: () => Promise<void>;
  if (env.TRANSPORT === "grpc") {
    const grpcServer = new GrpcServer().add(streamService(queue), floodHandlers);
    address = `127.0.0.1:${await grpcServer.listen("127.0.0.1:0")}`;
    stop = () => grpcServer.close({ graceMs: 1000 });
  } else if (env.TRANSPORT === "amqp") {
    const connection = await AmqpConnection.connect({
      urls: AMQP_URL,
      name: "bench-stream-server",
    });
    const amqpServer = await serveAmqp(connection, streamService(queue), floodHandlers);
    stop = async () => {
      await amqpServer.close();
      await deleteQueues(connection, queue);
      await connection.close();
    };
  } else {
    stop = await serveRaw(queue);
  }
  const memory = new MemoryWatch();
  process.on("disconnect", () => process.exit(0));
  process.on("message", async (m) => {
    if (m === "reset") {
      memory.reset();
      process.send!("reset");
    } else if (m === "peak") {
      memory.sample();
      process.send!({ rss: memory.rss, heap: memory.heap, cpuUs: memory.cpuUs() });
    } else if (m === "stop") {
      memory.stop();
      await stop();
      process.send!("stopped", () => process.exit(0));
    }
  });
  process.send!({ address });
}

async function deleteQueues(connection: AmqpConnection, queue: string): Promise<void> {
  const channel = await (await connection.waitForSession()).createChannel();
  await channel.deleteQueue(queue).catch(() => undefined);
  await channel.deleteQueue(`${queue}.dlq`).catch(() => undefined);
  await channel.close().catch(() => undefined);
}

/**
 * The raw amqplib stream: a request on `queue` (header x-count, reply_to the client's queue) is
 * answered with that many messages published to reply_to, waiting for `drain` when amqplib's buffer
 * is full, as a careful hand-written producer would.
 */
async function serveRaw(queue: string): Promise<() => Promise<void>> {
  const connection = await amqplib.connect(AMQP_URL, { noDelay: true });
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, {
    durable: false,
    autoDelete: true,
    arguments: { "x-queue-type": "classic" },
  });
  await channel.consume(
    queue,
    async (msg) => {
      if (msg === null) return;
      const n = Number(msg.properties.headers?.[RAW_COUNT_HEADER]);
      const framed = msg.properties.headers?.[RAW_FRAMED_HEADER] === 1;
      const to = msg.properties.replyTo as string;
      for (let i = 1; i <= n; i++) {
        const bytes = EchoType.encode(benchRequest(i));
        const props: amqplib.Options.Publish = framed
          ? {
              contentType: "application/x-protobuf",
              correlationId: RAW_CORRELATION_ID,
              type: EchoType.typeName,
              mandatory: true,
              headers: { "rpc-frame": "message", "rpc-seq": i },
            }
          : { contentType: "application/x-protobuf" };
        const flushed = channel.publish(
          "",
          to,
          Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
          props,
        );
        if (!flushed) await new Promise((resolve) => channel.once("drain", resolve));
      }
    },
    { noAck: true },
  );
  return async () => {
    await channel.deleteQueue(queue).catch(() => undefined);
    await connection.close();
  };
}

/** A raw client: its own exclusive queue, one request, then `n` messages counted off it. */
async function rawClient(
  queue: string,
  framed: boolean,
): Promise<(n: number) => AsyncIterable<Echo>> {
  const connection = await amqplib.connect(AMQP_URL, { noDelay: true });
  const channel = await connection.createChannel();
  const { queue: inbox } = await channel.assertQueue("", {
    exclusive: true,
    autoDelete: true,
    durable: false,
    arguments: { "x-queue-type": "classic" },
  });
  let onMessage: (body: Buffer) => void = () => {};
  await channel.consume(inbox, (msg) => msg && onMessage(msg.content), { noAck: true });
  return (n) => ({
    async *[Symbol.asyncIterator]() {
      const buffered: Echo[] = [];
      let wake: (() => void) | undefined;
      onMessage = (body) => {
        buffered.push(EchoType.decode(body));
        wake?.();
      };
      channel.sendToQueue(queue, Buffer.alloc(0), {
        replyTo: inbox,
        headers: { [RAW_COUNT_HEADER]: n, [RAW_FRAMED_HEADER]: framed ? 1 : 0 },
      });
      for (let got = 0; got < n; ) {
        if (buffered.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const batch = buffered.splice(0);
        got += batch.length;
        yield* batch;
      }
    },
  });
}

/** Client: connects, reads one short stream to warm up, then on "go" reads the measured one. */
async function readOnce(env: NodeJS.ProcessEnv): Promise<void> {
  process.on("disconnect", () => process.exit(0));
  const service = streamService(env.QUEUE!);
  const count = Number(env.COUNT);
  let stream: (n: number) => AsyncIterable<Echo>;
  if (env.TRANSPORT === "grpc") {
    const transport = new GrpcTransport(env.ADDRESS!);
    stream = (n) =>
      transport.serverStream(service.methods.flood, { id: n, body: "" }, { timeoutMs: 600_000 });
  } else if (env.TRANSPORT === "amqp") {
    const connection = await AmqpConnection.connect({
      urls: AMQP_URL,
      name: "bench-stream-client",
    });
    const window = env.WINDOW ? Number(env.WINDOW) : undefined;
    const transport = new AmqpRpcTransport(connection, {
      timeoutMs: 600_000,
      ...(window !== undefined ? { streamWindow: window } : {}),
    });
    stream = (n) => transport.serverStream(service.methods.flood, { id: n, body: "" });
  } else {
    stream = await rawClient(env.QUEUE!, env.FRAMED === "1");
  }
  const read = async (n: number) => {
    let seen = 0;
    for await (const message of stream(n)) {
      if (message.id !== ++seen) throw new Error(`message ${message.id} arrived as number ${seen}`);
    }
    if (seen !== n) throw new Error(`${seen} of ${n} messages arrived`);
  };
  await read(2_000);
  const memory = new MemoryWatch();
  process.once("message", async () => {
    memory.reset();
    const start = performance.now();
    try {
      await read(count);
      const seconds = (performance.now() - start) / 1000;
      memory.sample();
      process.send!({
        rate: count / seconds,
        rss: memory.rss,
        heap: memory.heap,
        cpuUs: memory.cpuUs(),
      });
    } catch (err) {
      process.send!({ error: err instanceof Error ? err.message : String(err) });
    }
  });
  process.send!("warm");
}

const role = process.env.GRABBIT_STREAM_BENCH;
if (role === "server" && process.send) await serve(process.env);
else if (role === "client" && process.send) await readOnce(process.env);
