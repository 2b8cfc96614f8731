// `npm run demo`: the reference system end to end on the broker at AMQP_URL (default local), or with
// each service's own user and vhost: BRIDGE_AMQP_URL, PROCESSOR_AMQP_URL, REPORTER_AMQP_URL (each
// falls back to AMQP_URL; `eval "$(examples/broker-setup.sh)"` sets all three).
// Starts the Reporter, the Bridge and the Request Processor, each in a process of its own as they are
// deployed (processes.ts), sends a batch of requests through the Bridge's REST API, waits for every
// decision and every report, prints a summary.
//
//   npm run demo -- --count 50 --seed 7        other batch size and seed
//   npm run demo -- --amqp                     the Bridge calls the Processor over RabbitMQ, not gRPC
//   npm run demo -- --trace                    print the first requests' traces as trees
//   npm run demo -- --chaos                    SIGKILL the Processor mid-batch and start it again; checks
//                                              that every request is decided once and reported once
//   EXAMPLE_PG_URL=postgres://... npm run demo the Processor's decisions and outbox in PostgreSQL
//                                              (default: PGlite in .grabbit/example-processor, EXAMPLE_DB_DIR)
//
// The services trust a token issuer this process starts (examples/shared/issuer.ts); the demo gets
// its token from the issuer's token endpoint, as a client would.
// At the end (late-key.ts), a report signed by a key the issuer publishes late is refused and
// dead-lettered, shown with `grabbit dlq list`, and replayed with `grabbit dlq replay` once the key
// is out; the Reporter then counts it once.
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 npm run demo
//                                              each service exports traces and metrics to a collector
//                                              under its own service.name (see docs/observability.md)

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runBufBuild } from "../governance/images.js";
import { lateKeyStory, type LateKeyResult } from "./late-key.js";
import {
  startOtlpReceiver,
  formatTrace,
  tracesOf,
  type OtlpReceiver,
} from "./shared/otlp-receiver.js";
import { startProcesses, ServiceFailedError, type Processes } from "./processes.js";
import { RestClient, runBatch } from "./system.js";
import { TokenClient } from "./shared/auth.js";
import { startIssuer, type Issuer } from "./shared/issuer.js";
import { LIBRARY } from "#messages";

// EXAMPLE_MESSAGES picks the message library; Node's --conditions (set by `npm run demo` and, for each
// service, processes.ts) is what makes "#gen/*" resolve to it. Refuse a run where the two disagree.
const wanted = process.env.EXAMPLE_MESSAGES || "ts-proto";
if (wanted !== "ts-proto" && wanted !== "protobuf-es")
  throw new Error(`EXAMPLE_MESSAGES=${wanted}: use ts-proto (the default) or protobuf-es`);
if (LIBRARY !== wanted)
  throw new Error(
    `EXAMPLE_MESSAGES=${wanted} but this process loaded ${LIBRARY} messages: run it as npm run demo does, node --conditions=${wanted} --import tsx examples/demo.ts`,
  );

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "24" },
    seed: { type: "string", default: "42" },
    amqp: { type: "boolean", default: false },
    trace: { type: "boolean", default: false },
    chaos: { type: "boolean", default: false },
    "trace-count": { type: "string", default: "3" },
    verbose: { type: "boolean", short: "v", default: false },
  },
});
const count = Number(values.count);
const seed = Number(values.seed);
const traceCount = Number(values["trace-count"]);
if (
  !Number.isSafeInteger(count) ||
  count <= 0 ||
  !Number.isSafeInteger(seed) ||
  !Number.isSafeInteger(traceCount) ||
  traceCount < 0
) {
  console.error(
    "demo: --count takes a positive integer, --seed an integer and --trace-count a non-negative integer",
  );
  process.exit(1);
}

