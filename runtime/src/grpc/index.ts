// gRPC transport on @grpc/grpc-js.
export {};
