// A/B of the unary gRPC client's CPU per call: grabbit's GrpcTransport against nice-grpc's client, both
// in this process, calling one grabbit server in a child, 64 in flight, 6 rounds of 6,000 calls each in
// alternating order (after one warm-up round each). Prints each side's per-round CPU (µs per call,
// sorted) and the median. Not a bench module (no ratio table): `node --import tsx bench/grpc-client-cpu-ab.ts`.
import type * as grpc from "@grpc/grpc-js";
import { createChannel, createClient } from "nice-grpc";
import { GrpcServer, GrpcTransport } from "../runtime/src/grpc/index.js";
import { BenchEcho, EchoType, benchEchoHandlers, benchRequest, type Echo } from "./grpc.bench.js";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const def = {
  echo: {
    path: BenchEcho.methods.echo.path,
    originalName: "Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: Echo) => toBuffer(EchoType.encode(v)),
    requestDeserialize: (b: Buffer) => EchoType.decode(b),
    responseSerialize: (v: Echo) => toBuffer(EchoType.encode(v)),
    responseDeserialize: (b: Buffer) => EchoType.decode(b),
  },
} satisfies grpc.ServiceDefinition;
if (process.env.GRABBIT_CPU_AB_SERVER) {
  const s = new GrpcServer().add(BenchEcho, benchEchoHandlers);
  process.send!(await s.listen("127.0.0.1:0"));
  process.on("disconnect", () => process.exit(0));
} else {
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, GRABBIT_CPU_AB_SERVER: "1" },
  });
  const port = await new Promise<number>((r) => child.once("message", (m) => r(m as number)));
  const addr = `127.0.0.1:${port}`;
  const g = new GrpcTransport(addr);
  const n = createClient(def, createChannel(addr));
  const req = benchRequest(1);
  const calls = { grabbit: () => g.unary(BenchEcho.methods.echo, req), nice: () => n.echo(req) };
  const N = 6000;
  async function run(f: () => Promise<unknown>) {
    let i = 0;
    const worker = async () => {
      while (i++ < N) await f();
    };
    const c0 = process.cpuUsage();
    await Promise.all(Array.from({ length: 64 }, worker));
    const u = process.cpuUsage(c0);
    return (u.user + u.system) / N;
  }
  for (const f of Object.values(calls)) await run(f);
  const res: Record<string, number[]> = { grabbit: [], nice: [] };
  for (let r = 0; r < 6; r++)
    for (const k of r % 2 ? ["nice", "grabbit"] : ["grabbit", "nice"])
      res[k]!.push(await run(calls[k as "nice"]));
  for (const [k, v] of Object.entries(res)) {
    v.sort((a, b) => a - b);
    console.log(k, v.map((x) => x.toFixed(0)).join(" "), "median", v[3]!.toFixed(0));
  }
  g.close();
  child.disconnect();
  process.exit(0);
}
