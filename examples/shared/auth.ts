// The example's identity, on the services' side: who issues tokens (an OpenID issuer, found by its
// discovery document at EXAMPLE_ISSUER) and how a service checks one. Every service verifies the
// bearer token with the runtime's jwtVerifier against the issuer's key set (fetched over HTTP and
// refreshed by itself, so a key rotation needs no restart): the signature, `iss`, `aud`
// (EXAMPLE_AUDIENCE, default grabbit-example) and `exp`. Clients get tokens from the issuer's token
// endpoint (TokenClient, client credentials). No token is configured anywhere.
//
// Failures: a token that does not verify is UNAUTHENTICATED with the reason (expired, signed by a key
// the issuer does not publish, another audience...); an issuer that cannot be reached is UNAVAILABLE
// (retryable: an event is retried, not dead-lettered, while the issuer is down).

import { Code, StatusError, type Interceptor } from "@grabbit/runtime";
import {
  JWT_CLAIMS,
  jwtVerifier,
  verifyMetadata,
  type JwtClaims,
  type JwtVerifier,
} from "@grabbit/runtime/auth";
import { EXAMPLE_AUDIENCE } from "./issuer.js";

export interface IdentityOptions {
  /** The issuer identifier, which is also where its discovery document is (`<issuer>/.well-known/openid-configuration`). */
  issuer: string;
  /** The audience this system's tokens must name. Default "grabbit-example". */
  audience?: string;
  /** How long a fetched key set is used before it is fetched again (a retired key stops working then). Default 5 s. */
  jwksMaxAgeMs?: number;
  /** The least time between two fetches caused by tokens with an unknown `kid`. Default 1 s. */
  jwksCooldownMs?: number;
}

/** What the discovery document says (the fields the example uses). */
export interface IssuerMetadata {
  issuer: string;
  jwks_uri: string;
  token_endpoint: string;
}

/** Reads `<issuer>/.well-known/openid-configuration`; its `issuer` must be the one asked for. */
export async function discover(issuer: string): Promise<IssuerMetadata> {
  const base = issuer.replace(/\/+$/, "");
  let res: Response;
  try {
    res = await fetch(`${base}/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(5000),
    });
  } catch (err) {
    throw new Error(
      `cannot reach the token issuer at ${base} (${err instanceof Error ? err.message : String(err)}): start it (examples/issuer/main.ts) or set EXAMPLE_ISSUER`,
      { cause: err },
    );
  }
  if (!res.ok)
    throw new Error(
      `the token issuer at ${base} answered ${res.status} for its discovery document`,
    );
  const meta = (await res.json()) as Partial<IssuerMetadata>;
  if (
    meta.issuer !== issuer ||
    typeof meta.jwks_uri !== "string" ||
    typeof meta.token_endpoint !== "string"
  ) {
    throw new Error(
      `the discovery document at ${base} does not describe issuer ${issuer} (issuer ${JSON.stringify(meta.issuer)})`,
    );
  }
  return meta as IssuerMetadata;
}

/** A service's token check: one key set cache shared by its REST edge, its servers and its consumers. */
export class Identity {
  readonly verifyToken: JwtVerifier;

  private constructor(
    readonly metadata: IssuerMetadata,
    readonly audience: string,
    options: IdentityOptions,
  ) {
    this.verifyToken = jwtVerifier({
      keys: {
        jwksUrl: metadata.jwks_uri,
        cacheMaxAgeMs: options.jwksMaxAgeMs ?? 5000,
        cooldownMs: options.jwksCooldownMs ?? 1000,
      },
      algorithms: ["ES256", "RS256"],
      issuer: metadata.issuer,
      audience: this.audience,
      // Services of one machine share a clock; the default 30 s would let an expired token live on.
      clockToleranceSec: 5,
    });
  }

  static async connect(options: IdentityOptions): Promise<Identity> {
    return new Identity(
      await discover(options.issuer),
      options.audience ?? EXAMPLE_AUDIENCE,
      options,
    );
  }

  /** The verified claims of an `authorization` value; StatusError UNAUTHENTICATED (or UNAVAILABLE) otherwise. */
  verify(authorization: string | undefined): Promise<JwtClaims> {
    return verifyMetadata(authorization === undefined ? {} : { authorization }, this.verifyToken);
  }

  /**
   * A server interceptor (gRPC and AMQP RPC alike) that refuses a call without a valid token before
   * the handler runs; the claims reach the handler as values[JWT_CLAIMS] (claimsOf(ctx)).
   */
  interceptor(): Interceptor {
    return (next) => async (call) => {
      if (call.side !== "server") return next(call);
      call.values.set(JWT_CLAIMS, await verifyMetadata(call.metadata, this.verifyToken));
      return next(call);
    };
  }
}

/** The Identity of EXAMPLE_ISSUER (required), EXAMPLE_AUDIENCE, EXAMPLE_JWKS_MAX_AGE_MS, EXAMPLE_JWKS_COOLDOWN_MS. */
export function identityFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Identity> {
  const issuer = env.EXAMPLE_ISSUER;
  if (!issuer)
    return Promise.reject(
      new Error(
        "EXAMPLE_ISSUER is not set: start the issuer (node --import tsx examples/issuer/main.ts) and export the URL it prints",
      ),
    );
  const ms = (name: string) => (env[name] ? Number(env[name]) : undefined);
  return Identity.connect({
    issuer,
    ...(env.EXAMPLE_AUDIENCE ? { audience: env.EXAMPLE_AUDIENCE } : {}),
    ...(ms("EXAMPLE_JWKS_MAX_AGE_MS") !== undefined
      ? { jwksMaxAgeMs: ms("EXAMPLE_JWKS_MAX_AGE_MS")! }
      : {}),
    ...(ms("EXAMPLE_JWKS_COOLDOWN_MS") !== undefined
      ? { jwksCooldownMs: ms("EXAMPLE_JWKS_COOLDOWN_MS")! }
      : {}),
  });
}

/**
 * A client of the issuer's token endpoint (client credentials): gets a token, keeps it until shortly
 * before it expires, then gets a new one.
 */
export class TokenClient {
  private cached: { token: string; until: number } | undefined;

  constructor(
    readonly tokenEndpoint: string,
    readonly clientId: string,
    private readonly clientSecret: string,
    readonly audience?: string,
  ) {}

  async token(): Promise<string> {
    if (this.cached && Date.now() < this.cached.until) return this.cached.token;
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: this.clientId,
      client_secret: this.clientSecret,
    });
    if (this.audience) form.set("audience", this.audience);
    const res = await fetch(this.tokenEndpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: form,
      signal: AbortSignal.timeout(5000),
    });
    const body = (await res.json().catch(() => ({}))) as {
      access_token?: string;
      expires_in?: number;
      error?: string;
      error_description?: string;
    };
    if (!res.ok || !body.access_token) {
      throw new StatusError(
        Code.UNAUTHENTICATED,
        `the token endpoint refused client ${this.clientId}: ${body.error ?? res.status}${body.error_description ? ` (${body.error_description})` : ""}`,
      );
    }
    // Renewed a minute early (or at half its life for short ones), so no call leaves with a token about to expire.
    const life = (body.expires_in ?? 60) * 1000;
    this.cached = {
      token: body.access_token,
      until: Date.now() + Math.max(life - 60_000, life / 2),
    };
    return body.access_token;
  }
}

/** `{ authorization: "Bearer <token>" }`, the metadata a caller sends. */
export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}
