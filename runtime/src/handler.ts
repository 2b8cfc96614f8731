// The server side: a service implementation is an object of plain async functions, one per method,
// keyed by the generated method name. The same object serves gRPC and RabbitMQ.

import type { HandlerContext } from "./context.js";
import type { MethodDesc, ServiceDesc } from "./descriptors.js";

export type UnaryHandler<I, O> = (request: I, context: HandlerContext) => Promise<O> | O;
export type ServerStreamHandler<I, O> = (request: I, context: HandlerContext) => AsyncIterable<O>;
export type ClientStreamHandler<I, O> = (
  requests: AsyncIterable<I>,
  context: HandlerContext,
) => Promise<O> | O;
export type BidiStreamHandler<I, O> = (
  requests: AsyncIterable<I>,
  context: HandlerContext,
) => AsyncIterable<O>;

export type AnyHandler =
  | UnaryHandler<any, any>
  | ServerStreamHandler<any, any>
  | ClientStreamHandler<any, any>
  | BidiStreamHandler<any, any>;

/** A loose view of a generated handlers interface, for the transports. */
export type ServiceHandlers<S extends ServiceDesc = ServiceDesc> = {
  [K in keyof S["methods"]]: S["methods"][K] extends MethodDesc ? AnyHandler : never;
};
