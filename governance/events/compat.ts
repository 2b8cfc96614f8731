// Event compatibility by direction: can data written with one version of an event's schema be read with
// the other? Every event message (`(grabbit.v1.event)`) of two images is walked with every message it
// uses, field by field (paired by number), once with the old side as the writer (BACKWARD: new
// consumers reading old data) and once with the new side as the writer (FORWARD: old consumers reading
// new data), by protobuf's binary rules and, marked `json`, by its JSON mapping. A finding seen in both
// directions is one finding naming both. Nothing here decides what fails: policy.ts does, per event mode.
// It never throws on odd descriptors; a type it cannot resolve is reported as a finding, not skipped.
import { FieldDescriptorProto_Type as T, type FieldDescriptorProto } from "@bufbuild/protobuf/wkt";
import type { Image } from "../images.js";
import { indexSide, type EnumEl, type MessageEl, type Side } from "../model.js";
import { bindingPattern, effectiveEvent } from "../rules/grabbit.js";
import {
  cardinality,
  enumType,
  fieldKind,
  inOneof,
  isMessageType,
  typeText,
} from "../rules/features.js";
import type { At } from "../rules/context.js";

export type Direction = "BACKWARD" | "FORWARD";
export const DIRECTION_TEXT: Record<Direction, string> = {
  BACKWARD: "new consumers reading old data",
  FORWARD: "old consumers reading new data",
};

export interface EventFinding {
  rule: EventRuleId;
  /** The event (full name) whose data the finding is about. */
  event: string;
  directions: Direction[];
  /** Which encoding it concerns: grabbit's events travel as binary; JSON matters to JSON readers. */
  wire: "binary" | "json";
  /** False for notes (a removed field whose number is not reserved: harmless until reused). */
  breaking: boolean;
  at: At;
  message: string;
}

/** The event rules, with what each checks (for docs, SARIF and `grabbit:accept`). */
export const EVENT_RULES = {
  EVENT_REMOVED:
    "events stay (queued, dead-lettered or replayed data of a removed event has no consumer).",
  EVENT_TYPE_CHANGED: "events keep their full name, the AMQP `type` consumers dispatch on.",
  EVENT_EXCHANGE_CHANGED: "events keep their exchange and exchange kind.",
  EVENT_ROUTING_KEY_CHANGED: "events keep the binding pattern of their routing key.",
  EVENT_FIELD_TYPE_CHANGED: "fields keep a wire-compatible type (protobuf's compatibility groups).",
  EVENT_FIELD_NUMBER_REUSED: "a removed field's number is not reused with another type.",
  EVENT_FIELD_NUMBER_NOT_RESERVED:
    "a removed field's number is reserved (note: harmless until reused).",
  EVENT_FIELD_CARDINALITY_CHANGED: "a repeated field is not read as a singular one.",
  EVENT_FIELD_REQUIRED:
    "readers require no field that writers may leave out (proto2 required, LEGACY_REQUIRED).",
  EVENT_FIELD_ONEOF_CHANGED:
    "fields a writer can set together are not read as members of one oneof.",
  EVENT_ENUM_VALUE_UNKNOWN: "every enum value a writer can send is known to the reader.",
  EVENT_FIELD_JSON_NAME_CHANGED: "fields keep their JSON name (JSON only).",
  EVENT_ENUM_VALUE_JSON_NAME_CHANGED: "enum values keep their name (JSON only).",
} as const satisfies Record<string, string>;

/** The event rule IDs: a finding takes only these, so a misspelt ID does not compile. */
export type EventRuleId = keyof typeof EVENT_RULES;

interface Pass {
  event: string;
  dir: Direction;
  old: Side;
  cur: Side;
  out: EventFinding[];
  seen: Set<string>;
}

const strip = (n: string) => n.replace(/^\./, "");

/** Every message of an image indexed (imports too: an event may use a message from a dependency). */
export function wholeSide(image: Image): Side {
  return indexSide(image, image.files.keys());
}

