// What grabbit needs to know of protoc-gen-es's output (protobuf-es v2), for `messages=protobuf-es`:
// the names its `_pb` files export for a message (the shape `Order` and the schema `OrderSchema`),
// the module a file's types come from, the property a field becomes, and which of protoc-gen-es's own
// options may be passed to protoc-gen-grabbit as well (so both plugins can get the same `opt:` list).
import type { DescField, DescFile, DescMessage } from "@bufbuild/protobuf";
import { wktPublicImportPaths } from "@bufbuild/protobuf/codegenv2";
import { nestedTypes } from "@bufbuild/protobuf/reflect";

/** The message libraries grabbit's generated code can be written against. */
export type MessageLibrary = "ts-proto" | "protobuf-es";
export const MESSAGE_LIBRARIES: readonly MessageLibrary[] = ["ts-proto", "protobuf-es"];

// Identifiers protoc-gen-es escapes with a trailing "$" (protoplugin's reserved list, v2): keywords,
// TypeScript's type keywords, `Object`, and the names its own output refers to.
const ESCAPED = new Set([
  "break",
  "case",
  "catch",
  "class",
  "const",
  "continue",
  "debugger",
  "default",
  "delete",
  "do",
  "else",
  "export",
  "extends",
  "false",
  "finally",
  "for",
  "function",
  "if",
  "import",
  "in",
  "instanceof",
  "new",
  "null",
  "return",
  "super",
  "switch",
  "this",
  "throw",
  "true",
  "try",
  "typeof",
  "var",
  "void",
  "while",
  "with",
  "yield",
  "enum",
  "implements",
  "interface",
  "let",
  "package",
  "private",
  "protected",
  "public",
  "static",
  "Object",
  "bigint",
  "number",
  "boolean",
  "string",
  "object",
  "globalThis",
  "Uint8Array",
  "Partial",
]);

const escapeReserved = (name: string) => (ESCAPED.has(name) ? `${name}$` : name);
const salt = (i: number) => (i === 0 ? "" : i === 1 ? "$" : `$${i - 1}`);

/** The declaration's name without its package, nesting joined with "_": `Order_Line`. */
function baseName(desc: { typeName: string; file: DescFile }): string {
  const pkg = desc.file.proto.package;
  return desc.typeName.slice(pkg ? pkg.length + 1 : 0).replace(/\./g, "_");
}

interface FileNames {
  shape: Map<DescMessage, string>;
  schema: Map<DescMessage, string>;
}

const cache = new WeakMap<DescFile, FileNames>();

/**
 * The names one `_pb` file exports, as protoc-gen-es gives them: every message and enum shape
 * first, then the file and every schema, each the first free of `name`, `name$`, `name$1`, ...
 */
function fileNames(file: DescFile): FileNames {
  let names = cache.get(file);
  if (names) return names;
  const taken = new Set<string>();
  const claim = (ideal: (i: number) => string) => {
    let i = 0;
    while (taken.has(ideal(i))) i++;
    taken.add(ideal(i));
    return ideal(i);
  };
  names = { shape: new Map(), schema: new Map() };
  const types = [...nestedTypes(file)];
  for (const desc of types) {
    if (desc.kind !== "message" && desc.kind !== "enum") continue;
    const name = claim((i) => escapeReserved(baseName(desc) + salt(i)));
    if (desc.kind === "message") names.shape.set(desc, name);
  }
  claim((i) => escapeReserved(`file_${file.name.replace(/[^a-zA-Z0-9_]+/g, "_")}${salt(i)}`));
  for (const desc of types) {
    const suffix = desc.kind === "message" || desc.kind === "enum" ? "Schema" : "";
    const name = claim((i) => escapeReserved(baseName(desc) + suffix + salt(i)));
    if (desc.kind === "message") names.schema.set(desc, name);
  }
  cache.set(file, names);
  return names;
}

/** The message's type (its shape) as its `_pb` file exports it: `Order`, `Object$`. */
export function protobufEsShapeName(message: DescMessage): string {
  return fileNames(message.file).shape.get(message)!;
}

/** The message's schema as its `_pb` file exports it: `OrderSchema`. */
export function protobufEsSchemaName(message: DescMessage): string {
  return fileNames(message.file).schema.get(message)!;
}

/** The property protobuf-es gives a field (its `localName`: lowerCamel, escaped where unsafe). */
export function protobufEsFieldName(field: DescField): string {
  return field.localName;
}

/**
 * The module a file's types are imported from, for protoc-gen-es's output: a well-known type from
 * @bufbuild/protobuf's own, unless it is among the files generated; else `<file>_pb`, relative.
 */
export function protobufEsModule(
  protoFile: string,
  generated: boolean,
): { package: string } | { path: string } {
  const wkt = wktPublicImportPaths[protoFile];
  if (wkt !== undefined && !generated) return { package: wkt };
  return { path: protoFile.replace(/\.proto$/, "") + "_pb" };
}

// protoc-gen-es's own options that change nothing grabbit refers to: accepted and ignored.
// import_extension is grabbit's option too (the same spelling and meaning).
const PROTOC_GEN_ES_NEUTRAL = new Set([
  "target",
  "ts_nocheck",
  "json_types",
  "valid_types",
  "js_import_style",
  "keep_empty_files",
  "elide_plugin_version",
  "erasable_syntax",
]);
// Options that move modules grabbit imports: followed by neither plugin pair yet, so refused.
const PROTOC_GEN_ES_UNFOLLOWED = new Set(["rewrite_imports", "map_imports", "bootstrap_wkt"]);

export function isProtocGenEsOption(key: string): boolean {
  return PROTOC_GEN_ES_NEUTRAL.has(key) || PROTOC_GEN_ES_UNFOLLOWED.has(key);
}

/** Why protoc-gen-grabbit cannot take protoc-gen-es option `key`, or undefined when it can. */
export function unfollowedProtocGenEsOption(key: string): string | undefined {
  if (!PROTOC_GEN_ES_UNFOLLOWED.has(key)) return undefined;
  return `protoc-gen-es option ${key} moves the modules grabbit's code imports the messages from, which protoc-gen-grabbit does not follow; drop it from both plugins`;
}
