// Descriptors in, model out: walks the files to generate, reads grabbit's options typed with
// @bufbuild/protobuf, resolves defaults and checks them. Every problem is collected with its source
// position; the caller fails generation once with all of them.
import {
  type DescEnum,
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
import { leadingComment, locate, optionPath, type Position } from "./location.js";
import type {
  EnumTableModel,
  EventModel,
  ExchangeKindName,
  FileModel,
  GenerationModel,
  ImportModel,
  MethodModel,
  RoutingFieldModel,
  QueueTypeName,
  ServiceModel,
  TransportName,
  TypeRef,
} from "./model.js";
import { NameScope, methodMemberName, serviceBaseName, tsProtoFieldName, tsProtoModulePath, tsProtoTypeName } from "./names.js";
import { DEFAULT_TS_PROTO_OPTIONS, TsProtoOptionError, type TsProtoOptions } from "./ts-proto-options.js";

export interface BuildOptions {
  /** Extension of relative imports: ".js" for NodeNext (default), "" for bundlers, ".ts" for Deno-style. */
  importExtension: string;
  /** ts-proto's options that change the names and shapes grabbit's code refers to. */
  tsProto: TsProtoOptions;
  /** Suffix of grabbit's own files: orders.proto becomes orders<suffix>.ts. */
  outputSuffix: string;
}

export const DEFAULT_BUILD_OPTIONS: BuildOptions = { importExtension: ".js", tsProto: DEFAULT_TS_PROTO_OPTIONS, outputSuffix: ".grabbit" };

const DEFAULT_PREFETCH = 32;
const NAME_RE = /^[A-Za-z0-9_.:-]+$/;
const PLACEHOLDER_RE = /\{([^{}]*)\}/g;

// Option field numbers, for pointing errors at the exact option line where buf recorded one.
const EXT = { file: 51730, event: 51731, service: 51732, method: 51733 } as const;
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

const INTEGER_SCALARS = new Set([
  ScalarType.INT32, ScalarType.INT64, ScalarType.UINT32, ScalarType.UINT64, ScalarType.SINT32, ScalarType.SINT64,
  ScalarType.FIXED32, ScalarType.FIXED64, ScalarType.SFIXED32, ScalarType.SFIXED64, ScalarType.FLOAT, ScalarType.DOUBLE,
]);

export function buildModel(registry: FileRegistry, filesToGenerate: readonly string[], options: BuildOptions = DEFAULT_BUILD_OPTIONS): GenerationModel {
  const builder = new ModelBuilder(options, new Set(filesToGenerate));
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
  private readonly exchanges = new Map<string, { kind: ExchangeKindName; where: () => Position; event: string }>();
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
  private option<V>(desc: DescFile | DescMessage | DescService | DescMethod, read: () => V | undefined, number: number, what: string): V | undefined {
    try {
      return read();
    } catch (err) {
      const name = desc.kind === "file" ? desc.proto.name : desc.kind === "rpc" ? `${desc.parent.typeName}.${desc.name}` : desc.typeName;
      this.fail(() => locate(desc, optionPath(desc, number)), `the (grabbit.v1.${what}) option of ${name} cannot be decoded: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
  }

  file(file: DescFile): FileModel | undefined {
    const defaults = this.option(file, () => (hasOption(file, opts.file) ? getOption(file, opts.file) : undefined), EXT.file, "file");
    const events = collectMessages(file.messages).filter((m) => hasOption(m, opts.event));
    if (file.services.length === 0 && events.length === 0) return undefined;

    const outputPath = tsProtoModulePath(file.proto.name, "") + this.options.outputSuffix + ".ts";
    const ctx = new FileContext(outputPath, this.options, (imported) => {
      if (!this.options.tsProto.emitImportedFiles && !this.generated.has(imported) && this.options.tsProto.moduleOf[imported] === undefined) this.unwritten.add(imported);
    });
    const fileModel: FileModel = {
      proto: file.proto.name,
      outputPath,
      imports: ctx.imports,
      services: [],
      events: [],
      enumTables: ctx.enumTables,
      usesGrpc: false,
      usesAmqpRpc: false,
    };
    if (defaults) this.checkFileDefaults(file, defaults);
    for (const service of file.services) {
      const model = this.service(service, defaults, ctx);
      fileModel.services.push(model);
      fileModel.usesGrpc ||= model.grpc;
      fileModel.usesAmqpRpc ||= model.amqp !== undefined;
    }
    for (const message of events) {
      const own = this.option(message, () => getOption(message, opts.event), EXT.event, "event");
      if (own) fileModel.events.push(this.event(message, own, defaults, ctx));
    }
    return fileModel;
  }

  private checkFileDefaults(file: DescFile, defaults: opts.FileOptions): void {
    const at = () => locate(file, optionPath(file, EXT.file));
    if (defaults.exchange && !NAME_RE.test(defaults.exchange)) {
      this.fail(at, `(grabbit.v1.file).exchange "${defaults.exchange}" is not a valid exchange name (letters, digits, "-", "_", ".", ":")`);
    }
    if (defaults.queuePrefix && !NAME_RE.test(defaults.queuePrefix)) {
      this.fail(at, `(grabbit.v1.file).queue_prefix "${defaults.queuePrefix}" may only contain letters, digits, "-", "_", ".", ":"`);
    }
  }

  private service(service: DescService, defaults: opts.FileOptions | undefined, ctx: FileContext): ServiceModel {
    const own = this.option(service, () => (hasOption(service, opts.service) ? getOption(service, opts.service) : undefined), EXT.service, "service");
    const at = (field?: number) => () => locate(service, optionPath(service, EXT.service, ...(field ? [field] : [])));
    // "BridgeService" and "Bridge" both give BridgeService, BridgeHandlers, BridgeClient.
    const base = serviceBaseName(service).replace(/(.)Service$/, "$1");

    const declared = own?.transports.length ? own.transports : defaults?.transports.length ? defaults.transports : [opts.Transport.GRPC];
    const transports: TransportName[] = [];
    for (const t of declared) {
      const name = t === opts.Transport.GRPC ? "grpc" : t === opts.Transport.AMQP ? "amqp" : undefined;
      if (!name) {
        this.fail(at(SERVICE_FIELD.transports), `service ${service.typeName}: transport ${t} is not TRANSPORT_GRPC or TRANSPORT_AMQP`);
      } else if (transports.includes(name)) {
        this.fail(at(SERVICE_FIELD.transports), `service ${service.typeName}: transport ${name.toUpperCase()} is listed twice`);
      } else {
        transports.push(name);
      }
    }
    const amqp = transports.includes("amqp");
    if (!amqp && own?.requestQueue) {
      this.fail(at(SERVICE_FIELD.requestQueue), `service ${service.typeName} sets request_queue but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove request_queue`);
    }
    if (!amqp && own?.prefetch) {
      this.fail(at(SERVICE_FIELD.prefetch), `service ${service.typeName} sets prefetch but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove prefetch`);
    }
    // Unspecified (0) leaves the choice to the server at run time ("auto"); an unknown number (a
    // newer options.proto) would otherwise be silently read as unspecified.
    const queueType = own?.queueType ? QUEUE_TYPE_NAMES[own.queueType] : undefined;
    if (own?.queueType && !queueType) {
      this.fail(at(SERVICE_FIELD.queueType), `service ${service.typeName}: queue_type ${own.queueType} is not QUEUE_TYPE_QUORUM or QUEUE_TYPE_CLASSIC`);
    } else if (!amqp && queueType) {
      this.fail(at(SERVICE_FIELD.queueType), `service ${service.typeName} sets queue_type but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove queue_type`);
    }

    let amqpModel: ServiceModel["amqp"];
    if (amqp) {
      const requestQueue = own?.requestQueue || (defaults?.queuePrefix ?? "") + service.typeName;
      const where = at(SERVICE_FIELD.requestQueue);
      if (!NAME_RE.test(requestQueue) || requestQueue.startsWith("amq.") || Buffer.byteLength(requestQueue) > 255) {
        this.fail(where, `service ${service.typeName}: request queue "${requestQueue}" is not a valid queue name (up to 255 of letters, digits, "-", "_", ".", ":"; not starting with "amq.")`);
      }
      const earlier = this.queueOwners.get(requestQueue);
      if (earlier) {
        this.fail(where, `services ${earlier} and ${service.typeName} both use request queue "${requestQueue}"; give one of them its own request_queue`);
      } else {
        this.queueOwners.set(requestQueue, service.typeName);
      }
      amqpModel = { requestQueue, prefetch: own?.prefetch || defaults?.prefetch || DEFAULT_PREFETCH, ...(queueType ? { queueType } : {}) };
    }

    const serviceTimeout = own?.timeoutMs || defaults?.timeoutMs || undefined;
    const members = new NameScope();
    const methods = service.methods.map((m) => this.method(m, members, serviceTimeout, ctx));
    return {
      typeName: service.typeName,
      protoName: service.name,
      names: {
        desc: ctx.names.claim(`${base}Service`),
        handlers: ctx.names.claim(`${base}Handlers`),
        client: ctx.names.claim(`${base}Client`),
        grpcClient: ctx.names.claim(`create${base}GrpcClient`),
        grpcAdd: ctx.names.claim(`add${base}GrpcService`),
        amqpClient: ctx.names.claim(`create${base}AmqpClient`),
        amqpServe: ctx.names.claim(`serve${base}Amqp`),
      },
      transports,
      grpc: transports.includes("grpc"),
      amqp: amqpModel,
      methods,
      comment: comment(service),
      deprecated: service.deprecated,
    };
  }

  private method(method: DescMethod, members: NameScope, serviceTimeout: number | undefined, ctx: FileContext): MethodModel {
    const own = this.option(method, () => (hasOption(method, opts.method) ? getOption(method, opts.method) : undefined), EXT.method, "method");
    const idempotent =
      (own?.idempotent ?? false) ||
      method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT ||
      method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
    return {
      protoName: method.name,
      memberName: members.claim(methodMemberName(method)),
      path: `/${method.parent.typeName}/${method.name}`,
      kind: method.methodKind,
      input: ctx.typeRef(method.input),
      output: ctx.typeRef(method.output),
      idempotent,
      timeoutMs: own?.timeoutMs || serviceTimeout,
      comment: comment(method),
      deprecated: method.deprecated,
    };
  }

  private event(message: DescMessage, own: opts.EventOptions, defaults: opts.FileOptions | undefined, ctx: FileContext): EventModel {
    const at = (field?: number) => () => locate(message, optionPath(message, EXT.event, ...(field ? [field] : [])));
    const base = tsProtoTypeName(message);

    const exchange = own.exchange || defaults?.exchange || "";
    if (!exchange) {
      this.fail(at(EVENT_FIELD.exchange), `event ${message.typeName} has no exchange: set (grabbit.v1.event).exchange, or (grabbit.v1.file).exchange for the whole file`);
    } else if (!NAME_RE.test(exchange) || Buffer.byteLength(exchange) > 255) {
      this.fail(at(EVENT_FIELD.exchange), `event ${message.typeName}: "${exchange}" is not a valid exchange name (up to 255 of letters, digits, "-", "_", ".", ":")`);
    } else if (exchange.startsWith("amq.")) {
      this.fail(at(EVENT_FIELD.exchange), `event ${message.typeName}: exchange names starting with "amq." are reserved by RabbitMQ`);
    }

    const exchangeKind = KIND_NAMES[own.exchangeKind] ?? KIND_NAMES[defaults?.exchangeKind ?? 0] ?? "topic";
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
    const routingFields = this.routingFields(message, routingKey, exchangeKind, at(EVENT_FIELD.routingKey), ctx);
    return {
      typeName: message.typeName,
      type: ctx.typeRef(message),
      names: {
        desc: ctx.names.claim(`${base}Event`),
        publisher: ctx.names.claim(`${base}Publisher`),
        consumer: ctx.names.claim(`${base}Consumer`),
        filter: ctx.names.claim(`${base}Filter`),
      },
      exchange,
      exchangeKind,
      routingKey,
      routingFields,
      persistent: own.persistent ?? true,
      comment: comment(message),
      deprecated: message.deprecated,
    };
  }

  private routingFields(message: DescMessage, template: string, kind: ExchangeKindName, where: Where, ctx: FileContext): RoutingFieldModel[] {
    const fail = (text: string) => this.fail(where, `event ${message.typeName}: routing key "${template}": ${text}`);
    if (Buffer.byteLength(template) > 255) fail("longer than the 255 bytes AMQP allows");
    const literal = template.replace(PLACEHOLDER_RE, "");
    if (/[{}]/.test(literal)) fail(`unbalanced "{" or "}"`);
    if (/[*#]/.test(literal)) fail(`"*" and "#" are wildcards for bindings and cannot appear in a routing key`);

    const fields: RoutingFieldModel[] = [];
    for (const match of template.matchAll(PLACEHOLDER_RE)) {
      const name = match[1]!;
      const start = match.index!;
      const end = start + match[0].length;
      if (kind === "topic" && ((start > 0 && template[start - 1] !== ".") || (end < template.length && template[end] !== "."))) {
        fail(`{${name}} must be a whole word between dots, so that consumers can bind to it with "*"`);
      }
      const field = message.fields.find((f) => f.name === name);
      if (!field) {
        const known = message.fields.filter(isRoutable).map((f) => f.name);
        fail(`{${name}} is not a field of ${message.typeName}${known.length ? ` (scalar fields: ${known.join(", ")})` : " (it has no scalar fields)"}`);
        continue;
      }
      if (!isRoutable(field)) {
        fail(`{${name}} is a ${describeField(field)} field; placeholders take string, number, bool or enum fields`);
        continue;
      }
      if (fields.some((f) => f.protoName === name)) {
        fail(`{${name}} appears twice`);
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
      fail(`a fanout exchange ignores routing keys, so placeholders would never filter anything; use a topic exchange or remove them`);
    }
    return fields;
  }

  private routingField(field: DescField, ctx: FileContext): RoutingFieldModel {
    const tsName = tsProtoFieldName(field, this.options.tsProto);
    const named = { protoName: field.name, tsName, tsAccess: /^[A-Za-z_$][\w$]*$/.test(tsName) ? `.${tsName}` : `[${JSON.stringify(tsName)}]` };
    // With stringEnums the value already is the enum value's name, which is what routing keys carry.
    if (field.fieldKind === "enum" && this.options.tsProto.stringEnums) return { ...named, kind: "string" };
    if (field.fieldKind === "enum") return { ...named, kind: "enum", enumTable: ctx.enumTable(field.enum) };
    const scalar = field.fieldKind === "scalar" ? field.scalar : ScalarType.STRING;
    const kind = scalar === ScalarType.BOOL ? "bool" : INTEGER_SCALARS.has(scalar) ? "number" : "string";
    return { ...named, kind };
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
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  const text = lines.map((l) => l.slice(indent)).join("\n").trim();
  // A comment may not close the JSDoc block it is placed in.
  return text.replace(/\*\//g, "*\\/");
}

/** Per generated file: the imports of ts-proto modules and the names already taken. */
class FileContext {
  readonly imports: ImportModel[] = [];
  readonly enumTables: EnumTableModel[] = [];
  readonly names = new NameScope();
  private readonly aliases = new Map<string, string>();
  private readonly tables = new Map<DescEnum, string>();

  constructor(
    private readonly outputPath: string,
    private readonly options: BuildOptions,
    private readonly onImport: (protoFile: string) => void,
  ) {}

  typeRef(message: DescMessage): TypeRef {
    return { typeName: message.typeName, tsRef: `${this.moduleAlias(message.file)}.${tsProtoTypeName(message, this.options.tsProto)}` };
  }

  enumTable(desc: DescEnum): string {
    let name = this.tables.get(desc);
    if (!name) {
      name = this.names.claim(`$${tsProtoTypeName(desc)}Names`);
      this.tables.set(desc, name);
      // With allow_alias several names share a number: the first declared is the one a decoded value
      // takes (in ts-proto's string enums too), so routing keys agree whichever style produced them.
      const entries: { number: number; name: string }[] = [];
      for (const v of desc.values) if (!entries.some((e) => e.number === v.number)) entries.push({ number: v.number, name: v.name });
      this.enumTables.push({ name, entries });
    }
    return name;
  }

  private moduleAlias(file: DescFile): string {
    this.onImport(file.proto.name);
    // An M mapping names the module to import, as ts-proto takes it: a package as it is, and a "./"
    // path relative to the output root (rewritten relative to each file).
    const mapped = this.options.tsProto.moduleOf[file.proto.name];
    const target = tsProtoModulePath(file.proto.name, this.options.tsProto.fileSuffix);
    const from =
      mapped === undefined
        ? relativeImport(this.outputPath, target) + this.options.importExtension
        : mapped.startsWith("./")
          ? relativeImport(this.outputPath, mapped.slice(2))
          : mapped;
    let alias = this.aliases.get(from);
    if (!alias) {
      alias = `$${this.imports.length}`;
      this.aliases.set(from, alias);
      this.imports.push({ alias, from });
    }
    return alias;
  }
}

function relativeImport(fromFile: string, toModule: string): string {
  const from = fromFile.split("/").slice(0, -1);
  const to = toModule.split("/");
  let common = 0;
  while (common < from.length && common < to.length - 1 && from[common] === to[common]) common++;
  const up = from.length - common;
  const rest = to.slice(common).join("/");
  return up === 0 ? `./${rest}` : `${"../".repeat(up)}${rest}`;
}
