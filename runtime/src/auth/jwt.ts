// Server side of bearer authentication: JWT verification with `jose`, as a hook usable anywhere and
// as a server interceptor for gRPC, AMQP RPC and event consumers alike. Verified claims reach the
// handler through ctx.values (claimsOf(ctx)). Keys: a secret, a public key, a local key set, or an
// issuer's key set over HTTP (refetched for an unknown kid; unreachable = UNAVAILABLE, not a refusal).

import { createPublicKey, type KeyObject } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  importJWK,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWSAlgorithm,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from "jose";
import type { CallRequest, Interceptor } from "../interceptor.js";
import type { Metadata } from "../metadata.js";
import { Code, StatusError, messageOf } from "../status.js";
import { bearerFrom } from "./bearer.js";

export type JwtClaims = JWTPayload;

/** Where the keys come from; exactly one. No "none" algorithm is ever accepted. */
export type JwtKeys =
  /** A shared secret for HS256/384/512 (at least 32 bytes: shorter ones are refused at construction). */
  | { secret: string | Uint8Array }
  /** A public key: PEM (SPKI or certificate), a Node KeyObject, or a public JWK. */
  | { publicKey: string | KeyObject | JWK }
  /** A local JSON Web Key Set (`{ keys: [...] }`); the token's `kid` picks the key. */
  | { jwks: JSONWebKeySet }
  /**
   * A key set served over HTTP (an OpenID issuer's `jwks_uri`), fetched on first use and kept for
   * `cacheMaxAgeMs` (default 10 min): a key the issuer retired is refused once the copy is refreshed.
   * A token whose `kid` is not in the copy makes it fetch again (at most once per `cooldownMs`,
   * default 30 s; a cooldown of up to 5 s is waited out, so a key rotated in just after a fetch is
   * accepted too), so a rotated-in key is accepted without a restart. A key set that cannot be
   * fetched fails the call with UNAVAILABLE (retryable), not UNAUTHENTICATED.
   */
  | { jwksUrl: string | URL; cacheMaxAgeMs?: number; cooldownMs?: number; timeoutMs?: number };

export interface JwtVerifierOptions {
  keys: JwtKeys;
  /** Accepted algorithms. Default: from the keys (HS256/384/512 for a secret, the key's own for a public key). */
  algorithms?: string[];
  /** Required `iss`, one of these when a list. */
  issuer?: string | string[];
  /** Required `aud` (the token must name one of these). */
  audience?: string | string[];
  /** Leeway for `exp` and `nbf` between clocks. Default 30 s. */
  clockToleranceSec?: number;
  /** Refuse tokens without `exp`. Default true: a token that never expires is a password. */
  requireExpiry?: boolean;
  /** Refuse tokens issued (`iat`) longer ago than this. */
  maxTokenAgeSec?: number;
  /** Claims that must be present. */
  requiredClaims?: string[];
}

/** Verifies a compact JWT; rejects with UNAUTHENTICATED and a reason a caller may see. */
export type JwtVerifier = (token: string) => Promise<JwtClaims>;

const MIN_SECRET_BYTES = 32;
/** A remote key set's cooldown up to this long is waited out for a token with an unknown kid. */
const MAX_WAITED_COOLDOWN_MS = 5000;

