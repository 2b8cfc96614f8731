// gRPC transport on @grpc/grpc-js: a Transport for generated clients, a server for generated handlers.
//
// What callers and handlers can rely on:
// - Wire: plain gRPC (HTTP/2, `application/grpc+proto`), method paths from the descriptors, messages
//   coded by the descriptors' MessageTypes. Any gRPC implementation can call or serve these services.
// - Deadlines: CallOptions.timeoutMs and/or deadline (the earlier wins); with neither, the method's
//   timeoutMs, else the transport's timeoutMs; `timeoutMs: 0` means none. Handlers see it as
//   ctx.deadline, and ctx.signal aborts (reason: StatusError DEADLINE_EXCEEDED) when it passes.
// - Cancellation: CallOptions.signal cancels the call; the caller gets CANCELLED, or the signal's
//   reason when that is a StatusError (pass ctx.signal downstream to propagate a deadline). The
//   handler's ctx.signal aborts with CANCELLED; at a forced shutdown with UNAVAILABLE.
// - Errors: clients reject with StatusError: code, message, trailers as `metadata`, and the
//   `grpc-status-details-bin` trailer (google.rpc.Status) decoded into `details`. A handler's
//   StatusError is sent as is (its metadata and ctx.responseMetadata become trailers); any other
//   error becomes UNKNOWN with its message and never a stack.
// - Metadata: lower-case string keys. Binary (`-bin`) entries are base64 strings in both directions.
//   HTTP/2 and gRPC protocol headers (content-type, date, grpc-status, grpc-timeout...) are neither
//   sent nor surfaced. Response metadata is headers and trailers merged (trailers win), passed to
//   CallOptions.onResponseMetadata on success; on failure it is the StatusError's metadata.
// - Response headers (gRPC initial metadata): a handler sets ctx.responseHeaders, and they go out
//   with its first response message, or just before the status when there is none (still as
//   headers, not trailers); ctx.sendHeaders(md?) sends them at once, e.g. before a long stream's
//   first message. Once per call: sendHeaders again, after the first message or after the call
//   ended throws FAILED_PRECONDITION. ctx.responseMetadata are the trailers, as is a server
//   interceptor's CallResponse.metadata; interceptors set response headers through
//   currentCallContext() (they run inside the call's context), before the first message.
//   Clients: CallOptions.onHeaders is called once when the headers arrive (not for a status-only
//   answer, which has none), onTrailers once with the status, OK or not; a hook that throws fails
//   the call with its error.
// - Call context: every handler, its interceptors and the pulling of its response stream run
//   inside runInCallContext(), so currentCallContext() returns the call served, also in the body
//   of an async generator handler. Every client call passes its options through
//   inheritCallOptions(): inside a handler it ends no later than the served call's deadline (the
//   method's own timeout still applies under it), is cancelled with it, and carries its
//   authorization and trace headers; `inherit: false` starts afresh.
// - Streams: serverStream/bidiStream start the call when iteration starts; leaving the loop early
//   cancels it. Request streams are written with back-pressure; a failing request stream fails the
//   call with its own error. Response and request messages are buffered with a bounded queue.
// - A request the server cannot decode is answered INVALID_ARGUMENT (as on AMQP), not grpc-js's INTERNAL.
// - Shutdown: GrpcServer.close({ graceMs }) refuses new calls, waits for running ones, then ends the
//   rest with UNAVAILABLE. GrpcServer.addHealth() serves grpc.health.v1.Health for probes.
export { GrpcTransport, type GrpcTransportOptions } from "./client.js";
export {
  GrpcServer,
  type GrpcServerOptions,
  grpcServiceDefinition,
  grpcServiceImplementation,
} from "./server.js";
export { tlsChannelCredentials, tlsServerCredentials } from "./tls.js";
export {
  HealthStatus,
  HealthServiceDesc,
  ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "./health.js";
export {
  STATUS_DETAILS_KEY,
  encodeRpcStatus,
  decodeRpcStatus,
  type RpcStatus,
} from "../status-details.js";
export { toGrpcMetadata, fromGrpcMetadata } from "./convert.js";
