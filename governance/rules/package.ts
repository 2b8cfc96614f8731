// PACKAGE-level rules: declarations may move between the files of a package, but not leave it.
import type { DescriptorProto, FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { decodeFile } from "../images.js";
import type { FileEl, Side } from "../model.js";
import type { RuleId } from "./catalog.js";
import { Ctx, enclosingMessage, fileAt, type At } from "./context.js";

function anyFileOf(side: Side, pkg: string): FileEl | undefined {
  for (const f of side.files.values()) if (f.pkg === pkg) return f;
  return undefined;
}

export function checkPackages(ctx: Ctx): void {
  for (const pkg of ctx.old.packages.keys()) {
    if (ctx.cur.packages.has(pkg)) continue;
    const f = anyFileOf(ctx.old, pkg);
    if (f)
      ctx.add("PACKAGE_NO_DELETE", fileAt(f), `Previously present package "${pkg}" was deleted.`);
  }
  for (const pkg of ctx.cur.packages.keys()) {
    if (ctx.old.packages.has(pkg)) continue;
    const f = anyFileOf(ctx.cur, pkg);
    if (f && !f.image.isImport)
      ctx.change("PACKAGE_ADDED", fileAt(f), `Package "${pkg}" was added.`);
  }
  type El = { file: FileEl; fullName: string; local: string; parent?: { fullName: string } };
  type Kind = "message" | "enum" | "extension";
  // buf 1.74 looks for deleted messages, enums and extensions only in packages that still have one of
  // that kind (a package whose last extension went reports it from the file only); services in every
  // package still there. Only the changed files are indexed, so the package's other built files are
  // decoded when a deletion asks; the files left out of a partial build (the same on both sides) are
  // read from their text.
  const memo = new Map<string, boolean>();
  const stillHas = (pkg: string, kind: Kind): boolean => {
    const key = `${kind}:${pkg}`;
    let v = memo.get(key);
    if (v !== undefined) return v;
    v = ctx.cur.image.kindsOutside?.get(pkg)?.has(kind) ?? false;
    for (const f of ctx.cur.image.files.values()) {
      if (v) break;
      if (f.partialContext || f.pkg !== pkg) continue;
      v = kindIn(decodeFile(f), kind);
    }
    memo.set(key, v);
    return v;
  };
  const deleted = (
    rule: RuleId,
    what: Kind | "service",
    olds: Map<string, El>,
    news: Map<string, El>,
  ) => {
    for (const [name, el] of olds) {
      if (news.has(name)) continue;
      const pkg = el.file.pkg;
      // A deleted package is reported once, by PACKAGE_NO_DELETE.
      if (!ctx.cur.packages.has(pkg)) continue;
      if (what !== "service" && !stillHas(pkg, what)) continue;
      // buf points into the file now at the path that declared it, at the innermost enclosing message
      // still there, else at the file; a deleted file has no place (buf prints no path; here, the
      // previous file). A message's enclosing messages are looked for in the package it left (in any of
      // its files, so not at all when the file changed package), enums' and extensions' in that file.
      const now = ctx.cur.files.get(el.file.path);
      let anchor: At = fileAt(now ?? el.file);
      if (now)
        anchor =
          (what === "message"
            ? enclosingMessage(ctx.cur, pkg, el.local)
            : enclosingMessage(ctx.cur, now.pkg, el.local, now)) ?? anchor;
      ctx.add(
        rule,
        anchor,
        `Previously present ${what} "${el.local}" was deleted from package "${pkg}".`,
        { subject: `${what}:${name}` },
      );
    }
  };
  deleted("PACKAGE_MESSAGE_NO_DELETE", "message", ctx.old.messages, ctx.cur.messages);
  deleted("PACKAGE_ENUM_NO_DELETE", "enum", ctx.old.enums, ctx.cur.enums);
  deleted("PACKAGE_SERVICE_NO_DELETE", "service", ctx.old.services, ctx.cur.services);
  deleted("PACKAGE_EXTENSION_NO_DELETE", "extension", ctx.old.extensions, ctx.cur.extensions);
}

function kindIn(fd: FileDescriptorProto, kind: "message" | "enum" | "extension"): boolean {
  if (kind === "message") return fd.messageType.length > 0;
  const inMessage = (m: DescriptorProto): boolean =>
    (kind === "enum" ? m.enumType.length > 0 : m.extension.length > 0) ||
    m.nestedType.some(inMessage);
  return (
    (kind === "enum" ? fd.enumType.length > 0 : fd.extension.length > 0) ||
    fd.messageType.some(inMessage)
  );
}
