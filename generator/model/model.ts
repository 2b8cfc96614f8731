// The model the templates render: what each .proto file declares that grabbit generates code for,
// with every option resolved (event over file defaults over built-in defaults) and validated.

export type ExchangeKindName = "topic" | "direct" | "fanout" | "headers";
export type TransportName = "grpc" | "amqp";
/** A request queue type the contract names; absent when unspecified (the server picks at run time). */
export type QueueTypeName = "quorum" | "classic";
export type MethodKindName = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";

/** A message type as generated code refers to it: `$1.Order`, with its full protobuf name. */
export interface TypeRef {
  typeName: string;
  /** Alias of the imported ts-proto module plus the ts-proto name, e.g. `$1.Order`. */
  tsRef: string;
}

export interface MethodModel {
  protoName: string;
  memberName: string;
  path: string;
  kind: MethodKindName;
  input: TypeRef;
  output: TypeRef;
  idempotent: boolean;
  timeoutMs: number | undefined;
  comment: string | undefined;
  deprecated: boolean;
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
  amqp: { requestQueue: string; prefetch: number; queueType?: QueueTypeName } | undefined;
  methods: MethodModel[];
  comment: string | undefined;
  deprecated: boolean;
}

export interface RoutingFieldModel {
  protoName: string;
  tsName: string;
  /** How to read the property: `.orderId`, or `["order-id"]` for a json_name that is no identifier. */
  tsAccess: string;
  /** How `event<tsAccess>` (known defined) becomes text. */
  kind: "string" | "number" | "bool" | "enum";
  /** For enums: the file-level lookup table's name. */
  enumTable?: string;
}

export interface EventModel {
  typeName: string;
  type: TypeRef;
  names: { desc: string; publisher: string; consumer: string; filter: string };
  exchange: string;
  exchangeKind: ExchangeKindName;
  routingKey: string;
  routingFields: RoutingFieldModel[];
  persistent: boolean;
  comment: string | undefined;
  deprecated: boolean;
}

export interface EnumTableModel {
  name: string;
  entries: { number: number; name: string }[];
}

export interface ImportModel {
  alias: string;
  from: string;
}

export interface FileModel {
  /** The .proto path, "demo/v1/orders.proto". */
  proto: string;
  /** The generated file's path. */
  outputPath: string;
  imports: ImportModel[];
  services: ServiceModel[];
  events: EventModel[];
  enumTables: EnumTableModel[];
  usesGrpc: boolean;
  usesAmqpRpc: boolean;
}

export interface GenerationModel {
  files: FileModel[];
}
