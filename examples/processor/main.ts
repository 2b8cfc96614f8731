// The Request Processor alone: node --import tsx examples/processor/main.ts
// Env: EXAMPLE_ISSUER (the token issuer, required), PROCESSOR_AMQP_URL (else AMQP_URL), PROCESSOR_GRPC
// (listen, 127.0.0.1:50052), BRIDGE_GRPC (127.0.0.1:50051), PROCESSOR_SEED (42), PROCESSOR_AMQP=1 to
// serve processRequest over RabbitMQ too; EXAMPLE_PG_URL (postgres://...) for PostgreSQL, else PGlite in
// EXAMPLE_DB_DIR (.grabbit/example-processor); EXAMPLE_PG_SCHEMA (example_processor); OTEL_* to export
// traces and metrics (examples/shared/telemetry.ts).

import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { openDatabase } from "@grabbit/runtime/outbox";
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
import { startProcessor } from "./processor.js";

const telemetry = await startTelemetry("processor");
if (telemetry.description) console.log(`processor: exporting ${telemetry.description}`);
const identity = await orExit("processor", identityFromEnv());
const connection = await connectOrExit("processor");
// The decisions and the outbox: PostgreSQL when a URL is given, else the embedded PGlite in a folder
// of its own (a fresh folder takes a few seconds to initialise, later starts under one).
const pgUrl = env("EXAMPLE_PG_URL", "");
const dir = env("EXAMPLE_DB_DIR", ".grabbit/example-processor");
if (!pgUrl) mkdirSync(dirname(resolve(dir)), { recursive: true });
const db = await orExit("processor", openDatabase(pgUrl || `file:${dir}`));
const processor = await startProcessor({
  connection,
  db,
  schema: env("EXAMPLE_PG_SCHEMA", "example_processor"),
  grpcAddress: env("PROCESSOR_GRPC", "127.0.0.1:50052"),
  bridgeAddress: env("BRIDGE_GRPC", "127.0.0.1:50051"),
  serveAmqp: env("PROCESSOR_AMQP", "") === "1",
  seed: Number(env("PROCESSOR_SEED", "42")),
  identity,
  log: console.log,
});
closeOnSignal(
  "processor",
  async () => {
    await processor.close();
    await connection.close();
    await db.close();
  },
  telemetry,
);
// Under `npm run demo`: the services start at once, so the Bridge's port comes once it is known; the
// demo's exactly-once check asks what the database holds.
onParentMessage(async (message) => {
  if (message?.type === "connectBridge") {
    processor.connectBridge(message.address);
    process.send?.({ type: "connected" });
  } else if (message?.type === "audit") {
    const answer = await processor.audit(message.ids).then(
      (audit) => ({ audit }),
      (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }),
    );
    process.send?.({ type: "audited", id: message.id, ...answer });
  }
});
tellParent({ grpcAddress: processor.grpcAddress });
