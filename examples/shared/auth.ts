// The example's bearer-token check. Deliberately small and local: a fixed set of accepted tokens.
// A real deployment verifies signed tokens (OIDC/JWT) instead; the point here is the propagation:
// the Bridge passes the caller's `authorization` header on to the Processor, whose outgoing event
// and callback carry it on by themselves (the call context, docs/call-context.md), and every
// service checks it before doing any work.

import { Code, StatusError, type Interceptor, type Metadata } from "@grabbit/runtime";

/** The tokens the example accepts unless EXAMPLE_TOKENS (comma-separated) says otherwise. */
export const DEFAULT_TOKENS = ["demo-token"];

export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = (env.EXAMPLE_TOKENS ?? "").split(",").map((t) => t.trim()).filter(Boolean);
  return list.length > 0 ? list : DEFAULT_TOKENS;
}

/** `{ authorization: "Bearer <token>" }`, the metadata a caller sends. */
export function bearer(token: string): Metadata {
  return { authorization: `Bearer ${token}` };
}

export class TokenCheck {
  private readonly accepted: ReadonlySet<string>;

  constructor(tokens: Iterable<string>) {
    this.accepted = new Set(tokens);
    if (this.accepted.size === 0) throw new TypeError("TokenCheck needs at least one accepted token");
  }

  /** The token in an `authorization` header value, if the header is `Bearer <accepted token>`. */
  verify(header: string | undefined): string | undefined {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    return match && this.accepted.has(match[1]!) ? match[1] : undefined;
  }

  /** Like verify, but throws UNAUTHENTICATED: the shape gRPC and AMQP RPC callers expect. */
  require(header: string | undefined): string {
    const token = this.verify(header);
    if (token === undefined) {
      throw new StatusError(Code.UNAUTHENTICATED, header ? "the bearer token is not valid" : "no bearer token in the authorization metadata");
    }
    return token;
  }
}

/**
 * A server interceptor (gRPC or AMQP RPC: the runtime gives both the same shape) that refuses calls
 * without a valid bearer token before the handler runs.
 */
export function requireBearer(check: TokenCheck): Interceptor {
  return (next) => async (call) => {
    if (call.side === "server") check.require(call.metadata.authorization);
    return next(call);
  };
}
