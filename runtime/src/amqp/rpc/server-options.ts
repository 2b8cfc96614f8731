// The options of an RPC server over RabbitMQ (AmqpRpcServer, serveAmqp), on their own so that the
// server's file holds behaviour only. Types only: nothing here runs or fails.

import type { Interceptor } from "../../interceptor.js";
import type { Logger } from "../../telemetry/logger.js";

export type AmqpQueueType = "auto" | "quorum" | "classic";

export interface AmqpRpcServerOptions {
  /** Server interceptors, first = outermost; they see side "server", transport "amqp". */
  interceptors?: Interceptor[];
  /** Requests handled at once by this server (per connection session). Default: the service's `amqp.prefetch`. */
  prefetch?: number;
  /**
   * Type of the request queue and its dead-letter queue, both durable. Default: the contract's
   * `(grabbit.v1.service).queue_type` (`service.amqp.queueType`), else "auto". "auto": quorum where
   * the broker supports it, classic otherwise, and an existing queue of either type is used as it
   * is. "quorum"/"classic": declared with that `x-queue-type`, and an existing queue of another type
   * fails `serveAmqp` with FAILED_PRECONDITION (RabbitMQ cannot change a queue's type in place).
   * Setting it here overrides the contract: every server of the queue must still agree.
   */
  queueType?: AmqpQueueType;
  /** How long `close()` lets in-flight handlers finish before aborting them (they reply UNAVAILABLE). Default 10 000 ms. */
  closeTimeoutMs?: number;
  /** Problems no caller can be told about (a dead-letter publish that failed, a consumer the broker cancelled). */
  onError?: (err: Error) => void;
  /**
   * Largest request body decoded and response body sent, in bytes; past it the caller gets
   * RESOURCE_EXHAUSTED (the handler does not run, or its response is not sent). Default: no limit.
   */
  maxMessageBytes?: number;
  /**
   * Where failed calls (as the gRPC server logs them: error for UNKNOWN, INTERNAL, DATA_LOSS, warn
   * for the server's other failures, debug for the caller's), dead-lettered requests and errors
   * with no caller are logged, with method, queue and trace id. Default: the connection's logger.
   */
  logger?: Logger;
  /**
   * Streaming calls this server runs at once (they hold no prefetch slot: a stream's open is acked
   * when the stream starts). Past it, a new stream fails RESOURCE_EXHAUSTED. Default 256.
   */
  maxStreams?: number;
  /**
   * At most this many messages of a client's request stream given credit for and not yet read (the
   * client waits beyond it). Default 1 024; the first grant is 64, until message sizes are known.
   */
  streamWindow?: number;
  /** And about this many bytes of them, so that big messages get a smaller window. Default 4 MiB. */
  streamWindowBytes?: number;
}
