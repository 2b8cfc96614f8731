// A key rotated in while the verifier's copy of the key set is being fetched: the fetch under way
// began before the new key was published, so it cannot have it, and jose's cooldown then forbids
// fetching again. The verifier must still accept the new key's token (it verifies against a fetch
// that began after the token failed), and still refuse a token of a key never published.
// Real HTTP key-set server on loopback, whose answers are slow (the key list is read when the
// request arrives), real jose keys.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { Code, StatusError } from "@grabbit/runtime";
import { jwtVerifier } from "@grabbit/runtime/auth";

const ISSUER = "https://issuer.test";
const AUDIENCE = "grabbit-test";
const SLOW_MS = 300;

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
interface Key {
  kid: string;
  privateKey: KeyPair["privateKey"];
  jwk: JWK;
}
async function makeKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return {
    kid,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" },
  };
}
const sign = (k: Key) =>
  new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: k.kid })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(k.privateKey);

let server: Server;
let url: string;
const published: JWK[] = [];
let fetches = 0;

beforeAll(async () => {
  server = createServer((_req, res) => {
    fetches++;
    const body = JSON.stringify({ keys: [...published] });
    setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(body), SLOW_MS);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("jwtVerifier with a remote key set, a key rotated in during a slow fetch", () => {
  it("accepts the new key's token although the fetch under way began before the key was published", async () => {
    const a = await makeKey("key-a");
    const b = await makeKey("key-b");
    published.push(a.jwk);
    const verify = jwtVerifier({
      keys: { jwksUrl: url, cooldownMs: 100 },
      issuer: ISSUER,
      audience: AUDIENCE,
    });
    expect((await verify(await sign(a))).iss).toBe(ISSUER);

    // A token of a kid the copy lacks sets a fetch going; key b is published while it is under way.
    const stranger = await makeKey("key-never-published");
    const refused = verify(await sign(stranger)).then(
      () => "accepted",
      (err: unknown) => err,
    );
    // Published during the second fetch (jose's own refetch, then the verifier's after the cooldown).
    await new Promise((r) => setTimeout(r, SLOW_MS + 100 + SLOW_MS / 2));
    published.push(b.jwk);
    const claims = await verify(await sign(b));
    expect(claims.aud).toBe(AUDIENCE);

    const err = await refused;
    expect(err).toBeInstanceOf(StatusError);
    expect((err as StatusError).code).toBe(Code.UNAUTHENTICATED);
    expect((err as StatusError).message).toMatch(/no key in the key set matches/);
    // Not a fetch per call: the first, jose's own refetch, and at most two rounds of waiting calls.
    expect(fetches).toBeLessThanOrEqual(5);
  });
});
