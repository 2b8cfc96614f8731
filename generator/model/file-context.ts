// Per generated file: its one name scope (declarations, reserved globals, imports), its import
// registry, its enum lookup tables, and the runtime symbols each declaration's code uses. The
// builder asks it for every name it prints; `finish` imports the runtime symbols last, so that on
// a clash the user's own message types keep their plain names and the runtime's get the alias.
import type { DescEnum, DescFile, DescMessage } from "@bufbuild/protobuf";
import { ImportRegistry, type ImportStatement } from "./imports.js";
import type { EnumTableModel, RuntimeNames, TypeRef } from "./model.js";
import { NameScope, tsProtoModulePath, tsProtoTypeName } from "./names.js";
import {
  type MessageLibrary,
  protobufEsModule,
  protobufEsSchemaName,
  protobufEsShapeName,
} from "./protobuf-es.js";
import type { TsProtoOptions } from "./ts-proto-options.js";

/**
 * Globals the generated code names. An import or declaration of the same name would shadow them
 * (a message called `Promise` would break every `Promise<...>`), so the scope never hands them out.
 */
const RESERVED_GLOBALS = [
  "AsyncIterable",
  "Partial",
  "Pick",
  "Promise",
  "Readonly",
  "Record",
  "String",
];

/**
 * What the generated code uses from the runtime, per feature, by submodule ("" is the package
 * itself): the one list runtime imports come from. A template that names a symbol missing here
 * fails generation (templates run in strict mode); one listed here but unused fails the
 * no-unused-locals type check of the generated code.
 */
const RUNTIME_SYMBOLS = {
  // The message library's adapter to the runtime's MessageType: one of the two, added to a
  // declaration's features by the library (see MESSAGE_TYPE_FEATURE), named `messageType` for templates.
  tsProto: { "": { values: ["tsProtoType"], types: [] } },
  protobufEs: { "": { values: ["protobufEsType"], types: [] } },
  service: {
    "": {
      values: [],
      types: ["CallOptions", "HandlerContext", "MethodDesc", "ServiceDesc", "Transport"],
    },
  },
  grpc: { "/grpc": { values: ["GrpcTransport"], types: ["GrpcServer", "GrpcTransportOptions"] } },
  amqpRpc: {
    "/amqp": {
      values: ["AmqpRpcTransport", "serveAmqp"],
      types: ["AmqpConnection", "AmqpRpcServer", "AmqpRpcServerOptions", "AmqpRpcTransportOptions"],
    },
  },
  event: {
    "": { values: [], types: ["EventDesc"] },
    "/amqp": {
      values: ["EventConsumer", "EventPublisher"],
      types: [
        "AmqpConnection",
        "EventConsumerOptions",
        "EventHandler",
        "EventPublisherOptions",
        "PublishManyOptions",
        "PublishOptions",
      ],
    },
  },
} satisfies Record<string, Record<string, { values: string[]; types: string[] }>>;

export type RuntimeFeature = keyof typeof RUNTIME_SYMBOLS;

const MESSAGE_TYPE_FEATURE = {
  "ts-proto": { feature: "tsProto", helper: "tsProtoType" },
  "protobuf-es": { feature: "protobufEs", helper: "protobufEsType" },
} as const satisfies Record<MessageLibrary, { feature: RuntimeFeature; helper: string }>;

export interface FileContextOptions {
  /** The module the runtime is imported from. */
  runtime: string;
  importExtension: string;
  messages: MessageLibrary;
  tsProto: TsProtoOptions;
}

export class FileContext {
  readonly enumTables: EnumTableModel[] = [];
  readonly names = new NameScope(RESERVED_GLOBALS);
  private readonly registry: ImportRegistry;
  private readonly tables = new Map<DescEnum, string>();
  private readonly runtimeUses: { features: RuntimeFeature[]; names: RuntimeNames }[] = [];

  constructor(
    private readonly outputPath: string,
    private readonly options: FileContextOptions,
    /** The .proto files being generated (a well-known type among them is not imported from its package). */
    private readonly generated: ReadonlySet<string>,
    private readonly onImport: (protoFile: string) => void,
  ) {
    this.registry = new ImportRegistry(this.names, options.runtime);
  }

