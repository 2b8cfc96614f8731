// RabbitMQ transport: connection with recovery, confirmed publishing, consumers with retries and
// dead-lettering, typed events, and RPC.
export * from "./rpc/index.js";
export {
  AmqpConnection,
  redactUrl,
  type AmqpConnectionOptions,
  type AmqpReconnectOptions,
  type AmqpTlsOptions,
  type AmqpSession,
  type SessionSetup,
} from "./connection.js";
