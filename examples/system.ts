// The three services started in one process, wired together on free ports, and a client that sends a
// batch through the Bridge's REST API. test/examples use it in-process; `demo.ts` runs each service
// in a process of its own (processes.ts) and sends its batch with runBatch too. Each service also
// runs alone (see examples/README.md). With the services it starts the token issuer they trust
// (examples/shared/issuer.ts) unless one is given, and the Processor's database (PGlite in memory, or
// PostgreSQL at `pgUrl`).

import { AmqpConnection, redactUrl } from "@grabbit/runtime/amqp";
import { startBridge, type Bridge, type StoredRequest } from "./bridge/bridge.js";
import { mulberry32, startProcessor, type Processor } from "./processor/processor.js";
import { startReporter, type Reporter, type ReportSummary } from "./reporter/reporter.js";
import { openDatabase, type Database } from "@grabbit/runtime/outbox";
import { Identity, TokenClient, type IdentityOptions } from "./shared/auth.js";
import { startIssuer, type Issuer } from "./shared/issuer.js";

export interface SystemOptions {
  /** The broker for every service without a URL of its own. Default AMQP_URL, else amqp://127.0.0.1. */
  amqpUrl?: string;
  /**
   * Each service's own URL: its user and vhost (examples/broker-setup.sh makes them). The Bridge
   * connects only with processorOverAmqp. Services with the same URL share one connection.
   */
  bridgeAmqpUrl?: string;
  processorAmqpUrl?: string;
  reporterAmqpUrl?: string;
  seed?: number;
  /** The issuer the services trust; one of its own (closed with the system) by default. */
  issuer?: Issuer;
  /** Key set caching of every service's token check (tests use 0 to see a rotation at once). */
  jwks?: Pick<IdentityOptions, "jwksMaxAgeMs" | "jwksCooldownMs">;
  /** The Processor's database: PostgreSQL at this URL (schema `pgSchema`), else PGlite in memory. */
  pgUrl?: string;
  pgSchema?: string;
  /** The Reporter's queue; a run of its own by default, deleted a minute after the run. */
  reporterQueue?: string;
  /** Bind the Reporter to one region only (tests use a region of their own). */
  reporterRegion?: string;
  /** Call processRequest over RabbitMQ instead of gRPC. */
  processorOverAmqp?: boolean;
  log?: (line: string) => void;
}

export interface System {
  /** The Processor's connection (the only one when every service has the same URL). */
  connection: AmqpConnection;
  connections: { bridge?: AmqpConnection; processor: AmqpConnection; reporter: AmqpConnection };
  bridge: Bridge;
  processor: Processor;
  reporter: Reporter;
  issuer: Issuer;
  db: Database;
  /** A token from the issuer's token endpoint, as a client gets one. */
  token(): Promise<string>;
  close(): Promise<void>;
}

export class BrokerUnreachableError extends Error {}

