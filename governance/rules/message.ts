// Message and field rules: messages are paired by full name across the whole image (so moves between
// files are the FILE rules' business), fields by number, oneofs by name.
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type as T,
  FieldOptions_JSType,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { create, isFieldSet } from "@bufbuild/protobuf";
import {
  DescriptorProtoSchema,
  FieldOptionsSchema,
  FileOptionsSchema,
} from "@bufbuild/protobuf/wkt";
import type { ExtensionEl, MessageEl } from "../model.js";
import { findEnum } from "../model.js";
import { Ctx, stripDot, type At } from "./context.js";
import { canHaveDefault, defaultsEqual, fieldDefault } from "./defaults.js";
import {
  CARDINALITY_TEXT,
  cardinality,
  cppStringType,
  fieldKind,
  javaUtf8Validation,
  inOneof,
  isMessageType,
  kindText,
  messageJsonFormat,
  typeName,
  typeText,
  utf8Validation,
  type Cardinality,
} from "./features.js";

/** The numbers of `r` no longer in `by`, printed as buf does ("[8,9]", inclusive). */
export function missingText(
  r: { start: number; end: number },
  by: Array<{ start: number; end: number }>,
  inclusive = false,
): string {
  const last = inclusive ? r.end : r.end - 1;
  const inNew = (n: number) => by.some((b) => b.start <= n && (inclusive ? n <= b.end : n < b.end));
  const out: string[] = [];
  let start: number | undefined;
  // Ranges can be huge (up to 2^29): walk boundaries, not numbers.
  const points = [
    ...new Set([r.start, ...by.flatMap((b) => [b.start, inclusive ? b.end + 1 : b.end])]),
  ]
    .filter((n) => n >= r.start && n <= last)
    .sort((a, b) => a - b);
  for (let i = 0; i < points.length; i++) {
    const from = points[i]!;
    const to = (points[i + 1] ?? last + 1) - 1;
    if (!inNew(from)) {
      start ??= from;
      if (i === points.length - 1 || inNew(points[i + 1]!)) {
        out.push(start === to ? `[${start}]` : `[${start},${to}]`);
        start = undefined;
      }
    }
  }
  return out.join(", ");
}

function rangeText(r: { start: number; end: number }, inclusive = false): string {
  const last = inclusive ? r.end : r.end - 1;
  return last === r.start ? `[${r.start}]` : `[${r.start},${last}]`;
}

/** Whether every number of `r` is still in `by` (ranges may be split or merged: [start, end)). */
export function covered(
  r: { start: number; end: number },
  by: Array<{ start: number; end: number }>,
  inclusive = false,
): boolean {
  const sorted = [...by].sort((a, b) => a.start - b.start);
  const gap = inclusive ? 1 : 0;
  let at = r.start;
  for (const b of sorted) {
    if (b.start > at) break;
    if (b.end + gap > at) at = b.end + gap;
  }
  return inclusive ? at > r.end : at >= r.end;
}

function reservedNumber(m: MessageEl, n: number): boolean {
  return m.d.reservedRange.some((r) => r.start <= n && n < r.end);
}

// buf's compatibility groups of kinds: the same number, the same encoding (and, for WIRE_JSON, the same
// JSON form). string and bytes differ, but string may become bytes on the wire.
const WIRE_GROUP = new Map<T, number>([
  [T.INT32, 1],
  [T.INT64, 1],
  [T.UINT32, 1],
  [T.UINT64, 1],
  [T.BOOL, 1],
  [T.SINT32, 2],
  [T.SINT64, 2],
  [T.STRING, 3],
  [T.BYTES, 4],
  [T.FIXED32, 5],
  [T.SFIXED32, 5],
  [T.FIXED64, 6],
  [T.SFIXED64, 6],
  [T.DOUBLE, 7],
  [T.FLOAT, 8],
  [T.GROUP, 9],
  [T.MESSAGE, 10],
  [T.ENUM, 11],
]);
const WIRE_JSON_GROUP = new Map<T, number>([
  [T.INT32, 1],
  [T.UINT32, 1],
  [T.INT64, 2],
  [T.UINT64, 2],
  [T.FIXED32, 3],
  [T.SFIXED32, 3],
  [T.FIXED64, 4],
  [T.SFIXED64, 4],
  [T.BOOL, 5],
  [T.SINT32, 6],
  [T.SINT64, 7],
  [T.STRING, 8],
  [T.BYTES, 9],
  [T.DOUBLE, 10],
  [T.FLOAT, 11],
  [T.GROUP, 12],
  [T.MESSAGE, 13],
  [T.ENUM, 14],
]);

