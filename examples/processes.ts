// The three services as they are deployed: each main.ts in a process of its own, as `npm run demo`
// runs them. Each process registers its own OpenTelemetry SDK (when OTEL_* says so) and so reports
// under its own service.name: the API's providers are global to a process, so three services in one
// process could only ever be one service to a collector.
//
// The services are wired through their environment (ports, broker URLs, queue) and an IPC channel:
// each tells where it listens once it is ready, the Bridge learns the Processor's port after it
// started, and the Reporter answers the demo's "is every report of this batch counted?".

import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ReportSummary } from "./reporter/reporter.js";
import type { BatchTarget } from "./system.js";

export type ServiceName = "bridge" | "processor" | "reporter";

export interface ProcessesOptions {
  /** Each service's broker URL (its user and vhost); unset ones use AMQP_URL, then amqp://127.0.0.1. */
  amqpUrls?: Partial<Record<ServiceName, string>>;
  seed?: number;
  tokens: string[];
  /** The Reporter's queue; deleted by the broker a minute after the run. */
  reporterQueue: string;
  processorOverAmqp?: boolean;
  /** Extra environment for every service (the OTEL_* variables, say); undefined values unset one. */
  env?: Record<string, string | undefined>;
  /** Each line a service prints on stdout, with its name; without it they are dropped. */
  log?: (service: ServiceName, line: string) => void;
}

export interface RemoteReporter {
  readonly queue: string;
  waitFor(requestIds: Iterable<string>, timeoutMs?: number): Promise<void>;
  summary(): Promise<ReportSummary>;
  /** The ids of `requestIds` the Reporter has not counted. */
  missing(requestIds: Iterable<string>): Promise<string[]>;
}

export interface Processes extends BatchTarget {
  bridge: { httpUrl: string; grpcAddress: string };
  processor: { grpcAddress: string };
  reporter: RemoteReporter;
  /** Stops the services front to back (each finishes its work in flight and exports its telemetry). */
  close(): Promise<void>;
}

/** A service exited before it was ready; its stderr has said why (e.g. no broker). */
export class ServiceFailedError extends Error {
  constructor(
    readonly service: ServiceName,
    readonly stderr: string,
  ) {
    super(`${service} exited before it was ready${stderr.trim() ? `: ${stderr.trim().split("\n").at(-1)}` : ""}`);
  }
}

interface Started {
  child: ChildProcess;
  ready: Record<string, any>;
}

const root = fileURLToPath(new URL(".", import.meta.url));

function start(service: ServiceName, env: NodeJS.ProcessEnv, log: ProcessesOptions["log"]): Promise<Started> {
  const child = fork(`${root}${service}/main.ts`, [], {
    execArgv: ["--import", "tsx"],
    env,
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const lines = (stream: NodeJS.ReadableStream | null, each: (line: string) => void) => {
    let rest = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) each(line);
    });
    stream?.on("end", () => rest && each(rest));
  };
  let stderr = "";
  lines(child.stdout, (line) => log?.(service, line));
  // Warnings and errors (the runtime's JSON log lines) reach the terminal as they would in-process.
  lines(child.stderr, (line) => {
    stderr += line + "\n";
    process.stderr.write(line + "\n");
  });
  return new Promise<Started>((resolve, reject) => {
    const onExit = () => reject(new ServiceFailedError(service, stderr));
    child.once("exit", onExit);
    child.once("message", (message: any) => {
      child.off("exit", onExit);
      if (message?.type === "ready") resolve({ child, ready: message });
      else reject(new Error(`${service} sent ${JSON.stringify(message)} before it was ready`));
    });
  });
}

function connect(child: ChildProcess, message: { type: string; address: string }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onExit = () => reject(new Error(`a service exited while being told ${message.type}`));
    const onMessage = (answer: any) => {
      if (answer?.type !== "connected") return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve();
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send(message);
  });
}

/** SIGTERM, then wait for the exit; a service still there after `timeoutMs` is killed. */
function stop(child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

export async function startProcesses(options: ProcessesOptions): Promise<Processes> {
  const base: NodeJS.ProcessEnv = { ...process.env, EXAMPLE_TOKENS: options.tokens.join(",") };
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  for (const [service, url] of Object.entries(options.amqpUrls ?? {})) if (url) base[`${service.toUpperCase()}_AMQP_URL`] = url;
  if (options.processorOverAmqp) base.PROCESSOR_AMQP = "1";
  else delete base.PROCESSOR_AMQP;
  // Addresses come over the IPC channel, not from this process's own environment.
  for (const name of ["BRIDGE_GRPC", "PROCESSOR_GRPC", "BRIDGE_HTTP_PORT"]) delete base[name];

  const started: Started[] = [];
  const stopAll = async () => {
    for (const s of started) await stop(s.child);
  };
  try {
    // All three start at once (the demo sends requests only once all are ready, so the Reporter's
    // queue is bound before the first report); then each client learns its server's port.
    const results = await Promise.allSettled([
      start("bridge", { ...base, BRIDGE_HTTP_PORT: "0", BRIDGE_GRPC: "127.0.0.1:0" }, options.log),
      start("processor", { ...base, PROCESSOR_GRPC: "127.0.0.1:0", PROCESSOR_SEED: String(options.seed ?? 42) }, options.log),
      start("reporter", { ...base, REPORTER_QUEUE: options.reporterQueue, REPORTER_QUEUE_EXPIRES_MS: "60000" }, options.log),
    ]);
    // In this order when closing: front to back, so nothing is cut off mid-request.
    for (const r of results) if (r.status === "fulfilled") started.push(r.value);
    for (const r of results) if (r.status === "rejected") throw r.reason;
    const [bridge, processor, reporter] = results.map((r) => (r as PromiseFulfilledResult<Started>).value) as [Started, Started, Started];
    // Answered once done, so that no request reaches a service before it knows its peer.
    await Promise.all([
      connect(processor.child, { type: "connectBridge", address: bridge.ready.grpcAddress }),
      ...(options.processorOverAmqp ? [] : [connect(bridge.child, { type: "connectProcessor", address: processor.ready.grpcAddress })]),
    ]);

    const reporterChild = reporter.child;
    let nextId = 0;
    const ask = (ids: string[], timeoutMs: number) =>
      new Promise<{ error?: string; summary: ReportSummary; missing: string[] }>((resolve, reject) => {
        const id = ++nextId;
        const onExit = () => reject(new Error("the Reporter exited"));
        const onMessage = (message: any) => {
          if (message?.type !== "waited" || message.id !== id) return;
          reporterChild.off("message", onMessage);
          reporterChild.off("exit", onExit);
          resolve(message);
        };
        reporterChild.on("message", onMessage);
        reporterChild.once("exit", onExit);
        reporterChild.send({ type: "waitFor", id, ids, timeoutMs });
      });
    return {
      bridge: { httpUrl: bridge.ready.httpUrl, grpcAddress: bridge.ready.grpcAddress },
      processor: { grpcAddress: processor.ready.grpcAddress },
      reporter: {
        queue: reporter.ready.queue,
        async waitFor(requestIds, timeoutMs = 30_000) {
          const answer = await ask([...requestIds], timeoutMs);
          if (answer.error) throw new Error(answer.error);
        },
        summary: async () => (await ask([], 0)).summary,
        missing: async (requestIds) => (await ask([...requestIds], 0)).missing,
      },
      close: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
