// Random .proto file sets and mutations of them, for the differential test against `buf breaking`.
// A seeded generator builds a small model (files of proto2, proto3 or editions 2023/2024 with messages,
// nested types, enums with aliases, services with streaming, field options and features, extensions,
// oneofs, maps, reserved ranges and names, packages, imports across files), renders it as text, then
// applies a few random edits to a copy: the pair is (rendered model, rendered edited model). Some
// edits make a file that does not compile; the test skips those pairs (buf refuses them too).
import type { Tree } from "./helpers.js";

export type Rng = () => number;

/** mulberry32: small, fast, and the same sequence on every platform for a seed. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rng, p: number) => r() < p;

export type Syntax = "proto2" | "proto3" | "2023" | "2024";
type Label = "" | "optional" | "repeated" | "required";

const SCALARS = [
  "int32",
  "int64",
  "uint32",
  "uint64",
  "sint32",
  "sint64",
  "fixed32",
  "fixed64",
  "sfixed32",
  "sfixed64",
  "bool",
  "string",
  "bytes",
  "float",
  "double",
] as const;
const MAP_KEYS = ["int32", "int64", "uint32", "string", "bool", "sint64", "fixed32"] as const;

export interface Field {
  name: string;
  number: number;
  /** A scalar, or a type name relative to the package ("Outer.Inner"). */
  type: string;
  label: Label;
  map?: [string, string];
  group?: boolean;
  opts: Record<string, string>;
}

export interface Enum {
  name: string;
  values: Array<{ name: string; number: number; opts: Record<string, string> }>;
  alias: boolean;
  reservedNums: Array<[number, number]>;
  reservedNames: string[];
  opts: Record<string, string>;
}

export interface Message {
  name: string;
  fields: Field[];
  oneofs: Array<{ name: string; fields: Field[] }>;
  nested: Message[];
  enums: Enum[];
  reservedNums: Array<[number, number]>;
  reservedNames: string[];
  extRanges: Array<[number, number]>;
  opts: Record<string, string>;
}

export interface Method {
  name: string;
  input: string;
  output: string;
  cs: boolean;
  ss: boolean;
  opts: Record<string, string>;
}

export interface Extension {
  extendee: string;
  field: Field;
}

export interface File {
  path: string;
  pkg: string;
  syntax: Syntax;
  imports: string[];
  messages: Message[];
  enums: Enum[];
  services: Array<{ name: string; methods: Method[] }>;
  extensions: Extension[];
  opts: Record<string, string>;
}

export interface Model {
  files: File[];
}

const editions = (s: Syntax) => s === "2023" || s === "2024";

let counter = 0;
const fresh = (r: Rng, base: string) => `${base}${int(r, 0, 9)}${(counter++ % 26).toString(36)}`;

function genEnum(r: Rng, name: string, syntax: Syntax): Enum {
  const prefix = name.toUpperCase();
  const values: Enum["values"] = [{ name: `${prefix}_ZERO`, number: 0, opts: {} }];
  const n = int(r, 1, 4);
  for (let i = 1; i <= n; i++) values.push({ name: `${prefix}_V${i}`, number: i, opts: {} });
  const alias = chance(r, 0.3);
  if (alias) values.push({ name: `${prefix}_ALIAS`, number: pick(r, values).number, opts: {} });
  const e: Enum = { name, values, alias, reservedNums: [], reservedNames: [], opts: {} };
  if (chance(r, 0.3)) e.reservedNums.push([n + 5, n + int(r, 5, 8)]);
  if (chance(r, 0.3)) e.reservedNames.push(`${prefix}_OLD`);
  if (editions(syntax) && chance(r, 0.3))
    e.opts["features.enum_type"] = pick(r, ["OPEN", "CLOSED"]);
  return e;
}