// --trace: the services export their spans (OTLP/JSON) to a receiver in this process instead of
// OTEL_EXPORTER_OTLP_ENDPOINT; metrics are not exported then.
let receiver: OtlpReceiver | undefined;
const otelEnv: Record<string, string | undefined> = {};
if (values.trace) {
  receiver = await startOtlpReceiver();
  Object.assign(otelEnv, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: undefined,
    OTEL_TRACES_EXPORTER: undefined,
    OTEL_METRICS_EXPORTER: "none",
  });
}

// The contract as a buf image, for `grabbit dlq` to decode the dead-lettered body at the end; built
// while the services start (buf takes a second or two). Without it the body is shown undecoded.
const dbDir = process.env.EXAMPLE_DB_DIR || ".grabbit/example-processor";
const image = runBufBuild("proto", process.cwd(), undefined, ["proto/example"]).then(
  (bytes) => {
    const file = join(".grabbit", "example-contract.binpb");
    mkdirSync(".grabbit", { recursive: true });
    writeFileSync(file, bytes);
    return file;
  },
  (err: unknown) => {
    console.error(
      `demo: the contract image could not be built, grabbit dlq will not decode bodies: ${err instanceof Error ? err.message : String(err)}`,
    );
    return undefined;
  },
);

// The identity provider: ES256 keys, a JWKS, a token endpoint; the services find it at EXAMPLE_ISSUER.
const issuer: Issuer = await startIssuer();
const [clientId, clientSecret] = Object.entries(issuer.clients)[0]!;
const tokens = new TokenClient(issuer.tokenEndpoint, clientId, clientSecret);