export function jwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const { key, algorithms } = resolveKeys(options.keys, options.algorithms);
  const remote = "jwksUrl" in options.keys ? String(options.keys.jwksUrl) : undefined;
  // A JWK is imported asynchronously; a bad one fails every verification (with its reason), not the process.
  if (key instanceof Promise) key.catch(() => {});
  const verifyOptions: JWTVerifyOptions = {
    algorithms: algorithms as JWSAlgorithm[],
    clockTolerance: options.clockToleranceSec ?? 30,
    requiredClaims: [
      ...((options.requireExpiry ?? true) ? ["exp"] : []),
      ...(options.requiredClaims ?? []),
    ],
    ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
    ...(options.audience !== undefined ? { audience: options.audience } : {}),
    ...(options.maxTokenAgeSec !== undefined ? { maxTokenAge: options.maxTokenAgeSec } : {}),
  };
  // A token of a key the copy does not have: jose fetches again unless its cooldown forbids it, and a
  // fetch already under way (begun before the key was published) may still lack it. With a short
  // cooldown, this verifier then waits the cooldown out and verifies against a fetch that BEGAN after
  // the token failed (one fetch shared by the calls waiting; a second round if the shared one had
  // already begun). A rotated-in key is so accepted even right after a fetch or during a slow one; a
  // forged kid costs at most one fetch per cooldown and is refused after it.
  let refetch: Promise<number> | undefined;
  const cooldownMs = "jwksUrl" in options.keys ? (options.keys.cooldownMs ?? 30_000) : Infinity;
  const fetchAgain = (set: { coolingDown?: boolean; reload(): Promise<void> }): Promise<number> =>
    (refetch ??= new Promise<void>((resolve) =>
      setTimeout(resolve, set.coolingDown ? cooldownMs : 0).unref?.(),
    )
      .then(async () => {
        const began = Date.now();
        await set.reload();
        return began;
      })
      .finally(() => (refetch = undefined)));
  return async (token) => {
    try {
      try {
        const { payload } = await jwtVerify(token, (await key) as never, verifyOptions);
        return payload;
      } catch (err) {
        if (
          !remote ||
          !(err instanceof joseErrors.JWKSNoMatchingKey) ||
          cooldownMs > MAX_WAITED_COOLDOWN_MS
        )
          throw err;
        const set = key as unknown as { coolingDown?: boolean; reload(): Promise<void> };
        const failedAt = Date.now();
        if ((await fetchAgain(set)) < failedAt) await fetchAgain(set);
        const { payload } = await jwtVerify(token, (await key) as never, verifyOptions);
        return payload;
      }
    } catch (err) {
      if (remote && unreachable(err))
        throw new StatusError(
          Code.UNAVAILABLE,
          `cannot fetch the key set from ${remote}: ${reasonOf(err)}`,
          { cause: err },
        );
      throw new StatusError(Code.UNAUTHENTICATED, `invalid token: ${reasonOf(err)}`, {
        cause: err,
      });
    }
  };
}

/** A failure to get the remote key set (network, timeout, not 200, not JSON): the token was not judged. */
function unreachable(err: unknown): boolean {
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return true;
  if (err instanceof joseErrors.JOSEError)
    return err.code === "ERR_JOSE_GENERIC" && /JSON Web Key Set HTTP response/.test(err.message);
  // fetch() itself rejects with a TypeError (connection refused, DNS...).
  return err instanceof TypeError;
}

/** Key material in the form jwtVerify takes it, plus the algorithms it may be used with. */
function resolveKeys(
  keys: JwtKeys,
  algorithms: string[] | undefined,
): { key: Uint8Array | KeyObject | JWTVerifyGetKey | Promise<unknown>; algorithms: string[] } {
  if ("secret" in keys) {
    const secret =
      typeof keys.secret === "string" ? new TextEncoder().encode(keys.secret) : keys.secret;
    if (secret.byteLength < MIN_SECRET_BYTES)
      throw new TypeError(`an HMAC secret needs at least ${MIN_SECRET_BYTES} bytes`);
    const algs = algorithms ?? ["HS256", "HS384", "HS512"];
    if (algs.some((a) => !a.startsWith("HS")))
      throw new TypeError("a shared secret only verifies HS256/HS384/HS512 tokens");
    return { key: secret, algorithms: algs };
  }
  if ("jwks" in keys) {
    if (!Array.isArray(keys.jwks?.keys) || keys.jwks.keys.length === 0)
      throw new TypeError("the JWKS has no keys");
    const fromKeys = keys.jwks.keys
      .map((k) => k.alg)
      .filter((a): a is string => typeof a === "string");
    const algs =
      algorithms ??
      (fromKeys.length > 0
        ? [...new Set(fromKeys)]
        : ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"]);
    return { key: createLocalJWKSet(keys.jwks), algorithms: algs };
  }
  if ("jwksUrl" in keys) {
    const url = new URL(keys.jwksUrl);
    if (url.protocol !== "https:" && url.protocol !== "http:")
      throw new TypeError(`jwksUrl must be an http(s) URL, not ${url.protocol}`);
    const key = createRemoteJWKSet(url, {
      ...(keys.cacheMaxAgeMs !== undefined ? { cacheMaxAge: keys.cacheMaxAgeMs } : {}),
      ...(keys.cooldownMs !== undefined ? { cooldownDuration: keys.cooldownMs } : {}),
      ...(keys.timeoutMs !== undefined ? { timeoutDuration: keys.timeoutMs } : {}),
    });
    return {
      key,
      algorithms: algorithms ?? ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"],
    };
  }
  const pk = keys.publicKey;
  if (typeof pk === "object" && !("asymmetricKeyType" in pk)) {
    // A JWK: its own alg, else the caller's list.
    const alg = (pk as JWK).alg ?? algorithms?.[0];
    if (!alg) throw new TypeError("a public JWK needs an alg (in the key or in algorithms)");
    return { key: importJWK(pk as JWK, alg), algorithms: algorithms ?? [alg] };
  }
  const keyObject = typeof pk === "string" ? createPublicKey(pk) : (pk as KeyObject);
  if (keyObject.type !== "public")
    throw new TypeError(
      "publicKey must be a public key (never ship the private key to a verifier)",
    );
  return { key: keyObject, algorithms: algorithms ?? defaultAlgorithms(keyObject) };
}

function defaultAlgorithms(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return ["RS256", "RS384", "RS512"];
    case "rsa-pss":
      return ["PS256", "PS384", "PS512"];
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return [curve === "secp384r1" ? "ES384" : curve === "secp521r1" ? "ES512" : "ES256"];
    }
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    default:
      throw new TypeError(`unsupported public key type ${key.asymmetricKeyType}`);
  }
}

