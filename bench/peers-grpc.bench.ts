// Unary gRPC against the Node libraries a team would otherwise pick: Connect (@connectrpc/connect-node,
// gRPC protocol over HTTP/2) and nice-grpc, each as client and as server, on the same echo service
// (bench.v1.EchoService, bench/proto) on loopback, with the same request.
//
// Clients: grabbit's GrpcTransport, Connect's createGrpcTransport and nice-grpc's client call the same
//   server (grabbit's GrpcServer) in a child process; this process runs only the client, so its CPU
//   time per call is the client library's cost.
// Servers: the same raw grpc-js client calls grabbit's GrpcServer, Connect's connectNodeAdapter on
//   node:http2 and nice-grpc's server, each in its own child; the child reports its CPU per call.
// Rounds interleave the sides (grabbit and a peer, which of them first alternating) and each figure is
// the median of a side's rounds, so that load from neighbours on the shared machine hits every side alike.
// Serializers: grabbit and nice-grpc use the same hand-written codec (EchoType); Connect uses the
// protobuf-es schema generated from the same .proto (it takes no other), same bytes on the wire.
import { fork, type ChildProcess } from "node:child_process";
import http2 from "node:http2";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { createClient as connectClient, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { create } from "@bufbuild/protobuf";
import { createChannel, createClient as niceClient, createServer as niceServer } from "nice-grpc";
import { GrpcServer, GrpcTransport } from "../runtime/src/grpc/index.js";
import {
  BenchEcho,
  EchoType,
  benchEchoHandlers,
  benchRequest,
  percentile,
  sequentialLatencies,
  unaryThroughput,
  type Echo,
} from "./grpc.bench.js";
import { EchoSchema, EchoService } from "./gen/bench/v1/echo_pb.js";
import { figure, median, peerVersion, type Figure } from "./figure.js";

const version = peerVersion;

const IN_FLIGHT = 64;
const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const serialize = (value: Echo) => toBuffer(EchoType.encode(value));
const deserialize = (bytes: Buffer) => EchoType.decode(bytes);

/** The echo service as a grpc-js definition, which nice-grpc takes: same path, same codec. */
const grpcJsEcho = {
  echo: {
    path: BenchEcho.methods.echo.path,
    originalName: "Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  },
} satisfies grpc.ServiceDefinition;

type ServerKind = "grabbit" | "connect" | "nice_grpc";

/** Serves the echo service with one library on 127.0.0.1; returns the port and a close. */
async function serve(kind: ServerKind): Promise<{ port: number; close(): Promise<void> }> {
  if (kind === "grabbit") {
    const server = new GrpcServer().add(BenchEcho, benchEchoHandlers);
    const port = await server.listen("127.0.0.1:0");
    return { port, close: () => server.close({ graceMs: 1000 }) };
  }
  if (kind === "nice_grpc") {
    const server = niceServer();
    server.add(grpcJsEcho, { echo: async (req: Echo) => req });
    const port = await server.listen("127.0.0.1:0");
    return { port, close: () => server.shutdown() };
  }
  const routes = (router: ConnectRouter) =>
    router.service(EchoService, { echo: async (req) => req });
  const server = http2.createServer(
    connectNodeAdapter({ routes, grpc: true, connect: false, grpcWeb: false }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// Child entry: serve until the parent goes away; answer "cpu" with this process's CPU time (µs).
if (process.env.GRABBIT_PEER_GRPC_SERVER && process.send) {
  const server = await serve(process.env.GRABBIT_PEER_GRPC_SERVER as ServerKind);
  process.on("message", (m) => {
    if (m === "cpu") {
      const u = process.cpuUsage();
      process.send!({ cpu: u.user + u.system });
    }
  });
  process.send({ port: server.port });
  process.on("disconnect", () => process.exit(0));
}

interface Child {
  address: string;
  cpu(): Promise<number>;
  close(): Promise<void>;
}

async function spawnServer(kind: ServerKind): Promise<Child> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, GRABBIT_PEER_GRPC_SERVER: kind },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const onMessage = (m: unknown) => {
      if (typeof m === "object" && m && "port" in m) {
        child.off("message", onMessage);
        resolve((m as { port: number }).port);
      }
    };
    child.on("message", onMessage);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`the ${kind} echo server exited with ${code}`)));
  });
  return {
    address: `127.0.0.1:${port}`,
    cpu: () =>
      new Promise<number>((resolve) => {
        const onMessage = (m: unknown) => {
          if (typeof m === "object" && m && "cpu" in m) {
            child.off("message", onMessage);
            resolve((m as { cpu: number }).cpu);
          }
        };
        child.on("message", onMessage);
        child.send("cpu");
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill();
      }),
  };
}

type Call = (i: number) => Promise<unknown>;
interface Tally {
  rates: number[];
  lat: number[];
  cpuUs: number;
  calls: number;
}
const tally = (): Tally => ({ rates: [], lat: [], cpuUs: 0, calls: 0 });

/** One measured round for a side: throughput at IN_FLIGHT, then sequential latencies. */
async function round(
  call: Call,
  t: Tally,
  durationMs: number,
  sequential: number,
  cpuNow: () => Promise<number>,
): Promise<void> {
  const before = await cpuNow();
  t.rates.push(await unaryThroughput(call, IN_FLIGHT, durationMs, (n) => (t.calls += n)));
  t.cpuUs += (await cpuNow()) - before;
  t.lat.push(...(await sequentialLatencies(call, sequential)));
}

