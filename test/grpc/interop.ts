// The part of gRPC's interop test service (package grpc.testing) that the `custom_metadata` case
// uses, for a server built on grabbit's runtime and a raw grpc-js client to talk real protobuf:
// UnaryCall and FullDuplexCall with the fields those calls set, coded by hand with
// @bufbuild/protobuf's wire reader and writer (unknown fields are skipped, as protobuf does).
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { HandlerContext, MessageType, MethodDesc, ServiceDesc } from "@grabbit/runtime";

/** grpc.testing.Payload: `type` (1, an enum: 0 = COMPRESSABLE) and `body` (2). */
export interface Payload {
  type: number;
  body: Uint8Array;
}
/** grpc.testing.SimpleRequest: response_size (2) and payload (3); the other fields are ignored. */
export interface SimpleRequest {
  responseSize: number;
  payload: Payload | undefined;
}
/** grpc.testing.SimpleResponse: payload (1). */
export interface SimpleResponse {
  payload: Payload | undefined;
}
/** grpc.testing.StreamingOutputCallRequest: response_parameters (2, each with `size` 1) and payload (3). */
export interface StreamingOutputCallRequest {
  responseSizes: number[];
  payload: Payload | undefined;
}
/** grpc.testing.StreamingOutputCallResponse: payload (1). */
export interface StreamingOutputCallResponse {
  payload: Payload | undefined;
}

function writePayload(writer: BinaryWriter, field: number, payload: Payload | undefined): void {
  if (payload === undefined) return;
  writer.tag(field, WireType.LengthDelimited).fork();
  if (payload.type !== 0) writer.tag(1, WireType.Varint).int32(payload.type);
  if (payload.body.length > 0) writer.tag(2, WireType.LengthDelimited).bytes(payload.body);
  writer.join();
}

function readPayload(bytes: Uint8Array): Payload {
  const reader = new BinaryReader(bytes);
  const payload: Payload = { type: 0, body: new Uint8Array(0) };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) payload.type = reader.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) payload.body = reader.bytes();
    else reader.skip(wireType, field);
  }
  return payload;
}

/** A message of one optional Payload field 1 (SimpleResponse, StreamingOutputCallResponse). */
function payloadOnlyType(typeName: string): MessageType<{ payload: Payload | undefined }> {
  return {
    typeName,
    encode(message) {
      const writer = new BinaryWriter();
      writePayload(writer, 1, message.payload);
      return writer.finish();
    },
    decode(bytes) {
      const reader = new BinaryReader(bytes);
      let payload: Payload | undefined;
      while (reader.pos < reader.len) {
        const [field, wireType] = reader.tag();
        if (field === 1 && wireType === WireType.LengthDelimited)
          payload = readPayload(reader.bytes());
        else reader.skip(wireType, field);
      }
      return { payload };
    },
  };
}

export const SimpleRequestType: MessageType<SimpleRequest> = {
  typeName: "grpc.testing.SimpleRequest",
  encode(message) {
    const writer = new BinaryWriter();
    if (message.responseSize !== 0) writer.tag(2, WireType.Varint).int32(message.responseSize);
    writePayload(writer, 3, message.payload);
    return writer.finish();
  },
  decode(bytes) {
    const reader = new BinaryReader(bytes);
    const message: SimpleRequest = { responseSize: 0, payload: undefined };
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 2 && wireType === WireType.Varint) message.responseSize = reader.int32();
      else if (field === 3 && wireType === WireType.LengthDelimited)
        message.payload = readPayload(reader.bytes());
      else reader.skip(wireType, field);
    }
    return message;
  },
};

