// The client side of a transport. Generated clients call these four methods and nothing else,
// so one generated client works over gRPC and over RabbitMQ.

import type { CallOptions } from "./context.js";
import type { MethodDesc } from "./descriptors.js";

export interface Transport {
  unary<I, O>(method: MethodDesc<I, O>, request: I, options?: CallOptions): Promise<O>;
  serverStream<I, O>(method: MethodDesc<I, O>, request: I, options?: CallOptions): AsyncIterable<O>;
  clientStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    options?: CallOptions,
  ): Promise<O>;
  bidiStream<I, O>(
    method: MethodDesc<I, O>,
    requests: AsyncIterable<I>,
    options?: CallOptions,
  ): AsyncIterable<O>;
  /** Releases what the transport holds (a gRPC channel, a reply consumer). */
  close?(): void | Promise<void>;
}
