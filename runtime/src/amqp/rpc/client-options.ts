// The options of the RPC client over RabbitMQ (AmqpRpcTransport), on their own so that the
// client's file holds behaviour only. Types only: nothing here runs or fails.

import type { ServiceDesc } from "../../descriptors.js";
import type { Interceptor } from "../../interceptor.js";
import type { Logger } from "../../telemetry/logger.js";

export interface AmqpRpcTransportOptions {
  /** Client interceptors, first = outermost; they see side "client", transport "amqp". */
  interceptors?: Interceptor[];
  /**
   * Deadline for calls that set none and whose method declares none, in ms; 0 = no deadline.
   * Default 30 000: over a queue a lost server means silence, so an unbounded call could wait forever.
   * Streams have no default deadline (keepalives find a lost peer): for them this bounds only the
   * wait for a server to accept the stream.
   */
  timeoutMs?: number;
  /**
   * While the connection is down: false (default, as gRPC's fail-fast) rejects new calls at once with
   * UNAVAILABLE; true waits for the connection to come back, within the call's deadline.
   */
  waitForReady?: boolean;
  /**
   * Service descriptors whose methods this transport calls. Only for hand-written method
   * descriptors without `requestQueue` (generated ones carry it): such a method's queue is its
   * service's declared one if registered here, else the service name from its path
   * (`/demo.v1.Orders/Get` -> `demo.v1.Orders`), the wire contract's default.
   */
  services?: readonly ServiceDesc[];
  /**
   * Largest request body sent and reply body accepted, in bytes: a bigger request fails with
   * RESOURCE_EXHAUSTED before it is published, a bigger reply is dropped undecoded and the call
   * fails with RESOURCE_EXHAUSTED. Default: no limit.
   */
  maxMessageBytes?: number;
  /** Sent as the AMQP `user_id` of requests (the broker checks it equals our login); servers see it as ctx.peer. */
  userId?: string;
  /**
   * A request neither confirmed nor nacked this long makes the client look at the cluster: with the
   * quorum lost the call fails UNAVAILABLE at once; otherwise the channel is replaced. Default 3 000 ms.
   */
  stallTimeoutMs?: number;
  /** Where replaced channels and re-sent requests are logged (warn). Default: the connection's logger. */
  logger?: Logger;
  /**
   * Streams: each side speaks at least this often (a ping when idle), and a server silent for three
   * of these fails the stream UNAVAILABLE. Sent in the open; the server uses the same. Default 1 000 ms.
   */
  keepaliveMs?: number;
  /**
   * Streams: at most this many response messages given credit for and not yet read (the server
   * waits beyond it). Default 1 024; the first grant is 64, until message sizes are known.
   */
  streamWindow?: number;
  /** Streams: and about this many bytes of them, so that big messages get a smaller window. Default 4 MiB. */
  streamWindowBytes?: number;
}
