// RPC over RabbitMQ against the generated gRPC client, same echo service and same handlers, each
// server in a child process of its own. AMQP is measured twice: with quorum request queues (the
// default, replicated) and with classic ones (one node, no disk round on every message).
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { ServiceDesc } from "../runtime/src/index.js";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "../runtime/src/amqp/index.js";
import { GrpcTransport } from "../runtime/src/grpc/index.js";
import { figure, type Figure } from "./figure.js";
import { BenchEcho, benchEchoHandlers, benchRequest, percentile, sequentialLatencies, startGrpcBenchServer, unaryThroughput } from "./grpc.bench.js";

const AMQP_URL = process.env.AMQP_URL ?? "amqp://127.0.0.1";

/** The echo service on a queue of its own, so runs never share a queue. */
function echoService(queue: string): ServiceDesc {
  const echo = { ...BenchEcho.methods.echo, requestQueue: queue };
  return { ...BenchEcho, amqp: { requestQueue: queue, prefetch: 128 }, methods: { echo } };
}

async function startAmqpServer(queue: string, queueType: "quorum" | "classic"): Promise<() => Promise<void>> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, GRABBIT_RPC_BENCH_SERVER: JSON.stringify({ queue, queueType }) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`the AMQP bench server exited with ${code}`)));
  });
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.send("stop");
    });
}

// Child entry: serve the echo service over RabbitMQ until told to stop, then delete the queue.
if (process.env.GRABBIT_RPC_BENCH_SERVER && process.send) {
  const { queue, queueType } = JSON.parse(process.env.GRABBIT_RPC_BENCH_SERVER) as { queue: string; queueType: "quorum" | "classic" };
  const connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "bench-rpc-server" });
  const server = await serveAmqp(connection, echoService(queue), benchEchoHandlers, { queueType });
  process.send("ready");
  process.on("message", async () => {
    await server.close();
    const channel = await (await connection.waitForSession()).createChannel();
    await channel.deleteQueue(queue).catch(() => undefined);
    await channel.deleteQueue(`${queue}.dlq`).catch(() => undefined);
    await connection.close();
    process.exit(0);
  });
}

interface Side {
  p50: number;
  p99: number;
  rate: number;
}

async function measure(call: (i: number) => Promise<unknown>, quick: boolean): Promise<Side> {
  await unaryThroughput(call, 64, 300); // warm up
  const latencies = await sequentialLatencies(call, quick ? 500 : 2000);
  const rate = await unaryThroughput(call, 64, quick ? 1000 : 3000);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rate };
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const grpcServer = await startGrpcBenchServer({ inChild: true });
  const grpc = new GrpcTransport(grpcServer.address);
  const connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "bench-rpc-client" });
  const amqp = new AmqpRpcTransport(connection);
  const request = benchRequest(1);
  const figures: Record<string, Figure> = {};
  try {
    const viaGrpc = await measure(() => grpc.unary(BenchEcho.methods.echo, request), quick);
    for (const queueType of ["quorum", "classic"] as const) {
      const queue = `bench.rpc.${queueType}.${randomBytes(3).toString("hex")}`;
      const stop = await startAmqpServer(queue, queueType);
      try {
        const method = echoService(queue).methods.echo!;
        const viaAmqp = await measure(() => amqp.unary(method, request), quick);
        const suffix = queueType === "quorum" ? "" : "_classic";
        const base = `generated gRPC client, same echo service`;
        figures[`amqp_rpc_vs_grpc_p50_ms${suffix}`] = figure(viaAmqp.p50, viaGrpc.p50, "ms", "lower-is-better", base);
        figures[`amqp_rpc_vs_grpc_p99_ms${suffix}`] = figure(viaAmqp.p99, viaGrpc.p99, "ms", "lower-is-better", base);
        figures[`amqp_rpc_vs_grpc_calls_per_s${suffix}`] = figure(viaAmqp.rate, viaGrpc.rate, "calls/s", "higher-is-better", `${base}, 64 in flight`);
      } finally {
        await stop();
      }
    }
  } finally {
    await amqp.close();
    await connection.close();
    grpc.close();
    await grpcServer.close();
  }
  return figures;
}
