// RPC over RabbitMQ (reply_to + correlation_id, direct reply-to): a Transport for generated
// clients and a server for generated handlers. The wire format is in wire.ts and docs/wire-contract.md.
export { AmqpRpcTransport, type AmqpRpcTransportOptions } from "./client.js";
export {
  serveAmqp,
  AmqpRpcServer,
  type AmqpRpcServerOptions,
  type AmqpQueueType,
} from "./server.js";
export {
  DIRECT_REPLY_TO,
  HEADER_METHOD as RPC_HEADER_METHOD,
  HEADER_TIMEOUT as RPC_HEADER_TIMEOUT,
  HEADER_STATUS as RPC_HEADER_STATUS,
  HEADER_MESSAGE as RPC_HEADER_MESSAGE,
  deadLetterQueueName as rpcDeadLetterQueue,
} from "./wire.js";