function genField(
  r: Rng,
  syntax: Syntax,
  name: string,
  number: number,
  types: string[],
  inOneof: boolean,
): Field {
  const f: Field = { name, number, type: pick(r, SCALARS), label: "", opts: {} };
  if (types.length && chance(r, 0.3)) f.type = pick(r, types);
  if (!inOneof) {
    if (syntax === "proto2")
      f.label = pick(r, ["optional", "optional", "repeated", "required"] as const);
    else if (syntax === "proto3") f.label = pick(r, ["", "", "optional", "repeated"] as const);
    else if (chance(r, 0.3)) f.label = "repeated";
    if (!inOneof && chance(r, 0.12)) {
      f.map = [
        pick(r, MAP_KEYS),
        chance(r, 0.3) && types.length ? pick(r, types) : pick(r, SCALARS),
      ];
      f.label = "";
    }
  }
  const scalar = (SCALARS as readonly string[]).includes(f.type);
  if (!f.map) {
    if (chance(r, 0.15)) f.opts.json_name = `"j${name}"`;
    if (/int64|fixed64/.test(f.type) && chance(r, 0.2))
      f.opts.jstype = pick(r, ["JS_STRING", "JS_NUMBER", "JS_NORMAL"]);
    if ((f.type === "string" || f.type === "bytes") && chance(r, 0.2)) {
      if (syntax === "proto2" || syntax === "proto3")
        f.opts.ctype = pick(r, ["CORD", "STRING_PIECE", "STRING"]);
      else f.opts["features.(pb.cpp).string_type"] = pick(r, ["CORD", "STRING", "VIEW"]);
    }
    if (f.type === "string" && editions(syntax) && chance(r, 0.2))
      f.opts["features.utf8_validation"] = pick(r, ["NONE", "VERIFY"]);
    if (f.type === "string" && editions(syntax) && chance(r, 0.15))
      f.opts["features.(pb.java).utf8_validation"] = pick(r, ["DEFAULT", "VERIFY"]);
    if (editions(syntax) && f.label === "" && !inOneof && chance(r, 0.3))
      f.opts["features.field_presence"] = pick(
        r,
        scalar ? ["EXPLICIT", "IMPLICIT", "LEGACY_REQUIRED"] : ["EXPLICIT", "LEGACY_REQUIRED"],
      );
    if (
      editions(syntax) &&
      f.label === "repeated" &&
      scalar &&
      !/string|bytes/.test(f.type) &&
      chance(r, 0.2)
    )
      f.opts["features.repeated_field_encoding"] = pick(r, ["EXPANDED", "PACKED"]);
    if (
      syntax !== "2023" &&
      syntax !== "2024" &&
      f.label === "repeated" &&
      scalar &&
      !/string|bytes/.test(f.type) &&
      chance(r, 0.2)
    )
      f.opts.packed = pick(r, ["true", "false"]);
    if (
      scalar &&
      (syntax === "proto2" ||
        (editions(syntax) && f.opts["features.field_presence"] !== "IMPLICIT")) &&
      f.label !== "repeated" &&
      chance(r, 0.2)
    )
      f.opts.default = defaultFor(r, f.type);
    if (chance(r, 0.08)) f.opts.deprecated = "true";
  }
  if (syntax === "proto2" && f.label === "optional" && !inOneof && chance(r, 0.05) && !f.map) {
    f.group = true;
    f.type = name.charAt(0).toUpperCase() + name.slice(1);
    delete f.opts.default;
    delete f.opts.json_name;
  }
  return f;
}

function defaultFor(r: Rng, type: string): string {
  if (type === "bool") return pick(r, ["true", "false"]);
  if (type === "string") return pick(r, ['"a"', '"b"', '""']);
  if (type === "bytes") return pick(r, ['"x"', '"y"']);
  if (type === "float" || type === "double") return pick(r, ["1.5", "2", "-0.5", "inf"]);
  if (/^u|^fixed/.test(type)) return String(int(r, 0, 3));
  return String(int(r, -2, 3));
}