/** Event messages of a side by full name (imports excluded: a dependency's events are not ours). */
export function eventsOf(side: Side): Map<string, MessageEl> {
  const out = new Map<string, MessageEl>();
  for (const [name, m] of side.messages)
    if (!m.file.image.isImport && effectiveEvent(m)) out.set(name, m);
  return out;
}

/** Compares every event of `old` with `cur`; findings are located in the current files where they can be. */
export function compareEventImages(old: Side, cur: Side): EventFinding[] {
  const out: EventFinding[] = [];
  const oldEvents = eventsOf(old);
  const curEvents = eventsOf(cur);
  const matched = new Set<string>();
  for (const [name, before] of oldEvents) {
    let after = curEvents.get(name);
    if (!after) {
      // Renamed: an event of the new side that the old one lacks, published the same way.
      const eb = effectiveEvent(before)!;
      after = [...curEvents.values()].find((m) => {
        const ea = effectiveEvent(m)!;
        return (
          !oldEvents.has(m.fullName) &&
          !matched.has(m.fullName) &&
          ea.exchange === eb.exchange &&
          bindingPattern(ea.routingKey) === bindingPattern(eb.routingKey)
        );
      });
      if (!after) {
        add(out, {
          rule: "EVENT_REMOVED",
          event: name,
          directions: ["BACKWARD"],
          wire: "binary",
          breaking: true,
          at: at(before),
          message: `Event "${name}" was removed: its data still in queues, dead-letter queues or replays reaches new consumers that no longer know the type, and is dead-lettered.`,
        });
        continue;
      }
      matched.add(after.fullName);
      add(out, {
        rule: "EVENT_TYPE_CHANGED",
        event: after.fullName,
        directions: ["BACKWARD", "FORWARD"],
        wire: "binary",
        breaking: true,
        at: at(after),
        message: `Event "${name}" is now "${after.fullName}": consumers dispatch on the AMQP type, so each version dead-letters the other's events.`,
      });
    }
    compareOption(out, before, after);
    for (const dir of ["BACKWARD", "FORWARD"] as const) {
      comparePair({ event: after.fullName, dir, old, cur, out, seen: new Set() }, before, after);
    }
  }
  return out;
}

function at(m: MessageEl, sub: number[] = []): At {
  return { file: m.file, spath: [...m.spath, ...sub] };
}

/**
 * Adds a finding, merging it with the other direction's finding of the same rule at the same place:
 * one change, named once, with what each direction does when the two differ.
 */
function add(out: EventFinding[], f: EventFinding): void {
  const same = out.find(
    (g) =>
      g.rule === f.rule &&
      g.event === f.event &&
      g.wire === f.wire &&
      g.at.file.path === f.at.file.path &&
      g.at.spath.join() === f.at.spath.join(),
  );
  if (!same) {
    out.push(f);
    return;
  }
  if (same.message !== f.message && f.directions.length) {
    const tag = (g: EventFinding) => `${g.directions.join("+")}: `;
    if (!same.message.startsWith("BACKWARD: ") && !same.message.startsWith("FORWARD: "))
      same.message = tag(same) + same.message;
    same.message += ` ${tag(f)}${f.message}`;
  }
  for (const d of f.directions) if (!same.directions.includes(d)) same.directions.push(d);
  same.directions.sort();
}

