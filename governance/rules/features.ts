// Resolved behaviour of elements whatever the syntax: proto2/proto3 defaults, or editions features
// set on the file, message and field. Rules compare behaviour, not spelling.
import { isFieldSet } from "@bufbuild/protobuf";
import {
  Edition,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FeatureSet_EnumType,
  FeatureSet_FieldPresence,
  FeatureSet_JsonFormat,
  FeatureSet_MessageEncoding,
  FeatureSet_Utf8Validation,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  type FeatureSet,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { EnumEl, FileEl, MessageEl, Side } from "../model.js";

type Holder = { options?: { features?: FeatureSet | undefined } | undefined } | undefined;

function resolve<K extends keyof FeatureSet>(
  key: K,
  chain: Holder[],
  fallback: FeatureSet[K],
): FeatureSet[K] {
  // The innermost explicit value wins; 0 means "not set" for every feature enum.
  for (let i = chain.length - 1; i >= 0; i--) {
    const v = chain[i]?.options?.features?.[key];
    if (v !== undefined && v !== 0) return v;
  }
  return fallback;
}

function messageChain(m: MessageEl | undefined): Holder[] {
  const out: Holder[] = [];
  for (let x = m; x; x = x.parent) out.unshift(x.d);
  return out;
}

export function enumType(e: EnumEl): "open" | "closed" {
  const fallback =
    e.file.syntax === "proto2" ? FeatureSet_EnumType.CLOSED : FeatureSet_EnumType.OPEN;
  const v =
    e.file.syntax === "editions"
      ? resolve("enumType", [e.file.fd, ...messageChain(e.parent), e.d], fallback)
      : fallback;
  return v === FeatureSet_EnumType.CLOSED ? "closed" : "open";
}

export function jsonFormat(file: FileEl, chain: Holder[]): "allow" | "legacy" {
  const fallback =
    file.syntax === "proto2"
      ? FeatureSet_JsonFormat.LEGACY_BEST_EFFORT
      : FeatureSet_JsonFormat.ALLOW;
  const v =
    file.syntax === "editions" ? resolve("jsonFormat", [file.fd, ...chain], fallback) : fallback;
  return v === FeatureSet_JsonFormat.LEGACY_BEST_EFFORT ? "legacy" : "allow";
}

export function messageJsonFormat(m: MessageEl): "allow" | "legacy" {
  return jsonFormat(m.file, messageChain(m));
}

export function enumJsonFormat(e: EnumEl): "allow" | "legacy" {
  return jsonFormat(e.file, [...messageChain(e.parent), e.d]);
}

export function utf8Validation(f: FieldDescriptorProto, m: MessageEl): "verify" | "none" {
  const fallback =
    m.file.syntax === "proto2" ? FeatureSet_Utf8Validation.NONE : FeatureSet_Utf8Validation.VERIFY;
  const v =
    m.file.syntax === "editions"
      ? resolve("utf8Validation", [m.file.fd, ...messageChain(m), f], fallback)
      : fallback;
  return v === FeatureSet_Utf8Validation.NONE ? "none" : "verify";
}

// (pb.cpp) is extension 1000 of FeatureSet (google/protobuf/cpp_features.proto); its string_type is
// field 2: VIEW = 1, CORD = 2, STRING = 3. It is not in the descriptor's schema, so it stays unknown.
const CPP_STRING_TYPE = ["", "VIEW", "CORD", "STRING"];

/** A language's enum feature (`field` of FeatureSet extension `ext`, unknown to the schema) that `h` sets. */
function languageFeature(h: Holder, ext: number, field: number): number | undefined {
  let out: number | undefined;
  for (const u of h?.options?.features?.$unknown ?? []) {
    if (u.no !== ext || u.wireType !== WireType.LengthDelimited) continue;
    const lang = new BinaryReader(new BinaryReader(u.data).bytes());
    while (lang.pos < lang.len) {
      const [no, wt] = lang.tag();
      if (no === field && wt === WireType.Varint) out = lang.int32() || out;
      else lang.skip(wt, no);
    }
  }
  return out;
}

function cppStringTypeFeature(h: Holder): string | undefined {
  const v = languageFeature(h, 1000, 2);
  return v === undefined ? undefined : CPP_STRING_TYPE[v] || undefined;
}

// (pb.java) is extension 1001 of FeatureSet (google/protobuf/java_features.proto); its utf8_validation
// is field 2: DEFAULT = 1, VERIFY = 2.
const JAVA_VERIFY = 2;

/**
 * How Java validates a string field's UTF-8, as buf resolves it: outside editions (where the file
 * option may be set), VERIFY when the file sets java_string_check_utf8, else the field's UTF8
 * validation; in editions, VERIFY when the innermost (pb.java).utf8_validation says so, else the same.
 */
export function javaUtf8Validation(f: FieldDescriptorProto, m: MessageEl): "verify" | "none" {
  const standard = utf8Validation(f, m);
  if (m.file.syntax !== "editions")
    return m.file.fd.options?.javaStringCheckUtf8 ? "verify" : standard;
  const chain: Holder[] = [m.file.fd, ...messageChain(m), f];
  for (let i = chain.length - 1; i >= 0; i--) {
    const v = languageFeature(chain[i], 1001, 2);
    if (v !== undefined) return v === JAVA_VERIFY ? "verify" : standard;
  }
  return standard;
}

const CTYPE_TEXT = ["STRING", "CORD", "STRING_PIECE"];

/**
 * The C++ string type of a string or bytes field, as buf compares it (`same`: STRING_PIECE generates
 * what STRING does) and prints it (`text`: the ctype's own name when the field sets one). An explicit
 * ctype wins; in editions, else the (pb.cpp).string_type feature of the field or file (messages cannot
 * set it), else the edition's default: STRING before 2024, VIEW from 2024.
 */
export function cppStringType(
  f: FieldDescriptorProto,
  file: FileEl,
): { same: string; text: string } {
  if (f.options && isFieldSet(f.options, FieldOptionsSchema.field.ctype)) {
    const text = CTYPE_TEXT[f.options.ctype] ?? "STRING";
    return { same: text === "CORD" ? "CORD" : "STRING", text };
  }
  if (file.syntax !== "editions") return { same: "STRING", text: "STRING" };
  const v =
    cppStringTypeFeature(f) ??
    cppStringTypeFeature(file.fd) ??
    (file.fd.edition >= Edition.EDITION_2024 ? "VIEW" : "STRING");
  return { same: v, text: v };
}

export type Cardinality = "optional" | "implicit" | "required" | "repeated" | "map";

/** Whether oneof_index is set (proto2 fields read as 0 when unset, so presence must be asked). */
export function inOneof(f: FieldDescriptorProto): boolean {
  return isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex);
}

