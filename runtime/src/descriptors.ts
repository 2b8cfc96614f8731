// What the generator emits for each service, method and event: plain data the transports read.

import type { MessageType } from "./codec.js";

export type MethodKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";
export type TransportName = "grpc" | "amqp";

export interface MethodDesc<I = any, O = any> {
  /** The method's proto name, "GetOrder". */
  readonly name: string;
  /** The gRPC path, "/demo.v1.Orders/GetOrder"; also the AMQP `rpc-method` header. */
  readonly path: string;
  readonly kind: MethodKind;
  readonly input: MessageType<I>;
  readonly output: MessageType<O>;
  /** Safe to retry: from `(grabbit.v1.method).idempotent` or `idempotency_level`. */
  readonly idempotent: boolean;
  /** Default deadline for calls that set none (method, else service, else file option). */
  readonly timeoutMs?: number;
  /** The service's AMQP request queue, when the service is served over RabbitMQ. */
  readonly requestQueue?: string;
}

export interface ServiceDesc<M extends Record<string, MethodDesc> = Record<string, MethodDesc>> {
  /** Full name, "demo.v1.Orders". */
  readonly typeName: string;
  /** Keyed by the generated (lowerCamel) method name. */
  readonly methods: M;
  readonly transports: readonly TransportName[];
  /** Present when the service is served over RabbitMQ. */
  readonly amqp?: {
    readonly requestQueue: string;
    readonly prefetch: number;
    /**
     * Type of the request queue and its dead-letter queue, from `(grabbit.v1.service).queue_type`.
     * Absent when the contract leaves it unspecified: the server's `queueType` option decides, else
     * "auto" (quorum where the broker supports it, classic otherwise, an existing queue used as is).
     */
    readonly queueType?: "quorum" | "classic";
  };
}

export type ExchangeKind = "topic" | "direct" | "fanout" | "headers";

export interface EventDesc<T = any> {
  readonly type: MessageType<T>;
  readonly exchange: string;
  readonly exchangeKind: ExchangeKind;
  /** The template as written, "order.{region}.created". */
  readonly routingKeyTemplate: string;
  /** Placeholder names in template order, in proto spelling ("region"). */
  readonly routingFields: readonly string[];
  readonly persistent: boolean;
  /**
   * Placeholder values as text, keyed by proto field name, not yet escaped (headers exchanges send
   * them as is). Takes a partial event too: fields left out are left out of the result, which is how
   * a consumer's filter becomes binding values.
   */
  routingValues(event: Partial<T>): Record<string, string>;
}
