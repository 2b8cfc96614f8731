// PACKAGE-level rules: declarations may move between the files of a package, but not leave it.
import type { FileEl, Side } from "../model.js";
import { Ctx, fileAt } from "./context.js";

function anyFileOf(side: Side, pkg: string): FileEl | undefined {
  for (const f of side.files.values()) if (f.pkg === pkg) return f;
  return undefined;
}

export function checkPackages(ctx: Ctx): void {
  for (const pkg of ctx.old.packages.keys()) {
    if (ctx.cur.packages.has(pkg)) continue;
    const f = anyFileOf(ctx.old, pkg);
    if (f) ctx.add("PACKAGE_NO_DELETE", fileAt(f), `Previously present package "${pkg}" was deleted.`);
  }
  for (const pkg of ctx.cur.packages.keys()) {
    if (ctx.old.packages.has(pkg)) continue;
    const f = anyFileOf(ctx.cur, pkg);
    if (f && !f.image.isImport) ctx.change("PACKAGE_ADDED", fileAt(f), `Package "${pkg}" was added.`);
  }
  type El = { file: FileEl; fullName: string; local: string; parent?: { fullName: string } };
  const deleted = (rule: string, what: string, olds: Map<string, El>, news: Map<string, El>, whileAnyLeft: boolean) => {
    // buf 1.74 looks for deleted messages, enums and extensions only in packages that still have one
    // of that kind (a package whose last extension went reports it from the file only); services in
    // every package still there.
    const left = whileAnyLeft ? new Set([...news.values()].map((el) => el.file.pkg)) : undefined;
    for (const [name, el] of olds) {
      if (news.has(name)) continue;
      const pkg = el.file.pkg;
      // A deleted package is reported once, by PACKAGE_NO_DELETE.
      if (!ctx.cur.packages.has(pkg)) continue;
      if (left && !left.has(pkg)) continue;
      // buf points into the file now at the path that declared it: at the innermost enclosing message
      // still there, else at the file; a deleted file has no place (buf prints no path; here, the
      // previous file).
      const now = ctx.cur.files.get(el.file.path);
      let anchor = fileAt(now ?? el.file);
      if (now) {
        const prefix = now.pkg ? now.pkg + "." : "";
        const parts = el.local.split(".");
        for (let i = parts.length - 1; i > 0; i--) {
          const m = ctx.cur.messages.get(prefix + parts.slice(0, i).join("."));
          if (m && m.file === now) {
            anchor = m;
            break;
          }
        }
      }
      ctx.add(rule, anchor, `Previously present ${what} "${el.local}" was deleted from package "${pkg}".`, { subject: `${what}:${name}` });
    }
  };
  deleted("PACKAGE_MESSAGE_NO_DELETE", "message", ctx.old.messages, ctx.cur.messages, true);
  deleted("PACKAGE_ENUM_NO_DELETE", "enum", ctx.old.enums, ctx.cur.enums, true);
  deleted("PACKAGE_SERVICE_NO_DELETE", "service", ctx.old.services, ctx.cur.services, false);
  deleted("PACKAGE_EXTENSION_NO_DELETE", "extension", ctx.old.extensions, ctx.cur.extensions, true);
}
