// The token issuer alone: node --import tsx examples/issuer/main.ts
// Env: EXAMPLE_ISSUER_PORT (8090), EXAMPLE_CLIENT_ID (demo-client) and EXAMPLE_CLIENT_SECRET (random when
// unset; printed), EXAMPLE_KEY_ROTATION_MS (rotate the signing key this often; unset: never),
// EXAMPLE_KEY_GRACE_MS (how long a rotated-out key stays published, 60000). Prints the
// `export EXAMPLE_ISSUER=...` line the services need and a curl line that gets a token.
// SIGUSR2 rotates the key now. Ctrl-C stops it.

import { randomBytes } from "node:crypto";
import { env } from "../shared/main.js";
import { startIssuer } from "../shared/issuer.js";

const clientId = env("EXAMPLE_CLIENT_ID", "demo-client");
const secret = env("EXAMPLE_CLIENT_SECRET", randomBytes(18).toString("base64url"));
const graceMs = Number(env("EXAMPLE_KEY_GRACE_MS", "60000"));
const issuer = await startIssuer({
  port: Number(env("EXAMPLE_ISSUER_PORT", "8090")),
  clients: { [clientId]: secret },
  graceMs,
}).catch((err: unknown) => {
  console.error(
    `issuer: cannot listen (${err instanceof Error ? err.message : String(err)}): set EXAMPLE_ISSUER_PORT to a free port`,
  );
  process.exit(1);
});
console.log(`export EXAMPLE_ISSUER=${issuer.url}`);
console.log(
  `# a token: curl -s -XPOST ${issuer.tokenEndpoint} -d grant_type=client_credentials -d client_id=${clientId} -d client_secret=${secret}`,
);
const rotate = async () => {
  const { kid, retired } = await issuer.rotate();
  console.log(`issuer: new signing key ${kid}; ${retired} retires in ${graceMs} ms`);
};
const every = Number(env("EXAMPLE_KEY_ROTATION_MS", "0"));
if (every > 0) setInterval(() => void rotate(), every);
process.on("SIGUSR2", () => void rotate());
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => void issuer.close().then(() => process.exit(0)));
