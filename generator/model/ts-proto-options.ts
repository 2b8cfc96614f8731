// ts-proto's own options, as protoc-gen-grabbit receives them. The generated code refers to ts-proto's
// types and codecs by name, so the options that change those names or shapes must be known here too:
// users pass the same `opt:` values to both plugins. ts-proto options that do not touch what grabbit
// refers to are accepted and ignored, so the two lists may simply be the same.

/** What grabbit needs to know of ts-proto's output. The defaults are ts-proto's. */
export interface TsProtoOptions {
  /** `snakeToCamel` contains "keys": field (and type) names are camel-cased. */
  snakeToCamelKeys: boolean;
  /** `useJsonName`: fields are named by their json_name. */
  useJsonName: boolean;
  /** `useSnakeTypeName`: nested types are joined with "_" (Outer_Inner); off, they are concatenated. */
  useSnakeTypeName: boolean;
  typePrefix: string;
  typeSuffix: string;
  messagePrefix: string;
  messageSuffix: string;
  enumPrefix: string;
  enumSuffix: string;
  /** `stringEnums`: enum values are their names as strings. */
  stringEnums: boolean;
  /** `oneof=unions` or `unions-value`: members of a oneof live under the oneof's name as a `$case` union. */
  oneofUnions: boolean;
  /** `fileSuffix`: orders.proto becomes orders<suffix>.ts. */
  fileSuffix: string;
  /** `M<file.proto>=<module>`: the module to import a file's types from instead of ts-proto's output. */
  moduleOf: Record<string, string>;
}

export const DEFAULT_TS_PROTO_OPTIONS: TsProtoOptions = {
  snakeToCamelKeys: true,
  useJsonName: false,
  useSnakeTypeName: true,
  typePrefix: "",
  typeSuffix: "",
  messagePrefix: "",
  messageSuffix: "",
  enumPrefix: "",
  enumSuffix: "",
  stringEnums: false,
  oneofUnions: false,
  fileSuffix: "",
  moduleOf: {},
};

// The options of ts-proto 2.x that change nothing grabbit refers to (service, JSON, date, long and
// optional-field styles reach grabbit only through ts-proto's own types, which it uses as they are).
const NEUTRAL = new Set([
  "context", "useContextDataloaders", "protoJsonFormat", "emitDefaultValues", "globalThisPolyfill", "forceLong",
  "useJsTypeOverride", "useOptionals", "useDate", "useJsonTimestamp", "useMongoObjectId", "esModuleInterop",
  "lowerCaseServiceMethods", "outputEncodeIncludeTypes", "outputDecodeIncludeTypes", "outputJsonMethods",
  "outputPartialMethods", "outputTypeAnnotations", "outputTypeRegistry", "constEnums", "removeEnumPrefix",
  "enumsAsLiterals", "outputClientImpl", "outputServices", "returnObservable", "addGrpcMetadata", "metadataType",
  "addNestjsRestParameter", "useNestjsFqnServiceName", "nestJs", "env", "unrecognizedEnum", "unrecognizedEnumName",
  "unrecognizedEnumValue", "exportCommonSymbols", "outputSchema", "emitImportedFiles", "useExactTypes",
  "useAbortSignal", "useAsyncIterable", "unknownFields", "usePrototypeForDefaults", "useNumericEnumForJson",
  "initializeFieldsAsUndefined", "useMapType", "useReadonlyTypes", "useUnknownForValue", "outputExtensions",
  "outputIndex", "rpcBeforeRequest", "rpcAfterResponse", "rpcErrorHandler", "comments", "disableProto2Optionals",
  "disableProto2DefaultValues", "useNullAsOptional", "annotateFilesWithVersion", "noDefaultsForOptionals",
  "bigIntLiteral", "useDuration", "anyType", "useJsonWireFormat",
]);

const AFFIXES = ["typePrefix", "typeSuffix", "messagePrefix", "messageSuffix", "enumPrefix", "enumSuffix"] as const;

/** Thrown for a ts-proto option value that grabbit cannot follow; the plugin reports it as a sentence. */
export class TsProtoOptionError extends Error {}

/** Whether `key` is one of ts-proto's options (an `M` mapping included). */
export function isTsProtoOption(key: string): boolean {
  return (key.length > 1 && key.startsWith("M")) || NEUTRAL.has(key) || AFFIXES.includes(key as (typeof AFFIXES)[number]) ||
    ["snakeToCamel", "useJsonName", "useSnakeTypeName", "stringEnums", "oneof", "fileSuffix", "importSuffix", "outputEncodeMethods", "onlyTypes"].includes(key);
}

/**
 * Applies one `key=value` of ts-proto's to `into`, reading the value as ts-proto does ("true" and
 * "false" are booleans). `importSuffix` is not kept here: the plugin maps it to its import extension.
 */
export function applyTsProtoOption(into: TsProtoOptions, key: string, value: string): void {
  const bool = (): boolean => {
    if (value === "true" || value === "") return true;
    if (value === "false") return false;
    throw new TsProtoOptionError(`ts-proto option "${key}" takes true or false, not "${value}"`);
  };
  if (key.startsWith("M") && key.length > 1) {
    if (!value) throw new TsProtoOptionError(`ts-proto option "${key}" needs a module, such as ${key}=@acme/protos/${key.slice(1).replace(/\.proto$/, "")}`);
    into.moduleOf[key.slice(1)] = value;
    return;
  }
  switch (key) {
    case "snakeToCamel": {
      // ts-proto: true = keys and json, false = neither, otherwise words joined by "_" (keys_json).
      if (value === "true" || value === "false") into.snakeToCamelKeys = value === "true";
      else {
        const parts = value.split("_");
        const unknown = parts.filter((p) => p !== "keys" && p !== "json");
        if (unknown.length > 0) throw new TsProtoOptionError(`ts-proto option snakeToCamel takes true, false, keys, json or keys_json, not "${value}"`);
        into.snakeToCamelKeys = parts.includes("keys");
      }
      return;
    }
    case "useJsonName":
      into.useJsonName = bool();
      return;
    case "useSnakeTypeName":
      into.useSnakeTypeName = bool();
      return;
    case "stringEnums":
      into.stringEnums = bool();
      return;
    case "oneof":
      if (value !== "properties" && value !== "unions" && value !== "unions-value") {
        throw new TsProtoOptionError(`ts-proto option oneof takes properties, unions or unions-value, not "${value}"`);
      }
      into.oneofUnions = value !== "properties";
      return;
    case "fileSuffix":
      into.fileSuffix = value;
      return;
    case "outputEncodeMethods":
      if (value !== "true") {
        throw new TsProtoOptionError(`ts-proto option outputEncodeMethods=${value} leaves out the encode and decode functions that grabbit's code calls; keep ts-proto's default (true)`);
      }
      return;
    case "onlyTypes":
      if (bool()) throw new TsProtoOptionError(`ts-proto option onlyTypes=true leaves out the encode and decode functions that grabbit's code calls; drop it`);
      return;
    default:
      if ((AFFIXES as readonly string[]).includes(key)) {
        into[key as (typeof AFFIXES)[number]] = value;
        return;
      }
      if (NEUTRAL.has(key) || key === "importSuffix") return;
      throw new TsProtoOptionError(`"${key}" is not an option of ts-proto`);
  }
}
