// RPC over RabbitMQ (reply_to + correlation_id). Filled in by the RPC client and server.
export {};
