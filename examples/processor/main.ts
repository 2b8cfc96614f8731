// The Request Processor alone: node --import tsx examples/processor/main.ts
// Env: PROCESSOR_AMQP_URL (else AMQP_URL), PROCESSOR_GRPC (listen, 127.0.0.1:50052), BRIDGE_GRPC (127.0.0.1:50051),
// PROCESSOR_SEED (42), PROCESSOR_AMQP=1 to serve processRequest over RabbitMQ too, EXAMPLE_TOKENS;
// OTEL_* to export traces and metrics (examples/shared/telemetry.ts).

import { startTelemetry } from "../shared/telemetry.js";
import { tokensFromEnv } from "../shared/auth.js";
import { closeOnSignal, connectOrExit, env, onParentMessage, tellParent } from "../shared/main.js";
import { startProcessor } from "./processor.js";

const telemetry = await startTelemetry("processor");
if (telemetry.description) console.log(`processor: exporting ${telemetry.description}`);
const connection = await connectOrExit("processor");
const processor = await startProcessor({
  connection,
  grpcAddress: env("PROCESSOR_GRPC", "127.0.0.1:50052"),
  bridgeAddress: env("BRIDGE_GRPC", "127.0.0.1:50051"),
  serveAmqp: env("PROCESSOR_AMQP", "") === "1",
  seed: Number(env("PROCESSOR_SEED", "42")),
  tokens: tokensFromEnv(),
  log: console.log,
});
closeOnSignal(
  "processor",
  async () => {
    await processor.close();
    await connection.close();
  },
  telemetry,
);
// Under `npm run demo`: the services start at once, so the Bridge's port comes once it is known.
onParentMessage((message) => {
  if (message?.type !== "connectBridge") return;
  processor.connectBridge(message.address);
  process.send?.({ type: "connected" });
});
tellParent({ grpcAddress: processor.grpcAddress });