// jose's messages are short and safe to show; the code names the kind for the rest.
function reasonOf(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return `the token expired (${err.message})`;
  if (err instanceof joseErrors.JWTClaimValidationFailed) return err.message;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the signature does not verify";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return "the token's algorithm is not allowed";
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no key in the key set matches the token";
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid)
    return `malformed token (${err.message})`;
  if (err instanceof joseErrors.JOSEError) return err.message;
  return messageOf(err);
}

/** Under this key in ctx.values (and CallRequest.values) the verified claims reach handlers. */
export const JWT_CLAIMS: unique symbol = Symbol.for("grabbit.auth.claims");

/** The verified claims of the call, or undefined when no auth interceptor ran. */
export function claimsOf(ctx: {
  readonly values: Map<string | symbol, unknown>;
}): JwtClaims | undefined {
  return ctx.values.get(JWT_CLAIMS) as JwtClaims | undefined;
}

export interface RequireJwtOptions extends JwtVerifierOptions {
  /** Calls that need no token (health checks...). */
  skip?: (req: CallRequest) => boolean;
  /**
   * After verification: return false (or throw) to refuse with PERMISSION_DENIED. To look at the
   * request message, narrow first: `!req.stream && req.message` (streams carry `req.messages`).
   */
  authorize?: (claims: JwtClaims, req: CallRequest) => boolean | Promise<boolean>;
}

/**
 * A server interceptor (gRPC, AMQP RPC, event consumers): no valid bearer token = UNAUTHENTICATED,
 * refused by `authorize` = PERMISSION_DENIED; otherwise the claims go to values[JWT_CLAIMS].
 * On the client side it does nothing, so one interceptor list may serve both.
 */
export function requireJwt(options: RequireJwtOptions): Interceptor {
  const verify = jwtVerifier(options);
  return (next) => async (req) => {
    if (req.side !== "server" || options.skip?.(req)) return next(req);
    const claims = await verifyMetadata(req.metadata, verify);
    if (options.authorize) {
      let ok: boolean;
      try {
        ok = await options.authorize(claims, req);
      } catch (err) {
        throw err instanceof StatusError
          ? err
          : new StatusError(Code.PERMISSION_DENIED, messageOf(err), { cause: err });
      }
      if (!ok)
        throw new StatusError(
          Code.PERMISSION_DENIED,
          `${claims.sub ?? "the caller"} may not call ${req.method.path}`,
        );
    }
    req.values.set(JWT_CLAIMS, claims);
    return next(req);
  };
}

/** The hook without the interceptor: the bearer token in `metadata`, verified. */
export function verifyMetadata(metadata: Metadata, verify: JwtVerifier): Promise<JwtClaims> {
  let token: string;
  try {
    token = bearerFrom(metadata);
  } catch (err) {
    return Promise.reject(err);
  }
  return verify(token);
}
