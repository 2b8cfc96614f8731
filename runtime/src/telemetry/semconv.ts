// Attribute, metric and value names the runtime records, in one place.
//
// RPC: OpenTelemetry's RPC conventions as of semantic conventions v1.45 (release candidate, the
// names meant to become stable): `rpc.system.name`, a fully qualified `rpc.method`
// ("demo.v1.Orders/Get", also the span name), `rpc.status_code` as the gRPC code's name ("OK",
// "NOT_FOUND"), durations in seconds. The older experimental `rpc.system`, `rpc.service` and
// numeric `rpc.grpc.status_code` are deprecated there and not emitted.
//
// Messaging: the RabbitMQ conventions as the spec documents them (still "development", names may
// move): `messaging.system` "rabbitmq", `messaging.destination.name` the exchange (publish) or the
// queue (consume), `messaging.rabbitmq.destination.routing_key`, correlation id as
// `messaging.message.conversation_id`.
//
// grabbit's own names (retries, dead-lettering, outbox...) live under `grabbit.`.

// --- RPC -------------------------------------------------------------------------------------
export const ATTR_RPC_SYSTEM_NAME = "rpc.system.name";
export const ATTR_RPC_METHOD = "rpc.method";
export const ATTR_RPC_STATUS_CODE = "rpc.status_code";
export const ATTR_SERVER_ADDRESS = "server.address";
export const ATTR_SERVER_PORT = "server.port";
export const ATTR_NETWORK_PEER_ADDRESS = "network.peer.address";
export const ATTR_NETWORK_PEER_PORT = "network.peer.port";
export const ATTR_ERROR_TYPE = "error.type";

export const RPC_SYSTEM_GRPC = "grpc";
/**
 * grabbit's RPC over RabbitMQ (the wire contract's request queue and reply_to). Not a registered
 * value: no convention describes this protocol, and calling it "grpc" would be untrue. Its spans
 * also carry the messaging attributes below.
 */
export const RPC_SYSTEM_GRABBIT_AMQP = "grabbit_amqp";
export type RpcSystem = typeof RPC_SYSTEM_GRPC | typeof RPC_SYSTEM_GRABBIT_AMQP;

// --- Messaging -------------------------------------------------------------------------------
export const ATTR_MESSAGING_SYSTEM = "messaging.system";
export const ATTR_MESSAGING_OPERATION_TYPE = "messaging.operation.type";
export const ATTR_MESSAGING_OPERATION_NAME = "messaging.operation.name";
export const ATTR_MESSAGING_DESTINATION_NAME = "messaging.destination.name";
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = "messaging.consumer.group.name";
export const ATTR_MESSAGING_RABBITMQ_ROUTING_KEY = "messaging.rabbitmq.destination.routing_key";
export const ATTR_MESSAGING_RABBITMQ_DELIVERY_TAG = "messaging.rabbitmq.message.delivery_tag";
export const ATTR_MESSAGING_MESSAGE_ID = "messaging.message.id";
export const ATTR_MESSAGING_MESSAGE_CONVERSATION_ID = "messaging.message.conversation_id";
export const ATTR_MESSAGING_MESSAGE_BODY_SIZE = "messaging.message.body.size";

export const MESSAGING_SYSTEM_RABBITMQ = "rabbitmq";

/** `messaging.operation.type` values the runtime uses. */
export type MessagingOperationType = "send" | "receive" | "process" | "settle";

// --- grabbit's own attributes ----------------------------------------------------------------
/** Which delivery of a message this is (1 the first), on consume spans and retry metrics. */
export const ATTR_GRABBIT_DELIVERY_ATTEMPT = "grabbit.delivery.attempt";
/** Why a message was dead-lettered, or a publish refused or re-sent (low cardinality). */
export const ATTR_GRABBIT_REASON = "grabbit.reason";
/** A broker node of a connection ("host:port"). */
export const ATTR_GRABBIT_NODE = "grabbit.connection.node";
/** A connection's state: "connected", "connecting", "closed". */
export const ATTR_GRABBIT_CONNECTION_STATE = "grabbit.connection.state";

// --- Metrics ---------------------------------------------------------------------------------
export const METRIC_RPC_CLIENT_CALL_DURATION = "rpc.client.call.duration";
export const METRIC_RPC_SERVER_CALL_DURATION = "rpc.server.call.duration";
export const METRIC_MESSAGING_CLIENT_SENT_MESSAGES = "messaging.client.sent.messages";
export const METRIC_MESSAGING_CLIENT_CONSUMED_MESSAGES = "messaging.client.consumed.messages";
export const METRIC_MESSAGING_CLIENT_OPERATION_DURATION = "messaging.client.operation.duration";
export const METRIC_MESSAGING_PROCESS_DURATION = "messaging.process.duration";
export const METRIC_GRABBIT_PUBLISH_RESENT = "grabbit.publish.resent";
export const METRIC_GRABBIT_PUBLISH_REFUSED = "grabbit.publish.refused";
export const METRIC_GRABBIT_PUBLISH_UNROUTABLE = "grabbit.publish.unroutable";
export const METRIC_GRABBIT_PUBLISH_CONFIRMS_OUTSTANDING = "grabbit.publish.confirms.outstanding";
export const METRIC_GRABBIT_CONSUME_RETRIES = "grabbit.consume.retries";
export const METRIC_GRABBIT_CONSUME_DEAD_LETTERED = "grabbit.consume.dead_lettered";
export const METRIC_GRABBIT_CONNECTION_RECONNECTS = "grabbit.connection.reconnects";
export const METRIC_GRABBIT_CONNECTION_STATE = "grabbit.connection.state";
export const METRIC_GRABBIT_OUTBOX_BACKLOG = "grabbit.outbox.backlog";
export const METRIC_GRABBIT_OUTBOX_OLDEST_AGE = "grabbit.outbox.oldest_age";

/** Bucket boundaries in seconds the conventions advise for duration histograms. */
export const DURATION_BUCKETS_SECONDS = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
