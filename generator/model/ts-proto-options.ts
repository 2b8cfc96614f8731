// ts-proto's own options, as protoc-gen-grabbit receives them. The generated code refers to ts-proto's
// types and codecs by name, so the options that change those names or shapes must be known here too:
// users pass the same `opt:` values to both plugins. ts-proto options that do not touch what grabbit
// refers to are accepted and ignored, so the two lists may simply be the same.
import { InputError } from "../../governance/errors.js";

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
  /** `importSuffix`, when given: the extension of relative imports. */
  importSuffix?: string;
  /** `emitImportedFiles=false`: ts-proto writes only the files asked for, not their imports. */
  emitImportedFiles: boolean;
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
  emitImportedFiles: true,
};

// The options of ts-proto 2.x that change nothing grabbit refers to (service, JSON, date, long and
// optional-field styles reach grabbit only through ts-proto's own types, which it uses as they are).
const NEUTRAL = new Set([
  "context",
  "useContextDataloaders",
  "protoJsonFormat",
  "emitDefaultValues",
  "globalThisPolyfill",
  "forceLong",
  "useJsTypeOverride",
  "useOptionals",
  "useDate",
  "useJsonTimestamp",
  "useMongoObjectId",
  "esModuleInterop",
  "lowerCaseServiceMethods",
  "outputJsonMethods",
  "outputPartialMethods",
  "outputTypeAnnotations",
  "outputTypeRegistry",
  "constEnums",
  "removeEnumPrefix",
  "enumsAsLiterals",
  "outputClientImpl",
  "returnObservable",
  "addGrpcMetadata",
  "metadataType",
  "addNestjsRestParameter",
  "useNestjsFqnServiceName",
  "env",
  "unrecognizedEnum",
  "unrecognizedEnumName",
  "unrecognizedEnumValue",
  "exportCommonSymbols",
  "outputSchema",
  "useExactTypes",
  "useAbortSignal",
  "useAsyncIterable",
  "unknownFields",
  "usePrototypeForDefaults",
  "useNumericEnumForJson",
  "initializeFieldsAsUndefined",
  "useMapType",
  "useReadonlyTypes",
  "useUnknownForValue",
  "outputExtensions",
  "outputIndex",
  "rpcBeforeRequest",
  "rpcAfterResponse",
  "rpcErrorHandler",
  "comments",
  "disableProto2Optionals",
  "disableProto2DefaultValues",
  "useNullAsOptional",
  "annotateFilesWithVersion",
  "noDefaultsForOptionals",
  "bigIntLiteral",
  "useDuration",
  "anyType",
  "useJsonWireFormat",
]);

const AFFIXES = [
  "typePrefix",
  "typeSuffix",
  "messagePrefix",
  "messageSuffix",
  "enumPrefix",
  "enumSuffix",
] as const;
const FOLLOWED = [
  "snakeToCamel",
  "useJsonName",
  "useSnakeTypeName",
  "stringEnums",
  "oneof",
  "fileSuffix",
  "importSuffix",
  ...AFFIXES,
];
// Options that leave grabbit's code without the codecs it calls, or the modules it imports.
const GUARDED = [
  "outputEncodeMethods",
  "onlyTypes",
  "nestJs",
  "outputServices",
  "outputEncodeIncludeTypes",
  "outputDecodeIncludeTypes",
  "emitImportedFiles",
];

/** Thrown for a ts-proto option value that grabbit cannot follow; the plugin reports it as a sentence. */
export class TsProtoOptionError extends InputError {}
Object.defineProperty(TsProtoOptionError.prototype, "name", {
  value: "TsProtoOptionError",
  writable: true,
  configurable: true,
});

/** Whether `key` is one of ts-proto's options (an `M` mapping included). */
export function isTsProtoOption(key: string): boolean {
  return (
    (key.length > 1 && key.startsWith("M")) ||
    NEUTRAL.has(key) ||
    FOLLOWED.includes(key) ||
    GUARDED.includes(key)
  );
}

type Raw = string | boolean | Raw[];

/**
 * ts-proto's options from the `key=value` pairs it was given, read the way ts-proto reads them:
 * "true"/"false" become booleans, an empty value is false, a repeated key collects its values.
 */
