// The model the templates render: what each .proto file declares that grabbit generates code for,
// with every option resolved (event over file defaults over built-in defaults) and validated, and
// every name and type expression the templates print already computed: templates only place text.
import type { ImportStatement } from "./imports.js";

export type ExchangeKindName = "topic" | "direct" | "fanout" | "headers";
export type TransportName = "grpc" | "amqp";
/** A request queue type the contract names; absent when unspecified (the server picks at run time). */
export type QueueTypeName = "quorum" | "classic";
export type MethodKindName = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";

/** A message type as generated code refers to it: `Order`, with its full protobuf name. */
export interface TypeRef {
  typeName: string;
  /**
   * The message type (decoded shape) as this file imports it: `Order`, or an alias (`Order$1`) on a
   * clash. ts-proto's message interface, or protobuf-es's message shape.
   */
  tsRef: string;
  /** The type an encoded value may have: tsRef for ts-proto, `MessageInitShape<typeof OrderSchema>` for protobuf-es. */
  init: string;
  /** The arguments of the runtime's message-type helper: `"demo.v1.Order", Order` (ts-proto), `OrderSchema` (protobuf-es). */
  codecArgs: string;
}

/** What a generated doc comment says besides the template's own text. */
export interface DocModel {
  /** The proto comment, which replaces the template's text when there is one. */
  comment: string | undefined;
  deprecated: boolean;
  /** The `@see` link back to the declaration: `proto example/v1/x.proto:12 example.v1.X`. */
  see: string;
}

/** Local names of the runtime symbols a declaration's code uses, by exported name. */
export type RuntimeNames = Record<string, string>;

export interface MethodModel {
  protoName: string;
  memberName: string;
  path: string;
  kind: MethodKindName;
  input: TypeRef;
  output: TypeRef;
  /** The first parameter of the handler and client method: `request: X` or `requests: AsyncIterable<X>`. */
  request: { name: "request" | "requests"; type: string };
  /** The type of the client method's first parameter: the request's init type, or an AsyncIterable of it. */
  clientRequestType: string;
  /** What a handler returns: `Promise<Y> | Y` or `AsyncIterable<Y>` (Y the output's init type). */
  handlerReturns: string;
  /** What the client method returns: `Promise<Y>` or `AsyncIterable<Y>`. */
  clientReturns: string;
  /** The Transport method that carries the call. */
  transportCall: "unary" | "serverStream" | "clientStream" | "bidiStream";
  idempotent: boolean;
  timeoutMs: number | undefined;
  comment: string | undefined;
  deprecated: boolean;
  doc: DocModel;
}

export interface ServiceModel {
  typeName: string;
  protoName: string;
  /** Exported names in the generated file. */
  names: {
    desc: string;
    handlers: string;
    client: string;
    grpcClient: string;
    grpcAdd: string;
    amqpClient: string;
    amqpServe: string;
  };
  transports: TransportName[];
  grpc: boolean;
  /** queueType is undefined when the contract names none (the server picks at run time). */
  amqp:
    | { requestQueue: string; prefetch: number; queueType: QueueTypeName | undefined }
    | undefined;
  methods: MethodModel[];
  comment: string | undefined;
  deprecated: boolean;
  doc: DocModel;
  rt: RuntimeNames;
}

export interface RoutingFieldModel {
  protoName: string;
  tsName: string;
  /** How to read the property: `.orderId`, or `["order-id"]` for a json_name that is no identifier. */
  tsAccess: string;
  /** How `event<tsAccess>` (known defined) becomes text. */
  kind: "string" | "number" | "bool" | "enum";
  /** The property read from the event: `event.orderId`. */
  read: string;
  /** The expression that makes it routing-key text, once known defined: `String(event.qty)`. */
  text: string;
}

export interface EventModel {
  typeName: string;
  type: TypeRef;
  names: { desc: string; publisher: string; consumer: string; filter: string };
  exchange: string;
  exchangeKind: ExchangeKindName;
  routingKey: string;
  routingFields: RoutingFieldModel[];
  /** The placeholders' proto names, in template order. */
  routingFieldNames: string[];
  /** The type of a consumer's filter: `Partial<Pick<Order, "region">>`, or `Record<string, never>`. */
  filterType: string;
  persistent: boolean;
  comment: string | undefined;
  deprecated: boolean;
  doc: DocModel;
  rt: RuntimeNames;
}

export interface EnumTableModel {
  name: string;
  entries: { number: number; name: string }[];
}

export interface FileModel {
  /** The .proto path, "demo/v1/orders.proto". */
  proto: string;
  /** The generated file's path. */
  outputPath: string;
  imports: ImportStatement[];
  services: ServiceModel[];
  events: EventModel[];
  enumTables: EnumTableModel[];
}

export interface GenerationModel {
  files: FileModel[];
}
