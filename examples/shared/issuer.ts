// A small local OpenID-style issuer for the example: the identity provider the services trust.
// Over HTTP on loopback it serves
//   GET  /.well-known/openid-configuration   issuer, jwks_uri, token_endpoint (discovery)
//   GET  /jwks                               the public keys (ES256, made with jose), by `kid`
//   POST /token                              client credentials -> a signed access token (JWT)
// and it rotates its signing key: rotate() makes a new key, publishes it and signs with it from then
// on; the old key stays published for `graceMs` (tokens it signed stay valid) and is then retired.
// The services fetch the key set by themselves (runtime jwtVerifier with jwksUrl), so they pick the
// new key up on its first token and drop the retired one at their next refresh, without a restart.
// A key can also be published late (the demo's dead-letter story): stageKey() makes one that signs
// on request but is not in the key set, so its tokens are refused, until publish(kid).
//
// It is an example, not a product: clients are registered in memory with a secret each, tokens are
// access tokens only (no users, no refresh tokens, no id tokens). A bad request gets the OAuth 2.0
// error JSON (`invalid_client`, `invalid_request`, `unsupported_grant_type`) with 400 or 401.

import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";

/** The audience every service of the example requires. */
export const EXAMPLE_AUDIENCE = "grabbit-example";

const ALG = "ES256";

export interface IssuerOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Registered clients: id -> secret. Default one client, "demo-client", with a random secret. */
  clients?: Record<string, string>;
  /** Default audience of issued tokens. Default "grabbit-example". */
  audience?: string;
  /** Lifetime of issued tokens. Default 600 s. */
  tokenTtlSec?: number;
  /** How long a rotated-out key stays published. Default 60 s. */
  graceMs?: number;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
  retireTimer?: NodeJS.Timeout;
}

export interface SignOptions {
  subject?: string;
  audience?: string;
  /** Seconds from now; negative for an already expired token. Default the issuer's TTL. */
  expiresInSec?: number;
  /** Sign with this key (its kid: a published or a staged one) instead of the current one. */
  kid?: string;
}

export interface Issuer {
  /** The issuer identifier (`iss`), also its base URL: http://127.0.0.1:<port>. */
  readonly url: string;
  readonly jwksUri: string;
  readonly tokenEndpoint: string;
  readonly audience: string;
  readonly clients: Readonly<Record<string, string>>;
  /** The kids published now, the current signing key first. */
  readonly kids: string[];
  /** Signs a token directly (tests, the demo's refusal cases); the token endpoint uses the same path. */
  sign(options?: SignOptions): Promise<string>;
  /** A new signing key, published at once; the old one is retired after `graceMs` (or now with graceMs 0). */
  rotate(options?: { graceMs?: number }): Promise<{ kid: string; retired: string }>;
  /** Removes a key from the key set now (a compromised key needs no grace). */
  retire(kid: string): void;
  /** A new key that signs (sign({ kid })) but is not published yet: its tokens do not verify. */
  stageKey(): Promise<{ kid: string }>;
  /** Publishes a staged key: the key set gains its kid (it does not become the current signing key). */
  publish(kid: string): void;
  close(): Promise<void>;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: "sig" };
  return { kid, privateKey, jwk };
}

