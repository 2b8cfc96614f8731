// The small pieces of a client call over RabbitMQ that hold no transport state: the reply metadata
// callbacks, and (shared with the other transports) the CallRequest and the kind errors. Pure.

import type { CallOptions } from "../../context.js";
import type { Metadata } from "../../metadata.js";

export { failing, kindError } from "../../call-errors.js";
export { clientCallRequest } from "../../handler-context.js";

/** Over RabbitMQ a unary reply carries headers and trailers as one set: every callback gets it. */
export function reportReply(options: CallOptions | undefined, metadata: Metadata): void {
  options?.onHeaders?.(metadata);
  options?.onTrailers?.(metadata);
  options?.onResponseMetadata?.(metadata);
}
