// The TypeScript names ts-proto gives to protobuf declarations, so generated code can refer to
// ts-proto's messages, and the names grabbit itself exports.
import type { DescEnum, DescField, DescMessage, DescService, DescMethod } from "@bufbuild/protobuf";
import { DEFAULT_TS_PROTO_OPTIONS, type TsProtoOptions } from "./ts-proto-options.js";

/** ts-proto's snake_case to camelCase (its default `snakeToCamel=keys,json`). */
export function tsProtoCamel(name: string): string {
  if (!name.includes("_")) return name;
  const hasLower = /[a-z]/.test(name);
  return name
    .split("_")
    .map((word, i) => {
      const w = hasLower ? word : word.toLowerCase();
      return i === 0 ? w : w.charAt(0).toUpperCase() + w.slice(1);
    })
    .join("");
}

// ts-proto suffixes these so they do not shadow globals.
const TS_PROTO_BUILT_INS = new Set(["Date", "Function"]);

/**
 * The name ts-proto exports for a message or enum: nested names joined with "_" (`Outer_Inner`),
 * each camel-cased unless snakeToCamel leaves keys alone, wrapped in the type/message/enum affixes.
 */
export function tsProtoTypeName(
  desc: DescMessage | DescEnum,
  options: TsProtoOptions = DEFAULT_TS_PROTO_OPTIONS,
): string {
  const parts: string[] = [];
  for (let d: DescMessage | DescEnum | undefined = desc; d; d = d.parent)
    parts.unshift(options.snakeToCamelKeys ? tsProtoCamel(d.name) : d.name);
  const [prefix, suffix] =
    desc.kind === "enum"
      ? [options.enumPrefix, options.enumSuffix]
      : [options.messagePrefix, options.messageSuffix];
  const name =
    options.typePrefix +
    prefix +
    parts.join(options.useSnakeTypeName ? "_" : "") +
    suffix +
    options.typeSuffix;
  return TS_PROTO_BUILT_INS.has(name) ? `${name}Message` : name;
}

/** The property name ts-proto gives a field. */
export function tsProtoFieldName(
  field: DescField,
  options: TsProtoOptions = DEFAULT_TS_PROTO_OPTIONS,
): string {
  if (options.useJsonName) return field.jsonName;
  return options.snakeToCamelKeys ? tsProtoCamel(field.name) : field.name;
}

/** Where ts-proto writes the module for a .proto file, without extension. */
export function tsProtoModulePath(protoFile: string, suffix = ""): string {
  return protoFile.replace(/\.proto$/, "") + suffix;
}

export function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

export function upperFirst(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// Member names that would break a class or object: the constructor, Object.prototype members,
// `then` (an object with a `then` method is taken for a promise), and the client's own members.
const UNSAFE_MEMBERS = new Set([
  "constructor",
  "then",
  "transport",
  "close",
  "toString",
  "toJSON",
  "toLocaleString",
  "valueOf",
  "hasOwnProperty",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "__proto__",
  "__defineGetter__",
  "__defineSetter__",
  "__lookupGetter__",
  "__lookupSetter__",
]);

/** The generated client/handler member name of a method: lowerCamel, escaped where unsafe. */
export function methodMemberName(method: DescMethod): string {
  const name = lowerFirst(tsProtoCamel(method.name));
  return UNSAFE_MEMBERS.has(name) ? `${name}$` : name;
}

/** The TypeScript base name of a service, as ts-proto would spell a type of the same name. */
export function serviceBaseName(service: DescService): string {
  return tsProtoCamel(service.name);
}

/**
 * Hands out names that are unique within one generated file, suffixing on collision. Names given
 * to `reserve` are never handed out: the globals the generated code refers to.
 */
export class NameScope {
  private readonly taken: Set<string>;

  constructor(reserved: Iterable<string> = []) {
    this.taken = new Set(reserved);
  }

  /** The name itself when free, else the first free `name2`, `name3`, ... (exports read this way). */
  claim(name: string): string {
    let candidate = name;
    for (let i = 2; this.taken.has(candidate); i++) candidate = `${name}${i}`;
    this.taken.add(candidate);
    return candidate;
  }

  /** The name itself when free, else `name$1`, `name$2`, ...: an import alias, which no proto name can take. */
  alias(name: string): string {
    let candidate = name;
    for (let i = 1; this.taken.has(candidate); i++) candidate = `${name}$${i}`;
    this.taken.add(candidate);
    return candidate;
  }
}
