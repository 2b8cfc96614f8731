// A message type as the runtime needs it: a name for the wire and a binary codec.
// The generator adapts the message library's objects to this: ts-proto's message objects with
// `tsProtoType`, protobuf-es schemas (the `...Schema` exports of protoc-gen-es's `_pb` files) with
// `protobufEsType`.
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";

export interface MessageType<T> {
  /** Full protobuf name, such as "demo.v1.OrderCreated"; sent as the AMQP `type` property. */
  readonly typeName: string;
  encode(message: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** The part of a ts-proto message object that the runtime uses. */
export interface TsProtoMessageFns<T> {
  encode(message: T, writer?: any): { finish(): Uint8Array };
  decode(input: Uint8Array, length?: number): T;
}

export function tsProtoType<T>(typeName: string, fns: TsProtoMessageFns<T>): MessageType<T> {
  return {
    typeName,
    encode: (message) => fns.encode(message).finish(),
    decode: (bytes) => fns.decode(bytes),
  };
}

/**
 * A protobuf-es message schema as a MessageType. Decoding gives the message shape; encoding takes
 * a message or an init shape (a plain object literal, `$typeName` optional), which `create`
 * completes first: generated clients and handlers accept either.
 */
export interface ProtobufEsMessageType<D extends DescMessage> extends MessageType<MessageShape<D>> {
  encode(message: MessageShape<D> | MessageInitShape<D>): Uint8Array;
}

export function protobufEsType<D extends DescMessage>(schema: D): ProtobufEsMessageType<D> {
  return {
    typeName: schema.typeName,
    // create() returns a message of this schema as it is, and builds one from an init shape.
    encode: (message) => toBinary(schema, create(schema, message as MessageInitShape<D>)),
    decode: (bytes) => fromBinary(schema, bytes),
  };
}
