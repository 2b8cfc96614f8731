// Field defaults as buf compares them (FIELD_SAME_DEFAULT): an unset default is the kind's zero value,
// or an enum's first value; values compare across kinds (numbers, bools and enums by number, strings
// and bytes by content, float against double at float precision) and print as buf prints them.
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type as T,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";

export interface FieldDefault {
  /** A string for string and bytes (bytes as latin1 characters), else a number (bigint for 64-bit). */
  value: string | number | bigint;
  float32: boolean;
  zero: boolean;
  printable: string;
}

export function canHaveDefault(f: FieldDescriptorProto, kind: T): boolean {
  return f.label !== FieldDescriptorProto_Label.REPEATED && kind !== T.MESSAGE && kind !== T.GROUP;
}

/** The bytes of a C-escaped default (descriptor.proto's form for bytes defaults). */
function unescapeBytes(s: string): number[] {
  const out: number[] = [];
  const simple: Record<string, number> = {
    n: 10,
    r: 13,
    t: 9,
    '"': 34,
    "'": 39,
    "\\": 92,
    a: 7,
    b: 8,
    f: 12,
    v: 11,
    "?": 63,
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== "\\") {
      for (const b of Buffer.from(c, "utf8")) out.push(b);
      continue;
    }
    const n = s[i + 1] ?? "";
    if (/[0-7]/.test(n)) {
      const m = /^[0-7]{1,3}/.exec(s.slice(i + 1))![0];
      out.push(parseInt(m, 8) & 0xff);
      i += m.length;
    } else if (n === "x") {
      const m = /^[0-9a-fA-F]{1,2}/.exec(s.slice(i + 2))?.[0] ?? "";
      out.push(parseInt(m || "0", 16));
      i += 1 + m.length;
    } else {
      out.push(simple[n] ?? n.charCodeAt(0));
      i += 1;
    }
  }
  return out;
}

/** Go's %v of a float64 (or float32), as buf prints a default. */
export function goFloat(x: number, float32: boolean): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  let digits: string;
  let exp: number;
  let p = 1;
  if (float32) {
    for (; p < 17; p++) if (Math.fround(Number(x.toPrecision(p))) === x) break;
  } else {
    for (; p < 17; p++) if (Number(x.toPrecision(p)) === x) break;
  }
  const e = Math.abs(x).toExponential(p - 1); // "d.ddde+x"
  const [mant, ex] = e.split("e");
  digits = mant!.replace(".", "").replace(/0+$/, "") || "0";
  exp = Number(ex);
  const sign = x < 0 ? "-" : "";
  if (exp < -4 || exp >= 6) {
    // Go's %v (shortest %g): the %e form when the exponent is below -4 or at least 6.
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${"0".repeat(exp + 1 - digits.length)}`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** Go's %q of a string (printable characters as is, the rest escaped). */
function goQuote(s: string): string {
  const named: Record<number, string> = {
    7: "\\a",
    8: "\\b",
    9: "\\t",
    10: "\\n",
    11: "\\v",
    12: "\\f",
    13: "\\r",
    34: '\\"',
    92: "\\\\",
  };
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (named[c]) out += named[c];
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `"${out}"`;
}

export function fieldDefault(
  f: FieldDescriptorProto,
  kind: T,
  en: EnumDescriptorProto | undefined,
): FieldDefault {
  const d = f.defaultValue ?? "";
  switch (kind) {
    case T.BYTES: {
      const bytes = unescapeBytes(d);
      return {
        value: String.fromCharCode(...bytes),
        float32: false,
        zero: bytes.length === 0,
        printable: `[${bytes.map((b) => `0x${b.toString(16).toUpperCase()}`).join(",")}]`,
      };
    }
    case T.STRING:
      return { value: d, float32: false, zero: d === "", printable: goQuote(d) };
    case T.ENUM: {
      const values = en?.value ?? [];
      const n = d ? (values.find((v) => v.name === d)?.number ?? 0) : (values[0]?.number ?? 0);
      const v = values.find((x) => x.number === n);
      return {
        value: n,
        float32: false,
        zero: n === 0,
        printable: v ? `${en!.name}.${v.name}` : `${en?.name ?? ""}.${n}(?)`,
      };
    }
    case T.BOOL: {
      const b = d === "true";
      return { value: b ? 1 : 0, float32: false, zero: !b, printable: String(b) };
    }
    case T.FLOAT:
    case T.DOUBLE: {
      const float32 = kind === T.FLOAT;
      let x =
        d === ""
          ? 0
          : d === "inf"
            ? Infinity
            : d === "-inf"
              ? -Infinity
              : d === "nan"
                ? NaN
                : Number(d);
      if (float32) x = Math.fround(x);
      return {
        value: x,
        float32,
        zero: x === 0 && !Object.is(x, -0),
        printable: goFloat(x, float32),
      };
    }
    default: {
      const n = BigInt(d === "" ? "0" : d);
      return { value: n, float32: false, zero: n === 0n, printable: n.toString() };
    }
  }
}

export function defaultsEqual(a: FieldDefault, b: FieldDefault): boolean {
  if (typeof a.value === "string" || typeof b.value === "string") return a.value === b.value;
  const nan = (v: number | bigint) => typeof v === "number" && Number.isNaN(v);
  if (nan(a.value) || nan(b.value)) return nan(a.value) && nan(b.value);
  if (typeof a.value === "number" && typeof b.value === "number" && a.float32 !== b.float32)
    return Math.fround(a.value) === Math.fround(b.value);
  // Compare exactly: a bigint against a float through the float's exact value.
  if (typeof a.value === "bigint" && typeof b.value === "bigint") return a.value === b.value;
  const toExact = (v: number | bigint) =>
    typeof v === "bigint" ? v : Number.isInteger(v) ? BigInt(v) : v;
  const x = toExact(a.value);
  const y = toExact(b.value);
  if (typeof x === "bigint" && typeof y === "bigint") return x === y;
  return Number(x) === Number(y) && typeof x === typeof y;
}
