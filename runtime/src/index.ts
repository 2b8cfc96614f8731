// Transport-neutral core. Transports live in "@grabbit/runtime/grpc" and "@grabbit/runtime/amqp".
export { Code, codeName, StatusError, UnroutableError, type ErrorDetail } from "./status.js";
export { type Metadata, normalizeMetadata, isReservedHeader } from "./metadata.js";
export {
  type MessageType,
  type ProtobufEsMessageType,
  protobufEsType,
  type TsProtoMessageFns,
  tsProtoType,
} from "./codec.js";
export type {
  MethodDesc,
  MethodKind,
  ServiceDesc,
  EventDesc,
  ExchangeKind,
  TransportName,
} from "./descriptors.js";
export { routingWord, renderRoutingKey, bindingKey } from "./routing.js";
export { type HandlerContext, type CallOptions, resolveDeadline } from "./context.js";
export {
  currentCallContext,
  runInCallContext,
  inheritCallOptions,
  detachFromCall,
  INHERITED_HEADERS,
} from "./call-context.js";
export {
  type CallRequest,
  type CallRequestBase,
  type UnaryCallRequest,
  type StreamCallRequest,
  type CallResponse,
  type UnaryCallResponse,
  type StreamCallResponse,
  type CallNext,
  type Interceptor,
  applyInterceptors,
} from "./interceptor.js";
export type { Transport } from "./transport.js";
export {
  createInMemoryTransport,
  InMemoryTransport,
  type InMemoryTransportOptions,
} from "./in-memory.js";
export type {
  UnaryHandler,
  ServerStreamHandler,
  ClientStreamHandler,
  BidiStreamHandler,
  AnyHandler,
  ServiceHandlers,
} from "./handler.js";
// The logger is transport-neutral and free of OpenTelemetry types; tracing and metrics helpers are
// in "@grabbit/runtime/telemetry".
export {
  type Logger,
  type LogFn,
  type LogLevel,
  type JsonLoggerOptions,
  createJsonLogger,
  defaultLogger,
  silentLogger,
} from "./telemetry/logger.js";
