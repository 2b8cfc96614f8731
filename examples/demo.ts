// `npm run demo`: the reference system end to end on the broker at AMQP_URL (default local), or with
// each service's own user and vhost: BRIDGE_AMQP_URL, PROCESSOR_AMQP_URL, REPORTER_AMQP_URL (each
// falls back to AMQP_URL; `eval "$(examples/broker-setup.sh)"` sets all three).
// Starts the Reporter, the Bridge and the Request Processor in this process, sends a batch of requests
// through the Bridge's REST API, waits for every decision and every report, prints a summary.
//
//   npm run demo -- --count 50 --seed 7        other batch size and seed
//   npm run demo -- --amqp                     the Bridge calls the Processor over RabbitMQ, not gRPC

import { parseArgs } from "node:util";
import { amqpUrlOf } from "./shared/main.js";
import { BrokerUnreachableError, RestClient, runBatch, startSystem, type System } from "./system.js";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "24" },
    seed: { type: "string", default: "42" },
    amqp: { type: "boolean", default: false },
    verbose: { type: "boolean", short: "v", default: false },
  },
});
const count = Number(values.count);
const seed = Number(values.seed);
if (!Number.isSafeInteger(count) || count <= 0 || !Number.isSafeInteger(seed)) {
  console.error("demo: --count takes a positive integer and --seed an integer");
  process.exit(1);
}
const token = "demo-token";
const url = process.env.AMQP_URL ?? "amqp://127.0.0.1";

let system: System | undefined;
try {
  system = await startSystem({
    amqpUrl: url,
    bridgeAmqpUrl: amqpUrlOf("bridge"),
    processorAmqpUrl: amqpUrlOf("processor"),
    reporterAmqpUrl: amqpUrlOf("reporter"),
    seed,
    tokens: [token],
    processorOverAmqp: values.amqp,
    ...(values.verbose ? { log: (l: string) => console.log(`  ${l}`) } : {}),
  });
} catch (err) {
  if (err instanceof BrokerUnreachableError) {
    console.error(
      `demo: ${err.message}. Start a broker (e.g. \`docker run -d -p 5672:5672 rabbitmq:3\` or \`rabbitmq-server -detached\`) or point AMQP_URL (or BRIDGE_/PROCESSOR_/REPORTER_AMQP_URL) at one, then run \`npm run demo\` again.`,
    );
    process.exit(1);
  }
  throw err;
}

let exitCode = 0;
try {
  const { bridge, processor } = system;
  console.log(`grabbit demo: Bridge REST ${bridge.httpUrl}, Bridge gRPC ${bridge.grpcAddress}, Processor ${values.amqp ? "over RabbitMQ" : `gRPC ${processor.grpcAddress}`}, Reporter queue ${system.reporter.queue}`);

  // Without a valid token the Bridge refuses the request before anything else sees it.
  const refused = await new RestClient(bridge.httpUrl, "not-a-valid-token").call("POST", "/sendRequest", { customer: "mallory", amountCents: 100, region: "eu-west" });
  console.log(`  a request with an invalid token: HTTP ${refused.status} (${refused.json.error})`);

  const { requests, summary, elapsedMs } = await runBatch(system, { count, seed, token });
  const done = requests.filter((r) => r.status === "DONE").length;
  const failed = requests.length - done;
  console.log(`  ${requests.length} requests sent through REST, ${done} decided, ${failed} failed, in ${elapsedMs} ms`);
  console.log(`  Reporter: ${summary.reports} reports, ${summary.approved} approved ($${(summary.approvedCents / 100).toFixed(2)}), ${summary.denied} denied, ${summary.duplicates} duplicates, ${summary.refused} refused`);
  for (const [region, r] of Object.entries(summary.byRegion).sort()) {
    console.log(`    ${region.padEnd(10)} ${String(r.approved).padStart(3)} approved  ${String(r.denied).padStart(3)} denied`);
  }
  // Every request of this batch must be in the Reporter's tally (another run's reports may be too).
  const unreported = requests.filter((r) => !system!.reporter.has(r.requestId));
  if (failed > 0 || unreported.length > 0) {
    console.error("demo: FAILED: not every request was decided and reported");
    exitCode = 1;
  } else {
    console.log(`demo: OK, every request decided (seed ${seed}) and every report seen by the Reporter`);
  }
} catch (err) {
  console.error(`demo: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  exitCode = 1;
} finally {
  await system.close();
}
process.exit(exitCode);