function genMessage(
  r: Rng,
  syntax: Syntax,
  name: string,
  types: string[],
  depth: number,
  scope: string,
): Message {
  const m: Message = {
    name,
    fields: [],
    oneofs: [],
    nested: [],
    enums: [],
    reservedNums: [],
    reservedNames: [],
    extRanges: [],
    opts: {},
  };
  const local = scope ? `${scope}.${name}` : name;
  if (depth < 2 && chance(r, 0.3))
    m.nested.push(genMessage(r, syntax, fresh(r, "In"), types, depth + 1, local));
  if (chance(r, 0.25)) m.enums.push(genEnum(r, fresh(r, "Kind"), syntax));
  const own = [
    ...types,
    ...m.nested.map((n) => `${local}.${n.name}`),
    ...m.enums.map((e) => `${local}.${e.name}`),
  ];
  let num = 1;
  const n = int(r, 1, 5);
  for (let i = 0; i < n; i++)
    m.fields.push(genField(r, syntax, `f${num}_${fresh(r, "x")}`, num++, own, false));
  if (chance(r, 0.3)) {
    const o = { name: fresh(r, "choice"), fields: [] as Field[] };
    for (let i = int(r, 1, 3); i > 0; i--)
      o.fields.push(genField(r, syntax, `o${num}_${fresh(r, "y")}`, num++, own, true));
    m.oneofs.push(o);
  }
  if (chance(r, 0.3)) m.reservedNums.push([num + 2, num + int(r, 2, 6)]);
  if (chance(r, 0.25)) m.reservedNames.push(`gone_${fresh(r, "z")}`);
  if (syntax !== "proto3" && chance(r, 0.3)) m.extRanges.push([100, 199]);
  if (chance(r, 0.05)) m.opts.deprecated = "true";
  return m;
}

export function genModel(r: Rng): Model {
  counter = 0;
  const files: File[] = [];
  const pkgs = ["demo.v1", "demo.v1", "other.v1"];
  const nfiles = int(r, 1, 3);
  for (let i = 0; i < nfiles; i++) {
    const syntax = pick(r, ["proto2", "proto3", "proto3", "2023", "2024"] as const);
    const pkg = pick(r, pkgs);
    const file: File = {
      path: `${pkg.replace(/\./g, "/")}/f${i}.proto`,
      pkg,
      syntax,
      imports: [],
      messages: [],
      enums: [],
      services: [],
      extensions: [],
      opts: {},
    };
    // Types of earlier files of the same syntax family can be used from this one (through an import).
    const outside: string[] = [];
    for (const prev of files) {
      if (
        editions(prev.syntax) !== editions(syntax) ||
        (prev.syntax === "proto2") !== (syntax === "proto2")
      )
        continue;
      if (!chance(r, 0.6)) continue;
      file.imports.push(prev.path);
      const q = prev.pkg === pkg ? "" : `${prev.pkg}.`;
      for (const m of prev.messages) outside.push(q + m.name);
      for (const e of prev.enums) outside.push(q + e.name);
    }
    for (let e = int(r, 0, 2); e > 0; e--) file.enums.push(genEnum(r, fresh(r, "Color"), syntax));
    const types = [...outside, ...file.enums.map((e) => e.name)];
    for (let m = int(r, 1, 3); m > 0; m--) {
      const msg = genMessage(r, syntax, fresh(r, "Msg"), types, 0, "");
      file.messages.push(msg);
      types.push(msg.name);
    }
    const msgs = file.messages.map((m) => m.name);
    if (chance(r, 0.5)) {
      const methods: Method[] = [];
      for (let k = int(r, 1, 3); k > 0; k--) {
        const mm: Method = {
          name: fresh(r, "Do"),
          input: pick(r, msgs),
          output: pick(r, msgs),
          cs: chance(r, 0.2),
          ss: chance(r, 0.2),
          opts: {},
        };
        if (chance(r, 0.2)) mm.opts.idempotency_level = pick(r, ["NO_SIDE_EFFECTS", "IDEMPOTENT"]);
        methods.push(mm);
      }
      file.services.push({ name: fresh(r, "Svc"), methods });
    }
    if (syntax !== "proto3") {
      const withRange = file.messages.filter((m) => m.extRanges.length);
      if (withRange.length && chance(r, 0.7)) {
        const target = pick(r, withRange);
        for (let k = int(r, 1, 2); k > 0; k--) {
          const f = genField(
            r,
            syntax,
            `ext_${fresh(r, "e")}`,
            100 + k,
            file.enums.map((e) => e.name),
            false,
          );
          if (f.label === "required" || f.map || f.group) {
            f.label = syntax === "proto2" ? "optional" : "";
            delete f.map;
            delete f.group;
            f.type = "int32";
          }
          delete f.opts["features.field_presence"];
          delete f.opts.json_name;
          file.extensions.push({ extendee: target.name, field: f });
        }
      }
    }
    if (chance(r, 0.2)) file.opts.java_package = `"com.${pick(r, ["a", "b"])}"`;
    if (chance(r, 0.15)) file.opts.go_package = `"x/${pick(r, ["a", "b"])}"`;
    if (!editions(syntax) && chance(r, 0.15))
      file.opts.java_string_check_utf8 = pick(r, ["true", "false"]);
    if (editions(syntax) && chance(r, 0.15))
      file.opts["features.utf8_validation"] = pick(r, ["NONE", "VERIFY"]);
    if (editions(syntax) && chance(r, 0.15))
      file.opts["features.field_presence"] = pick(r, ["EXPLICIT", "IMPLICIT"]);
    if (editions(syntax) && chance(r, 0.1))
      file.opts["features.(pb.java).utf8_validation"] = pick(r, ["DEFAULT", "VERIFY"]);
    files.push(file);
  }
  return { files };
}