function compareOption(out: EventFinding[], before: MessageEl, after: MessageEl): void {
  const eb = effectiveEvent(before)!;
  const ea = effectiveEvent(after)!;
  const base = () => ({
    event: after.fullName,
    directions: ["BACKWARD", "FORWARD"] as Direction[],
    wire: "binary" as const,
    breaking: true,
    at: at(after, [7]),
  });
  if (eb.exchange !== ea.exchange || eb.kind !== ea.kind) {
    add(out, {
      ...base(),
      rule: "EVENT_EXCHANGE_CHANGED",
      message: `Event "${after.fullName}" moved from ${eb.kind} exchange "${eb.exchange}" to ${ea.kind} exchange "${ea.exchange}": each version's consumers are bound where the other version's producers do not publish.`,
    });
  }
  const pb = bindingPattern(eb.routingKey);
  const pa = bindingPattern(ea.routingKey);
  if (pb !== pa && ea.kind !== "fanout") {
    add(out, {
      ...base(),
      rule: "EVENT_ROUTING_KEY_CHANGED",
      message: `Event "${after.fullName}" changed its routing key from "${eb.routingKey}" to "${ea.routingKey}": consumers bound to "${pb}" miss what is published as "${pa}", and the other way round.`,
    });
  }
}

/** The version names in messages: which side writes and which reads. */
function sides(p: Pass): { writer: "old" | "new"; reader: "old" | "new" } {
  return p.dir === "BACKWARD" ? { writer: "old", reader: "new" } : { writer: "new", reader: "old" };
}

function comparePair(p: Pass, o: MessageEl, n: MessageEl): void {
  const key = `${o.fullName}>${n.fullName}`;
  if (p.seen.has(key)) return;
  p.seen.add(key);
  const [w, r] = p.dir === "BACKWARD" ? [o, n] : [n, o];
  const [ws, rs] = p.dir === "BACKWARD" ? [p.old, p.cur] : [p.cur, p.old];
  const { writer, reader } = sides(p);
  const rByNo = new Map(r.d.field.map((f) => [f.number, f]));
  const wByNo = new Map(w.d.field.map((f) => [f.number, f]));
  const nIndex = (f: FieldDescriptorProto) => n.d.field.indexOf(f);
  // Where a finding about a field points: the field in the new message, else the new message.
  const fieldAt = (nf: FieldDescriptorProto | undefined, sub: number[] = []) =>
    nf && nIndex(nf) >= 0 ? at(n, [2, nIndex(nf), ...sub]) : at(n);
  const push = (
    rule: EventRuleId,
    nf: FieldDescriptorProto | undefined,
    message: string,
    extra: Partial<EventFinding> = {},
  ) =>
    add(p.out, {
      rule,
      event: p.event,
      directions: [p.dir],
      wire: "binary",
      breaking: true,
      at: fieldAt(nf),
      message,
      ...extra,
    });

  for (const wf of w.d.field) {
    const rf = rByNo.get(wf.number);
    const nf = p.dir === "BACKWARD" ? rf : wf;
    const of = p.dir === "BACKWARD" ? wf : rf;
    if (!rf) {
      // Binary readers skip a field they do not know (JSON readers must ignore unknown fields too).
      if (p.dir === "BACKWARD" && !reserved(n, wf.number)) {
        push(
          "EVENT_FIELD_NUMBER_NOT_RESERVED",
          undefined,
          `Field ${wf.number} "${wf.name}" of "${o.fullName}" was removed without reserving its number (reserved ${wf.number};): a later version that reuses it with another type breaks readers of data written before the removal.`,
          { directions: [], breaking: false },
        );
      }
      continue;
    }
    compareField(p, { w, r, ws, rs, wf, rf, nf: nf!, of: of!, writer, reader, push });
  }
  // A field the reader requires and the writer may leave out: the reader fails to parse.
  for (const rf of r.d.field) {
    if (cardinality(rf, r, rs) !== "required") continue;
    const wf = wByNo.get(rf.number);
    if (wf && cardinality(wf, w, ws) === "required") continue;
    const nf = p.dir === "BACKWARD" ? rf : wf;
    push(
      "EVENT_FIELD_REQUIRED",
      nf,
      `Field ${rf.number} "${rf.name}" of "${r.fullName}" is required in the ${reader} version but ${wf ? "optional" : "absent"} in the ${writer} one: a message without it fails to parse.`,
    );
  }
  // Fields a writer can set together that the reader holds in one oneof: the reader keeps only the last.
  r.d.oneofDecl.forEach((decl, index) => {
    const members = r.d.field.filter(
      (f) => inOneof(f) && f.oneofIndex === index && wByNo.has(f.number),
    );
    if (members.length < 2) return;
    const wIdx = members
      .map((f) => wByNo.get(f.number)!)
      .map((f) => (inOneof(f) ? f.oneofIndex : -1 - f.number));
    if (new Set(wIdx).size === 1) return;
    const names = members.map((f) => `"${f.name}"`).join(", ");
    const first = p.dir === "BACKWARD" ? members[0] : wByNo.get(members[0]!.number);
    push(
      "EVENT_FIELD_ONEOF_CHANGED",
      first,
      `Fields ${names} of "${r.fullName}" are in oneof "${decl.name}" in the ${reader} version but the ${writer} version can set them together: a reader keeps only the last one and loses the others.`,
    );
  });
}

