// The three services as they are deployed: each main.ts in a process of its own, as `npm run demo`
// runs them. Each process registers its own OpenTelemetry SDK (when OTEL_* says so) and so reports
// under its own service.name: the API's providers are global to a process, so three services in one
// process could only ever be one service to a collector.
//
// The services are wired through their environment (ports, broker URLs, queue) and an IPC channel:
// each tells where it listens once it is ready, the Bridge learns the Processor's port after it
// started, and the Reporter answers the demo's "is every report of this batch counted?". The token
// issuer the services trust runs in this process (EXAMPLE_ISSUER tells them where). The Processor can
// be killed (SIGKILL, as a crash) and started again on the same port with the same database: the
// demo's --chaos.

import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { DecisionAudit } from "./processor/processor.js";
import type { ReportSummary } from "./reporter/reporter.js";
import type { Issuer } from "./shared/issuer.js";
import type { BatchTarget } from "./system.js";

export type ServiceName = "bridge" | "processor" | "reporter";

export interface ProcessesOptions {
  /** Each service's broker URL (its user and vhost); unset ones use AMQP_URL, then amqp://127.0.0.1. */
  amqpUrls?: Partial<Record<ServiceName, string>>;
  seed?: number;
  /** The issuer the services trust (EXAMPLE_ISSUER); the caller owns it. */
  issuer: Issuer;
  /** The Processor's database: EXAMPLE_PG_URL (PostgreSQL) when set, else PGlite in `dbDir`. */
  pgUrl?: string;
  dbDir?: string;
  pgSchema?: string;
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
  processor: {
    grpcAddress: string;
    /** The process id of the running Processor. */
    readonly pid: number;
    /** What the Processor's database holds for these requests. */
    audit(requestIds: string[]): Promise<DecisionAudit>;
    /** SIGKILL: a crash, nothing finished or flushed. Resolves once it is gone. */
    kill(): Promise<void>;
    /** Starts it again (same port, same database) and tells it where the Bridge is. */
    restart(): Promise<void>;
  };
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
    super(
      `${service} exited before it was ready${stderr.trim() ? `: ${stderr.trim().split("\n").at(-1)}` : ""}`,
    );
  }
}

interface Started {
  child: ChildProcess;
  ready: Record<string, any>;
}

const root = fileURLToPath(new URL(".", import.meta.url));

function start(
  service: ServiceName,
  env: NodeJS.ProcessEnv,
  log: ProcessesOptions["log"],
): Promise<Started> {
  const child = fork(`${root}${service}/main.ts`, [], {
    // The message library the services' "#gen/*" and "#messages" imports resolve to (examples/package.json).
    execArgv: [`--conditions=${env.EXAMPLE_MESSAGES || "ts-proto"}`, "--import", "tsx"],
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

/** Sends `message` with a fresh id and resolves with the answer of type `answer` and the same id. */
let nextId = 0;
function ask<T>(child: ChildProcess, message: Record<string, unknown>, answer: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const id = ++nextId;
    const onExit = () =>
      reject(new Error(`the service exited before it answered ${String(message.type)}`));
    const onMessage = (m: any) => {
      if (m?.type !== answer || m.id !== id) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(m as T);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send({ ...message, id });
  });
}

export async function startProcesses(options: ProcessesOptions): Promise<Processes> {
  const base: NodeJS.ProcessEnv = { ...process.env, EXAMPLE_ISSUER: options.issuer.url };
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  for (const [service, url] of Object.entries(options.amqpUrls ?? {}))
    if (url) base[`${service.toUpperCase()}_AMQP_URL`] = url;
  if (options.processorOverAmqp) base.PROCESSOR_AMQP = "1";
  else delete base.PROCESSOR_AMQP;
  // Addresses come over the IPC channel, not from this process's own environment.
  for (const name of ["BRIDGE_GRPC", "PROCESSOR_GRPC", "BRIDGE_HTTP_PORT"]) delete base[name];
  const processorEnv: NodeJS.ProcessEnv = {
    ...base,
    PROCESSOR_GRPC: "127.0.0.1:0",
    PROCESSOR_SEED: String(options.seed ?? 42),
  };
  if (options.pgUrl) processorEnv.EXAMPLE_PG_URL = options.pgUrl;
  if (options.dbDir) processorEnv.EXAMPLE_DB_DIR = options.dbDir;
  if (options.pgSchema) processorEnv.EXAMPLE_PG_SCHEMA = options.pgSchema;

  const started: Started[] = [];
  const stopAll = async () => {
    for (const s of started) await stop(s.child);
  };
  try {
    // All three start at once (the demo sends requests only once all are ready, so the Reporter's
    // queue is bound before the first report); then each client learns its server's port.
    const results = await Promise.allSettled([
      start("bridge", { ...base, BRIDGE_HTTP_PORT: "0", BRIDGE_GRPC: "127.0.0.1:0" }, options.log),
      start("processor", processorEnv, options.log),
      start(
        "reporter",
        { ...base, REPORTER_QUEUE: options.reporterQueue, REPORTER_QUEUE_EXPIRES_MS: "60000" },
        options.log,
      ),
    ]);
    // In this order when closing: front to back, so nothing is cut off mid-request.
    for (const r of results) if (r.status === "fulfilled") started.push(r.value);
    for (const r of results) if (r.status === "rejected") throw r.reason;
    const [bridge, processor, reporter] = results.map(
      (r) => (r as PromiseFulfilledResult<Started>).value,
    ) as [Started, Started, Started];
    // Answered once done, so that no request reaches a service before it knows its peer.
    await Promise.all([
      connect(processor.child, { type: "connectBridge", address: bridge.ready.grpcAddress }),
      ...(options.processorOverAmqp
        ? []
        : [
            connect(bridge.child, {
              type: "connectProcessor",
              address: processor.ready.grpcAddress,
            }),
          ]),
    ]);

    const processorAddress: string = processor.ready.grpcAddress;
    let current = processor;
    const waited = (ids: string[], timeoutMs: number) =>
      ask<{ error?: string; summary: ReportSummary; missing: string[] }>(
        reporter.child,
        { type: "waitFor", ids, timeoutMs },
        "waited",
      );
    return {
      bridge: { httpUrl: bridge.ready.httpUrl, grpcAddress: bridge.ready.grpcAddress },
      processor: {
        grpcAddress: processorAddress,
        get pid() {
          return current.child.pid!;
        },
        async audit(ids) {
          const answer = await ask<{ audit?: DecisionAudit; error?: string }>(
            current.child,
            { type: "audit", ids },
            "audited",
          );
          if (!answer.audit)
            throw new Error(`the Processor could not audit its decisions: ${answer.error}`);
          return answer.audit;
        },
        kill() {
          const child = current.child;
          if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
          return new Promise<void>((resolve) => {
            child.once("exit", () => resolve());
            child.kill("SIGKILL");
          });
        },
        async restart() {
          // The same port: the Bridge's gRPC channel reconnects by itself, as to a restarted host.
          const next = await start(
            "processor",
            { ...processorEnv, PROCESSOR_GRPC: processorAddress },
            options.log,
          );
          started[started.indexOf(current)] = next;
          current = next;
          await connect(next.child, { type: "connectBridge", address: bridge.ready.grpcAddress });
        },
      },
      reporter: {
        queue: reporter.ready.queue,
        async waitFor(requestIds, timeoutMs = 30_000) {
          const answer = await waited([...requestIds], timeoutMs);
          if (answer.error) throw new Error(answer.error);
        },
        summary: async () => (await waited([], 0)).summary,
        missing: async (requestIds) => (await waited([...requestIds], 0)).missing,
      },
      close: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
