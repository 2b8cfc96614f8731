// The example's identity end to end: tokens of the local OpenID-style issuer (examples/shared/issuer.ts)
// checked by the running services over both transports (gRPC and RPC over RabbitMQ) and on events.
// Expired, forged, wrong-audience and rotated-out tokens are refused with UNAUTHENTICATED; a
// rotated-in key is accepted without a restart; an event carrying a bad token is dead-lettered with
// the reason. Real broker (a vhost of this file's own, so no other run's Processor serves its calls),
// real gRPC, real HTTP issuer, PGlite for the Processor.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair, SignJWT } from "jose";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { jwtVerifier } from "@grabbit/runtime/auth";
import { privateVhost, uniqueName } from "../support/broker.js";
import { generateExamples } from "./generate.js";

type SystemModule = typeof import("../../examples/system.js");
let sys: SystemModule;
let system: Awaited<ReturnType<SystemModule["startSystem"]>>;
let gen: { processor: any; reports: any; common: any };
let authMod: typeof import("../../examples/shared/auth.js");
let issuerMod: typeof import("../../examples/shared/issuer.js");
let amqp: AmqpConnection;
let vhost: Awaited<ReturnType<typeof privateVhost>> | undefined;
const VHOST = `grabbit-example-identity-${randomBytes(4).toString("hex")}`;
const region = uniqueName("identity");
const queue = uniqueName("example.reporter.identity");

beforeAll(async () => {
  generateExamples();
  vhost = await privateVhost(VHOST);
  sys = await import("../../examples/system.js");
  authMod = await import("../../examples/shared/auth.js");
  issuerMod = await import("../../examples/shared/issuer.js");
  gen = {
    processor: await import("../../examples/gen/example/v1/processor.grabbit.js"),
    reports: await import("../../examples/gen/example/v1/reports.grabbit.js"),
    common: await import("../../examples/gen/example/v1/common.js"),
  };
  // Key sets fetched on every check (max age 0, no cooldown): a rotation is seen at once, no waiting.
  system = await sys.startSystem({
    amqpUrl: vhost.url,
    processorOverAmqp: true,
    reporterQueue: queue,
    reporterRegion: region,
    jwks: { jwksMaxAgeMs: 0, jwksCooldownMs: 0 },
  });
  amqp = await AmqpConnection.connect({ urls: vhost.url, onError: () => {} });
}, 240_000);

afterAll(async () => {
  await amqp?.close();
  await system?.close();
  // Deleting the vhost deletes its exchanges and queues.
  await vhost?.remove().catch(() => {});
}, 240_000);

/** A token signed by a key the issuer never published, claiming to be the issuer's (its current kid). */
async function forgedToken(): Promise<string> {
  const { privateKey } = await generateKeyPair("ES256");
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: system.issuer.kids[0]! })
    .setIssuer(system.issuer.url)
    .setAudience(system.issuer.audience)
    .setSubject("mallory")
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(privateKey);
}

const transports = {
  gRPC: () => gen.processor.createRequestProcessorGrpcClient(system.processor.grpcAddress),
  "RPC over RabbitMQ": () => gen.processor.createRequestProcessorAmqpClient(amqp),
} as const;

function processRequest(transport: keyof typeof transports, token: string) {
  const request = {
    request: { requestId: uniqueName("direct"), customer: "ada", amountCents: 100, region },
  };
  return transports[transport]().processRequest(request, {
    metadata: { authorization: `Bearer ${token}` },
    timeoutMs: 10_000,
  });
}

async function refusal(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call was accepted").toBeDefined();
  return StatusError.from(err);
}