// --- rendering ---

function optList(opts: Record<string, string>): string {
  const e = Object.entries(opts);
  return e.length ? ` [${e.map(([k, v]) => `${k} = ${v}`).join(", ")}]` : "";
}

function renderField(
  f: Field,
  ind: string,
  syntax: Syntax,
  nested: (m: Message, ind: string) => string,
): string {
  if (f.map)
    return `${ind}map<${f.map[0]}, ${f.map[1]}> ${f.name} = ${f.number}${optList(f.opts)};\n`;
  const label = f.label ? `${f.label} ` : "";
  if (f.group) {
    const body: Message = {
      name: f.type,
      fields: [
        {
          name: "g",
          number: 1,
          type: "int32",
          label: syntax === "proto2" ? "optional" : "",
          opts: {},
        },
      ],
      oneofs: [],
      nested: [],
      enums: [],
      reservedNums: [],
      reservedNames: [],
      extRanges: [],
      opts: {},
    };
    return `${ind}${label}group ${f.type} = ${f.number}${optList(f.opts)} {\n${nested(
      body,
      ind + "  ",
    )
      .split("\n")
      .slice(1, -2)
      .join("\n")}\n${ind}}\n`;
  }
  return `${ind}${label}${f.type} ${f.name} = ${f.number}${optList(f.opts)};\n`;
}

function renderEnum(e: Enum, ind: string, syntax: Syntax): string {
  let s = `${ind}enum ${e.name} {\n`;
  if (e.alias) s += `${ind}  option allow_alias = true;\n`;
  for (const [k, v] of Object.entries(e.opts)) s += `${ind}  option ${k} = ${v};\n`;
  for (const v of e.values) s += `${ind}  ${v.name} = ${v.number}${optList(v.opts)};\n`;
  for (const [a, b] of e.reservedNums) s += `${ind}  reserved ${a} to ${b};\n`;
  for (const n of e.reservedNames) s += `${ind}  reserved ${editions(syntax) ? n : `"${n}"`};\n`;
  return `${s}${ind}}\n`;
}

function renderMessage(m: Message, ind: string, syntax: Syntax): string {
  let s = `${ind}message ${m.name} {\n`;
  const i2 = ind + "  ";
  const rec = (x: Message, j: string) => renderMessage(x, j, syntax);
  for (const [k, v] of Object.entries(m.opts)) s += `${i2}option ${k} = ${v};\n`;
  for (const n of m.nested) s += renderMessage(n, i2, syntax);
  for (const e of m.enums) s += renderEnum(e, i2, syntax);
  for (const f of m.fields) s += renderField(f, i2, syntax, rec);
  for (const o of m.oneofs) {
    s += `${i2}oneof ${o.name} {\n`;
    for (const f of o.fields) s += renderField(f, i2 + "  ", syntax, rec);
    s += `${i2}}\n`;
  }
  for (const [a, b] of m.reservedNums) s += `${i2}reserved ${a} to ${b};\n`;
  for (const n of m.reservedNames) s += `${i2}reserved ${editions(syntax) ? n : `"${n}"`};\n`;
  for (const [a, b] of m.extRanges) s += `${i2}extensions ${a} to ${b};\n`;
  return `${s}${ind}}\n`;
}