export function tsProtoOptionsFrom(
  pairs: readonly { key: string; value: string | undefined }[],
): TsProtoOptions {
  const raw = new Map<string, Raw>();
  const out: TsProtoOptions = { ...DEFAULT_TS_PROTO_OPTIONS, moduleOf: {} };
  for (const { key, value } of pairs) {
    // ts-proto drops a key without "=" without a word; say so instead of guessing what was meant.
    if (value === undefined)
      throw new TsProtoOptionError(
        `ts-proto ignores "${key}" without a value; write ${key}=true (or the value you mean), for both plugins`,
      );
    if (key.length > 1 && key.startsWith("M")) {
      if (!value)
        throw new TsProtoOptionError(
          `ts-proto option "${key}" needs a module, such as ${key}=@acme/protos/${key.slice(1).replace(/\.proto$/, "")}`,
        );
      out.moduleOf[key.slice(1)] = value;
      continue;
    }
    const parsed: Raw = value === "true" ? true : value === "false" ? false : value;
    const before = raw.get(key);
    raw.set(key, before ? [before, parsed] : parsed);
  }
  const truthy = (key: string) => Boolean(raw.get(key));
  const has = (key: string) => raw.has(key);

  if (has("snakeToCamel")) {
    const words = flatten(raw.get("snakeToCamel")!).flatMap((w) =>
      typeof w === "string" ? w.split("_") : w === true ? ["keys", "json"] : [],
    );
    const unknown = words.filter((w) => w !== "keys" && w !== "json" && w !== "");
    if (unknown.length > 0)
      throw new TsProtoOptionError(
        `ts-proto option snakeToCamel takes true, false, keys, json or keys_json, not "${unknown.join("_")}"`,
      );
    out.snakeToCamelKeys = words.includes("keys");
  }
  if (has("useJsonName")) out.useJsonName = truthy("useJsonName");
  if (has("useSnakeTypeName")) out.useSnakeTypeName = truthy("useSnakeTypeName");
  if (has("stringEnums")) out.stringEnums = truthy("stringEnums");
  if (has("oneof")) {
    const oneof = raw.get("oneof");
    if (oneof !== "properties" && oneof !== "unions" && oneof !== "unions-value") {
      throw new TsProtoOptionError(
        `ts-proto option oneof takes properties, unions or unions-value, not "${String(oneof)}"`,
      );
    }
    out.oneofUnions = oneof !== "properties";
  }
  // ts-proto concatenates these into names and paths as they come (String() is that concatenation).
  for (const key of AFFIXES) if (has(key)) out[key] = String(raw.get(key));
  if (has("fileSuffix")) out.fileSuffix = String(raw.get("fileSuffix"));
  if (has("importSuffix")) out.importSuffix = String(raw.get("importSuffix"));

  const codecs = "the encode and decode functions that grabbit's code calls";
  if (has("outputEncodeMethods") && raw.get("outputEncodeMethods") !== true) {
    throw new TsProtoOptionError(
      `ts-proto option outputEncodeMethods=${String(raw.get("outputEncodeMethods"))} leaves out ${codecs}; keep ts-proto's default (true)`,
    );
  }
  if (truthy("onlyTypes"))
    throw new TsProtoOptionError(`ts-proto option onlyTypes leaves out ${codecs}; drop it`);
  // nestJs turns the codecs off, and ts-proto turns them back on only when services are asked for too.
  if (truthy("nestJs") && !truthy("outputServices")) {
    throw new TsProtoOptionError(
      `ts-proto option nestJs without outputServices leaves out ${codecs}; add outputServices=default (or drop nestJs)`,
    );
  }
  for (const key of ["outputEncodeIncludeTypes", "outputDecodeIncludeTypes"]) {
    if (truthy(key))
      throw new TsProtoOptionError(
        `ts-proto option ${key} gives the messages it does not match codecs that throw, and grabbit's code encodes and decodes every event and RPC message; drop it`,
      );
  }
  if (has("emitImportedFiles")) out.emitImportedFiles = truthy("emitImportedFiles");
  return out;
}

function flatten(v: Raw): (string | boolean)[] {
  return Array.isArray(v) ? v.flatMap(flatten) : [v];
}
