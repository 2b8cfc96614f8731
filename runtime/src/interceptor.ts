// Interceptors wrap calls for cross-cutting work (tokens, tracing, logging). One shape serves
// clients and servers on both transports, so one token-propagation interceptor works everywhere.

import type { MethodDesc, TransportName } from "./descriptors.js";
import type { Metadata } from "./metadata.js";
import { Code, StatusError } from "./status.js";

/**
 * What a call carries in, tagged by `stream`: one message (unary and server-streaming calls,
 * `stream: false`) or a stream of them (client- and bidi-streaming calls, `stream: true`). The
 * method's kind decides which; the transports set the tag, interceptors narrow on it.
 */
export type CallInput =
  | { readonly stream: false; message: unknown }
  | { readonly stream: true; messages: AsyncIterable<unknown> };

/** The fields every call request has, whatever it carries. */
export interface CallRequestBase {
  readonly method: MethodDesc;
  readonly transport: TransportName;
  /** "client" when a client sends the call, "server" when a server receives it. */
  readonly side: "client" | "server";
  /** Mutable: a client interceptor adds headers here; a server interceptor reads them. */
  readonly metadata: Metadata;
  readonly deadline: number | undefined;
  readonly signal: AbortSignal;
  /** Server side: the context the handler will get (values set here reach the handler). */
  readonly values: Map<string | symbol, unknown>;
  readonly peer: string | undefined;
}

/** A unary or server-streaming call (and an event): one request message, which an interceptor may replace. */
export interface UnaryCallRequest extends CallRequestBase {
  readonly stream: false;
  message: unknown;
}

/** A client- or bidi-streaming call: a request stream, which an interceptor may replace (e.g. wrap). */
export interface StreamCallRequest extends CallRequestBase {
  readonly stream: true;
  messages: AsyncIterable<unknown>;
}

/** What an interceptor gets: narrow on `stream` before reading `message` or `messages`. */
export type CallRequest = UnaryCallRequest | StreamCallRequest;

/** The response of a unary or client-streaming call: one message. */
export interface UnaryCallResponse {
  readonly stream: false;
  message: unknown;
  /** Response metadata (headers and trailers together). */
  readonly metadata: Metadata;
}

/** The response of a server- or bidi-streaming call: a stream of messages. */
export interface StreamCallResponse {
  readonly stream: true;
  messages: AsyncIterable<unknown>;
  /** Response metadata (headers and trailers together). */
  readonly metadata: Metadata;
}

/** What `next` resolves to: narrow on `stream` before reading `message` or `messages`. */
export type CallResponse = UnaryCallResponse | StreamCallResponse;

export type CallNext = (request: CallRequest) => Promise<CallResponse>;
export type Interceptor = (next: CallNext) => CallNext;

/** Whether calls of this kind send a request stream (so their CallRequest has `stream: true`). */
export function requestStreams(kind: MethodDesc["kind"]): boolean {
  return kind === "client_streaming" || kind === "bidi_streaming";
}

/** Whether calls of this kind answer with a stream (so their CallResponse has `stream: true`). */
export function responseStreams(kind: MethodDesc["kind"]): boolean {
  return kind === "server_streaming" || kind === "bidi_streaming";
}

/**
 * The one request message of a call whose kind takes one; an interceptor that passed on a stream
 * instead gets INTERNAL naming the method (not a silent `undefined` for the handler).
 */
export function requestMessage(request: CallRequest): unknown {
  if (request.stream)
    throw new StatusError(
      Code.INTERNAL,
      `${request.method.path}: an interceptor passed on a request stream for a ${request.method.kind} call, which takes one message`,
    );
  return request.message;
}

/** The request stream of a client- or bidi-streaming call; INTERNAL if an interceptor passed on one message instead. */
export function requestStream(request: CallRequest): AsyncIterable<unknown> {
  if (!request.stream)
    throw new StatusError(
      Code.INTERNAL,
      `${request.method.path}: an interceptor passed on one request message for a ${request.method.kind} call, which takes a stream`,
    );
  return request.messages;
}

/** The one response message of a unary or client-streaming call; INTERNAL if an interceptor returned a stream. */
export function responseMessage(response: CallResponse, method: MethodDesc): unknown {
  if (response.stream)
    throw new StatusError(
      Code.INTERNAL,
      `${method.path}: an interceptor returned a response stream for a ${method.kind} call, which answers with one message`,
    );
  return response.message;
}

/** The response stream of a server- or bidi-streaming call; INTERNAL if an interceptor returned one message. */
export function responseStream(response: CallResponse, method: MethodDesc): AsyncIterable<unknown> {
  if (!response.stream)
    throw new StatusError(
      Code.INTERNAL,
      `${method.path}: an interceptor returned one response message for a ${method.kind} call, which answers with a stream`,
    );
  return response.messages;
}

/** Applies interceptors so that the first in the list is the outermost. */
export function applyInterceptors(
  next: CallNext,
  interceptors: readonly Interceptor[] | undefined,
): CallNext {
  if (!interceptors || interceptors.length === 0) return next;
  let call = next;
  for (let i = interceptors.length - 1; i >= 0; i--) call = interceptors[i]!(call);
  return call;
}
