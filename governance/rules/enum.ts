// Enum rules: enums paired by full name, values by number (several names may share one with allow_alias).
import type { EnumEl } from "../model.js";
import { Ctx } from "./context.js";
import { enumJsonFormat, enumType } from "./features.js";
import { covered, missingText } from "./message.js";
import { enumMembers } from "./ts-names.js";

export function checkEnums(ctx: Ctx): void {
  for (const [name, after] of ctx.cur.enums) {
    const before = ctx.old.enums.get(name);
    if (before) compareEnum(ctx, before, after);
  }
}

function namesByNumber(e: EnumEl): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const v of e.d.value) {
    const list = out.get(v.number);
    if (list) list.push(v.name);
    else out.set(v.number, [v.name]);
  }
  return out;
}

function compareEnum(ctx: Ctx, before: EnumEl, after: EnumEl): void {
  const at = { file: after.file, spath: after.spath };
  // buf names an enum by its own name in these messages, even when nested.
  const what = `enum "${after.d.name}"`;
  const tb = enumType(before);
  const ta = enumType(after);
  if (tb !== ta)
    ctx.add("ENUM_SAME_TYPE", at, `Enum "${after.d.name}" changed from ${tb} to ${ta}.`, {
      sub: [3, 7, 2],
    });
  if (enumJsonFormat(before) === "allow" && enumJsonFormat(after) === "legacy") {
    ctx.add(
      "ENUM_SAME_JSON_FORMAT",
      at,
      `Enum "${after.local}" JSON format support changed from ALLOW to LEGACY_BEST_EFFORT.`,
      { sub: [3, 7, 6] },
    );
  }
  for (const r of before.d.reservedRange) {
    // Enum reserved ranges are inclusive.
    if (!covered(r, after.d.reservedRange, true)) {
      ctx.add(
        "RESERVED_ENUM_NO_DELETE",
        at,
        `Previously present reserved range "${r.start === r.end ? `[${r.start}]` : `[${r.start},${r.end}]`}" on ${what} is missing values: ${missingText(r, after.d.reservedRange, true)} were removed.`,
      );
    }
  }
  for (const n of before.d.reservedName) {
    if (!after.d.reservedName.includes(n))
      ctx.add(
        "RESERVED_ENUM_NO_DELETE",
        at,
        `Previously present reserved name "${n}" on ${what} was deleted.`,
      );
  }
  if (
    after.d.reservedRange.length > before.d.reservedRange.length ||
    after.d.reservedName.length > before.d.reservedName.length
  ) {
    ctx.change("RESERVED_ADDED", at, `Reserved numbers or names were added to ${what}.`);
  }
  const b = namesByNumber(before);
  const a = namesByNumber(after);
  const reservedNumber = (n: number) =>
    after.d.reservedRange.some((r) => r.start <= n && n <= r.end);
  for (const [n, names] of b) {
    const now = a.get(n);
    if (!now) {
      const base = `Previously present enum value "${n}" on ${what} was deleted`;
      ctx.add("ENUM_VALUE_NO_DELETE", at, `${base}.`, { subject: `value:${after.fullName}:${n}` });
      if (!reservedNumber(n))
        ctx.add(
          "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
          at,
          `${base} without reserving the number "${n}".`,
        );
      const missing = names.filter((x) => !after.d.reservedName.includes(x));
      if (missing.length)
        ctx.add(
          "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
          at,
          `${base} without reserving the name "${missing[0]}".`,
        );
      continue;
    }
    if (names.some((x) => !now.includes(x))) {
      const index = after.d.value.findIndex((v) => v.number === n);
      // As buf: names sorted, "names" when both sides have aliases, one finding at every value now
      // carrying the number.
      const sorted = (xs: string[]) => [...xs].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
      const s = names.length > 1 && now.length > 1 ? "s" : "";
      const text = `Enum value "${n}" on ${what} changed name${s} from "${sorted(names).join('", "')}" to "${sorted(now).join('", "')}".`;
      after.d.value.forEach((v, i) => {
        if (v.number === n)
          ctx.add(
            "ENUM_VALUE_SAME_NAME",
            { file: after.file, spath: [...after.spath, 2, i] },
            text,
            { sub: [2], subject: `value:${after.fullName}:${n}` },
          );
      });
      if (ctx.messages === "ts-proto") {
        ctx.add(
          "TYPESCRIPT_ENUM_VALUE_RENAMED",
          { file: after.file, spath: [...after.spath, 2, index] },
          `Enum value "${n}" on ${what} changed its TypeScript member from "${names[0]}" to "${now[0]}".`,
          {
            sub: [1],
            subject: `value:${after.fullName}:${n}`,
          },
        );
      }
    }
  }
  if (ctx.messages === "protobuf-es") checkProtobufEsMembers(ctx, before, after, what);
  after.d.value.forEach((v, i) => {
    if (!b.has(v.number))
      ctx.change(
        "ENUM_VALUE_ADDED",
        { file: after.file, spath: [...after.spath, 2, i] },
        `Enum value "${v.name}" (${v.number}) was added to ${what}.`,
      );
  });
}

// protobuf-es's members: a renamed value, and every value when the prefix stripping turns on or off.
function checkProtobufEsMembers(ctx: Ctx, before: EnumEl, after: EnumEl, what: string): void {
  const mb = enumMembers(before.d, "protobuf-es");
  const ma = enumMembers(after.d, "protobuf-es");
  let why = "";
  if (mb.stripped !== ma.stripped) {
    why = mb.stripped
      ? ` protobuf-es no longer strips the prefix "${mb.stripped}" (not every value has it now), which renames every member of the enum.`
      : ` protobuf-es now strips the prefix "${ma.stripped}" (every value has it now), which renames every member of the enum.`;
  }
  for (const [n, was] of mb.byNumber) {
    const now = ma.byNumber.get(n);
    if (now === undefined || now === was) continue;
    const index = after.d.value.findIndex((v) => v.number === n);
    ctx.add(
      "TYPESCRIPT_ENUM_VALUE_RENAMED",
      { file: after.file, spath: [...after.spath, 2, index] },
      `Enum value "${n}" on ${what} changed its TypeScript member from "${was}" to "${now}".${why}`,
      {
        sub: [1],
        subject: `value:${after.fullName}:${n}`,
      },
    );
  }
}
