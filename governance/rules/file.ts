// FILE-level rules: files and the top-level declarations each one holds, syntax, package, and the
// per-language file options (generated code moves or changes name when they change).
import { create } from "@bufbuild/protobuf";
import { FileOptionsSchema, type FileOptions } from "@bufbuild/protobuf/wkt";
import type { FileEl } from "../model.js";
import type { RuleId } from "./catalog.js";
import { Ctx, enclosingMessage, fileAt } from "./context.js";

const FILE_OPTIONS: Array<[rule: RuleId, option: string, key: keyof FileOptions, sub: number]> = [
  ["FILE_SAME_JAVA_PACKAGE", "java_package", "javaPackage", 1],
  ["FILE_SAME_JAVA_OUTER_CLASSNAME", "java_outer_classname", "javaOuterClassname", 8],
  ["FILE_SAME_JAVA_MULTIPLE_FILES", "java_multiple_files", "javaMultipleFiles", 10],
  ["FILE_SAME_GO_PACKAGE", "go_package", "goPackage", 11],
  ["FILE_SAME_OPTIMIZE_FOR", "optimize_for", "optimizeFor", 9],
  ["FILE_SAME_CC_GENERIC_SERVICES", "cc_generic_services", "ccGenericServices", 16],
  ["FILE_SAME_JAVA_GENERIC_SERVICES", "java_generic_services", "javaGenericServices", 17],
  ["FILE_SAME_PY_GENERIC_SERVICES", "py_generic_services", "pyGenericServices", 18],
  ["FILE_SAME_CC_ENABLE_ARENAS", "cc_enable_arenas", "ccEnableArenas", 31],
  ["FILE_SAME_OBJC_CLASS_PREFIX", "objc_class_prefix", "objcClassPrefix", 36],
  ["FILE_SAME_CSHARP_NAMESPACE", "csharp_namespace", "csharpNamespace", 37],
  ["FILE_SAME_SWIFT_PREFIX", "swift_prefix", "swiftPrefix", 39],
  ["FILE_SAME_PHP_CLASS_PREFIX", "php_class_prefix", "phpClassPrefix", 40],
  ["FILE_SAME_PHP_NAMESPACE", "php_namespace", "phpNamespace", 41],
  ["FILE_SAME_PHP_METADATA_NAMESPACE", "php_metadata_namespace", "phpMetadataNamespace", 44],
  ["FILE_SAME_RUBY_PACKAGE", "ruby_package", "rubyPackage", 45],
];

const OPTIMIZE = ["", "SPEED", "CODE_SIZE", "LITE_RUNTIME"];

// Unset options read as their defaults (cc_enable_arenas true, optimize_for SPEED), as generators see them.
const DEFAULT_OPTIONS = create(FileOptionsSchema);

function optionValue(file: FileEl, key: keyof FileOptions): string {
  const value = (file.fd.options ?? DEFAULT_OPTIONS)[key];
  if (key === "optimizeFor") return OPTIMIZE[Number(value)] ?? String(value);
  return String(value ?? "");
}

function syntaxText(file: FileEl): string {
  return file.syntax;
}

export function checkFiles(
  ctx: Ctx,
  changed: string[],
  onlyOld: string[],
  onlyNew: string[],
): void {
  for (const path of onlyOld) {
    const f = ctx.old.files.get(path);
    if (!f) continue;
    ctx.add("FILE_NO_DELETE", fileAt(f), `Previously present file "${path}" was deleted.`);
  }
  for (const path of onlyNew) {
    const f = ctx.cur.files.get(path);
    if (f && !f.image.isImport) ctx.change("FILE_ADDED", fileAt(f), `File "${path}" was added.`);
  }
  const byFile = {
    oldMessages: group(ctx.old.messages),
    newMessages: group(ctx.cur.messages),
    oldEnums: group(ctx.old.enums),
    newEnums: group(ctx.cur.enums),
    oldServices: group(ctx.old.services),
    newServices: group(ctx.cur.services),
    oldExts: group(ctx.old.extensions),
    newExts: group(ctx.cur.extensions),
  };
  for (const path of changed) {
    const before = ctx.old.files.get(path);
    const after = ctx.cur.files.get(path);
    if (!before || !after) continue;
    if (before.pkg !== after.pkg) {
      ctx.add(
        "FILE_SAME_PACKAGE",
        { file: after, spath: [2] },
        `File package changed from "${before.pkg}" to "${after.pkg}".`,
      );
    }
    // buf compares the syntax only: editions 2023 to 2024 is no change of syntax (what the new edition
    // changes shows up as the features it changes, field by field).
    if (syntaxText(before) !== syntaxText(after)) {
      const sub = after.syntax === "editions" ? [14] : [12];
      ctx.add(
        "FILE_SAME_SYNTAX",
        { file: after, spath: sub },
        `File syntax changed from "${syntaxText(before)}" to "${syntaxText(after)}".`,
      );
    }
    for (const [rule, option, key, sub] of FILE_OPTIONS) {
      if (!ctx.on(rule)) continue;
      const a = optionValue(before, key);
      const b = optionValue(after, key);
      // Quoted like buf (Go's %q): backslashes in PHP namespaces come out doubled.
      if (a !== b)
        ctx.add(
          rule,
          { file: after, spath: [8, sub] },
          `File option "${option}" changed from ${JSON.stringify(a)} to ${JSON.stringify(b)}.`,
        );
    }
    // Declarations that left this file (moving them elsewhere still breaks per-file generated code).
    const deleted = (
      rule: RuleId,
      what: string,
      olds: Map<string, { local: string }> | undefined,
      news: Map<string, unknown> | undefined,
    ) => {
      for (const [name, el] of olds ?? []) {
        if (news?.has(name)) continue;
        // A nested declaration points at the innermost message around it still in this file (by its
        // name in the file's package now), else at the file.
        const parent = enclosingMessage(ctx.cur, after.pkg, el.local, after);
        const at = parent ? { file: after, spath: parent.spath } : fileAt(after);
        ctx.add(rule, at, `Previously present ${what} "${el.local}" was deleted from file.`, {
          subject: `${what}:${before.pkg ? before.pkg + "." : ""}${name}`,
        });
      }
    };
    deleted(
      "MESSAGE_NO_DELETE",
      "message",
      byFile.oldMessages.get(path),
      byFile.newMessages.get(path),
    );
    deleted("ENUM_NO_DELETE", "enum", byFile.oldEnums.get(path), byFile.newEnums.get(path));
    deleted(
      "SERVICE_NO_DELETE",
      "service",
      byFile.oldServices.get(path),
      byFile.newServices.get(path),
    );
    deleted("EXTENSION_NO_DELETE", "extension", byFile.oldExts.get(path), byFile.newExts.get(path));
  }
}

// Keyed by the name inside the package: a changed package is FILE_SAME_PACKAGE's finding alone.
function group<T extends { file: FileEl; local: string }>(
  map: Map<string, T>,
): Map<string, Map<string, T>> {
  const out = new Map<string, Map<string, T>>();
  for (const v of map.values()) {
    const k = v.local;
    let m = out.get(v.file.path);
    if (!m) out.set(v.file.path, (m = new Map()));
    m.set(k, v);
  }
  return out;
}
