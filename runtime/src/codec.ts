// A message type as the runtime needs it: a name for the wire and a binary codec.
// The generator adapts ts-proto's message objects to this with `tsProtoType`.

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