const WIRE_DOC = "https://developers.google.com/protocol-buffers/docs/proto3#updating";
const JSON_DOC = "https://developers.google.com/protocol-buffers/docs/proto3#json";

const JSTYPE = ["JS_NORMAL", "JS_STRING", "JS_NUMBER"];
const INT64_KINDS = new Set([T.INT64, T.UINT64, T.SINT64, T.FIXED64, T.SFIXED64]);

/** The property name ts-proto generates for a field (lowerCamelCase of the proto name). */
export function tsName(f: FieldDescriptorProto): string {
  return f.name.replace(/_+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

function fieldAt(m: MessageEl, index: number) {
  // A map entry's key and value have no source of their own: buf points at the map field that made them.
  const map = m.d.options?.mapEntry
    ? m.parent?.d.field.findIndex((f) => f.typeName === `.${m.fullName}`)
    : undefined;
  if (m.parent && map !== undefined && map >= 0)
    return { file: m.file, spath: [...m.parent.spath, 2, map] };
  return { file: m.file, spath: [...m.spath, 2, index] };
}

// Extensions pair by what they extend and their number, and get the field checks.
export function checkExtensions(ctx: Ctx): void {
  const key = (e: ExtensionEl) => `${e.d.extendee}:${e.d.number}`;
  const before = new Map([...ctx.old.extensions.values()].map((e) => [key(e), e]));
  const scope = (e: ExtensionEl): MessageEl =>
    e.parent ?? { file: e.file, spath: [], fullName: e.file.pkg, local: "", d: FILE_SCOPE };
  for (const a of ctx.cur.extensions.values()) {
    const b = before.get(key(a));
    if (!b) continue;
    const on = `message "${a.d.extendee.replace(/^\./, "")}"`;
    const at = { file: a.file, spath: a.spath };
    // By full name, as buf: an extension moved into a message's scope is renamed (x.c to x.N.c).
    if (b.fullName !== a.fullName)
      ctx.add(
        "FIELD_SAME_NAME",
        at,
        `Extension "${a.d.number}" on ${on} changed name from "${b.fullName}" to "${a.fullName}".`,
        { sub: [1] },
      );
    compareFieldShared(
      ctx,
      b.d,
      a.d,
      scope(b),
      scope(a),
      at,
      `Extension "${a.d.number}" with name "${a.fullName}" on ${on}`,
      false,
      `extension:${a.fullName}`,
    );
  }
}

const FILE_SCOPE = create(DescriptorProtoSchema);

export function checkMessages(ctx: Ctx): void {
  for (const [name, after] of ctx.cur.messages) {
    const before = ctx.old.messages.get(name);
    if (!before) continue;
    compareMessage(ctx, before, after);
  }
}

function compareMessage(ctx: Ctx, before: MessageEl, after: MessageEl): void {
  const at = { file: after.file, spath: after.spath };
  // buf names a message by its own name in these messages, even when nested.
  const what = `message "${after.d.name}"`;
  if (
    !before.d.options?.noStandardDescriptorAccessor &&
    after.d.options?.noStandardDescriptorAccessor
  ) {
    ctx.add(
      "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR",
      at,
      `Message option "no_standard_descriptor_accessor" changed from "false" to "true".`,
      { sub: [7, 2] },
    );
  }
  const jb = messageJsonFormat(before);
  const ja = messageJsonFormat(after);
  if (jb === "allow" && ja === "legacy")
    ctx.add(
      "MESSAGE_SAME_JSON_FORMAT",
      at,
      `Message "${after.d.name}" JSON format support changed from ALLOW to LEGACY_BEST_EFFORT.`,
      { sub: [7, 12, 6] },
    );

  // Reserved ranges and names, extension ranges.
  for (const r of before.d.reservedRange) {
    if (!covered(r, after.d.reservedRange))
      ctx.add(
        "RESERVED_MESSAGE_NO_DELETE",
        at,
        `Previously present reserved range "${rangeText(r)}" on ${what} is missing values: ${missingText(r, after.d.reservedRange)} were removed.`,
      );
  }
  for (const n of before.d.reservedName) {
    if (!after.d.reservedName.includes(n))
      ctx.add(
        "RESERVED_MESSAGE_NO_DELETE",
        at,
        `Previously present reserved name "${n}" on ${what} was deleted.`,
      );
  }
  const newReserved =
    after.d.reservedRange.filter((r) => !covered(r, before.d.reservedRange)).length +
    after.d.reservedName.filter((n) => !before.d.reservedName.includes(n)).length;
  if (newReserved)
    ctx.change("RESERVED_ADDED", at, `Reserved numbers or names were added to ${what}.`);
  for (const r of before.d.extensionRange) {
    if (!covered(r, after.d.extensionRange))
      ctx.add(
        "EXTENSION_MESSAGE_NO_DELETE",
        at,
        `Previously present extension range "${rangeText(r)}" on ${what} is missing values: ${missingText(r, after.d.extensionRange)} were removed.`,
      );
  }

  // Oneofs by name (proto3 `optional` makes synthetic oneofs: those are presence, not oneofs).
  const realOneofs = (m: MessageEl) => {
    const synthetic = new Set(
      m.d.field.filter((f) => f.proto3Optional && inOneof(f)).map((f) => f.oneofIndex!),
    );
    return new Map(
      m.d.oneofDecl.map((o, i) => [o.name, i] as const).filter(([, i]) => !synthetic.has(i)),
    );
  };
  const oneofsBefore = realOneofs(before);
  const oneofsAfter = realOneofs(after);
  for (const o of oneofsBefore.keys())
    if (!oneofsAfter.has(o))
      ctx.add("ONEOF_NO_DELETE", at, `Previously present oneof "${o}" on ${what} was deleted.`);
  for (const [o, i] of oneofsAfter)
    if (!oneofsBefore.has(o))
      ctx.change(
        "ONEOF_ADDED",
        { file: after.file, spath: [...after.spath, 8, i] },
        `Oneof "${o}" was added to ${what}.`,
      );
  const oneofOf = (m: MessageEl, f: FieldDescriptorProto, real: Map<string, number>) => {
    if (!inOneof(f) || f.proto3Optional) return undefined;
    const name = m.d.oneofDecl[f.oneofIndex]?.name;
    return name !== undefined && real.has(name) ? name : undefined;
  };

  // Required fields, by number: as buf, by the label alone (an editions LEGACY_REQUIRED field is
  // labelled optional, so it is not one here, though its cardinality is "required").
  const required = (m: MessageEl) =>
    new Set(
      m.d.field.filter((f) => f.label === FieldDescriptorProto_Label.REQUIRED).map((f) => f.number),
    );
  const reqBefore = required(before);
  const reqAfter = required(after);
  for (const n of reqBefore)
    if (!reqAfter.has(n))
      ctx.add(
        "MESSAGE_SAME_REQUIRED_FIELDS",
        at,
        `Message "${after.d.name}" had required field "${n}" deleted. Required fields must always be sent, so if one side does not know about the required field, this will result in a breakage.`,
      );
  const fieldOf = (n: number) => ({
    file: after.file,
    spath: [...after.spath, 2, after.d.field.findIndex((f) => f.number === n)],
  });
  for (const n of reqAfter)
    if (!reqBefore.has(n))
      ctx.add(
        "MESSAGE_SAME_REQUIRED_FIELDS",
        fieldOf(n),
        `Message "${after.d.name}" had required field "${n}" added. Required fields must always be sent, so if one side does not know about the required field, this will result in a breakage.`,
      );

  const afterByNumber = new Map(after.d.field.map((f, i) => [f.number, [f, i] as const]));
  const beforeNumbers = new Set(before.d.field.map((f) => f.number));
  for (const f of before.d.field) {
    const pair = afterByNumber.get(f.number);
    if (!pair) {
      const base = `Previously present field "${f.number}" with name "${f.name}" on ${what} was deleted`;
      ctx.add("FIELD_NO_DELETE", at, `${base}.`, {
        subject: `field:${after.fullName}:${f.number}`,
      });
      if (!reservedNumber(after, f.number))
        ctx.add(
          "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
          at,
          `${base} without reserving the number "${f.number}".`,
        );
      if (!after.d.reservedName.includes(f.name))
        ctx.add(
          "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
          at,
          `${base} without reserving the name "${f.name}".`,
        );
      continue;
    }
    const [g, index] = pair;
    const fat = fieldAt(after, index);
    const field = `Field "${g.number}" with name "${g.name}" on ${what}`;
    // A rename is one change, whichever rules see it: they share a subject and are reported once.
    const renamed = f.name !== g.name ? { subject: `field:${after.fullName}:${g.number}` } : {};
    if (f.name !== g.name)
      ctx.add(
        "FIELD_SAME_NAME",
        fat,
        `Field "${g.number}" on ${what} changed name from "${f.name}" to "${g.name}".`,
        { sub: [1], ...renamed },
      );
    if (f.jsonName !== g.jsonName)
      ctx.add(
        "FIELD_SAME_JSON_NAME",
        fat,
        `${field} changed option "json_name" from "${f.jsonName}" to "${g.jsonName}".`,
        { sub: [10], ...renamed },
      );
    if (tsName(f) !== tsName(g))
      ctx.add(
        "TYPESCRIPT_FIELD_RENAMED",
        fat,
        `Field "${g.number}" on ${what} changed its TypeScript property from "${tsName(f)}" to "${tsName(g)}"; callers that use it no longer compile.`,
        { sub: [1], ...renamed },
      );

    compareFieldShared(
      ctx,
      f,
      g,
      before,
      after,
      fat,
      field,
      oneofOf(after, g, oneofsAfter) !== undefined,
    );
    // Oneof membership.
    const ob = oneofOf(before, f, oneofsBefore);
    const oa = oneofOf(after, g, oneofsAfter);
    if (ob !== oa) {
      const msg =
        ob === undefined
          ? `${field} moved from outside to inside a oneof.`
          : oa === undefined
            ? `${field} moved from inside to outside a oneof.`
            : `${field} moved from oneof "${ob}" to oneof "${oa}".`;
      ctx.add("FIELD_SAME_ONEOF", fat, msg, { sub: [9] });
    }
  }
  after.d.field.forEach((g, i) => {
    if (!beforeNumbers.has(g.number))
      ctx.change(
        "FIELD_ADDED",
        fieldAt(after, i),
        `Field "${g.number}" with name "${g.name}" (${typeName(g) === "message" || typeName(g) === "enum" ? typeText(g) : typeName(g)}) was added to ${what}.`,
      );
  });
}

/**
 * The checks fields and extensions share: type, cardinality, default, and the options that change
 * generated code. `before`/`after` give the scope (syntax and features) the fields resolve in.
 */
function compareFieldShared(
  ctx: Ctx,
  f: FieldDescriptorProto,
  g: FieldDescriptorProto,
  before: MessageEl,
  after: MessageEl,
  fat: At,
  field: string,
  gInOneof: boolean,
  key = `${after.fullName}:${g.number}`,
): void {
  // Types, as buf compares kinds (an editions DELIMITED message is a group) and then type names.
  const kb = fieldKind(f, before);
  const ka = fieldKind(g, after);
  const named = (k: T) => k === T.MESSAGE || k === T.ENUM || k === T.GROUP;
  const typeSub = named(ka) ? [6] : [5];
  const kindChange = `${field} changed type from "${kindText(kb, before.file)}" to "${kindText(ka, after.file)}".`;
  const nameChange = `${field} changed type from "${stripDot(f.typeName)}" to "${stripDot(g.typeName)}".`;
  const wire = ` See ${WIRE_DOC} for wire compatibility rules.`;
  const wireJson = ` See ${WIRE_DOC} for wire compatibility rules and ${JSON_DOC} for JSON compatibility rules.`;
  if (kb !== ka) ctx.add("FIELD_SAME_TYPE", fat, kindChange, { sub: typeSub });
  else if (named(ka) && f.typeName !== g.typeName)
    ctx.add("FIELD_SAME_TYPE", fat, nameChange, { sub: typeSub });
  // An enum is still wire compatible when it keeps its short name and every old value (name and number).
  const enumCompatible = () => {
    const eb = findEnum(ctx.old, f.typeName);
    const ea = findEnum(ctx.cur, g.typeName);
    if (!eb || !ea || eb.name !== ea.name) return false;
    const now = new Map(ea.value.map((v) => [v.name, v.number]));
    return eb.value.every((v) => now.get(v.name) === v.number);
  };
  const wb = WIRE_GROUP.get(kb);
  const wa = WIRE_GROUP.get(ka);
  if (wb !== wa) {
    if (!(kb === T.STRING && ka === T.BYTES)) {
      const note =
        kb === T.BYTES && ka === T.STRING
          ? " Note that while string and bytes are compatible if the data is valid UTF-8, there is no way to enforce that a bytes field is UTF-8, so these fields may be incompatible."
          : "";
      ctx.add("FIELD_WIRE_COMPATIBLE_TYPE", fat, kindChange.slice(0, -1) + "." + wire + note, {
        sub: typeSub,
      });
    }
  } else if (f.typeName !== g.typeName && named(ka) && (ka !== T.ENUM || !enumCompatible())) {
    ctx.add("FIELD_WIRE_COMPATIBLE_TYPE", fat, nameChange, { sub: typeSub });
  }
  if (WIRE_JSON_GROUP.get(kb) !== WIRE_JSON_GROUP.get(ka))
    ctx.add("FIELD_WIRE_JSON_COMPATIBLE_TYPE", fat, kindChange + wireJson, { sub: typeSub });
  else if (f.typeName !== g.typeName && named(ka) && (ka !== T.ENUM || !enumCompatible()))
    ctx.add("FIELD_WIRE_JSON_COMPATIBLE_TYPE", fat, nameChange, { sub: typeSub });

  // Cardinality. A map entry's key and value are generated: their presence may read as the file's
  // default changes (proto3 to editions) without changing anything, so buf leaves them out.
  const cb = cardinality(f, before, ctx.old);
  const ca = cardinality(g, after, ctx.cur);
  const mapEntries = Boolean(before.d.options?.mapEntry && after.d.options?.mapEntry);
  if (cb !== ca && !mapEntries) {
    const text = `${field} changed cardinality from "${CARDINALITY_TEXT[cb]}" to "${CARDINALITY_TEXT[ca]}".`;
    ctx.add("FIELD_SAME_CARDINALITY", fat, text, { sub: [4], subject: `cardinality:${key}` });
    // Presence alone never changes the encoding; a map is a repeated entry message on the wire only.
    const single = (c: Cardinality) => (c === "implicit" ? "optional" : c);
    const wire = (c: Cardinality) => (c === "map" ? "repeated" : single(c));
    if (wire(cb) !== wire(ca))
      ctx.add("FIELD_WIRE_COMPATIBLE_CARDINALITY", fat, text, { sub: [4] });
    if (single(cb) !== single(ca))
      ctx.add("FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY", fat, text, { sub: [4] });
  }
  if (
    (cb === "optional") !== (ca === "optional") &&
    !mapEntries &&
    !isMessageType(g) &&
    !gInOneof &&
    [cb, ca].every((c) => c === "optional" || c === "implicit")
  ) {
    const ts = (c: Cardinality) => (c === "optional" ? "T | undefined" : "T");
    ctx.add(
      "TYPESCRIPT_FIELD_OPTIONAL_CHANGED",
      fat,
      `${field} changed its TypeScript type from "${ts(cb)}" to "${ts(ca)}" (proto3 optional ${ca === "optional" ? "added" : "removed"}).`,
      {
        sub: [4],
        subject: `cardinality:${key}`,
      },
    );
  }

  // Defaults as buf resolves them (an unset default is the type's zero, or an enum's first value).
  if (canHaveDefault(f, kb) && canHaveDefault(g, ka)) {
    const db = fieldDefault(f, kb, findEnum(ctx.old, f.typeName));
    const da = fieldDefault(g, ka, findEnum(ctx.cur, g.typeName));
    if (!(db.zero && da.zero) && !defaultsEqual(db, da))
      ctx.add(
        "FIELD_SAME_DEFAULT",
        fat,
        `${field} changed default value from ${db.printable} to ${da.printable}.`,
        { sub: [7] },
      );
  }
  const jsb = JSTYPE[f.options?.jstype ?? FieldOptions_JSType.JS_NORMAL] ?? "";
  const jsa = JSTYPE[g.options?.jstype ?? FieldOptions_JSType.JS_NORMAL] ?? "";
  // jstype only means something on 64-bit integers: buf compares it when both sides are one.
  if (jsb !== jsa && INT64_KINDS.has(f.type) && INT64_KINDS.has(g.type))
    ctx.add(
      "FIELD_SAME_JSTYPE",
      fat,
      `${field} changed option "jstype" from "${jsb}" to "${jsa}".`,
      { sub: [8, 6] },
    );
  // A map's key and value have no C++ string type of their own: buf checks no map entry's fields.
  // Nor a field that was not a string or bytes before (its type change is the finding).
  const stringy = (x: FieldDescriptorProto) => x.type === T.STRING || x.type === T.BYTES;
  if (stringy(f) && stringy(g) && !after.d.options?.mapEntry) {
    const ctb = cppStringType(f, before.file);
    const cta = cppStringType(g, after.file);
    // As buf 1.74 does: STRING_PIECE counts as STRING when it goes away, but is a change when it comes.
    // At the field's ctype, else at its (pb.cpp).string_type feature (options 8, features 21,
    // extension 1000, string_type 2), else at the field.
    const cppSub =
      g.options && isFieldSet(g.options, FieldOptionsSchema.field.ctype)
        ? [8, 1]
        : [8, 21, 1000, 2];
    if (ctb.same !== cta.same || (cta.text === "STRING_PIECE" && ctb.text !== "STRING_PIECE"))
      ctx.add(
        "FIELD_SAME_CPP_STRING_TYPE",
        fat,
        `${field} changed C++ string type from "${ctb.text}" to "${cta.text}".`,
        { sub: cppSub },
      );
  }
  if (g.type === T.STRING && f.type === T.STRING) {
    const ub = utf8Validation(f, before);
    const ua = utf8Validation(g, after);
    if (ub !== ua)
      ctx.add(
        "FIELD_SAME_UTF8_VALIDATION",
        fat,
        `${field} changed UTF8 validation from ${ub.toUpperCase()} to ${ua.toUpperCase()}.`,
        { sub: [8, 21, 4] },
      );
    const javab = javaUtf8Validation(f, before);
    const javaa = javaUtf8Validation(g, after);
    // buf points at the file's java_string_check_utf8 when the file sets it, else at the field's
    // (pb.java).utf8_validation (options 8, features 21, extension 1001, utf8_validation 2), else
    // at the field.
    const fileSetsJava =
      after.file.fd.options !== undefined &&
      isFieldSet(after.file.fd.options, FileOptionsSchema.field.javaStringCheckUtf8);
    const javaAt = fileSetsJava ? { file: after.file, spath: [8, 27] } : fat;
    if (javab !== javaa)
      ctx.add(
        "FIELD_SAME_JAVA_UTF8_VALIDATION",
        javaAt,
        `${field} changed Java string UTF8 validation from "${javab.toUpperCase()}" to "${javaa.toUpperCase()}".`,
        fileSetsJava ? {} : { sub: [8, 21, 1001, 2] },
      );
  }
}
