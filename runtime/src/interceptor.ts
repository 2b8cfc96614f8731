// Interceptors wrap calls for cross-cutting work (tokens, tracing, logging). One shape serves
// clients and servers on both transports, so one token-propagation interceptor works everywhere.

import type { MethodDesc, TransportName } from "./descriptors.js";
import type { Metadata } from "./metadata.js";

/**
 * What a call carries in, as the transports build it: one message (unary and server-streaming
 * calls) or a stream of them (client- and bidi-streaming calls), never both. CallRequest keeps the
 * two as optional fields so that interceptors may replace either; this is the shape it starts with.
 */
export type CallInput =
  | { readonly message: unknown; readonly messages?: undefined }
  | { readonly message?: undefined; readonly messages: AsyncIterable<unknown> };

export interface CallRequest {
  readonly method: MethodDesc;
  readonly transport: TransportName;
  /** "client" when a client sends the call, "server" when a server receives it. */
  readonly side: "client" | "server";
  /** Mutable: a client interceptor adds headers here; a server interceptor reads them. */
  readonly metadata: Metadata;
  readonly deadline: number | undefined;
  readonly signal: AbortSignal;
  /** The request message for unary and server-streaming calls. */
  message?: unknown;
  /** The request stream for client- and bidi-streaming calls. */
  messages?: AsyncIterable<unknown>;
  /** Server side: the context the handler will get (values set here reach the handler). */
  readonly values: Map<string | symbol, unknown>;
  readonly peer: string | undefined;
}

export interface CallResponse {
  /** The response for unary and client-streaming calls. */
  message?: unknown;
  /** The response stream for server- and bidi-streaming calls. */
  messages?: AsyncIterable<unknown>;
  /** Response metadata (headers and trailers together). */
  readonly metadata: Metadata;
}

export type CallNext = (request: CallRequest) => Promise<CallResponse>;
export type Interceptor = (next: CallNext) => CallNext;

/** Applies interceptors so that the first in the list is the outermost. */
export function applyInterceptors(next: CallNext, interceptors: readonly Interceptor[] | undefined): CallNext {
  if (!interceptors || interceptors.length === 0) return next;
  let call = next;
  for (let i = interceptors.length - 1; i >= 0; i--) call = interceptors[i]!(call);
  return call;
}