export function renderFile(f: File): string {
  let s = editions(f.syntax) ? `edition = "${f.syntax}";\n\n` : `syntax = "${f.syntax}";\n\n`;
  s += `package ${f.pkg};\n\n`;
  const text = JSON.stringify(f);
  const imports = [...f.imports];
  if (text.includes("(pb.cpp)")) imports.push("google/protobuf/cpp_features.proto");
  if (text.includes("(pb.java)")) imports.push("google/protobuf/java_features.proto");
  for (const i of imports) s += `import "${i}";\n`;
  if (imports.length) s += "\n";
  for (const [k, v] of Object.entries(f.opts)) s += `option ${k} = ${v};\n`;
  for (const e of f.enums) s += "\n" + renderEnum(e, "", f.syntax);
  for (const m of f.messages) s += "\n" + renderMessage(m, "", f.syntax);
  for (const x of f.extensions)
    s += `\nextend ${x.extendee} {\n${renderField(x.field, "  ", f.syntax, (m, i) => renderMessage(m, i, f.syntax))}}\n`;
  for (const svc of f.services) {
    s += `\nservice ${svc.name} {\n`;
    for (const m of svc.methods) {
      const body = Object.entries(m.opts)
        .map(([k, v]) => `\n    option ${k} = ${v};\n  `)
        .join("");
      s += `  rpc ${m.name}(${m.cs ? "stream " : ""}${m.input}) returns (${m.ss ? "stream " : ""}${m.output})${body ? ` {${body}}` : ";"}\n`;
    }
    s += "}\n";
  }
  return s;
}

export function render(m: Model): Tree {
  return Object.fromEntries(m.files.map((f) => [f.path, renderFile(f)]));
}

// --- mutations ---

function allMessages(f: File): Message[] {
  const out: Message[] = [];
  const walk = (m: Message) => {
    out.push(m);
    m.nested.forEach(walk);
  };
  f.messages.forEach(walk);
  return out;
}

function allEnums(f: File): Enum[] {
  return [...f.enums, ...allMessages(f).flatMap((m) => m.enums)];
}

const remove = <T>(r: Rng, xs: T[]): T | undefined =>
  xs.length ? xs.splice(Math.floor(r() * xs.length), 1)[0] : undefined;

type Mutation = (r: Rng, m: Model, f: File) => string | undefined;

const fieldsOf = (m: Message) => [...m.fields, ...m.oneofs.flatMap((o) => o.fields)];