export const StreamingOutputCallRequestType: MessageType<StreamingOutputCallRequest> = {
  typeName: "grpc.testing.StreamingOutputCallRequest",
  encode(message) {
    const writer = new BinaryWriter();
    for (const size of message.responseSizes) {
      // ResponseParameters { int32 size = 1; }
      writer.tag(2, WireType.LengthDelimited).fork();
      if (size !== 0) writer.tag(1, WireType.Varint).int32(size);
      writer.join();
    }
    writePayload(writer, 3, message.payload);
    return writer.finish();
  },
  decode(bytes) {
    const reader = new BinaryReader(bytes);
    const message: StreamingOutputCallRequest = { responseSizes: [], payload: undefined };
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 2 && wireType === WireType.LengthDelimited)
        message.responseSizes.push(readResponseSize(reader.bytes()));
      else if (field === 3 && wireType === WireType.LengthDelimited)
        message.payload = readPayload(reader.bytes());
      else reader.skip(wireType, field);
    }
    return message;
  },
};

function readResponseSize(bytes: Uint8Array): number {
  const reader = new BinaryReader(bytes);
  let size = 0;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) size = reader.int32();
    else reader.skip(wireType, field);
  }
  return size;
}

export const SimpleResponseType = payloadOnlyType(
  "grpc.testing.SimpleResponse",
) as MessageType<SimpleResponse>;
export const StreamingOutputCallResponseType = payloadOnlyType(
  "grpc.testing.StreamingOutputCallResponse",
) as MessageType<StreamingOutputCallResponse>;

const unaryCall: MethodDesc<SimpleRequest, SimpleResponse> = {
  name: "UnaryCall",
  path: "/grpc.testing.TestService/UnaryCall",
  kind: "unary",
  input: SimpleRequestType,
  output: SimpleResponseType,
  idempotent: false,
};
const fullDuplexCall: MethodDesc<StreamingOutputCallRequest, StreamingOutputCallResponse> = {
  name: "FullDuplexCall",
  path: "/grpc.testing.TestService/FullDuplexCall",
  kind: "bidi_streaming",
  input: StreamingOutputCallRequestType,
  output: StreamingOutputCallResponseType,
  idempotent: false,
};

export const InteropTestService = {
  typeName: "grpc.testing.TestService",
  transports: ["grpc"],
  methods: { unaryCall, fullDuplexCall },
} satisfies ServiceDesc;

/** The request headers an interop server echoes: the first as a response header, the second as a trailer. */
export const ECHO_INITIAL = "x-grpc-test-echo-initial";
export const ECHO_TRAILING_BIN = "x-grpc-test-echo-trailing-bin";

/**
 * Copies the echo headers of the request into the response, as interop servers do.
 *
 * Binary metadata: grpc-js hands a `-bin` entry over as bytes; grabbit's Metadata holds strings,
 * so the transport gives it to the handler as base64 (convert.ts fromGrpcMetadata) and, for a key
 * ending in `-bin`, decodes base64 back into bytes when sending (toGrpcMetadata). Copying the string
 * as it is therefore sends the caller's exact bytes back as a binary trailer.
 */
function echoMetadata(ctx: HandlerContext): void {
  const initial = ctx.metadata[ECHO_INITIAL];
  if (initial !== undefined) ctx.responseHeaders[ECHO_INITIAL] = initial;
  const trailing = ctx.metadata[ECHO_TRAILING_BIN];
  if (trailing !== undefined) ctx.responseMetadata[ECHO_TRAILING_BIN] = trailing;
}

function zeros(size: number): Payload {
  return { type: 0, body: new Uint8Array(size) };
}

/** An interop server's UnaryCall and FullDuplexCall: payloads of the sizes asked for, metadata echoed. */
export const interopHandlers = {
  async unaryCall(request: SimpleRequest, ctx: HandlerContext): Promise<SimpleResponse> {
    // The response header goes out with the response message.
    echoMetadata(ctx);
    return { payload: zeros(request.responseSize) };
  },
  async *fullDuplexCall(
    requests: AsyncIterable<StreamingOutputCallRequest>,
    ctx: HandlerContext,
  ): AsyncIterable<StreamingOutputCallResponse> {
    // A stream sends its headers before reading anything, so the client sees them at once.
    echoMetadata(ctx);
    ctx.sendHeaders();
    for await (const request of requests) {
      for (const size of request.responseSizes) yield { payload: zeros(size) };
    }
  },
};
