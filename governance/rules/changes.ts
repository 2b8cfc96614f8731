// What is not breaking but still a change of the SDK: additions (minor), deprecations (minor, as
// semver asks), comment-only edits (patch). Reported whatever rules are selected.
import { locations } from "../images.js";
import { methodsOf, type FileEl } from "../model.js";
import { Ctx, type At } from "./context.js";
import type { Renames } from "./renames.js";

function comment(at: At): string {
  const loc = locations(at.file.image).get(at.spath.join("."));
  if (!loc) return "";
  return `${loc.leading.trim()}\n${loc.trailing.trim()}`;
}

type Deprecatable = { options?: { deprecated?: boolean } | undefined };

function compareElement(
  ctx: Ctx,
  what: string,
  before: At & { d: Deprecatable },
  after: At & { d: Deprecatable },
): void {
  const db = before.d.options?.deprecated ?? false;
  const da = after.d.options?.deprecated ?? false;
  if (!db && da) ctx.change("DEPRECATED", after, `${what} was deprecated.`);
  if (db && !da) ctx.change("UNDEPRECATED", after, `${what} is no longer deprecated.`);
  if (comment(before) !== comment(after))
    ctx.change("COMMENT_CHANGED", after, `The comment of ${what} changed.`);
}

export function checkChanges(ctx: Ctx, renames: Renames): void {
  const oldFiles = ctx.old.files;
  const isNewHere = (file: FileEl) => oldFiles.has(file.path);
  for (const [name, after] of ctx.cur.messages) {
    const before = ctx.old.messages.get(name);
    if (!before) {
      // Declarations of a new file are covered by FILE_ADDED; a nested one by its new parent.
      if (
        !renames.targets.has(name) &&
        isNewHere(after.file) &&
        (!after.parent || ctx.old.messages.has(after.parent.fullName)) &&
        !after.d.options?.mapEntry
      ) {
        ctx.change("MESSAGE_ADDED", after, `Message "${after.local}" was added.`);
      }
      continue;
    }
    compareElement(ctx, `message "${after.local}"`, before, after);
    const fb = new Map(
      before.d.field.map((f, i) => [
        f.number,
        { file: before.file, spath: [...before.spath, 2, i], d: f },
      ]),
    );
    after.d.field.forEach((f, i) => {
      const b = fb.get(f.number);
      if (b)
        compareElement(ctx, `field "${f.name}" of message "${after.local}"`, b, {
          file: after.file,
          spath: [...after.spath, 2, i],
          d: f,
        });
    });
  }
  for (const [name, after] of ctx.cur.enums) {
    const before = ctx.old.enums.get(name);
    if (!before) {
      if (
        !renames.targets.has(name) &&
        isNewHere(after.file) &&
        (!after.parent || ctx.old.messages.has(after.parent.fullName))
      )
        ctx.change("ENUM_ADDED", after, `Enum "${after.local}" was added.`);
      continue;
    }
    compareElement(ctx, `enum "${after.local}"`, before, after);
    const vb = new Map(
      before.d.value.map((v, i) => [
        v.name,
        { file: before.file, spath: [...before.spath, 2, i], d: v },
      ]),
    );
    after.d.value.forEach((v, i) => {
      const b = vb.get(v.name);
      if (b)
        compareElement(ctx, `enum value "${v.name}"`, b, {
          file: after.file,
          spath: [...after.spath, 2, i],
          d: v,
        });
    });
  }
  for (const [name, after] of ctx.cur.services) {
    const before = ctx.old.services.get(name);
    if (!before) {
      if (!renames.targets.has(name) && isNewHere(after.file))
        ctx.change("SERVICE_ADDED", after, `Service "${after.local}" was added.`);
      continue;
    }
    compareElement(ctx, `service "${after.local}"`, before, after);
    const mb = methodsOf(before);
    for (const [mname, a] of methodsOf(after)) {
      const b = mb.get(mname);
      if (b) compareElement(ctx, `RPC "${mname}" of service "${after.local}"`, b, a);
    }
  }
  for (const [name, after] of ctx.cur.extensions) {
    if (!ctx.old.extensions.has(name) && isNewHere(after.file))
      ctx.change("EXTENSION_ADDED", after, `Extension "${after.local}" was added.`);
  }
  for (const [path, after] of ctx.cur.files) {
    const before = ctx.old.files.get(path);
    if (!before) continue;
    const fb = { file: before, spath: [], d: { options: before.fd.options } };
    const fa = { file: after, spath: [], d: { options: after.fd.options } };
    const db = fb.d.options?.deprecated ?? false;
    const da = fa.d.options?.deprecated ?? false;
    if (!db && da) ctx.change("DEPRECATED", fa, `File "${path}" was deprecated.`);
    // The package and syntax statements carry the file's own comments.
    for (const sub of [[2], [12]]) {
      if (comment({ file: before, spath: sub }) !== comment({ file: after, spath: sub }))
        ctx.change(
          "COMMENT_CHANGED",
          { file: after, spath: sub },
          `The comment of file "${path}" changed.`,
        );
    }
  }
}