interface FieldPair {
  w: MessageEl;
  r: MessageEl;
  ws: Side;
  rs: Side;
  wf: FieldDescriptorProto;
  rf: FieldDescriptorProto;
  /** The same two fields as new and old (for messages in old/new terms and locations). */
  nf: FieldDescriptorProto;
  of: FieldDescriptorProto;
  writer: "old" | "new";
  reader: "old" | "new";
  push: (
    rule: EventRuleId,
    nf: FieldDescriptorProto | undefined,
    message: string,
    extra?: Partial<EventFinding>,
  ) => void;
}

function reserved(m: MessageEl, no: number): boolean {
  return m.d.reservedRange.some((r) => no >= r.start && no < r.end);
}

const VARINT = new Set([T.INT32, T.INT64, T.UINT32, T.UINT64, T.BOOL, T.ENUM]);
const ZIGZAG = new Set([T.SINT32, T.SINT64]);
const FIXED32 = new Set([T.FIXED32, T.SFIXED32]);
const FIXED64 = new Set([T.FIXED64, T.SFIXED64]);
const LEN = new Set([T.STRING, T.BYTES, T.MESSAGE]);
/** Value ranges of the varint types (bool 0..1; enums are int32 on the wire). */
const RANGE: Partial<Record<T, [bigint, bigint]>> = {
  [T.BOOL]: [0n, 1n],
  [T.INT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [T.ENUM]: [-(2n ** 31n), 2n ** 31n - 1n],
  [T.UINT32]: [0n, 2n ** 32n - 1n],
  [T.INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [T.UINT64]: [0n, 2n ** 64n - 1n],
  [T.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [T.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n],
};

/** How a value written as `wk` reads as `rk` on the binary wire: a reason when it does not read back intact. */
export function binaryCompat(
  wk: T,
  rk: T,
): { ok: true } | { ok: false; lossy: boolean; why: string } {
  if (wk === rk) return { ok: true };
  const group = [VARINT, ZIGZAG, FIXED32, FIXED64, LEN].find((g) => g.has(wk) && g.has(rk));
  if (!group) {
    const zig = (ZIGZAG.has(wk) && VARINT.has(rk)) || (VARINT.has(wk) && ZIGZAG.has(rk));
    return {
      ok: false,
      lossy: false,
      why: zig
        ? "zigzag (sint) and plain varints encode numbers differently, so every value is misread"
        : "the wire types differ, so the reader does not see the value (or fails to parse it)",
    };
  }
  if (group === VARINT || group === ZIGZAG) {
    const [wl, wh] = RANGE[wk]!;
    const [rl, rh] = RANGE[rk]!;
    if (wl >= rl && wh <= rh) return { ok: true };
    return {
      ok: false,
      lossy: true,
      why: `values outside the ${kindName(rk)} range are read as other numbers (as a C++ cast)`,
    };
  }
  if (group === FIXED32 || group === FIXED64)
    return {
      ok: false,
      lossy: true,
      why: "the same bits are read with the other signedness, so values past the signed range change sign",
    };
  // string, bytes and message share the length-delimited wire type.
  if (rk === T.BYTES) return { ok: true };
  if (wk === T.BYTES && rk === T.STRING)
    return {
      ok: false,
      lossy: true,
      why: "bytes that are not valid UTF-8 fail to parse where strings are validated (proto3, editions)",
    };
  if (wk === T.BYTES && rk === T.MESSAGE)
    return {
      ok: false,
      lossy: true,
      why: "the bytes parse only if they hold an encoded message of that type",
    };
  return {
    ok: false,
    lossy: false,
    why: "the bytes of one are not a valid encoding of the other, so the reader fails to parse the event",
  };
}

function kindName(k: T): string {
  return T[k].toLowerCase();
}

/** Whether the JSON mapping of `wk` parses as `rk` (the integer types accept one another's forms). */
function jsonCompat(wk: T, rk: T): boolean {
  if (wk === rk) return true;
  const ints = new Set([
    T.INT32,
    T.INT64,
    T.UINT32,
    T.UINT64,
    T.SINT32,
    T.SINT64,
    T.FIXED32,
    T.FIXED64,
    T.SFIXED32,
    T.SFIXED64,
    T.FLOAT,
    T.DOUBLE,
  ]);
  return ints.has(wk) && ints.has(rk);
}

function compareField(p: Pass, x: FieldPair): void {
  const { w, r, ws, rs, wf, rf, nf, of, writer, reader, push } = x;
  const name = `Field ${nf.number} "${nf.name}" of "${p.dir === "BACKWARD" ? r.fullName : w.fullName}"`;
  const wk = fieldKind(wf, w);
  const rk = fieldKind(rf, r);
  const wc = cardinality(wf, w, ws);
  const rc = cardinality(rf, r, rs);
  const many = (c: string) => c === "repeated" || c === "map";
  const renamedAndRetyped =
    wf.name !== rf.name && (wk !== rk || strip(wf.typeName) !== strip(rf.typeName));
  const oldText = `${of.name} ${typeText(of)}`;
  const newText = `${nf.name} ${typeText(nf)}`;

  const reuse = binaryCompat(wk, rk);
  if (renamedAndRetyped && wk !== rk && !reuse.ok) {
    const who = reuse.lossy
      ? `data written with the ${writer} version is misread by the ${reader} one`
      : "each version misreads the other's data";
    push(
      "EVENT_FIELD_NUMBER_REUSED",
      nf,
      `Field number ${nf.number} of "${r.fullName}" was "${oldText}" and is now "${newText}": a removed field's number was reused with another type, so ${who}: ${reuse.why}.`,
    );
    return;
  }
  if (many(wc) && !many(rc)) {
    const keep = isMessageType(rf)
      ? "merges every element into one message"
      : "keeps only the last element";
    push(
      "EVENT_FIELD_CARDINALITY_CHANGED",
      nf,
      `${name} is ${wc} in the ${writer} version and singular in the ${reader} one: the reader ${keep}.`,
    );
  } else if (!many(wc) && many(rc)) {
    push(
      "EVENT_FIELD_CARDINALITY_CHANGED",
      nf,
      `${name} is singular in the ${writer} version and ${rc} in the ${reader} one: binary readers get a list of one, but JSON holds a value where a list is expected.`,
      { wire: "json" },
    );
  }
  if (wf.jsonName !== rf.jsonName) {
    push(
      "EVENT_FIELD_JSON_NAME_CHANGED",
      nf,
      `${name} changed its JSON name from "${of.jsonName}" to "${nf.jsonName}": JSON written by one version is not read into the field by the other.`,
      { wire: "json" },
    );
  }

  const wMsg = wk === T.MESSAGE || wk === T.GROUP;
  const rMsg = rk === T.MESSAGE || rk === T.GROUP;
  if (wMsg && rMsg) {
    if (wk !== rk) {
      const enc = (k: T) => (k === T.GROUP ? "delimited (group)" : "length-prefixed");
      const [ok, nk] = p.dir === "BACKWARD" ? [wk, rk] : [rk, wk];
      push(
        "EVENT_FIELD_TYPE_CHANGED",
        nf,
        `${name} changed its message encoding from ${enc(ok)} to ${enc(nk)}: neither version reads the other's encoding.`,
      );
      return;
    }
    const wt = ws.messages.get(strip(wf.typeName));
    const rt = rs.messages.get(strip(rf.typeName));
    if (!wt || !rt) {
      push(
        "EVENT_FIELD_TYPE_CHANGED",
        nf,
        `${name} uses a message type the image does not hold (${strip(wf.typeName)} / ${strip(rf.typeName)}); it cannot be checked.`,
      );
      return;
    }
    comparePair(p, p.dir === "BACKWARD" ? wt : rt, p.dir === "BACKWARD" ? rt : wt);
    return;
  }
  const bin = binaryCompat(wk, rk);
  if (!bin.ok) {
    // A lossy change depends on which side writes; an incompatible one does not (one finding, both ways).
    const how = bin.lossy ? `written as ${typeText(wf)} and read as ${typeText(rf)}, ` : "";
    push(
      "EVENT_FIELD_TYPE_CHANGED",
      nf,
      `${name} changed from ${typeText(of)} to ${typeText(nf)}: ${how}${bin.why}.`,
    );
    return;
  }
  if (!jsonCompat(wk, rk)) {
    push(
      "EVENT_FIELD_TYPE_CHANGED",
      nf,
      `${name} changed from ${typeText(of)} to ${typeText(nf)}: compatible on the binary wire, but the JSON forms differ (${typeText(wf)} JSON does not parse as ${typeText(rf)}).`,
      { wire: "json" },
    );
  }
  if (wk === T.ENUM && rk === T.ENUM) {
    const we = ws.enums.get(strip(wf.typeName));
    const re = rs.enums.get(strip(rf.typeName));
    if (we && re) compareEnum(x, name, we, re);
  }
}

function compareEnum(x: FieldPair, name: string, we: EnumEl, re: EnumEl): void {
  const rByNo = new Map(re.d.value.map((v) => [v.number, v]));
  const closed = enumType(re) === "closed";
  const unknown = we.d.value.filter((v) => !rByNo.has(v.number));
  if (unknown.length) {
    const list = unknown.map((v) => `${v.name} = ${v.number}`).join(", ");
    const what = x.writer === "old" ? "removed from" : "added to";
    const effect = closed
      ? `"${re.fullName}" is closed there, so the value is not accepted: the field reads as unset (kept as an unknown field)${x.rf.label === 2 ? " and, the field being required, the message fails to parse" : ""}`
      : `the ${x.reader} consumer gets a number it has no name for and must handle it`;
    x.push(
      "EVENT_ENUM_VALUE_UNKNOWN",
      x.nf,
      `${name}: ${list} ${unknown.length > 1 ? "were" : "was"} ${what} enum "${re.fullName}" in the new version; data written with the ${x.writer} version can carry ${unknown.length > 1 ? "them" : "it"} and ${effect}.`,
    );
  }
  for (const v of we.d.value) {
    const rv = rByNo.get(v.number);
    if (!rv || rv.name === v.name) continue;
    const [ov, nv] = x.writer === "old" ? [v, rv] : [rv, v];
    x.push(
      "EVENT_ENUM_VALUE_JSON_NAME_CHANGED",
      x.nf,
      `${name}: enum value ${v.number} of "${re.fullName}" was renamed from ${ov.name} to ${nv.name}: JSON carries the name, which the other version does not know.`,
      { wire: "json" },
    );
  }
}