const MUTATIONS: Array<[string, number, Mutation]> = [
  [
    "delete field",
    4,
    (r, _m, f) => {
      const msg = pick(r, allMessages(f));
      const gone = remove(r, msg.fields);
      if (gone && chance(r, 0.4)) msg.reservedNums.push([gone.number, gone.number]);
      if (gone && chance(r, 0.4)) msg.reservedNames.push(gone.name);
      return gone && `${msg.name}.${gone.name}`;
    },
  ],
  [
    "rename field",
    3,
    (r, _m, f) => {
      const fs = fieldsOf(pick(r, allMessages(f))).filter((x) => !x.group);
      const x = fs.length ? pick(r, fs) : undefined;
      if (x) x.name = `${x.name}_r`;
      return x?.name;
    },
  ],
  [
    "change field type",
    5,
    (r, _m, f) => {
      const fs = fieldsOf(pick(r, allMessages(f))).filter((x) => !x.group && !x.map);
      const x = fs.length ? pick(r, fs) : undefined;
      if (!x) return undefined;
      const enums = allEnums(f)
        .map((e) => e.name)
        .filter((n) => f.enums.some((e) => e.name === n));
      x.type = enums.length && chance(r, 0.15) ? pick(r, enums) : pick(r, SCALARS);
      for (const k of [
        "jstype",
        "ctype",
        "default",
        "features.(pb.cpp).string_type",
        "features.utf8_validation",
        "features.(pb.java).utf8_validation",
        "packed",
        "features.repeated_field_encoding",
      ])
        delete x.opts[k];
      return x.type;
    },
  ],
  [
    "change label",
    4,
    (r, _m, f) => {
      const x = pick(r, allMessages(f)).fields.filter((y) => !y.map && !y.group);
      const y = x.length ? pick(r, x) : undefined;
      if (!y) return undefined;
      const labels: Label[] =
        f.syntax === "proto2"
          ? ["optional", "repeated", "required"]
          : f.syntax === "proto3"
            ? ["", "optional", "repeated"]
            : ["", "repeated"];
      y.label = pick(r, labels);
      if (y.label === "repeated") delete y.opts.default, delete y.opts["features.field_presence"];
      else delete y.opts.packed, delete y.opts["features.repeated_field_encoding"];
      return y.label;
    },
  ],
  [
    "change field number",
    2,
    (r, _m, f) => {
      const fs = fieldsOf(pick(r, allMessages(f)));
      const x = fs.length ? pick(r, fs) : undefined;
      if (x) x.number += 40;
      return x?.name;
    },
  ],
  [
    "field option",
    6,
    (r, _m, f) => {
      const fs = fieldsOf(pick(r, allMessages(f))).filter((x) => !x.map && !x.group);
      const x = fs.length ? pick(r, fs) : undefined;
      if (!x) return undefined;
      const ed = editions(f.syntax);
      const key = pick(
        r,
        ed
          ? [
              "json_name",
              "features.utf8_validation",
              "features.(pb.cpp).string_type",
              "features.(pb.java).utf8_validation",
              "features.field_presence",
              "default",
              "jstype",
              "features.repeated_field_encoding",
              "deprecated",
            ]
          : ["json_name", "ctype", "default", "jstype", "packed", "deprecated"],
      );
      const values: Record<string, string[]> = {
        json_name: [`"k${x.name}"`, `"j${x.name}"`],
        "features.utf8_validation": ["NONE", "VERIFY"],
        "features.(pb.cpp).string_type": ["CORD", "STRING", "VIEW"],
        "features.(pb.java).utf8_validation": ["DEFAULT", "VERIFY"],
        "features.field_presence": ["EXPLICIT", "IMPLICIT", "LEGACY_REQUIRED"],
        "features.repeated_field_encoding": ["EXPANDED", "PACKED"],
        ctype: ["CORD", "STRING", "STRING_PIECE"],
        jstype: ["JS_STRING", "JS_NUMBER", "JS_NORMAL"],
        packed: ["true", "false"],
        deprecated: ["true", "false"],
        default: [defaultFor(r, x.type)],
      };
      if (x.opts[key] !== undefined && chance(r, 0.4)) delete x.opts[key];
      else x.opts[key] = pick(r, values[key]!);
      return key;
    },
  ],
  [
    "into or out of oneof",
    2,
    (r, _m, f) => {
      const msg = pick(r, allMessages(f));
      if (msg.oneofs.length && chance(r, 0.5)) {
        const o = pick(r, msg.oneofs);
        const x = remove(r, o.fields);
        if (x) msg.fields.push(x);
        if (!o.fields.length) msg.oneofs.splice(msg.oneofs.indexOf(o), 1);
        return x?.name;
      }
      const x = remove(
        r,
        msg.fields.filter(
          (y) => !y.map && y.label !== "repeated" && y.label !== "required" && !y.group,
        ).length
          ? msg.fields
          : [],
      );
      if (!x || x.map || x.label === "repeated" || x.group) return undefined;
      x.label = "";
      delete x.opts["features.field_presence"];
      if (msg.oneofs.length) msg.oneofs[0]!.fields.push(x);
      else msg.oneofs.push({ name: "moved", fields: [x] });
      return x.name;
    },
  ],
  [
    "delete oneof",
    1,
    (r, _m, f) => {
      const msg = pick(r, allMessages(f));
      return remove(r, msg.oneofs)?.name;
    },
  ],
  [
    "delete message",
    2,
    (r, _m, f) => {
      const msg = pick(r, allMessages(f));
      return (
        remove(r, msg.nested)?.name ??
        (f.messages.length > 1 ? remove(r, f.messages)?.name : undefined)
      );
    },
  ],
  [
    "move message",
    1,
    (r, m, f) => {
      const other = m.files.find((g) => g !== f && g.pkg === f.pkg && g.syntax === f.syntax);
      if (!other || f.messages.length < 2) return undefined;
      const x = remove(r, f.messages)!;
      other.messages.push(x);
      return x.name;
    },
  ],
  [
    "delete enum",
    2,
    (r, _m, f) => {
      const owner = chance(r, 0.5) ? f.enums : pick(r, allMessages(f)).enums;
      return remove(r, owner)?.name;
    },
  ],
  [
    "enum values",
    5,
    (r, _m, f) => {
      const es = allEnums(f);
      if (!es.length) return undefined;
      const e = pick(r, es);
      const what = int(r, 0, 5);
      if (what === 0 && e.values.length > 1) {
        const v = e.values.splice(int(r, 1, e.values.length - 1), 1)[0]!;
        if (chance(r, 0.4)) e.reservedNums.push([v.number, v.number]);
        if (chance(r, 0.4)) e.reservedNames.push(v.name);
        return `delete ${v.name}`;
      }
      if (what === 1 && e.values.length > 1) {
        const v = e.values[int(r, 1, e.values.length - 1)]!;
        v.name = `${v.name}_R`;
        return `rename ${v.name}`;
      }
      if (what === 2) {
        e.alias = true;
        e.values.push({
          name: `${e.name.toUpperCase()}_AL${int(r, 0, 9)}`,
          number: pick(r, e.values).number,
          opts: {},
        });
        return "add alias";
      }
      if (what === 3 && e.alias) {
        e.alias = chance(r, 0.5);
        const seen = new Set<number>();
        e.values = e.values.filter((v) =>
          seen.has(v.number) ? false : (seen.add(v.number), true),
        );
        return "drop aliases";
      }
      if (what === 4 && e.reservedNums.length + e.reservedNames.length) {
        if (!remove(r, e.reservedNums)) remove(r, e.reservedNames);
        return "delete reserved";
      }
      if (editions(f.syntax)) e.opts["features.enum_type"] = pick(r, ["OPEN", "CLOSED"]);
      return "enum type";
    },
  ],
  [
    "reserved",
    3,
    (r, _m, f) => {
      const msg = pick(r, allMessages(f));
      if (chance(r, 0.5) && (msg.reservedNums.length || msg.reservedNames.length))
        return String(remove(r, msg.reservedNums) ?? remove(r, msg.reservedNames));
      if (msg.reservedNums.length && chance(r, 0.5)) {
        const [a, b] = msg.reservedNums[0]!;
        if (b > a) msg.reservedNums.splice(0, 1, [a, a], [a + 1, b]);
        return "split";
      }
      msg.reservedNames.push(`gone_${int(r, 0, 99)}`);
      return "add reserved";
    },
  ],
  [
    "extensions",
    3,
    (r, _m, f) => {
      if (!f.extensions.length) {
        const msg = pick(r, allMessages(f));
        return remove(r, msg.extRanges) ? "ext range" : undefined;
      }
      const x = pick(r, f.extensions);
      const what = int(r, 0, 3);
      if (what === 0) f.extensions.splice(f.extensions.indexOf(x), 1);
      else if (what === 1) x.field.name += "_r";
      else if (what === 2) x.field.type = pick(r, ["int64", "sint32", "uint32", "string", "bytes"]);
      else
        x.field.label =
          x.field.label === "repeated" ? (f.syntax === "proto2" ? "optional" : "") : "repeated";
      if (x.field.label === "repeated") delete x.field.opts.default;
      for (const k of [
        "jstype",
        "ctype",
        "features.(pb.cpp).string_type",
        "features.utf8_validation",
        "features.(pb.java).utf8_validation",
      ])
        if (what === 2) delete x.field.opts[k];
      return `ext ${what}`;
    },
  ],
  [
    "service",
    4,
    (r, _m, f) => {
      if (!f.services.length) return undefined;
      const s = pick(r, f.services);
      const what = int(r, 0, 5);
      if (what === 0) return remove(r, f.services)?.name;
      const mm = pick(r, s.methods);
      if (what === 1) s.methods.splice(s.methods.indexOf(mm), 1);
      else if (what === 2) mm.cs = !mm.cs;
      else if (what === 3) mm.ss = !mm.ss;
      else if (what === 4)
        chance(r, 0.5)
          ? (mm.input = pick(r, f.messages).name)
          : (mm.output = pick(r, f.messages).name);
      else if (mm.opts.idempotency_level) delete mm.opts.idempotency_level;
      else mm.opts.idempotency_level = "IDEMPOTENT";
      return `${s.name} ${what}`;
    },
  ],
  [
    "file option",
    3,
    (r, _m, f) => {
      const ed = editions(f.syntax);
      const key = pick(
        r,
        ed
          ? [
              "java_package",
              "go_package",
              "features.utf8_validation",
              "features.field_presence",
              "features.(pb.java).utf8_validation",
              "features.enum_type",
            ]
          : [
              "java_package",
              "go_package",
              "java_string_check_utf8",
              "optimize_for",
              "cc_enable_arenas",
            ],
      );
      const values: Record<string, string[]> = {
        java_package: ['"com.a"', '"com.b"'],
        go_package: ['"x/a"', '"x/b"'],
        java_string_check_utf8: ["true", "false"],
        optimize_for: ["SPEED", "CODE_SIZE"],
        cc_enable_arenas: ["true", "false"],
        "features.utf8_validation": ["NONE", "VERIFY"],
        "features.field_presence": ["EXPLICIT", "IMPLICIT"],
        "features.(pb.java).utf8_validation": ["DEFAULT", "VERIFY"],
        "features.enum_type": ["OPEN", "CLOSED"],
      };
      if (f.opts[key] !== undefined && chance(r, 0.5)) delete f.opts[key];
      else f.opts[key] = pick(r, values[key]!);
      return key;
    },
  ],
  [
    "file package",
    1,
    (r, m, f) => {
      if (m.files.some((g) => g.imports.includes(f.path))) return undefined;
      f.pkg = f.pkg === "demo.v1" ? "demo.v2" : "demo.v1";
      return f.pkg;
    },
  ],
  [
    "delete file",
    1,
    (r, m, f) => {
      if (m.files.length < 2 || m.files.some((g) => g.imports.includes(f.path))) return undefined;
      m.files.splice(m.files.indexOf(f), 1);
      return f.path;
    },
  ],
  [
    "syntax",
    1,
    (r, _m, f) => {
      // proto2 <-> editions keeps most files valid (labels are rewritten), proto3 <-> editions too.
      const to: Syntax =
        f.syntax === "proto2"
          ? "2023"
          : f.syntax === "proto3"
            ? pick(r, ["2023", "2024"] as const)
            : f.syntax === "2023"
              ? "2024"
              : "2023";
      const from = f.syntax;
      f.syntax = to;
      const fix = (x: Field) => {
        if (x.label === "optional")
          (x.label = ""), (x.opts["features.field_presence"] = "EXPLICIT");
        if (x.label === "required")
          (x.label = ""), (x.opts["features.field_presence"] = "LEGACY_REQUIRED");
        if (x.group) (x.group = false), (x.type = "int32");
        if (
          from === "proto3" &&
          x.label === "" &&
          !x.map &&
          x.opts["features.field_presence"] === undefined &&
          !x.opts.default
        )
          x.opts["features.field_presence"] = "IMPLICIT";
        if (to === "2024") delete x.opts.ctype;
        if (x.opts.ctype)
          (x.opts["features.(pb.cpp).string_type"] = x.opts.ctype === "CORD" ? "CORD" : "STRING"),
            delete x.opts.ctype;
        delete x.opts.packed;
      };
      for (const msg of allMessages(f)) fieldsOf(msg).forEach(fix);
      for (const x of f.extensions) fix(x.field);
      if (from === "proto2") for (const e of allEnums(f)) e.opts["features.enum_type"] = "CLOSED";
      delete f.opts.java_string_check_utf8;
      return `${from} -> ${to}`;
    },
  ],
];

const TOTAL = MUTATIONS.reduce((s, [, w]) => s + w, 0);

export interface Pair {
  seed: number;
  before: Tree;
  after: Tree;
  edits: string[];
}

/** A random model and a mutated copy (1 to 3 edits), both rendered; the same pair for the same seed. */
export function genPair(seed: number): Pair {
  const r = rng(seed);
  const model = genModel(r);
  const before = render(model);
  const edited = structuredClone(model);
  const edits: string[] = [];
  for (let k = int(r, 1, 3); k > 0; k--) {
    if (!edited.files.length) break;
    let x = r() * TOTAL;
    const found = MUTATIONS.find(([, w]) => (x -= w) < 0) ?? MUTATIONS[0]!;
    const file = pick(r, edited.files);
    const what = found[2](r, edited, file);
    if (what !== undefined) edits.push(`${found[0]} (${file.path}): ${what}`);
  }
  return { seed, before, after: render(edited), edits };
}
