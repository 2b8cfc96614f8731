// `npm run demo` as a user runs it, pointed at an OTLP/HTTP receiver this test starts: the three
// services run as three processes, each exports under its own service.name, and one request is one
// trace from the Bridge's REST call to the callback. Also `--trace`, which prints those trees.
//
// The services run @grabbit/runtime from source (test/examples/tsconfig.runtime-src.json), as the
// rest of the suite does. Nothing here waits on a clock: the demo stops its services before it exits,
// and each one exports what it holds as it stops.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL } from "../support/broker.js";
import { REPO } from "../support/buf.js";
import { generateExamples } from "./generate.js";
import {
  startOtlpReceiver,
  tracesOf,
  type OtlpReceiver,
  type ReceivedSpan,
} from "../../examples/shared/otlp-receiver.js";

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;
const PROCESS_REQUEST = "example.v1.RequestProcessorService/ProcessRequest";
const NOTIFY_DONE = "example.v1.BridgeService/NotifyRequestDone";

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node --import tsx examples/demo.ts ...args` with `env` on top of this process's own. */
function runDemo(args: string[], env: Record<string, string | undefined> = {}): Promise<DemoRun> {
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    AMQP_URL,
    TSX_TSCONFIG_PATH: join(REPO, "test/examples/tsconfig.runtime-src.json"),
  };
  // A developer's own OTEL_* settings must not leak into the run.
  for (const name of Object.keys(childEnv)) if (name.startsWith("OTEL_")) delete childEnv[name];
  for (const name of [
    "BRIDGE_AMQP_URL",
    "PROCESSOR_AMQP_URL",
    "REPORTER_AMQP_URL",
    "REPORTER_QUEUE",
  ])
    delete childEnv[name];
  // The Processor's embedded database in a folder of this file's own, not the developer's .grabbit/.
  childEnv.EXAMPLE_DB_DIR = join(REPO, ".tmp", "demo-otel-db");
  delete childEnv.EXAMPLE_PG_URL;
  for (const [name, value] of Object.entries(env)) if (value !== undefined) childEnv[name] = value;
  return new Promise<DemoRun>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "examples/demo.ts", ...args], {
      cwd: REPO,
      env: childEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    // A bound, not a wait: the demo normally ends in seconds.
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The request traces: those whose root is the Bridge's POST /sendRequest answered 202. */
function requestTraces(spans: ReceivedSpan[]): ReceivedSpan[][] {
  return [...tracesOf(spans).values()].filter((trace) =>
    trace.some(
      (s) =>
        s.service === "bridge" &&
        s.name === "POST /sendRequest" &&
        s.parentSpanId === "" &&
        s.attributes["http.response.status_code"] === 202,
    ),
  );
}

const childOf = (
  trace: ReceivedSpan[],
  parent: ReceivedSpan | undefined,
  match: (s: ReceivedSpan) => boolean,
) =>
  parent === undefined
    ? undefined
    : trace.find((s) => s.parentSpanId === parent.spanId && match(s));

/** The spans below `root` (children, their children, ...). */
function descendants(trace: ReceivedSpan[], root: ReceivedSpan): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const walk = (id: string) => {
    for (const s of trace) {
      if (s.parentSpanId === id) {
        out.push(s);
        walk(s.spanId);
      }
    }
  };
  walk(root.spanId);
  return out;
}

/** The gRPC chain of one request trace: REST → processRequest (client, server) → notifyRequestDone (client, server). */
function grpcChain(trace: ReceivedSpan[]) {
  const rest = trace.find(
    (s) => s.service === "bridge" && s.name === "POST /sendRequest" && s.parentSpanId === "",
  );
  const call = childOf(
    trace,
    rest,
    (s) => s.service === "bridge" && s.name === PROCESS_REQUEST && s.kind === CLIENT,
  );
  const served = childOf(
    trace,
    call,
    (s) => s.service === "processor" && s.name === PROCESS_REQUEST && s.kind === SERVER,
  );
  const notify =
    served &&
    descendants(trace, served).find(
      (s) => s.service === "processor" && s.name === NOTIFY_DONE && s.kind === CLIENT,
    );
  const notified = childOf(
    trace,
    notify,
    (s) => s.service === "bridge" && s.name === NOTIFY_DONE && s.kind === SERVER,
  );
  return { rest, call, served, notify, notified };
}

/** The RequestReported event in one request trace: the Processor's publish and the Reporter's handling. */
function reportSpans(trace: ReceivedSpan[]) {
  const { served } = grpcChain(trace);
  const publish =
    served &&
    descendants(trace, served).find(
      (s) =>
        s.service === "processor" &&
        s.kind === PRODUCER &&
        s.attributes["messaging.system"] === "rabbitmq",
    );
  const processed =
    publish &&
    descendants(trace, publish).find(
      (s) =>
        s.service === "reporter" &&
        s.kind === CONSUMER &&
        s.attributes["messaging.operation.type"] === "process",
    );
  return { publish, processed };
}

let receiver: OtlpReceiver | undefined;

beforeAll(() => {
  generateExamples();
});

afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

describe("npm run demo with OTEL_* pointing at a collector", () => {
  const count = 4;
  let spans: ReceivedSpan[] = [];

  it("exports each service under its own service.name over OTLP/HTTP JSON, one trace per request", async () => {
    receiver = await startOtlpReceiver();
    const run = await runDemo(["--count", String(count), "--seed", "5"], {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test",
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/demo: OK/);
    expect(run.stdout).toContain(`each service exports its telemetry to ${receiver.url}`);
    spans = [...receiver.spans];

    // Three processes, three resources: service.name is each service's own, the env's attributes are there.
    const services = new Set(spans.map((s) => s.service));
    expect(services).toContain("bridge");
    expect(services).toContain("processor");
    for (const s of spans) expect(s.resource["deployment.environment.name"]).toBe("test");

    // Every request sent is one trace: REST call → gRPC processRequest → the Processor → the callback.
    const traces = requestTraces(spans);
    expect(traces).toHaveLength(count);
    for (const trace of traces) {
      const chain = grpcChain(trace);
      expect(
        chain.call,
        "the Bridge's gRPC client span for processRequest, under the REST span",
      ).toBeDefined();
      expect(
        chain.served,
        "the Processor's server span, under the Bridge's client span",
      ).toBeDefined();
      expect(
        chain.notify,
        "the Processor's notifyRequestDone call, under its server span",
      ).toBeDefined();
      expect(
        chain.notified,
        "the Bridge's notifyRequestDone server span, under that call",
      ).toBeDefined();
      expect(chain.call!.attributes["rpc.system.name"]).toBe("grpc");
    }

    // Metrics too: the metric exports of the services that recorded some (gRPC call durations).
    expect(receiver.metricServices).toContain("bridge");
    expect(receiver.metricServices).toContain("processor");
  }, 120_000);

  // The RequestReported publish under the Processor's server span and the Reporter's process span
  // under the publish, in the same trace, and the Reporter exporting spans of its own.
  it("the RequestReported event and the Reporter's handling are in the same trace (AMQP spans)", () => {
    expect(spans.length, "runs after the test above").toBeGreaterThan(0);
    expect(new Set(spans.map((s) => s.service))).toContain("reporter");
    const traces = requestTraces(spans);
    expect(traces).toHaveLength(count);
    for (const trace of traces) {
      const { publish, processed } = reportSpans(trace);
      expect(
        publish,
        "the Processor's RequestReported publish (PRODUCER, messaging.system rabbitmq) under its server span",
      ).toBeDefined();
      expect(processed, "the Reporter's process span (CONSUMER) under the publish").toBeDefined();
    }
  });

  it("exports over OTLP/HTTP protobuf when OTEL_EXPORTER_OTLP_PROTOCOL says so (the default)", async () => {
    receiver = await startOtlpReceiver();
    const run = await runDemo(["--count", "2", "--seed", "6"], {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    });
    expect(run.code, run.stderr).toBe(0);
    const traces = receiver.requests.filter((r) => r.path === "/v1/traces");
    expect(traces.length).toBeGreaterThan(0);
    for (const r of traces) expect(r.contentType).toBe("application/x-protobuf");
    // Not decoded here; strings are plain UTF-8 in protobuf, so the service names and span names show.
    const bytes = Buffer.concat(traces.map((r) => r.body)).toString("latin1");
    for (const text of ["bridge", "processor", "POST /sendRequest", PROCESS_REQUEST, NOTIFY_DONE])
      expect(bytes).toContain(text);
    expect(
      receiver.requests.some(
        (r) => r.path === "/v1/metrics" && r.contentType === "application/x-protobuf",
      ),
    ).toBe(true);
  }, 120_000);
});

describe("npm run demo -- --amqp with OTEL_* (processRequest over RabbitMQ)", () => {
  let spans: ReceivedSpan[] = [];

  it("runs and exports", async () => {
    receiver = await startOtlpReceiver();
    const run = await runDemo(["--count", "2", "--seed", "8", "--amqp"], {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/demo: OK/);
    spans = [...receiver.spans];
    expect(requestTraces(spans)).toHaveLength(2);
    // The callback is gRPC whatever --amqp says.
    expect(
      spans.some((s) => s.service === "bridge" && s.name === NOTIFY_DONE && s.kind === SERVER),
    ).toBe(true);
  }, 120_000);

  it("one trace per request: REST → AMQP RPC client → the Processor's server span → the callback", () => {
    const traces = requestTraces(spans);
    expect(traces, "runs after the test above").toHaveLength(2);
    for (const trace of traces) {
      const rest = trace.find((s) => s.name === "POST /sendRequest" && s.parentSpanId === "")!;
      const call = childOf(
        trace,
        rest,
        (s) => s.service === "bridge" && s.name === PROCESS_REQUEST && s.kind === CLIENT,
      );
      expect(call?.attributes["rpc.system.name"]).toBe("grabbit_amqp");
      const served = childOf(trace, call, (s) => s.service === "processor" && s.kind === SERVER);
      expect(served).toBeDefined();
      const notify = descendants(trace, served!).find(
        (s) => s.name === NOTIFY_DONE && s.kind === CLIENT,
      );
      expect(
        childOf(
          trace,
          notify,
          (s) => s.service === "bridge" && s.name === NOTIFY_DONE && s.kind === SERVER,
        ),
      ).toBeDefined();
      expect(reportSpans(trace).processed).toBeDefined();
    }
  });
});

describe("npm run demo -- --trace", () => {
  it("prints the first requests' traces as indented trees, with each span's service and duration", async () => {
    const run = await runDemo(["--count", "3", "--seed", "9", "--trace", "--trace-count", "2"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/demo: OK/);
    const [, summary, trees] = run.stdout.match(/^(traces: .*)\n([\s\S]*)$/m) ?? [];
    expect(summary).toMatch(/3 requests went through more than one service, the first 2:/);
    expect(trees!.match(/^ {2}trace [\da-f]{32}$/gm)).toHaveLength(2);
    // service, indented span name (kind), duration: the callback nested under the Processor's span.
    expect(trees).toMatch(/^ {4}bridge +POST \/sendRequest \(server\) {2}\d+\.\d ms/m);
    expect(trees).toMatch(
      new RegExp(`^ {4}bridge +└─ ${PROCESS_REQUEST} \\(client\\) {2}\\d+\\.\\d ms`, "m"),
    );
    expect(trees).toMatch(new RegExp(`^ {4}processor +└─ ${PROCESS_REQUEST} \\(server\\)`, "m"));
    // (The report is published by the outbox relay, so it may come before or after the callback.)
    expect(trees).toMatch(new RegExp(`^ {4}bridge +[│ ]*└─ ${NOTIFY_DONE} \\(server\\)`, "m"));
    // The event: the Processor's publish, and the Reporter's handling under it.
    expect(trees).toMatch(/^ {4}processor +.*[├└]─ publish \S+ \(producer\)/m);
    expect(trees).toMatch(/^ {4}reporter +.*└─ process \S+ \(consumer\)/m);
  }, 120_000);
});