export function isMessageType(f: FieldDescriptorProto): boolean {
  return f.type === FieldDescriptorProto_Type.MESSAGE || f.type === FieldDescriptorProto_Type.GROUP;
}

export function cardinality(f: FieldDescriptorProto, m: MessageEl, side: Side): Cardinality {
  if (f.label === FieldDescriptorProto_Label.REPEATED) {
    const target = isMessageType(f) ? side.messages.get(f.typeName.replace(/^\./, "")) : undefined;
    return target?.d.options?.mapEntry ? "map" : "repeated";
  }
  if (f.label === FieldDescriptorProto_Label.REQUIRED) return "required";
  // An extension always has explicit presence, whatever the file's syntax or field_presence feature.
  if (f.extendee) return "optional";
  if (m.file.syntax === "editions") {
    const p = resolve(
      "fieldPresence",
      [m.file.fd, ...messageChain(m), f],
      FeatureSet_FieldPresence.EXPLICIT,
    );
    if (p === FeatureSet_FieldPresence.LEGACY_REQUIRED) return "required";
    if (p === FeatureSet_FieldPresence.IMPLICIT && !isMessageType(f) && !inOneof(f))
      return "implicit";
    return "optional";
  }
  if (m.file.syntax === "proto3" && !f.proto3Optional && !isMessageType(f) && !inOneof(f))
    return "implicit";
  return "optional";
}

export const CARDINALITY_TEXT: Record<Cardinality, string> = {
  optional: "optional with explicit presence",
  implicit: "optional with implicit presence",
  required: "required",
  repeated: "repeated",
  map: "map",
};

const TYPE_NAMES: Record<number, string> = {
  1: "double",
  2: "float",
  3: "int64",
  4: "uint64",
  5: "int32",
  6: "fixed64",
  7: "fixed32",
  8: "bool",
  9: "string",
  10: "group",
  11: "message",
  12: "bytes",
  13: "uint32",
  14: "enum",
  15: "sfixed32",
  16: "sfixed64",
  17: "sint32",
  18: "sint64",
};

export function typeName(f: FieldDescriptorProto): string {
  return TYPE_NAMES[f.type] ?? String(f.type);
}

/** The field's type as printed in messages: the scalar name, or the referenced full name. */
export function typeText(f: FieldDescriptorProto): string {
  if (f.typeName && (isMessageType(f) || f.type === FieldDescriptorProto_Type.ENUM))
    return f.typeName.replace(/^\./, "");
  return typeName(f);
}

/**
 * The field's kind as buf compares it (protoreflect's Kind): its type, except that an editions message
 * field with DELIMITED message encoding is a group.
 */
export function fieldKind(f: FieldDescriptorProto, m: MessageEl): FieldDescriptorProto_Type {
  if (f.type !== FieldDescriptorProto_Type.MESSAGE || m.file.syntax !== "editions") return f.type;
  const v = resolve(
    "messageEncoding",
    [m.file.fd, ...messageChain(m), f],
    FeatureSet_MessageEncoding.LENGTH_PREFIXED,
  );
  return v === FeatureSet_MessageEncoding.DELIMITED ? FieldDescriptorProto_Type.GROUP : f.type;
}

/** The kind as buf prints it in type changes: a group outside proto2 is a delimited message. */
export function kindText(kind: FieldDescriptorProto_Type, file: FileEl): string {
  if (kind === FieldDescriptorProto_Type.GROUP && file.syntax !== "proto2")
    return "message (delimited encoding)";
  return TYPE_NAMES[kind] ?? String(kind);
}