/** Publishes a report with `token` and returns its dead-lettered copy's x-grabbit-error. */
async function deadLettered(token: string): Promise<string> {
  const publisher = new gen.reports.RequestReportedPublisher(amqp);
  const report = {
    requestId: uniqueName("bad"),
    decision: gen.common.Decision.DECISION_APPROVED,
    region,
    amountCents: 1,
    decidedAt: new Date(),
  };
  await publisher.publish(report, {
    metadata: { authorization: `Bearer ${token}` },
    messageId: `bad-${report.requestId}`,
  });
  await publisher.close();
  const channel = await (await amqp.waitForSession()).createChannel();
  try {
    // A bound, not a timing: the Reporter refuses it within milliseconds.
    for (let i = 0; i < 200; i++) {
      const msg = await channel.get(`${queue}.dlq`, { noAck: true });
      if (msg && msg.properties.messageId === `bad-${report.requestId}`) {
        expect(system.reporter.has(report.requestId)).toBe(false);
        return String(msg.properties.headers?.["x-grabbit-error"]);
      }
      if (!msg) await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await channel.close().catch(() => {});
  }
  throw new Error("the report was not dead-lettered");
}

describe("tokens of the example's issuer, checked by the services", () => {
  it("serves discovery, a key set and a token endpoint that refuses a wrong secret", async () => {
    const meta = await authMod.discover(system.issuer.url);
    expect(meta).toMatchObject({
      issuer: system.issuer.url,
      jwks_uri: system.issuer.jwksUri,
      token_endpoint: system.issuer.tokenEndpoint,
    });
    const jwks = (await (await fetch(meta.jwks_uri)).json()) as {
      keys: { kid: string; alg: string; d?: string }[];
    };
    expect(jwks.keys.map((k) => k.kid)).toEqual(system.issuer.kids);
    expect(jwks.keys.every((k) => k.alg === "ES256" && k.d === undefined)).toBe(true); // public keys only
    const [clientId] = Object.keys(system.issuer.clients);
    await expect(
      new authMod.TokenClient(meta.token_endpoint, clientId!, "wrong").token(),
    ).rejects.toMatchObject({
      code: Code.UNAUTHENTICATED,
      message: expect.stringMatching(/invalid_client/),
    });
    const res = await fetch(meta.token_endpoint, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "password" }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "unsupported_grant_type" });
  });

  for (const transport of Object.keys(transports) as (keyof typeof transports)[]) {
    it(`the Processor over ${transport}: a token from the token endpoint is accepted; expired, forged and wrong-audience ones are UNAUTHENTICATED`, async () => {
      await expect(processRequest(transport, await system.token())).resolves.toMatchObject({
        accepted: true,
      });
      const cases: [string, Promise<string>, RegExp][] = [
        ["expired", system.issuer.sign({ expiresInSec: -120 }), /expired/],
        ["forged", forgedToken(), /signature does not verify/],
        ["wrong audience", system.issuer.sign({ audience: "another-api" }), /"aud"/],
      ];
      for (const [what, token, reason] of cases) {
        const err = await refusal(processRequest(transport, await token));
        expect(err.code, what).toBe(Code.UNAUTHENTICATED);
        expect(err.message, what).toMatch(reason);
      }
    });
  }

  it("a request sent again, over either transport, finds its decision: decided once, reported once", async () => {
    const token = await system.token();
    const request = {
      request: { requestId: uniqueName("again"), customer: "ada", amountCents: 4200, region },
    };
    const metadata = { authorization: `Bearer ${token}` };
    for (const transport of ["gRPC", "RPC over RabbitMQ", "gRPC"] as const) {
      await expect(
        transports[transport]().processRequest(request, { metadata, timeoutMs: 10_000 }),
      ).resolves.toMatchObject({ accepted: true });
    }
    const audit = await system.processor.audit([request.request.requestId]);
    expect(audit).toMatchObject({
      decided: 1,
      repeats: 2,
      reportRows: { [request.request.requestId]: 1 },
    });
  });

  it("an event carrying an expired, forged or wrong-audience token is dead-lettered with the reason", async () => {
    const before = system.reporter.summary();
    expect(await deadLettered(await system.issuer.sign({ expiresInSec: -120 }))).toMatch(
      /refused: invalid token: the token expired/,
    );
    expect(await deadLettered(await forgedToken())).toMatch(
      /refused: invalid token: the signature does not verify/,
    );
    expect(await deadLettered(await system.issuer.sign({ audience: "another-api" }))).toMatch(
      /refused: invalid token: unexpected "aud" claim value/,
    );
    const after = system.reporter.summary();
    expect(after.refused).toBe(before.refused + 3);
    expect(after.reports).toBe(before.reports);
  });

  it("rotation: a rotated-in key is accepted without a restart, the old one during its grace and refused once retired, on both transports and on events", async () => {
    const oldToken = await system.token();
    const oldKid = system.issuer.kids[0]!;
    const { kid, retired } = await system.issuer.rotate({ graceMs: 60_000 });
    expect(retired).toBe(oldKid);
    const newToken = await system.issuer.sign();
    expect(JSON.parse(Buffer.from(newToken.split(".")[0]!, "base64url").toString()).kid).toBe(kid);
    for (const transport of Object.keys(transports) as (keyof typeof transports)[]) {
      await expect(processRequest(transport, newToken), transport).resolves.toMatchObject({
        accepted: true,
      });
      await expect(
        processRequest(transport, oldToken),
        `${transport}, in the grace period`,
      ).resolves.toMatchObject({ accepted: true });
    }
    // The whole path with the new key: REST, the Processor, the report through the outbox, the callback.
    const { requests } = await sys.runBatch(system, {
      count: 3,
      token: newToken,
      regions: [region],
    });
    expect(requests.map((r) => r.status)).toEqual(["DONE", "DONE", "DONE"]);

    system.issuer.retire(oldKid);
    for (const transport of Object.keys(transports) as (keyof typeof transports)[]) {
      const err = await refusal(processRequest(transport, oldToken));
      expect(err.code, transport).toBe(Code.UNAUTHENTICATED);
      expect(err.message, transport).toMatch(/no key in the key set matches/);
    }
    expect(await deadLettered(oldToken)).toMatch(
      /refused: invalid token: no key in the key set matches/,
    );
    const rest = await new sys.RestClient(system.bridge.httpUrl, oldToken).call(
      "GET",
      "/getStatus/none",
    );
    expect(rest.status).toBe(401);
  });

  it("an issuer that cannot be reached is UNAVAILABLE (retryable), not UNAUTHENTICATED", async () => {
    const gone = await issuerMod.startIssuer();
    const token = await gone.sign();
    const verify = jwtVerifier({
      keys: { jwksUrl: gone.jwksUri, cooldownMs: 0 },
      issuer: gone.url,
      audience: gone.audience,
    });
    await expect(verify(token)).resolves.toMatchObject({ iss: gone.url });
    await gone.close();
    const fresh = jwtVerifier({
      keys: { jwksUrl: gone.jwksUri },
      issuer: gone.url,
      audience: gone.audience,
    });
    await expect(fresh(token)).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      message: expect.stringMatching(/cannot fetch the key set/),
    });
  });
});
