// gRPC: the runtime's GrpcTransport against a raw grpc-js client doing the same unary call with the
// same serializers against the same server. The server runs in a child process so that client and
// server do not share one event loop (the machine has two cores); both clients share this process
// and take turns, so neither gets a quieter machine.
//
// For other benches (AMQP RPC vs gRPC): `startGrpcBenchServer`, `BenchEcho`, `benchRequest`,
// `unaryThroughput` and `sequentialP50` are exported for reuse.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import type { MessageType, MethodDesc, ServiceDesc } from "../runtime/src/index.js";
import { GrpcServer, GrpcTransport } from "../runtime/src/grpc/index.js";
import { figure, type Figure } from "./figure.js";

/** bench.v1.Echo { uint32 id = 1; string body = 2; }, coded by hand like generated code would. */
export interface Echo {
  id: number;
  body: string;
}

export const EchoType: MessageType<Echo> = {
  typeName: "bench.v1.Echo",
  encode(message) {
    const w = new BinaryWriter();
    if (message.id !== 0) w.tag(1, WireType.Varint).uint32(message.id);
    if (message.body !== "") w.tag(2, WireType.LengthDelimited).string(message.body);
    return w.finish();
  },
  decode(bytes) {
    const r = new BinaryReader(bytes);
    const message: Echo = { id: 0, body: "" };
    while (r.pos < r.len) {
      const [field, wire] = r.tag();
      if (field === 1 && wire === WireType.Varint) message.id = r.uint32();
      else if (field === 2 && wire === WireType.LengthDelimited) message.body = r.string();
      else r.skip(wire, field);
    }
    return message;
  },
};

export const BenchEcho = {
  typeName: "bench.v1.EchoService",
  transports: ["grpc", "amqp"],
  amqp: { requestQueue: "bench.v1.EchoService", prefetch: 64 },
  methods: {
    echo: {
      name: "Echo",
      path: "/bench.v1.EchoService/Echo",
      kind: "unary",
      input: EchoType,
      output: EchoType,
      idempotent: true,
    } as MethodDesc<Echo, Echo>,
  },
} satisfies ServiceDesc;

/** The handlers both transports can serve: echo the request back. */
export const benchEchoHandlers = {
  async echo(request: Echo): Promise<Echo> {
    return request;
  },
};

/** A request of about 100 bytes on the wire. */
export function benchRequest(id: number): Echo {
  return { id, body: "grabbit benchmark payload ".repeat(4) };
}

export interface GrpcBenchServer {
  port: number;
  address: string;
  close(): Promise<void>;
}

/**
 * The echo server on loopback. `inChild` runs it in a child Node process (through tsx), so that it
 * gets its own event loop and core.
 */
export async function startGrpcBenchServer(
  options: { inChild?: boolean } = {},
): Promise<GrpcBenchServer> {
  if (!options.inChild) {
    const server = new GrpcServer().add(BenchEcho, benchEchoHandlers);
    const port = await server.listen("127.0.0.1:0");
    return { port, address: `127.0.0.1:${port}`, close: () => server.close({ graceMs: 1000 }) };
  }
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, GRABBIT_GRPC_BENCH_SERVER: "1" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { port: number }).port));
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`the bench server exited with ${code}`)));
  });
  return {
    port,
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill();
      }),
  };
}

// Child entry: serve until killed (or until the parent goes away).
if (process.env.GRABBIT_GRPC_BENCH_SERVER === "1" && process.send) {
  const server = await startGrpcBenchServer();
  process.send({ port: server.port });
  process.on("disconnect", () => process.exit(0));
}