  /**
   * A message type as this file names it. ts-proto: its message object, imported as a value (it is
   * the codec too). protobuf-es: its shape as a type and its schema as a value (the codec's input).
   */
  typeRef(message: DescMessage): TypeRef {
    if (this.options.messages === "protobuf-es") {
      const from = this.protobufEsModuleOf(message.file);
      const tsRef = this.registry.use(from, protobufEsShapeName(message), false);
      const schema = this.registry.use(from, protobufEsSchemaName(message), true);
      const initShape = this.registry.use("@bufbuild/protobuf", "MessageInitShape", false);
      return {
        typeName: message.typeName,
        tsRef,
        init: `${initShape}<typeof ${schema}>`,
        codecArgs: schema,
      };
    }
    const name = tsProtoTypeName(message, this.options.tsProto);
    const tsRef = this.registry.use(this.moduleOf(message.file), name, true);
    return {
      typeName: message.typeName,
      tsRef,
      init: tsRef,
      codecArgs: `${JSON.stringify(message.typeName)}, ${tsRef}`,
    };
  }

  /**
   * The runtime names one declaration's code uses: an object the templates read, filled in by
   * `finish` once every message type of the file has its name.
   */
  runtime(...features: RuntimeFeature[]): RuntimeNames {
    const names: RuntimeNames = {};
    // Services and events encode messages: they use the library's adapter, as `rt.messageType`.
    if (features.includes("service") || features.includes("event"))
      features.push(MESSAGE_TYPE_FEATURE[this.options.messages].feature);
    this.runtimeUses.push({ features, names });
    return names;
  }

  enumTable(desc: DescEnum): string {
    let name = this.tables.get(desc);
    if (!name) {
      name = this.names.claim(`$${tsProtoTypeName(desc)}Names`);
      this.tables.set(desc, name);
      // With allow_alias several names share a number: the first declared is the one a decoded
      // value takes (in ts-proto's string enums too), so routing keys agree whichever style made it.
      const entries: { number: number; name: string }[] = [];
      for (const v of desc.values) {
        if (!entries.some((e) => e.number === v.number)) {
          entries.push({ number: v.number, name: v.name });
        }
      }
      this.enumTables.push({ name, entries });
    }
    return name;
  }

  /** Imports the runtime symbols the declarations use and returns the file's import statements. */
  finish(): ImportStatement[] {
    const order = Object.keys(RUNTIME_SYMBOLS) as RuntimeFeature[];
    const used = new Set(this.runtimeUses.flatMap((u) => u.features));
    const local = new Map<string, string>();
    for (const feature of order.filter((f) => used.has(f))) {
      for (const [sub, { values, types }] of Object.entries(RUNTIME_SYMBOLS[feature])) {
        const from = this.options.runtime + sub;
        for (const name of values) local.set(name, this.registry.use(from, name, true));
        for (const name of types) local.set(name, this.registry.use(from, name, false));
      }
    }
    for (const { features, names } of this.runtimeUses) {
      for (const feature of features) {
        for (const { values, types } of Object.values(RUNTIME_SYMBOLS[feature])) {
          for (const name of [...values, ...types]) names[name] = local.get(name)!;
        }
      }
      const helper = names[MESSAGE_TYPE_FEATURE[this.options.messages].helper];
      if (helper) names["messageType"] = helper;
    }
    return this.registry.statements();
  }

  private protobufEsModuleOf(file: DescFile): string {
    const where = protobufEsModule(file.proto.name, this.generated.has(file.proto.name));
    return "package" in where
      ? where.package
      : relativeImport(this.outputPath, where.path) + this.options.importExtension;
  }

  private moduleOf(file: DescFile): string {
    this.onImport(file.proto.name);
    // An M mapping names the module to import, as ts-proto takes it: a package as it is, and a "./"
    // path relative to the output root (rewritten relative to each file).
    const mapped = this.options.tsProto.moduleOf[file.proto.name];
    const target = tsProtoModulePath(file.proto.name, this.options.tsProto.fileSuffix);
    if (mapped === undefined) {
      return relativeImport(this.outputPath, target) + this.options.importExtension;
    }
    return mapped.startsWith("./") ? relativeImport(this.outputPath, mapped.slice(2)) : mapped;
  }
}

export function relativeImport(fromFile: string, toModule: string): string {
  const from = fromFile.split("/").slice(0, -1);
  const to = toModule.split("/");
  let common = 0;
  while (common < from.length && common < to.length - 1 && from[common] === to[common]) common++;
  const up = from.length - common;
  const rest = to.slice(common).join("/");
  return up === 0 ? `./${rest}` : `${"../".repeat(up)}${rest}`;
}