export async function startSystem(options: SystemOptions = {}): Promise<System> {
  const url = options.amqpUrl ?? process.env.AMQP_URL ?? "amqp://127.0.0.1";
  const urls = {
    bridge: options.bridgeAmqpUrl ?? url,
    processor: options.processorAmqpUrl ?? url,
    reporter: options.reporterAmqpUrl ?? url,
  };
  const opened = new Map<string, AmqpConnection>();
  const closeConnections = async () => {
    for (const c of opened.values()) await c.close().catch(() => undefined);
  };
  async function connect(service: keyof typeof urls): Promise<AmqpConnection> {
    const serviceUrl = urls[service];
    const open = opened.get(serviceUrl);
    if (open) return open;
    try {
      const c = await AmqpConnection.connect({
        urls: serviceUrl,
        name: `grabbit-example-${service}`,
        connectTimeoutMs: 5000,
        reconnect: { maxDelayMs: 1000 },
      });
      opened.set(serviceUrl, c);
      return c;
    } catch (err) {
      await closeConnections();
      throw new BrokerUnreachableError(
        `${service}: cannot connect to RabbitMQ at ${redactUrl(serviceUrl)}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  }
  const connections = {
    reporter: await connect("reporter"),
    processor: await connect("processor"),
    ...(options.processorOverAmqp ? { bridge: await connect("bridge") } : {}),
  };
  const started: { close(): Promise<void> }[] = [];
  const ownIssuer = options.issuer === undefined;
  const issuer = options.issuer ?? (await startIssuer());
  if (ownIssuer) started.push(issuer);
  let db: Database | undefined;
  try {
    db = await openDatabase(options.pgUrl ?? "memory:");
    const identity = await Identity.connect({ issuer: issuer.url, ...options.jwks });
    const [clientId, secret] = Object.entries(issuer.clients)[0]!;
    const tokenClient = new TokenClient(issuer.tokenEndpoint, clientId, secret);
    // The Reporter first: its queue must be bound before the first report is published.
    const reporter = await startReporter({
      connection: connections.reporter,
      // broker-setup.sh grants the Reporter's user REPORTER_QUEUE and these per-run queues.
      queue:
        options.reporterQueue ??
        `${process.env.REPORTER_QUEUE || "example.reporter"}.run-${process.pid}-${Date.now().toString(36)}`,
      queueExpiresMs: 60_000,
      identity,
      ...(options.reporterRegion !== undefined ? { region: options.reporterRegion } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    started.push(reporter);
    const bridge = await startBridge({
      httpPort: 0,
      grpcAddress: "127.0.0.1:0",
      identity,
      ...(options.processorOverAmqp ? { processorOverAmqp: connections.bridge! } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    started.push(bridge);
    const processor = await startProcessor({
      connection: connections.processor,
      bridgeAddress: bridge.grpcAddress,
      grpcAddress: "127.0.0.1:0",
      serveAmqp: options.processorOverAmqp ?? false,
      seed: options.seed ?? 42,
      db,
      ...(options.pgSchema ? { schema: options.pgSchema } : {}),
      identity,
      ...(options.log ? { log: options.log } : {}),
    });
    started.push(processor);
    if (!options.processorOverAmqp) bridge.connectProcessor(processor.grpcAddress);
    return {
      connection: connections.processor,
      connections,
      bridge,
      processor,
      reporter,
      issuer,
      db,
      token: () => tokenClient.token(),
      async close() {
        // Front to back, so nothing is cut off mid-request.
        await bridge.close();
        await processor.close();
        await reporter.close();
        await closeConnections();
        await db!.close();
        if (ownIssuer) await issuer.close();
      },
    };
  } catch (err) {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
    await closeConnections();
    await db?.close();
    throw err;
  }
}

export interface BatchOptions {
  count: number;
  seed?: number;
  token: string;
  /** Requests in flight at once through REST. Default all of them. */
  concurrency?: number;
  /** Called after each request the Bridge accepted (202), with how many so far (the demo's chaos uses it). */
  onAccepted?: (accepted: number) => void;
  /** Regions the requests are spread over. */
  regions?: string[];
  timeoutMs?: number;
}

/** What runBatch needs of a system: the Bridge's REST URL and a Reporter to ask (here or in another process). */
export interface BatchTarget {
  bridge: { readonly httpUrl: string };
  reporter: {
    waitFor(requestIds: Iterable<string>, timeoutMs?: number): Promise<unknown>;
    summary(): ReportSummary | Promise<ReportSummary>;
  };
}

export interface BatchResult {
  requests: Omit<StoredRequest, "authorization">[];
  summary: ReportSummary;
  elapsedMs: number;
}

/**
 * Sends `count` requests through the REST API (customers, amounts and regions drawn from the seed),
 * polls getStatus until each is final, reads each result, and waits for the Reporter to count them all.
 */
export async function runBatch(system: BatchTarget, options: BatchOptions): Promise<BatchResult> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const random = mulberry32(options.seed ?? 42);
  const regions = options.regions ?? ["eu-west", "us-east", "ap-south"];
  const api = new RestClient(system.bridge.httpUrl, options.token);
  const bodies = Array.from({ length: options.count }, (_, i) => ({
    customer: `customer-${(i % 7) + 1}`,
    amountCents: 1000 + Math.floor(random() * 99_000),
    region: regions[Math.floor(random() * regions.length)]!,
  }));
  const ids: string[] = new Array(bodies.length);
  let next = 0;
  let accepted = 0;
  const sender = async () => {
    while (next < bodies.length) {
      const i = next++;
      const { status, json } = await api.call("POST", "/sendRequest", bodies[i]);
      if (status !== 202)
        throw new Error(`sendRequest answered ${status}: ${JSON.stringify(json)}`);
      ids[i] = json.requestId as string;
      options.onAccepted?.(++accepted);
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.max(1, Math.min(options.concurrency ?? bodies.length, bodies.length)) },
      sender,
    ),
  );

  const pending = new Set(ids);
  while (pending.size > 0) {
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `${pending.size} of ${ids.length} requests are not finished after ${timeoutMs} ms`,
      );
    await Promise.all(
      [...pending].map(async (id) => {
        const { json } = await api.call("GET", `/getStatus/${id}`);
        if (json.status === "DONE" || json.status === "FAILED") pending.delete(id);
      }),
    );
    if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const requests = await Promise.all(
    ids.map(async (id) => (await api.call("GET", `/getResult/${id}`)).json),
  );
  await system.reporter.waitFor(ids, Math.max(1000, timeoutMs - (Date.now() - started)));
  return { requests, summary: await system.reporter.summary(), elapsedMs: Date.now() - started };
}

/** A minimal client of the Bridge's REST API. */
export class RestClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string | undefined,
  ) {}

  async call(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: any }> {
    const headers: Record<string, string> = {};
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(this.baseUrl + path, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: await res.json() };
  }
}