/** Calls per second with `concurrency` calls in flight for `durationMs`; `onDone` gets the call count. */
export async function unaryThroughput(
  call: (i: number) => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  onDone?: (calls: number) => void,
): Promise<number> {
  let done = 0;
  const start = performance.now();
  const end = start + durationMs;
  const lane = async () => {
    while (performance.now() < end) {
      await call(done);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  onDone?.(done);
  return done / ((performance.now() - start) / 1000);
}

/** Latencies (ms) of `count` calls made one after another. */
export async function sequentialLatencies(
  call: (i: number) => Promise<unknown>,
  count: number,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await call(i);
    out.push(performance.now() - t0);
  }
  return out;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Median latency (ms) of sequential calls. */
export async function sequentialP50(
  call: (i: number) => Promise<unknown>,
  count: number,
): Promise<number> {
  return percentile(await sequentialLatencies(call, count), 50);
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const server = await startGrpcBenchServer({ inChild: true });
  const transport = new GrpcTransport(server.address);
  const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  // The same codec for both, wrapped into Buffers the way grpc-js wants them.
  const serialize = (value: Echo) => {
    const bytes = EchoType.encode(value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
  const deserialize = (bytes: Buffer) => EchoType.decode(bytes);
  const method = BenchEcho.methods.echo;
  const request = benchRequest(1);

  const grabbitCall = () => transport.unary(method, request);
  const rawCall = () =>
    new Promise<Echo>((resolve, reject) =>
      raw.makeUnaryRequest(method.path, serialize, deserialize, request, (err, value) =>
        err ? reject(err) : resolve(value!),
      ),
    );

  try {
    const inFlight = 64;
    // Many short rounds, alternating, each side's median: the machine is shared and noisy, and a
    // burst of load then hits both sides rather than one.
    const rounds = quick ? 3 : 5;
    const durationMs = quick ? 600 : 800;
    const sequential = quick ? 300 : 400;

    // Warm both paths (JIT, connection) before measuring.
    await unaryThroughput(rawCall, inFlight, 400);
    await unaryThroughput(grabbitCall, inFlight, 400);

    const rawRates: number[] = [];
    const grabbitRates: number[] = [];
    // Client CPU per call: this process runs only the clients (the server is a child process), and
    // CPU time is steadier than wall time when neighbours load the machine.
    const cpu = { raw: { us: 0, calls: 0 }, grabbit: { us: 0, calls: 0 } };
    const measure = async (side: "raw" | "grabbit") => {
      const before = process.cpuUsage();
      const rate = await unaryThroughput(
        side === "raw" ? rawCall : grabbitCall,
        inFlight,
        durationMs,
        (calls) => (cpu[side].calls += calls),
      );
      const used = process.cpuUsage(before);
      cpu[side].us += used.user + used.system;
      (side === "raw" ? rawRates : grabbitRates).push(rate);
    };
    for (let r = 0; r < rounds; r++) {
      // Swap who goes first each round.
      for (const side of r % 2 === 0
        ? (["raw", "grabbit"] as const)
        : (["grabbit", "raw"] as const))
        await measure(side);
    }

    const rawLatencies: number[] = [];
    const grabbitLatencies: number[] = [];
    for (let r = 0; r < rounds; r++) {
      rawLatencies.push(...(await sequentialLatencies(rawCall, sequential)));
      grabbitLatencies.push(...(await sequentialLatencies(grabbitCall, sequential)));
    }
    const rawRate = percentile(rawRates, 50);
    const grabbitRate = percentile(grabbitRates, 50);

    return {
      grpc_unary_calls_per_s: figure(
        grabbitRate,
        rawRate,
        "calls/s",
        "higher-is-better",
        `raw grpc-js makeUnaryRequest, ${inFlight} in flight`,
      ),
      grpc_unary_p50_ms: figure(
        percentile(grabbitLatencies, 50),
        percentile(rawLatencies, 50),
        "ms",
        "lower-is-better",
        "raw grpc-js makeUnaryRequest, sequential",
      ),
      grpc_unary_p99_ms: figure(
        percentile(grabbitLatencies, 99),
        percentile(rawLatencies, 99),
        "ms",
        "lower-is-better",
        "raw grpc-js makeUnaryRequest, sequential",
      ),
      grpc_unary_client_cpu_us_per_call: figure(
        cpu.grabbit.us / cpu.grabbit.calls,
        cpu.raw.us / cpu.raw.calls,
        "µs CPU",
        "lower-is-better",
        `raw grpc-js makeUnaryRequest, ${inFlight} in flight, client process only`,
      ),
    };
  } finally {
    transport.close();
    raw.close();
    await server.close();
  }
}
