// Client side of bearer authentication: puts `authorization: Bearer <token>` on every outgoing call
// (gRPC metadata, AMQP RPC headers, event headers) through the one Interceptor shape.

import type { Interceptor } from "../interceptor.js";
import type { Metadata } from "../metadata.js";
import { Code, StatusError, messageOf } from "../status.js";

/** A fixed token, or a function that returns the current one (refreshing it as it likes). */
export type TokenSource = string | (() => string | Promise<string>);

export interface BearerTokenOptions {
  /** Replace an `authorization` the caller set itself. Default false: an explicit one wins. */
  override?: boolean;
}

/** The header that carries the token, as on both transports. */
export const AUTHORIZATION = "authorization";

/**
 * A client interceptor that adds the bearer token. A provider that throws or returns an empty
 * token fails the call with UNAUTHENTICATED before anything is sent.
 */
export function bearerToken(source: TokenSource, options: BearerTokenOptions = {}): Interceptor {
  const get = typeof source === "string" ? () => source : source;
  return (next) => async (req) => {
    if (req.side !== "client" || (!options.override && req.metadata[AUTHORIZATION] !== undefined))
      return next(req);
    let token: string;
    try {
      token = await get();
    } catch (err) {
      throw new StatusError(
        Code.UNAUTHENTICATED,
        `could not get a bearer token: ${messageOf(err)}`,
        { cause: err },
      );
    }
    if (typeof token !== "string" || token.trim() === "")
      throw new StatusError(Code.UNAUTHENTICATED, "the token provider returned no token");
    (req.metadata as Metadata)[AUTHORIZATION] = `Bearer ${token.trim()}`;
    return next(req);
  };
}

/** Tokens longer than this are refused unparsed: a header is no place for megabytes. */
export const MAX_TOKEN_CHARS = 16 * 1024;

/** The token in an `authorization: Bearer <token>` entry; throws UNAUTHENTICATED with the reason. */
export function bearerFrom(metadata: Metadata): string {
  const value = metadata[AUTHORIZATION];
  if (value === undefined || value === "")
    throw new StatusError(
      Code.UNAUTHENTICATED,
      "no bearer token (the authorization header is missing)",
    );
  if (value.length > MAX_TOKEN_CHARS + 7)
    throw new StatusError(
      Code.UNAUTHENTICATED,
      `the authorization header is longer than ${MAX_TOKEN_CHARS} characters`,
    );
  const m = /^bearer[ \t]+([^\s]+)[ \t]*$/i.exec(value);
  if (!m)
    throw new StatusError(
      Code.UNAUTHENTICATED,
      "the authorization header is not of the form 'Bearer <token>'",
    );
  return m[1]!;
}
