// RPC over RabbitMQ against the generated gRPC client: same echo service, same handlers, same
// request. Two layouts, both measured in this one run:
// - separate processes (the deployed shape): each server in a child process of its own, the clients
//   here. AMQP is measured on a quorum request queue (the default, replicated) and on a classic one.
// - one process: client and server share this process. It leaves out the wake-up of a third
//   process on a two-core machine, so it shows what each library's own code costs per call.
// Every side takes a turn in every round, in rotating order, and its samples are pooled over the
// rounds: drift on this shared machine then lands on all sides alike, not on whoever ran last.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { ServiceDesc } from "../runtime/src/index.js";
import {
  AmqpConnection,
  AmqpRpcTransport,
  serveAmqp,
  type AmqpRpcServer,
} from "../runtime/src/amqp/index.js";
import { GrpcTransport } from "../runtime/src/grpc/index.js";
import { figure, type Figure } from "./figure.js";
import {
  BenchEcho,
  benchEchoHandlers,
  benchRequest,
  percentile,
  sequentialLatencies,
  startGrpcBenchServer,
  unaryThroughput,
} from "./grpc.bench.js";

const AMQP_URL = process.env.AMQP_URL ?? "amqp://127.0.0.1";
type QueueType = "quorum" | "classic";

/** The echo service on a queue of its own, so runs never share a queue. */
function echoService(queue: string): ServiceDesc {
  const echo = { ...BenchEcho.methods.echo, requestQueue: queue };
  return { ...BenchEcho, amqp: { requestQueue: queue, prefetch: 128 }, methods: { echo } };
}

interface ServedQueue {
  queue: string;
  queueType: QueueType;
}

async function serveQueues(
  connection: AmqpConnection,
  queues: ServedQueue[],
): Promise<AmqpRpcServer[]> {
  const servers: AmqpRpcServer[] = [];
  for (const { queue, queueType } of queues)
    servers.push(await serveAmqp(connection, echoService(queue), benchEchoHandlers, { queueType }));
  return servers;
}

async function deleteQueues(connection: AmqpConnection, queues: ServedQueue[]): Promise<void> {
  const channel = await (await connection.waitForSession()).createChannel();
  for (const { queue } of queues) {
    await channel.deleteQueue(queue).catch(() => undefined);
    await channel.deleteQueue(`${queue}.dlq`).catch(() => undefined);
  }
  await channel.close().catch(() => undefined);
}

/** Serves the echo service on `queues` from a child process; resolves to its stop function. */
async function startAmqpServerChild(queues: ServedQueue[]): Promise<() => Promise<void>> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, GRABBIT_RPC_BENCH_SERVER: JSON.stringify(queues) },
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

// Child entry: serve until told to stop, then delete the queues.
if (process.env.GRABBIT_RPC_BENCH_SERVER && process.send) {
  const queues = JSON.parse(process.env.GRABBIT_RPC_BENCH_SERVER) as ServedQueue[];
  const connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "bench-rpc-server" });
  const servers = await serveQueues(connection, queues);
  process.send("ready");
  process.on("message", async () => {
    for (const server of servers) await server.close();
    await deleteQueues(connection, queues);
    await connection.close();
    process.exit(0);
  });
}

interface Side {
  name: string;
  call: () => Promise<unknown>;
  latencies: number[];
  rates: number[];
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const rounds = quick ? 3 : 8;
  const sequentialCalls = quick ? 200 : 400;
  const rateMs = quick ? 300 : 600;
  const tag = randomBytes(3).toString("hex");
  const childQueues: ServedQueue[] = [
    { queue: `bench.rpc.quorum.${tag}`, queueType: "quorum" },
    { queue: `bench.rpc.classic.${tag}`, queueType: "classic" },
  ];
  const localQueues: ServedQueue[] = [{ queue: `bench.rpc.local.${tag}`, queueType: "classic" }];

  const grpcChild = await startGrpcBenchServer({ inChild: true });
  const grpcLocal = await startGrpcBenchServer();
  const stopAmqpChild = await startAmqpServerChild(childQueues);
  const serverConnection = await AmqpConnection.connect({
    urls: AMQP_URL,
    name: "bench-rpc-local-server",
  });
  const localServers = await serveQueues(serverConnection, localQueues);
  const connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "bench-rpc-client" });
  const amqp = new AmqpRpcTransport(connection);
  const grpcToChild = new GrpcTransport(grpcChild.address);
  const grpcToLocal = new GrpcTransport(grpcLocal.address);
  const request = benchRequest(1);
  const viaAmqp = (queue: string) => {
    const method = echoService(queue).methods.echo!;
    return () => amqp.unary(method, request);
  };
  const side = (name: string, call: () => Promise<unknown>): Side => ({
    name,
    call,
    latencies: [],
    rates: [],
  });
  const sides = [
    side("grpc", () => grpcToChild.unary(BenchEcho.methods.echo, request)),
    side("quorum", viaAmqp(childQueues[0]!.queue)),
    side("classic", viaAmqp(childQueues[1]!.queue)),
    side("grpc_one_process", () => grpcToLocal.unary(BenchEcho.methods.echo, request)),
    side("classic_one_process", viaAmqp(localQueues[0]!.queue)),
  ];
  try {
    for (const s of sides) await unaryThroughput(s.call, 64, 300); // warm up: JIT, connections, queue leaders
    for (let r = 0; r < rounds; r++) {
      const order = [...sides.slice(r % sides.length), ...sides.slice(0, r % sides.length)];
      for (const s of order)
        s.latencies.push(...(await sequentialLatencies(s.call, sequentialCalls)));
      for (const s of order) s.rates.push(await unaryThroughput(s.call, 64, rateMs));
    }
  } finally {
    await amqp.close();
    for (const server of localServers) await server.close();
    await deleteQueues(serverConnection, localQueues);
    await serverConnection.close();
    await connection.close();
    grpcToChild.close();
    grpcToLocal.close();
    await stopAmqpChild();
    await grpcChild.close();
    await grpcLocal.close();
  }

  const byName = Object.fromEntries(sides.map((s) => [s.name, s])) as Record<string, Side>;
  const figures: Record<string, Figure> = {};
  const compare = (amqpSide: Side, grpcSide: Side, suffix: string, what: string) => {
    const base = `generated gRPC client, same echo service, ${what}`;
    figures[`amqp_rpc_vs_grpc_p50_ms${suffix}`] = figure(
      percentile(amqpSide.latencies, 50),
      percentile(grpcSide.latencies, 50),
      "ms",
      "lower-is-better",
      base,
    );
    figures[`amqp_rpc_vs_grpc_p99_ms${suffix}`] = figure(
      percentile(amqpSide.latencies, 99),
      percentile(grpcSide.latencies, 99),
      "ms",
      "lower-is-better",
      base,
    );
    figures[`amqp_rpc_vs_grpc_calls_per_s${suffix}`] = figure(
      percentile(amqpSide.rates, 50),
      percentile(grpcSide.rates, 50),
      "calls/s",
      "higher-is-better",
      `${base}, 64 in flight`,
    );
  };
  compare(
    byName.quorum!,
    byName.grpc!,
    "",
    "servers in their own processes, AMQP on a quorum queue",
  );
  compare(
    byName.classic!,
    byName.grpc!,
    "_classic",
    "servers in their own processes, AMQP on a classic queue",
  );
  compare(
    byName.classic_one_process!,
    byName.grpc_one_process!,
    "_one_process",
    "client and server in one process, AMQP on a classic queue",
  );
  return figures;
}
