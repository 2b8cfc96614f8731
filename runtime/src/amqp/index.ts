// RabbitMQ transport: connection with recovery, confirmed publishing, consumers with retries and
// dead-lettering, typed events, and RPC.
export * from "./rpc/index.js";
