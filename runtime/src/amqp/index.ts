// RabbitMQ transport: connection with recovery, confirmed publishing, consumers with retries and
// dead-lettering, typed events, and RPC.
export * from "./rpc/index.js";
export {
  AmqpConnection,
  redactUrl,
  quorumLostMessage,
  type NodeProbe,
  type AmqpConnectionEvents,
  type AmqpConnectionOptions,
  type AmqpReconnectOptions,
  type AmqpTlsOptions,
  type AmqpSession,
  type SessionSetup,
} from "./connection.js";
export { ChannelKeeper, type ChannelKeeperOptions } from "./channel-keeper.js";
export {
  Publisher,
  PublishManyError,
  type OutgoingMessage,
  type PublisherOptions,
  type PublisherEvents,
  type RawPublishOptions,
} from "./publisher.js";
export {
  EventPublisher,
  type EventPublisherOptions,
  type PublishManyOptions,
  type PublishOptions,
} from "./events.js";
export {
  EventConsumer,
  type EventConsumerOptions,
  type EventHandler,
  type DeliveryContext,
} from "./consumer.js";
export {
  type QueueType,
  resolveQueueType,
  declareEventExchange,
  declareConsumerQueues,
  bindEvent,
  retryQueueName,
  type ConsumerTopology,
} from "./topology.js";
export {
  CONTENT_TYPE_PROTOBUF,
  HEADER_ATTEMPT,
  HEADER_ATTEMPTS,
  HEADER_ERROR,
  HEADER_ORIGINAL_EXCHANGE,
  HEADER_ORIGINAL_ROUTING_KEY,
  HEADER_ORIGINAL_USER_ID,
  HEADER_FIRST_FAILED_AT,
  HEADER_DEAD_LETTERED_AT,
  HEADER_REPLAYS,
  metadataToHeaders,
  republishableHeaders,
  headersToMetadata,
} from "./headers.js";
export {
  ATTR_GRABBIT_OUTCOME,
  ATTR_GRABBIT_RETRY_DELAY_MS,
  ATTR_GRABBIT_DEAD_LETTER_QUEUE,
  EVENT_RETRY,
  EVENT_DEAD_LETTER,
} from "./telemetry.js";
