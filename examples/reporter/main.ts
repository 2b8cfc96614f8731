// The Reporter alone: node --import tsx examples/reporter/main.ts
// Env: REPORTER_AMQP_URL (else AMQP_URL), REPORTER_QUEUE (example.reporter), REPORTER_QUEUE_EXPIRES_MS
// (unset: the queue stays), EXAMPLE_ISSUER (the token issuer, required); OTEL_* to export traces and metrics
// (examples/shared/telemetry.ts). Prints the summary every 5 s when it changed, and once more on exit.

import { startTelemetry } from "../shared/telemetry.js";
import { identityFromEnv } from "../shared/auth.js";
import {
  closeOnSignal,
  connectOrExit,
  env,
  onParentMessage,
  orExit,
  tellParent,
} from "../shared/main.js";
import { startReporter } from "./reporter.js";

const telemetry = await startTelemetry("reporter");
if (telemetry.description) console.log(`reporter: exporting ${telemetry.description}`);
const identity = await orExit("reporter", identityFromEnv());
const connection = await connectOrExit("reporter");
const expires = env("REPORTER_QUEUE_EXPIRES_MS", "");
const reporter = await startReporter({
  connection,
  queue: env("REPORTER_QUEUE", "example.reporter"),
  ...(expires ? { queueExpiresMs: Number(expires) } : {}),
  identity,
  log: console.log,
});
let last = "";
const print = () => {
  const text = JSON.stringify(reporter.summary());
  if (text !== last) console.log(`reporter: ${text}`);
  last = text;
};
const timer = setInterval(print, 5000);
closeOnSignal(
  "reporter",
  async () => {
    clearInterval(timer);
    await reporter.close();
    await connection.close();
    last = ""; // print the final summary even when unchanged
    print();
  },
  telemetry,
);
// Under `npm run demo`: the demo asks for the summary once every report of its batch is counted.
onParentMessage(async (message) => {
  if (message?.type !== "waitFor") return;
  const ids = message.ids as string[];
  let error: string | undefined;
  await reporter
    .waitFor(ids, message.timeoutMs)
    .catch((err: unknown) => (error = err instanceof Error ? err.message : String(err)));
  process.send?.({
    type: "waited",
    id: message.id,
    error,
    summary: reporter.summary(),
    missing: ids.filter((id) => !reporter.has(id)),
  });
});
tellParent({ queue: reporter.queue });
