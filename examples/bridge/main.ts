// The Bridge alone: node --import tsx examples/bridge/main.ts
// Env: BRIDGE_HTTP_PORT (8080), BRIDGE_GRPC (listen, 127.0.0.1:50051), PROCESSOR_GRPC (127.0.0.1:50052),
// EXAMPLE_ISSUER (the token issuer, required); PROCESSOR_AMQP=1 to call processRequest over RabbitMQ instead (BRIDGE_AMQP_URL, else
// AMQP_URL; the Processor must run with PROCESSOR_AMQP=1 too); OTEL_* to export traces and metrics
// (examples/shared/telemetry.ts). Then, for example:
//   curl -s -XPOST localhost:8080/sendRequest -H "authorization: Bearer $TOKEN" \
//     -d '{"customer":"ada","amountCents":1200,"region":"eu-west"}'
//   curl -s localhost:8080/getResult/<requestId> -H "authorization: Bearer $TOKEN"
// with TOKEN from the issuer's token endpoint (examples/README.md).

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
import { startBridge } from "./bridge.js";

const telemetry = await startTelemetry("bridge");
if (telemetry.description) console.log(`bridge: exporting ${telemetry.description}`);
const identity = await orExit("bridge", identityFromEnv());
const connection = env("PROCESSOR_AMQP", "") === "1" ? await connectOrExit("bridge") : undefined;
const bridge = await startBridge({
  httpPort: Number(env("BRIDGE_HTTP_PORT", "8080")),
  grpcAddress: env("BRIDGE_GRPC", "127.0.0.1:50051"),
  ...(connection
    ? { processorOverAmqp: connection }
    : { processorAddress: env("PROCESSOR_GRPC", "127.0.0.1:50052") }),
  identity,
  log: console.log,
});
closeOnSignal(
  "bridge",
  async () => {
    await bridge.close();
    await connection?.close();
  },
  telemetry,
);
// Under `npm run demo`: the services start at once, so the Processor's port comes once it is known.
onParentMessage((message) => {
  if (message?.type !== "connectProcessor") return;
  bridge.connectProcessor(message.address);
  process.send?.({ type: "connected" });
});
tellParent({ httpUrl: bridge.httpUrl, grpcAddress: bridge.grpcAddress });