let system: Processes;
try {
  system = await startProcesses({
    issuer,
    ...(process.env.EXAMPLE_PG_URL ? { pgUrl: process.env.EXAMPLE_PG_URL } : { dbDir }),
    amqpUrls: {
      bridge: process.env.BRIDGE_AMQP_URL,
      processor: process.env.PROCESSOR_AMQP_URL,
      reporter: process.env.REPORTER_AMQP_URL,
    },
    seed,
    // broker-setup.sh grants the Reporter's user REPORTER_QUEUE and these per-run queues.
    reporterQueue: `${process.env.REPORTER_QUEUE || "example.reporter"}.run-${process.pid}-${Date.now().toString(36)}`,
    processorOverAmqp: values.amqp,
    // A token of a kid the services lack makes them fetch the key set, at most once per cooldown (1 s
    // by default); the dead-letter story at the end meets two such waits, so the demo shortens them.
    env: { EXAMPLE_JWKS_COOLDOWN_MS: process.env.EXAMPLE_JWKS_COOLDOWN_MS || "200", ...otelEnv },
    ...(values.verbose
      ? { log: (_service: string, line: string) => console.log(`  ${line}`) }
      : {}),
  });
} catch (err) {
  await receiver?.close();
  await issuer.close();
  if (err instanceof ServiceFailedError && /RabbitMQ/.test(err.stderr)) {
    console.error(
      `demo: the ${err.service} cannot reach RabbitMQ (above). Start a broker (e.g. \`docker run -d -p 5672:5672 rabbitmq:3\` or \`rabbitmq-server -detached\`) or point AMQP_URL (or BRIDGE_/PROCESSOR_/REPORTER_AMQP_URL) at one, then run \`npm run demo\` again.`,
    );
    process.exit(1);
  }
  console.error(`demo: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

let exitCode = 0;
try {
  const { bridge, processor } = system;
  console.log(
    `grabbit demo: Bridge REST ${bridge.httpUrl}, Bridge gRPC ${bridge.grpcAddress}, Processor ${values.amqp ? "over RabbitMQ" : `gRPC ${processor.grpcAddress}`}, Reporter queue ${system.reporter.queue}`,
  );
  const exporting =
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT ||
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ||
    process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
  if (!receiver && exporting)
    console.log(
      `  each service exports its telemetry to ${exporting} as service.name ${process.env.OTEL_SERVICE_NAME || "bridge, processor, reporter"}`,
    );

  // Identity: a token from the issuer; without a valid one the Bridge refuses the request before
  // anything else sees it. Then a key rotation the services pick up without a restart.
  const first = await tokens.token();
  console.log(
    `  issuer ${issuer.url}: client ${clientId} got an ES256 token for audience ${issuer.audience} (kid ${issuer.kids[0]!.slice(0, 8)}...)`,
  );
  const { forged, expired, otherAudience } = await badTokens(issuer);
  for (const [what, bad] of [
    ["no token", undefined],
    ["a forged token", forged],
    ["an expired token", expired],
    ["a token for another audience", otherAudience],
  ] as const) {
    const refused = await new RestClient(bridge.httpUrl, bad).call("POST", "/sendRequest", {
      customer: "mallory",
      amountCents: 100,
      region: "eu-west",
    });
    console.log(
      `  a request with ${what}: HTTP ${refused.status} (${String(refused.json.error).replace(/^send Authorization: Bearer <token from the issuer>: /, "")})`,
    );
  }
  const rotation = await issuer.rotate({ graceMs: 60_000 });
  // A new client session gets a token of the new key; the services fetch the key on its first use.
  const token = await new TokenClient(issuer.tokenEndpoint, clientId, clientSecret).token();
  const old = await new RestClient(bridge.httpUrl, first).call("GET", "/getStatus/none");
  console.log(
    `  key rotated: new kid ${rotation.kid.slice(0, 8)}... signs from now on, the old key retires in 60 s (a token of it meanwhile: ${old.status === 401 ? "refused" : "accepted"})`,
  );

  let killedAt: number | undefined;
  let chaos: Promise<void> | undefined;
  const { requests, summary, elapsedMs } = await runBatch(system, {
    count,
    seed,
    token,
    ...(values.chaos
      ? {
          // A few at a time, so the kill lands mid-batch: some decided, some in flight, some to come.
          concurrency: 4,
          timeoutMs: 90_000,
          onAccepted: (accepted) => {
            if (killedAt !== undefined || accepted < Math.ceil(count / 3)) return;
            killedAt = accepted;
            const pid = system.processor.pid;
            chaos = system.processor.kill().then(async () => {
              console.log(
                `  chaos: SIGKILL to the Processor (pid ${pid}) after ${accepted} of ${count} requests were accepted`,
              );
              await system.processor.restart();
              console.log(
                `  chaos: the Processor is back (pid ${system.processor.pid}), same port, same database`,
              );
            });
          },
        }
      : {}),
  });
  await chaos;
  const done = requests.filter((r) => r.status === "DONE").length;
  const failed = requests.length - done;
  console.log(
    `  ${requests.length} requests sent through REST, ${done} decided, ${failed} failed, in ${elapsedMs} ms`,
  );
  console.log(
    `  Reporter: ${summary.reports} reports, ${summary.approved} approved ($${(summary.approvedCents / 100).toFixed(2)}), ${summary.denied} denied, ${summary.duplicates} duplicates, ${summary.refused} refused`,
  );
  for (const [region, r] of Object.entries(summary.byRegion).sort()) {
    console.log(
      `    ${region.padEnd(10)} ${String(r.approved).padStart(3)} approved  ${String(r.denied).padStart(3)} denied`,
    );
  }
  // Every request of this batch must be in the Reporter's tally (another run's reports may be too).
  const ids = requests.map((r) => r.requestId);
  const unreported = await system.reporter.missing(ids);
  // Exactly once: one decision row and one outbox row (one report) per request in the Processor's
  // database, and every report counted once by the Reporter (copies are dropped by message id).
  const audit = await system.processor.audit(ids);
  const twice = ids.filter((id) => (audit.reportRows[id] ?? 0) !== 1);
  console.log(
    `  exactly once: ${audit.decided} of ${ids.length} requests decided in the Processor's database, ${ids.length - twice.length} with exactly one report in its outbox; ${audit.repeats} repeated processRequest calls found their decision made; the Reporter counted ${ids.length - unreported.length} reports once each, dropping ${summary.duplicates} duplicate deliveries`,
  );

  // The dead-letter queue in operation: a report signed by a key published late.
  const amqpUrl = process.env.AMQP_URL || "amqp://127.0.0.1";
  let late: LateKeyResult | undefined;
  let lateError: string | undefined;
  try {
    const file = await image;
    late = await lateKeyStory({
      issuer,
      publisherUrl: process.env.PROCESSOR_AMQP_URL || amqpUrl,
      dlqUrl: process.env.REPORTER_AMQP_URL || amqpUrl,
      reporter: system.reporter,
      ...(file !== undefined ? { image: file } : {}),
      print: (line) => console.log(`  ${line}`),
    });
  } catch (err) {
    lateError = err instanceof Error ? err.message : String(err);
    console.error(`demo: the dead-letter story stopped: ${lateError}`);
  }
  if (values.chaos && killedAt === undefined) {
    console.error("demo: FAILED: the batch ended before the chaos kill (use a larger --count)");
    exitCode = 1;
  } else if (
    failed > 0 ||
    unreported.length > 0 ||
    audit.decided !== ids.length ||
    twice.length > 0
  ) {
    console.error("demo: FAILED: not every request was decided and reported exactly once");
    exitCode = 1;
  } else if (late === undefined || late.problem !== undefined) {
    console.error(`demo: FAILED: the dead-lettered report: ${lateError ?? late?.problem}`);
    exitCode = 1;
  } else {
    console.log(
      `demo: OK, every request decided (seed ${seed}) and every report seen by the Reporter${values.chaos ? ", exactly once each, across a SIGKILL of the Processor" : ""}; the report of the late key replayed from the dead-letter queue and counted once`,
    );
  }
} catch (err) {
  console.error(`demo: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  exitCode = 1;
} finally {
  // Each service exports what it still holds as it stops, so every span is in by the time this returns.
  await system.close();
  await issuer.close();
}
if (receiver) {
  printTraces(receiver);
  await receiver.close();
}
process.exit(exitCode);

/** The first requests' traces (those the REST call POST /sendRequest started) as trees, and a count. */
function printTraces(receiver: OtlpReceiver): void {
  const traces = [...tracesOf(receiver.spans).values()];
  const requests = traces.filter(
    (spans) =>
      spans.some((s) => s.name === "POST /sendRequest" && s.parentSpanId === "") &&
      new Set(spans.map((s) => s.service)).size > 1,
  );
  console.log(
    `traces: ${receiver.spans.length} spans from ${new Set(receiver.spans.map((s) => s.service)).size} services in ${traces.length} traces; ${requests.length} requests went through more than one service${requests.length > traceCount ? `, the first ${traceCount}` : ""}:`,
  );
  for (const spans of requests.slice(0, traceCount)) {
    console.log(`  trace ${spans[0]!.traceId}`);
    for (const line of formatTrace(spans)) console.log(`    ${line}`);
  }
}

/** Tokens the services must refuse: signed by a key the issuer never published, expired, for another API. */
async function badTokens(
  issuer: Issuer,
): Promise<{ forged: string; expired: string; otherAudience: string }> {
  const { generateKeyPair, SignJWT } = await import("jose");
  const { privateKey } = await generateKeyPair("ES256");
  const now = Math.floor(Date.now() / 1000);
  const forged = await new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: issuer.kids[0]! }) // the issuer's kid, another key
    .setIssuer(issuer.url)
    .setAudience(issuer.audience)
    .setSubject("mallory")
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(privateKey);
  return {
    forged,
    expired: await issuer.sign({ expiresInSec: -120 }),
    otherAudience: await issuer.sign({ audience: "another-api" }),
  };
}
