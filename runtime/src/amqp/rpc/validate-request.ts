// Whether a request delivered to a service's queue can be served, and how (docs/wire-contract.md):
// the checks a server makes before any handler runs, in the order the contract answers them. Pure:
// the delivery's properties and the service's method table in, a verdict out; the caller replies,
// dead-letters or serves. Every refusal carries the status code and a sentence for the caller.

import type { HandlerContext } from "../../context.js";
import type { MethodDesc, ServiceDesc } from "../../descriptors.js";
import { Code, messageOf } from "../../status.js";
import { requestDeadline, requestTimeoutMs } from "./deadline.js";
import { FRAME, HEADER_FRAME, HEADER_METHOD, readFrame, readText } from "./wire.js";

/** One method of the served service, and its handler when the handlers object has one. */
export interface MethodEntry {
  readonly key: string;
  readonly method: MethodDesc;
  /** Undefined when the handlers object has no function for the method. */
  readonly handler: ((request: unknown, ctx: HandlerContext) => unknown) | undefined;
  readonly unsupported: string | undefined;
}

/** The service's methods by path (the `rpc-method` header), each with its handler if there is one. */
export function methodTable(service: ServiceDesc, handlers: object): Map<string, MethodEntry> {
  const table = new Map<string, MethodEntry>();
  for (const [key, method] of Object.entries(service.methods)) {
    const fn = (handlers as Record<string, unknown>)[key];
    const unsupported =
      typeof fn !== "function" ? `${method.path} is not implemented by this server` : undefined;
    table.set(method.path, {
      key,
      method,
      handler: unsupported === undefined ? (fn as MethodEntry["handler"]) : undefined,
      unsupported,
    });
  }
  return table;
}

/** The parts of a delivery the checks read (amqplib's MessageProperties fit). */
export interface RequestProperties {
  readonly replyTo?: unknown;
  readonly correlationId?: unknown;
  readonly expiration?: unknown;
  readonly headers?: Record<string, unknown> | undefined;
}

export type RequestVerdict =
  /** No reply_to: nobody can be answered, so the request is kept in the dead-letter queue. */
  | { readonly kind: "dead-letter"; readonly reason: string }
  /** No or an unknown `rpc-method`: UNIMPLEMENTED, with no method to log the call under. */
  | { readonly kind: "unknown-method"; readonly path: string | undefined; readonly text: string }
  /** A known method refused before its handler runs. */
  | {
      readonly kind: "refuse";
      readonly entry: MethodEntry;
      readonly code: Code;
      readonly text: string;
    }
  /** To serve: a unary request (its body still to decode) or a stream's open. */
  | {
      readonly kind: "serve";
      readonly entry: MethodEntry;
      readonly streaming: boolean;
      readonly deadline: number | undefined;
    };

export interface ValidateContext {
  readonly methods: ReadonlyMap<string, MethodEntry>;
  /** For messages: the service's full name and its request queue. */
  readonly service: string;
  readonly queue: string;
  /** True (once) when the caller cancelled this call before its request arrived. */
  readonly cancelledBefore: (correlationId: unknown) => boolean;
  /** When the request arrived: its deadline counts from here. */
  readonly arrival: number;
}

/**
 * The contract's checks, in order: reply_to; rpc-method known and implemented; framed as its kind
 * (an `open` for a streaming method, none for a unary one); not cancelled already; its deadline not
 * passed on arrival (`rpc-timeout-ms` of 0 or less).
 */
export function validateRequest(props: RequestProperties, ctx: ValidateContext): RequestVerdict {
  const headers = props.headers;
  if (!props.replyTo)
    return { kind: "dead-letter", reason: "the request has no reply_to, so no reply can be sent" };
  const path = readText(headers, HEADER_METHOD);
  const entry = path === undefined ? undefined : ctx.methods.get(path);
  if (entry === undefined) {
    const what =
      path === undefined ? "the request has no rpc-method header" : `unknown method ${path}`;
    return {
      kind: "unknown-method",
      path,
      text: `${what} (service ${ctx.service} on queue "${ctx.queue}")`,
    };
  }
  const method = entry.method;
  if (entry.handler === undefined)
    return {
      kind: "refuse",
      entry,
      code: Code.UNIMPLEMENTED,
      text: entry.unsupported ?? `${method.path} is not implemented`,
    };
  const streaming = method.kind !== "unary";
  if (streaming !== (readFrame(headers) === FRAME.open)) {
    const text = streaming
      ? `${method.path} is a ${method.kind.replace("_", "-")} method: open it as a stream (${HEADER_FRAME}: open), not as a unary request`
      : `${method.path} is a unary method, not a stream`;
    return { kind: "refuse", entry, code: Code.INVALID_ARGUMENT, text };
  }
  if (ctx.cancelledBefore(props.correlationId)) {
    return {
      kind: "refuse",
      entry,
      code: Code.CANCELLED,
      text: `${method.path}: the caller cancelled the call before it was served`,
    };
  }
  const timeoutMs = requestTimeoutMs(headers, props.expiration, streaming);
  if (timeoutMs !== undefined && timeoutMs <= 0) {
    return {
      kind: "refuse",
      entry,
      code: Code.DEADLINE_EXCEEDED,
      text: `${method.path}: the deadline had passed when the request arrived`,
    };
  }
  return { kind: "serve", entry, streaming, deadline: requestDeadline(timeoutMs, ctx.arrival) };
}

/** A request body decoded as `method`'s input, or the refusal: over the limit, or undecodable. */
export function decodeRequest(
  method: MethodDesc,
  body: Uint8Array,
  maxMessageBytes: number,
): { request: unknown } | { code: Code; text: string } {
  if (body.length > maxMessageBytes) {
    return {
      code: Code.RESOURCE_EXHAUSTED,
      text: `${method.path}: the request is ${body.length} bytes, over the limit of ${maxMessageBytes}`,
    };
  }
  try {
    return { request: method.input.decode(body) };
  } catch (err) {
    return {
      code: Code.INVALID_ARGUMENT,
      text: `could not decode the request as ${method.input.typeName}: ${messageOf(err)}`,
    };
  }
}
