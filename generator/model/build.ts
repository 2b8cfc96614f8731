// Descriptors in, model out: walks the files to generate, reads grabbit's options typed with
// @bufbuild/protobuf, resolves defaults and checks them. Every problem is collected with its source
// position; the caller fails generation once with all of them.
import {
  type DescField,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
  type FileRegistry,
  getOption,
  hasOption,
  ScalarType,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import * as opts from "../gen/grabbit/v1/options_pb.js";
import { ContractError, ContractErrors } from "./errors.js";
import { FileContext, type RuntimeFeature } from "./file-context.js";
import { leadingComment, locate, optionPath, protoLink, type Position } from "./location.js";
import type {
  DocModel,
  EventModel,
  ExchangeKindName,
  FileModel,
  GenerationModel,
  MethodKindName,
  MethodModel,
  RoutingFieldModel,
  QueueTypeName,
  ServiceModel,
  TransportName,
} from "./model.js";
import {
  NameScope,
  methodMemberName,
  serviceBaseName,
  tsProtoFieldName,
  tsProtoModulePath,
  tsProtoTypeName,
} from "./names.js";
import { type MessageLibrary, protobufEsFieldName } from "./protobuf-es.js";
import {
  DEFAULT_TS_PROTO_OPTIONS,
  TsProtoOptionError,
  type TsProtoOptions,
} from "./ts-proto-options.js";

export interface BuildOptions {
  /** The module generated code imports the runtime from. */
  runtime: string;
  /** Extension of relative imports: ".js" for NodeNext (default), "" for bundlers, ".ts" for Deno-style. */
  importExtension: string;
  /** The plugin that writes the message types grabbit's code refers to (`messages=`). */
  messages: MessageLibrary;
  /** ts-proto's options that change the names and shapes grabbit's code refers to. */
  tsProto: TsProtoOptions;
  /** Suffix of grabbit's own files: orders.proto becomes orders<suffix>.ts. */
  outputSuffix: string;
}

export const DEFAULT_BUILD_OPTIONS: BuildOptions = {
  runtime: "@grabbit/runtime",
  importExtension: ".js",
  messages: "ts-proto",
  tsProto: DEFAULT_TS_PROTO_OPTIONS,
  outputSuffix: ".grabbit",
};

const DEFAULT_PREFETCH = 32;
const NAME_RE = /^[A-Za-z0-9_.:-]+$/;
const PLACEHOLDER_RE = /\{([^{}]*)\}/g;

// Option field numbers, for pointing errors at the exact option line where buf recorded one; the
// extensions' own numbers come from the generated descriptors (options.proto).
const EXT = {
  file: opts.file.number,
  event: opts.event.number,
  service: opts.service.number,
  method: opts.method.number,
} as const;
const EVENT_FIELD = { exchange: 1, exchangeKind: 2, routingKey: 3 } as const;
const SERVICE_FIELD = { transports: 1, requestQueue: 2, prefetch: 3, queueType: 5 } as const;

const KIND_NAMES: Record<number, ExchangeKindName | undefined> = {
  [opts.ExchangeKind.TOPIC]: "topic",
  [opts.ExchangeKind.DIRECT]: "direct",
  [opts.ExchangeKind.FANOUT]: "fanout",
  [opts.ExchangeKind.HEADERS]: "headers",
};

const QUEUE_TYPE_NAMES: Record<number, QueueTypeName | undefined> = {
  [opts.QueueType.QUORUM]: "quorum",
  [opts.QueueType.CLASSIC]: "classic",
};

/** Per call kind: how the request is passed, what handler and client return, which Transport method calls. */
const CALL_SHAPES: Record<
  MethodKindName,
  { streamIn: boolean; streamOut: boolean; transportCall: MethodModel["transportCall"] }
> = {
  unary: { streamIn: false, streamOut: false, transportCall: "unary" },
  server_streaming: { streamIn: false, streamOut: true, transportCall: "serverStream" },
  client_streaming: { streamIn: true, streamOut: false, transportCall: "clientStream" },
  bidi_streaming: { streamIn: true, streamOut: true, transportCall: "bidiStream" },
};

const INTEGER_SCALARS = new Set([
  ScalarType.INT32,
  ScalarType.INT64,
  ScalarType.UINT32,
  ScalarType.UINT64,
  ScalarType.SINT32,
  ScalarType.SINT64,
  ScalarType.FIXED32,
  ScalarType.FIXED64,
  ScalarType.SFIXED32,
  ScalarType.SFIXED64,
  ScalarType.FLOAT,
  ScalarType.DOUBLE,
]);

/**
 * `generated` is every file the request names to generate, when `filesToGenerate` is only those
 * of them that may produce output (generator/request.ts); it defaults to `filesToGenerate`.
 */
export function buildModel(
  registry: FileRegistry,
  filesToGenerate: readonly string[],
  options: BuildOptions = DEFAULT_BUILD_OPTIONS,
  generated: readonly string[] = filesToGenerate,
): GenerationModel {
  const builder = new ModelBuilder(options, new Set(generated));
  const files: FileModel[] = [];
  for (const name of filesToGenerate) {
    const file = registry.getFile(name);
    if (!file) throw new Error(`the request names ${name} to generate but does not contain it`);
    const model = builder.file(file);
    if (model) files.push(model);
  }
  if (builder.errors.length > 0) throw new ContractErrors(builder.errors);
  if (builder.unwritten.size > 0) {
    const list = [...builder.unwritten].sort();
    throw new TsProtoOptionError(
      `with ts-proto's emitImportedFiles=false, nothing writes ${list.join(", ")}, whose types grabbit's code uses; ` +
        `map ${list.length > 1 ? "them" : "it"} to a module with ${list.map((f) => `M${f}=<module>`).join(", ")}, or drop emitImportedFiles=false`,
    );
  }
  return { files };
}

type Where = Position | (() => Position);

class ModelBuilder {
  readonly errors: ContractError[] = [];
  // Checks that span files: one exchange has one kind, one request queue serves one service.
  private readonly exchanges = new Map<
    string,
    { kind: ExchangeKindName; where: () => Position; event: string }
  >();
  private readonly queueOwners = new Map<string, string>();

  /** Files whose types are used but that ts-proto does not write (emitImportedFiles=false, no M mapping). */
  readonly unwritten = new Set<string>();

  constructor(
    private readonly options: BuildOptions,
    private readonly generated: ReadonlySet<string>,
  ) {}

  // Positions are looked up only when something is wrong: `where` may be a thunk.
  private fail(where: Where, message: string): void {
    this.errors.push(new ContractError(typeof where === "function" ? where() : where, message));
  }

  /**
   * An option's value, or undefined when unset. Bytes that do not decode as the option's message
   * (a hand-made or corrupted request: buf never sends them) are a contract error at the option.
   */
  private option<V>(
    desc: DescFile | DescMessage | DescService | DescMethod,
    read: () => V | undefined,
    number: number,
    what: string,
  ): V | undefined {
    try {
      return read();
    } catch (err) {
      const name =
        desc.kind === "file"
          ? desc.proto.name
          : desc.kind === "rpc"
            ? `${desc.parent.typeName}.${desc.name}`
            : desc.typeName;
      this.fail(
        () => locate(desc, optionPath(desc, number)),
        `the (grabbit.v1.${what}) option of ${name} cannot be decoded: ${err instanceof Error ? err.message : String(err)}`,
      );
      return undefined;
    }
  }

  file(file: DescFile): FileModel | undefined {
    const defaults = this.option(
      file,
      () => (hasOption(file, opts.file) ? getOption(file, opts.file) : undefined),
      EXT.file,
      "file",
    );
    const events = collectMessages(file.messages).filter((m) => hasOption(m, opts.event));
    if (file.services.length === 0 && events.length === 0) return undefined;

    const outputPath = tsProtoModulePath(file.proto.name, "") + this.options.outputSuffix + ".ts";
    const ctx = new FileContext(outputPath, this.options, this.generated, (imported) => {
      if (
        this.options.messages === "ts-proto" &&
        !this.options.tsProto.emitImportedFiles &&
        !this.generated.has(imported) &&
        this.options.tsProto.moduleOf[imported] === undefined
      )
        this.unwritten.add(imported);
    });
    // The file's exports take their names before anything is imported, so a message type or a
    // runtime symbol of the same name gets the alias and an export never changes its name.
    const serviceNames = file.services.map((service) => serviceExports(service, ctx.names));
    const eventNames = events.map((message) => eventExports(message, ctx.names));
    if (defaults) this.checkFileDefaults(file, defaults);
    const services = file.services.map((service, i) =>
      this.service(service, serviceNames[i]!, defaults, ctx),
    );
    const eventModels: EventModel[] = [];
    events.forEach((message, i) => {
      const own = this.option(message, () => getOption(message, opts.event), EXT.event, "event");
      if (own) eventModels.push(this.event(message, eventNames[i]!, own, defaults, ctx));
    });
    return {
      proto: file.proto.name,
      outputPath,
      services,
      events: eventModels,
      enumTables: ctx.enumTables,
      imports: ctx.finish(),
    };
  }

  private checkFileDefaults(file: DescFile, defaults: opts.FileOptions): void {
    const at = () => locate(file, optionPath(file, EXT.file));
    if (defaults.exchange && !NAME_RE.test(defaults.exchange)) {
      this.fail(
        at,
        `(grabbit.v1.file).exchange "${defaults.exchange}" is not a valid exchange name (letters, digits, "-", "_", ".", ":")`,
      );
    }
    if (defaults.queuePrefix && !NAME_RE.test(defaults.queuePrefix)) {
      this.fail(
        at,
        `(grabbit.v1.file).queue_prefix "${defaults.queuePrefix}" may only contain letters, digits, "-", "_", ".", ":"`,
      );
    }
  }

  private service(
    service: DescService,
    names: ServiceModel["names"],
    defaults: opts.FileOptions | undefined,
    ctx: FileContext,
  ): ServiceModel {
    const own = this.option(
      service,
      () => (hasOption(service, opts.service) ? getOption(service, opts.service) : undefined),
      EXT.service,
      "service",
    );
    const at = (field?: number) => () =>
      locate(service, optionPath(service, EXT.service, ...(field ? [field] : [])));

    const declared = own?.transports.length
      ? own.transports
      : defaults?.transports.length
        ? defaults.transports
        : [opts.Transport.GRPC];
    const transports: TransportName[] = [];
    for (const t of declared) {
      const name =
        t === opts.Transport.GRPC ? "grpc" : t === opts.Transport.AMQP ? "amqp" : undefined;
      if (!name) {
        this.fail(
          at(SERVICE_FIELD.transports),
          `service ${service.typeName}: transport ${t} is not TRANSPORT_GRPC or TRANSPORT_AMQP`,
        );
      } else if (transports.includes(name)) {
        this.fail(
          at(SERVICE_FIELD.transports),
          `service ${service.typeName}: transport ${name.toUpperCase()} is listed twice`,
        );
      } else {
        transports.push(name);
      }
    }
    const amqp = transports.includes("amqp");
    if (!amqp && own?.requestQueue) {
      this.fail(
        at(SERVICE_FIELD.requestQueue),
        `service ${service.typeName} sets request_queue but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove request_queue`,
      );
    }
    if (!amqp && own?.prefetch) {
      this.fail(
        at(SERVICE_FIELD.prefetch),
        `service ${service.typeName} sets prefetch but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove prefetch`,
      );
    }
    // Unspecified (0) leaves the choice to the server at run time ("auto"); an unknown number (a
    // newer options.proto) would otherwise be silently read as unspecified.
    const queueType = own?.queueType ? QUEUE_TYPE_NAMES[own.queueType] : undefined;
    if (own?.queueType && !queueType) {
      this.fail(
        at(SERVICE_FIELD.queueType),
        `service ${service.typeName}: queue_type ${own.queueType} is not QUEUE_TYPE_QUORUM or QUEUE_TYPE_CLASSIC`,
      );
    } else if (!amqp && queueType) {
      this.fail(
        at(SERVICE_FIELD.queueType),
        `service ${service.typeName} sets queue_type but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove queue_type`,
      );
    }

    let amqpModel: ServiceModel["amqp"];
    if (amqp) {
      const requestQueue = own?.requestQueue || (defaults?.queuePrefix ?? "") + service.typeName;
      const where = at(SERVICE_FIELD.requestQueue);
      if (
        !NAME_RE.test(requestQueue) ||
        requestQueue.startsWith("amq.") ||
        Buffer.byteLength(requestQueue) > 255
      ) {
        this.fail(
          where,
          `service ${service.typeName}: request queue "${requestQueue}" is not a valid queue name (up to 255 of letters, digits, "-", "_", ".", ":"; not starting with "amq.")`,
        );
      }
      const earlier = this.queueOwners.get(requestQueue);
      if (earlier) {
        this.fail(
          where,
          `services ${earlier} and ${service.typeName} both use request queue "${requestQueue}"; give one of them its own request_queue`,
        );
      } else {
        this.queueOwners.set(requestQueue, service.typeName);
      }
      amqpModel = {
        requestQueue,
        prefetch: own?.prefetch || defaults?.prefetch || DEFAULT_PREFETCH,
        queueType,
      };
    }

    const serviceTimeout = own?.timeoutMs || defaults?.timeoutMs || undefined;
    const members = new NameScope();
    const methods = service.methods.map((m) => this.method(m, members, serviceTimeout, ctx));
    const features: RuntimeFeature[] = ["service"];
    if (transports.includes("grpc")) features.push("grpc");
    if (amqpModel) features.push("amqpRpc");
    return {
      typeName: service.typeName,
      protoName: service.name,
      names,
      transports,
      grpc: transports.includes("grpc"),
      amqp: amqpModel,
      methods,
      comment: comment(service),
      deprecated: service.deprecated,
      doc: doc(service),
      rt: ctx.runtime(...features),
    };
  }

  private method(
    method: DescMethod,
    members: NameScope,
    serviceTimeout: number | undefined,
    ctx: FileContext,
  ): MethodModel {
    const own = this.option(
      method,
      () => (hasOption(method, opts.method) ? getOption(method, opts.method) : undefined),
      EXT.method,
      "method",
    );
    const idempotent =
      (own?.idempotent ?? false) ||
      method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT ||
      method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
    const input = ctx.typeRef(method.input);
    const output = ctx.typeRef(method.output);
    const shape = CALL_SHAPES[method.methodKind];
    return {
      protoName: method.name,
      memberName: members.claim(methodMemberName(method)),
      path: `/${method.parent.typeName}/${method.name}`,
      kind: method.methodKind,
      input,
      output,
      // Handlers get decoded messages and may return init shapes; clients send init shapes and get
      // decoded messages (with ts-proto both are the message type itself).
      request: shape.streamIn
        ? { name: "requests", type: `AsyncIterable<${input.tsRef}>` }
        : { name: "request", type: input.tsRef },
      clientRequestType: shape.streamIn ? `AsyncIterable<${input.init}>` : input.init,
      handlerReturns: shape.streamOut
        ? `AsyncIterable<${output.init}>`
        : `Promise<${output.init}> | ${output.init}`,
      clientReturns: shape.streamOut
        ? `AsyncIterable<${output.tsRef}>`
        : `Promise<${output.tsRef}>`,
      transportCall: shape.transportCall,
      idempotent,
      timeoutMs: own?.timeoutMs || serviceTimeout,
      comment: comment(method),
      deprecated: method.deprecated,
      doc: doc(method),
    };
  }

  private event(
    message: DescMessage,
    names: EventModel["names"],
    own: opts.EventOptions,
    defaults: opts.FileOptions | undefined,
    ctx: FileContext,
  ): EventModel {
    const at = (field?: number) => () =>
      locate(message, optionPath(message, EXT.event, ...(field ? [field] : [])));

    const exchange = own.exchange || defaults?.exchange || "";
    if (!exchange) {
      this.fail(
        at(EVENT_FIELD.exchange),
        `event ${message.typeName} has no exchange: set (grabbit.v1.event).exchange, or (grabbit.v1.file).exchange for the whole file`,
      );
    } else if (!NAME_RE.test(exchange) || Buffer.byteLength(exchange) > 255) {
      this.fail(
        at(EVENT_FIELD.exchange),
        `event ${message.typeName}: "${exchange}" is not a valid exchange name (up to 255 of letters, digits, "-", "_", ".", ":")`,
      );
    } else if (exchange.startsWith("amq.")) {
      this.fail(
        at(EVENT_FIELD.exchange),
        `event ${message.typeName}: exchange names starting with "amq." are reserved by RabbitMQ`,
      );
    }

    const exchangeKind =
      KIND_NAMES[own.exchangeKind] ?? KIND_NAMES[defaults?.exchangeKind ?? 0] ?? "topic";
    if (exchange) {
      const where = at(EVENT_FIELD.exchangeKind);
      const earlier = this.exchanges.get(exchange);
      if (earlier && earlier.kind !== exchangeKind) {
        const other = earlier.where();
        this.fail(
          where,
          `event ${message.typeName} declares exchange "${exchange}" as ${exchangeKind}, but ${earlier.event} (${other.file}:${other.line}) declares it as ${earlier.kind}; one exchange has one kind`,
        );
      } else if (!earlier) {
        this.exchanges.set(exchange, { kind: exchangeKind, where, event: message.typeName });
      }
    }

    const routingKey = own.routingKey || message.typeName;
    const routingFields = this.routingFields(
      message,
      routingKey,
      exchangeKind,
      at(EVENT_FIELD.routingKey),
      ctx,
    );
    const type = ctx.typeRef(message);
    const picked = routingFields.map((f) => JSON.stringify(f.tsName)).join(" | ");
    return {
      typeName: message.typeName,
      type,
      names,
      exchange,
      exchangeKind,
      routingKey,
      routingFields,
      routingFieldNames: routingFields.map((f) => f.protoName),
      filterType:
        routingFields.length > 0
          ? `Partial<Pick<${type.tsRef}, ${picked}>>`
          : "Record<string, never>",
      persistent: own.persistent ?? true,
      comment: comment(message),
      deprecated: message.deprecated,
      doc: doc(message),
      rt: ctx.runtime("event"),
    };
  }

  private routingFields(
    message: DescMessage,
    template: string,
    kind: ExchangeKindName,
    where: Where,
    ctx: FileContext,
  ): RoutingFieldModel[] {
    const fail = (text: string) =>
      this.fail(where, `event ${message.typeName}: routing key "${template}": ${text}`);
    if (Buffer.byteLength(template) > 255) fail("longer than the 255 bytes AMQP allows");
    const literal = template.replace(PLACEHOLDER_RE, "");
    if (/[{}]/.test(literal)) fail(`unbalanced "{" or "}"`);
    if (/[*#]/.test(literal))
      fail(`"*" and "#" are wildcards for bindings and cannot appear in a routing key`);

    const fields: RoutingFieldModel[] = [];
    for (const match of template.matchAll(PLACEHOLDER_RE)) {
      const name = match[1]!;
      const start = match.index!;
      const end = start + match[0].length;
      if (
        kind === "topic" &&
        ((start > 0 && template[start - 1] !== ".") ||
          (end < template.length && template[end] !== "."))
      ) {
        fail(
          `{${name}} must be a whole word between dots, so that consumers can bind to it with "*"`,
        );
      }
      const field = message.fields.find((f) => f.name === name);
      if (!field) {
        const known = message.fields.filter(isRoutable).map((f) => f.name);
        fail(
          `{${name}} is not a field of ${message.typeName}${known.length ? ` (scalar fields: ${known.join(", ")})` : " (it has no scalar fields)"}`,
        );
        continue;
      }
      if (!isRoutable(field)) {
        fail(
          `{${name}} is a ${describeField(field)} field; placeholders take string, number, bool or enum fields`,
        );
        continue;
      }
      if (fields.some((f) => f.protoName === name)) {
        fail(`{${name}} appears twice`);
        continue;
      }
      if (field.oneof && this.options.messages === "protobuf-es") {
        fail(
          `{${name}} is a member of oneof "${field.oneof.name}", which protobuf-es turns into a { case, value } union with no ${name} property; ` +
            `move the field out of the oneof`,
        );
        continue;
      }
      if (field.oneof && this.options.tsProto.oneofUnions) {
        fail(
          `{${name}} is a member of oneof "${field.oneof.name}", which ts-proto's oneof=unions turns into a $case union with no ${name} property; ` +
            `move the field out of the oneof, or generate with oneof=properties`,
        );
        continue;
      }
      fields.push(this.routingField(field, ctx));
    }
    if (kind === "fanout" && fields.length > 0) {
      fail(
        `a fanout exchange ignores routing keys, so placeholders would never filter anything; use a topic exchange or remove them`,
      );
    }
    return fields;
  }

  private routingField(field: DescField, ctx: FileContext): RoutingFieldModel {
    const tsName =
      this.options.messages === "protobuf-es"
        ? protobufEsFieldName(field)
        : tsProtoFieldName(field, this.options.tsProto);
    const tsAccess = /^[A-Za-z_$][\w$]*$/.test(tsName)
      ? `.${tsName}`
      : `[${JSON.stringify(tsName)}]`;
    const read = `event${tsAccess}`;
    const named = { protoName: field.name, tsName, tsAccess, read };
    // With stringEnums the value already is the enum value's name, which is what routing keys carry.
    if (
      field.fieldKind === "enum" &&
      this.options.messages === "ts-proto" &&
      this.options.tsProto.stringEnums
    )
      return { ...named, kind: "string", text: read };
    if (field.fieldKind === "enum") {
      return {
        ...named,
        kind: "enum",
        text: `${ctx.enumTable(field.enum)}[${read} as number] ?? String(${read})`,
      };
    }
    const scalar = field.fieldKind === "scalar" ? field.scalar : ScalarType.STRING;
    const kind =
      scalar === ScalarType.BOOL ? "bool" : INTEGER_SCALARS.has(scalar) ? "number" : "string";
    return { ...named, kind, text: kind === "string" ? read : `String(${read})` };
  }
}

function isRoutable(field: DescField): boolean {
  if (field.fieldKind === "enum") return true;
  return field.fieldKind === "scalar" && field.scalar !== ScalarType.BYTES;
}

function describeField(field: DescField): string {
  switch (field.fieldKind) {
    case "list":
      return "repeated";
    case "map":
      return "map";
    case "message":
      return `message (${field.message.typeName})`;
    case "scalar":
      return field.scalar === ScalarType.BYTES ? "bytes" : "scalar";
    default:
      return field.fieldKind;
  }
}

function collectMessages(messages: readonly DescMessage[]): DescMessage[] {
  const out: DescMessage[] = [];
  for (const m of messages) {
    if (m.proto.options?.mapEntry) continue;
    out.push(m, ...collectMessages(m.nestedMessages));
  }
  return out;
}

function comment(desc: DescMessage | DescService | DescMethod): string | undefined {
  const raw = leadingComment(desc);
  if (!raw?.trim()) return undefined;
  // `// text` comes through as " text": drop the indentation every line shares.
  const lines = raw.replace(/\s+$/, "").split("\n");
  const indent = Math.min(
    ...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length),
  );
  const text = lines
    .map((l) => l.slice(indent))
    .join("\n")
    .trim();
  // A comment may not close the JSDoc block it is placed in.
  return text.replace(/\*\//g, "*\\/");
}

function doc(desc: DescMessage | DescService | DescMethod): DocModel {
  return { comment: comment(desc), deprecated: desc.deprecated, see: protoLink(desc) };
}

/** A service's exports. "BridgeService" and "Bridge" both give BridgeService, BridgeHandlers, BridgeClient. */
function serviceExports(service: DescService, scope: NameScope): ServiceModel["names"] {
  const base = serviceBaseName(service).replace(/(.)Service$/, "$1");
  return {
    desc: scope.claim(`${base}Service`),
    handlers: scope.claim(`${base}Handlers`),
    client: scope.claim(`${base}Client`),
    grpcClient: scope.claim(`create${base}GrpcClient`),
    grpcAdd: scope.claim(`add${base}GrpcService`),
    amqpClient: scope.claim(`create${base}AmqpClient`),
    amqpServe: scope.claim(`serve${base}Amqp`),
  };
}

/** An event's exports: OrderCreatedEvent, OrderCreatedPublisher, OrderCreatedConsumer, OrderCreatedFilter. */
function eventExports(message: DescMessage, scope: NameScope): EventModel["names"] {
  const base = tsProtoTypeName(message);
  return {
    desc: scope.claim(`${base}Event`),
    publisher: scope.claim(`${base}Publisher`),
    consumer: scope.claim(`${base}Consumer`),
    filter: scope.claim(`${base}Filter`),
  };
}