export async function startIssuer(options: IssuerOptions = {}): Promise<Issuer> {
  const audience = options.audience ?? EXAMPLE_AUDIENCE;
  const ttl = options.tokenTtlSec ?? 600;
  const defaultGrace = options.graceMs ?? 60_000;
  const clients: Record<string, string> = options.clients ?? {
    "demo-client": randomBytes(18).toString("base64url"),
  };
  // Published keys, the current (signing) one first.
  const keys: SigningKey[] = [await newKey()];
  // Staged: made, able to sign, not in the key set yet.
  const staged: SigningKey[] = [];
  let url = "";

  async function sign(o: SignOptions = {}): Promise<string> {
    const key =
      o.kid === undefined
        ? keys[0]!
        : (keys.find((k) => k.kid === o.kid) ?? staged.find((k) => k.kid === o.kid));
    if (!key) throw new Error(`no published or staged key ${o.kid}`);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: "at+jwt" })
      .setIssuer(url)
      .setSubject(o.subject ?? "demo-client")
      .setAudience(o.audience ?? audience)
      .setIssuedAt(now)
      .setExpirationTime(now + (o.expiresInSec ?? ttl))
      .setJti(randomUUID())
      .sign(key.privateKey);
  }

  function retire(kid: string): void {
    const i = keys.findIndex((k) => k.kid === kid);
    if (i < 0) return;
    if (keys.length === 1) throw new Error("cannot retire the only signing key: rotate() first");
    clearTimeout(keys[i]!.retireTimer);
    keys.splice(i, 1);
  }

  const server = createServer((req, res) => {
    handle(req).then(
      ([status, body]) => reply(res, status, body),
      (err: unknown) =>
        reply(res, 500, {
          error: "server_error",
          error_description: err instanceof Error ? err.message : String(err),
        }),
    );
  });

  async function handle(req: IncomingMessage): Promise<[number, unknown]> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/.well-known/openid-configuration") {
      return [
        200,
        {
          issuer: url,
          jwks_uri: `${url}/jwks`,
          token_endpoint: `${url}/token`,
          grant_types_supported: ["client_credentials"],
          token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
          id_token_signing_alg_values_supported: [ALG],
          response_types_supported: ["token"],
          subject_types_supported: ["public"],
        },
      ];
    }
    if (req.method === "GET" && path === "/jwks") return [200, { keys: keys.map((k) => k.jwk) }];
    if (req.method === "POST" && path === "/token") return token(req);
    return [
      404,
      {
        error: "not_found",
        error_description:
          "endpoints: GET /.well-known/openid-configuration, GET /jwks, POST /token",
      },
    ];
  }

  // RFC 6749 4.4: grant_type=client_credentials, the client authenticated by Basic or by
  // client_id/client_secret in the form; `audience` (optional) names the API the token is for.
  async function token(req: IncomingMessage): Promise<[number, unknown]> {
    const form = new URLSearchParams(await readBody(req));
    let id = form.get("client_id") ?? undefined;
    let secret = form.get("client_secret") ?? undefined;
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    if (basic) {
      const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      id = decodeURIComponent(decoded.slice(0, colon));
      secret = decodeURIComponent(decoded.slice(colon + 1));
    }
    if (form.get("grant_type") !== "client_credentials")
      return [
        400,
        {
          error: "unsupported_grant_type",
          error_description: "only grant_type=client_credentials",
        },
      ];
    const expected = id === undefined ? undefined : clients[id];
    if (expected === undefined || secret === undefined || !sameSecret(secret, expected)) {
      return [
        401,
        { error: "invalid_client", error_description: "unknown client or wrong secret" },
      ];
    }
    const access = await sign({ subject: id, audience: form.get("audience") || audience });
    return [200, { access_token: access, token_type: "Bearer", expires_in: ttl }];
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    jwksUri: `${url}/jwks`,
    tokenEndpoint: `${url}/token`,
    audience,
    clients,
    get kids() {
      return keys.map((k) => k.kid);
    },
    sign,
    async rotate(o = {}) {
      const next = await newKey();
      const old = keys[0]!;
      keys.unshift(next);
      const grace = o.graceMs ?? defaultGrace;
      if (grace <= 0) retire(old.kid);
      else {
        old.retireTimer = setTimeout(() => retire(old.kid), grace);
        old.retireTimer.unref();
      }
      return { kid: next.kid, retired: old.kid };
    },
    retire,
    async stageKey() {
      const key = await newKey();
      staged.push(key);
      return { kid: key.kid };
    },
    publish(kid) {
      const i = staged.findIndex((k) => k.kid === kid);
      if (i < 0)
        throw new Error(
          `no staged key ${kid}${keys.some((k) => k.kid === kid) ? " (it is already published)" : ""}`,
        );
      keys.splice(1, 0, ...staged.splice(i, 1));
    },
    async close() {
      for (const k of keys) clearTimeout(k.retireTimer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      "content-type": "application/json",
      "cache-control": "no-store",
      "content-length": Buffer.byteLength(text),
    })
    .end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = "";
  req.setEncoding("utf8");
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 16 * 1024) break;
  }
  return text;
}
