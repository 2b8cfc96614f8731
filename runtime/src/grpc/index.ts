// gRPC transport on @grpc/grpc-js: a Transport for generated clients, a server for generated handlers.
export { GrpcTransport, type GrpcTransportOptions } from "./client.js";
export { GrpcServer, type GrpcServerOptions, grpcServiceDefinition, grpcServiceImplementation } from "./server.js";
export { tlsChannelCredentials, tlsServerCredentials } from "./tls.js";
export { STATUS_DETAILS_KEY, encodeRpcStatus, decodeRpcStatus, type RpcStatus } from "./status-details.js";
export { toGrpcMetadata, fromGrpcMetadata } from "./convert.js";