/** The peers of round `r`, in rotating order, each with its place in the round. */
const peerOrder = (r: number): [number, string][] =>
  (r % 2 ? ["connect", "nice_grpc"] : ["nice_grpc", "connect"]).map((p, k) => [k, p]);

/**
 * Who goes first in a (grabbit, peer) pair: alternating with the round and the place, so that neither
 * side always runs right after the other peer. In this process the clients' garbage outlives their
 * round: with grabbit always first, every grabbit round after a Connect round (the most allocating
 * client) could pay for Connect's garbage, and no nice-grpc round ever did.
 */
const pairOrder = (r: number, k: number, peer: string): string[] =>
  (r + k) % 2 ? [peer, "grabbit"] : ["grabbit", peer];

const selfCpu = async () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function figures(
  area: "grpc_unary" | "grpc_server",
  g: Tally,
  peers: Record<string, Tally>,
  what: string,
): Record<string, Figure> {
  const out: Record<string, Figure> = {};
  for (const [peer, p] of Object.entries(peers)) {
    const name =
      peer === "connect"
        ? `Connect ${version("@connectrpc/connect-node")}`
        : `nice-grpc ${version("nice-grpc")}`;
    out[`peer_${area}_calls_per_s_${peer}`] = figure(
      median(g.rates),
      median(p.rates),
      "calls/s",
      "higher-is-better",
      `${name} ${what}, ${IN_FLIGHT} in flight`,
    );
    out[`peer_${area}_p50_ms_${peer}`] = figure(
      percentile(g.lat, 50),
      percentile(p.lat, 50),
      "ms",
      "lower-is-better",
      `${name} ${what}, sequential`,
    );
    out[`peer_${area}_p99_ms_${peer}`] = figure(
      percentile(g.lat, 99),
      percentile(p.lat, 99),
      "ms",
      "lower-is-better",
      `${name} ${what}, sequential`,
    );
    out[`peer_${area}_cpu_us_per_call_${peer}`] = figure(
      g.cpuUs / g.calls,
      p.cpuUs / p.calls,
      "µs CPU",
      "lower-is-better",
      `${name} ${what}, ${IN_FLIGHT} in flight, ${area === "grpc_unary" ? "client process only" : "server process only"}`,
    );
  }
  return out;
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 3 : 5));
  const durationMs = quick ? 500 : 800;
  const sequential = quick ? 200 : 400;
  const request = benchRequest(1);
  const connectRequest = create(EchoSchema, request);

  // ---- clients, against grabbit's server ----
  const server = await spawnServer("grabbit");
  const grabbit = new GrpcTransport(server.address);
  const connectTransport = createGrpcTransport({ baseUrl: `http://${server.address}` });
  const connect = connectClient(EchoService, connectTransport);
  const niceChannel = createChannel(server.address);
  const nice = niceClient(grpcJsEcho, niceChannel);
  const clients: Record<string, Call> = {
    grabbit: () => grabbit.unary(BenchEcho.methods.echo, request),
    connect: () => connect.echo(connectRequest),
    nice_grpc: () => nice.echo(request),
  };
  const clientT: Record<string, Tally> = { grabbit: tally(), connect: tally(), nice_grpc: tally() };
  try {
    for (const call of Object.values(clients)) await unaryThroughput(call, IN_FLIGHT, 400);
    for (let r = 0; r < rounds; r++) {
      for (const [k, peer] of peerOrder(r)) {
        for (const side of pairOrder(r, k, peer))
          await round(clients[side]!, clientT[side]!, durationMs, sequential, selfCpu);
      }
    }
  } finally {
    grabbit.close();
    niceChannel.close();
    await server.close();
  }

  // ---- servers, called by the same raw grpc-js client ----
  const children: Record<string, Child> = {};
  const serverT: Record<string, Tally> = { grabbit: tally(), connect: tally(), nice_grpc: tally() };
  const rawClients: Record<string, grpc.Client> = {};
  try {
    for (const kind of ["grabbit", "connect", "nice_grpc"] as const) {
      children[kind] = await spawnServer(kind);
      rawClients[kind] = new grpc.Client(children[kind].address, grpc.credentials.createInsecure());
    }
    const rawCall =
      (kind: string): Call =>
      () =>
        new Promise<Echo>((resolve, reject) =>
          rawClients[kind]!.makeUnaryRequest(
            BenchEcho.methods.echo.path,
            serialize,
            deserialize,
            request,
            (err, value) => (err ? reject(err) : resolve(value!)),
          ),
        );
    for (const kind of Object.keys(children)) await unaryThroughput(rawCall(kind), IN_FLIGHT, 400);
    for (let r = 0; r < rounds; r++) {
      for (const [k, peer] of peerOrder(r)) {
        for (const kind of pairOrder(r, k, peer))
          await round(rawCall(kind), serverT[kind]!, durationMs, sequential, () =>
            children[kind]!.cpu(),
          );
      }
    }
  } finally {
    for (const c of Object.values(rawClients)) c.close();
    for (const c of Object.values(children)) await c.close();
  }
  const { grabbit: gc, ...peerClients } = clientT;
  const { grabbit: gs, ...peerServers } = serverT;
  return {
    ...figures("grpc_unary", gc!, peerClients, "client, against grabbit's server"),
    ...figures("grpc_server", gs!, peerServers, "server, called by raw grpc-js"),
  };
}
