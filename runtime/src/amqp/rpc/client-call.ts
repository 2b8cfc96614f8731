// The small pieces of a client call over RabbitMQ that hold no transport state: the CallRequest the
// client interceptors see, the reply metadata callbacks, and the error of a method called as
// another kind than it is. Pure; nothing here publishes.

import { NEVER_ABORTED, type CallOptions } from "../../context.js";
import type { MethodDesc } from "../../descriptors.js";
import type { CallInput, CallRequest } from "../../interceptor.js";
import { normalizeMetadata, type Metadata } from "../../metadata.js";
import { Code, StatusError } from "../../status.js";

/** The request client interceptors see; `values` is made on first use (an own getter, so `{ ...req }` keeps it). */
export function clientCallRequest(method: MethodDesc, options: CallOptions | undefined, deadline: number | undefined, input: CallInput): CallRequest {
  let values: Map<string | symbol, unknown> | undefined;
  return {
    method,
    transport: "amqp",
    side: "client",
    metadata: normalizeMetadata(options?.metadata),
    deadline,
    signal: options?.signal ?? NEVER_ABORTED,
    ...input,
    get values() {
      values ??= new Map();
      return values;
    },
    peer: undefined,
  };
}

/** Over RabbitMQ a unary reply carries headers and trailers as one set: every callback gets it. */
export function reportReply(options: CallOptions | undefined, metadata: Metadata): void {
  options?.onHeaders?.(metadata);
  options?.onTrailers?.(metadata);
  options?.onResponseMetadata?.(metadata);
}

export function kindError(method: MethodDesc, called: string): StatusError {
  return new StatusError(Code.INTERNAL, `${method.path} is a ${method.kind} method, called as ${called}`);
}

export function failing(err: StatusError): AsyncIterable<never> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(err) }) };
}
