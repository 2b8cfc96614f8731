// The fast path: when both sides are on this machine (two directories, or the working tree against a
// git ref of its own repository), buf only builds the files that can differ in a rule (with `--path`;
// their imports come along as imports): the changed files, and the unchanged files that can name their
// types (importers, and importers of an `import public` of one). A field's type is resolved through
// the import, so a message there that became an enum changes the field, not the file's text. Packages
// of the other files are still needed (a package is deleted only when no file keeps it) and are read
// from their `package` statement. Anything unusual falls back to full builds, and so does a change of
// buf.lock (dependencies are compared too, and a changed one may be imported by unchanged files only).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { moduleRoots } from "./config.js";

export interface ChangedFiles {
  /** --path arguments for the input side and the against side (empty: nothing to build there). */
  inputPaths: string[];
  againstPaths: string[];
  /** Packages declared by files that are the same on both sides. */
  unchangedPackages: Set<string>;
  /** What those files declare, by package (see declaredKinds). */
  unchangedKinds: Map<string, Set<DeclaredKind>>;
  /** The module's files on each side, by import path (to tell them from real dependencies). */
  inputFiles: Set<string>;
  againstFiles: Set<string>;
  total: number;
}

// Beyond this share of changed files a full build costs no more than the bookkeeping.
const MAX_SHARE = 0.3;

function protoFiles(dir: string, roots: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const root of roots) {
    const base = join(dir, root);
    const walk = (d: string) => {
      let entries: import("node:fs").Dirent[];
      try {
        entries = readdirSync(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (e.name !== "node_modules" && !e.name.startsWith(".")) walk(p);
        } else if (e.name.endsWith(".proto"))
          out.set(relative(base, p).split(sep).join("/"), join(root, relative(base, p)));
      }
    };
    walk(base);
  }
  return out;
}

const PACKAGE = /^\s*package\s+([A-Za-z0-9_.]+)\s*;/m;

function packageOf(text: string): string {
  return PACKAGE.exec(text)?.[1] ?? "";
}

export type DeclaredKind = "message" | "enum" | "extension";

/**
 * Which kinds a file declares, read from its text: top-level messages, enums at any depth, extensions
 * at any depth. buf's package deletion rules look only in packages that still declare the kind, and
 * a partial build does not build the unchanged files, so their text must tell.
 */
export function declaredKinds(text: string): Set<DeclaredKind> {
  const code = text.replace(
    /\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g,
    " ",
  );
  const out = new Set<DeclaredKind>();
  let depth = 0;
  for (const m of code.matchAll(/[{}]|\b(message|enum|extend)\s+[A-Za-z_.]/g)) {
    if (m[0] === "{") depth++;
    else if (m[0] === "}") depth--;
    else if (m[1] === "enum") out.add("enum");
    else if (m[1] === "extend") out.add("extension");
    else if (depth === 0) out.add("message");
  }
  return out;
}

function addKinds(into: Map<string, Set<DeclaredKind>>, text: string): void {
  const pkg = packageOf(text);
  const kinds = into.get(pkg) ?? new Set<DeclaredKind>();
  for (const k of declaredKinds(text)) kinds.add(k);
  into.set(pkg, kinds);
}

const IMPORT = /^\s*import\s+(public\s+|weak\s+)?"([^"]+)"\s*;/gm;

/**
 * The unchanged files (keys of `texts`, paths as imports name them) whose meaning can depend on a
 * changed one: those that import it, and, where an importer re-exports it with `import public`,
 * the importers of that importer too. A file that imports an importer without `public` cannot name
 * the changed file's types, so it is not among them.
 */
function dependentsOf(texts: Map<string, string>, changed: Set<string>): Set<string> {
  const importers = new Map<string, { path: string; reexports: boolean }[]>();
  for (const [path, text] of texts) {
    for (const m of text.matchAll(IMPORT)) {
      const edge = { path, reexports: m[1]?.trim() === "public" };
      const list = importers.get(m[2]!);
      if (list) list.push(edge);
      else importers.set(m[2]!, [edge]);
    }
  }
  const found = new Set<string>();
  const visible = new Set(changed);
  const todo = [...changed];
  for (let path = todo.pop(); path !== undefined; path = todo.pop()) {
    for (const importer of importers.get(path) ?? []) {
      if (!changed.has(importer.path)) found.add(importer.path);
      if (importer.reexports && !visible.has(importer.path)) {
        visible.add(importer.path);
        todo.push(importer.path);
      }
    }
  }
  return found;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function configText(dir: string): string {
  for (const n of ["buf.yaml", "buf.yml", "buf.work.yaml"])
    if (existsSync(join(dir, n))) return `${n}\n${readFileSync(join(dir, n), "utf8")}`;
  return "";
}

function lockText(dir: string): string {
  return existsSync(join(dir, "buf.lock")) ? readFileSync(join(dir, "buf.lock"), "utf8") : "";
}

function rel(cwd: string, p: string): string {
  return relative(cwd, p).split(sep).join("/") || ".";
}

/** Two directories with the same layout. */
function dirs(input: string, against: string, cwd: string): ChangedFiles | undefined {
  if (configText(input) !== configText(against) || lockText(input) !== lockText(against))
    return undefined;
  const roots = moduleRoots(input);
  const a = protoFiles(input, roots);
  const b = protoFiles(against, roots);
  const inputPaths: string[] = [];
  const againstPaths: string[] = [];
  const unchangedPackages = new Set<string>();
  const unchangedKinds = new Map<string, Set<DeclaredKind>>();
  const texts = new Map<string, string>();
  const changed = new Set<string>();
  for (const [path, where] of a) {
    const other = b.get(path);
    const text = readFileSync(join(input, where), "utf8");
    texts.set(path, text);
    if (other !== undefined && readFileSync(join(against, other), "utf8") === text) {
      unchangedPackages.add(packageOf(text));
      addKinds(unchangedKinds, text);
    } else {
      changed.add(path);
      inputPaths.push(rel(cwd, join(input, where)));
      if (other !== undefined) againstPaths.push(rel(cwd, join(against, other)));
    }
  }
  for (const [path, where] of b) {
    if (a.has(path)) continue;
    changed.add(path);
    againstPaths.push(rel(cwd, join(against, where)));
  }
  for (const path of dependentsOf(texts, changed)) {
    inputPaths.push(rel(cwd, join(input, a.get(path)!)));
    againstPaths.push(rel(cwd, join(against, b.get(path)!)));
  }
  return {
    inputPaths,
    againstPaths,
    unchangedPackages,
    unchangedKinds,
    inputFiles: new Set(a.keys()),
    againstFiles: new Set(b.keys()),
    total: Math.max(a.size, b.size),
  };
}

/** The working tree of a repository against one of its own refs (`.git#branch=main`). */
function gitRef(input: string, against: string, cwd: string): ChangedFiles | undefined {
  const m = /^(.*?)\.git#(.*)$/.exec(against);
  if (!m) return undefined;
  const repo = resolve(cwd, m[1] || ".");
  const opts = Object.fromEntries(m[2]!.split(",").map((kv) => kv.split("=") as [string, string]));
  const keys = Object.keys(opts);
  const rev = opts.branch ?? opts.tag ?? opts.ref ?? opts.commit;
  if (!rev || keys.some((k) => !["branch", "tag", "ref", "commit", "depth"].includes(k)))
    return undefined;
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", repo, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      maxBuffer: 1 << 28,
    });
  try {
    if (resolve(git("rev-parse", "--show-toplevel").trim()) !== resolve(input)) return undefined;
    const cfg = configText(input);
    const name = cfg.slice(0, cfg.indexOf("\n"));
    if (!name || git("show", `${rev}:${name}`) !== cfg.slice(name.length + 1)) return undefined;
    const lockBefore = git("ls-tree", "--name-only", rev, "buf.lock").trim()
      ? git("show", `${rev}:buf.lock`)
      : "";
    if (lockBefore !== lockText(input)) return undefined;
    const roots = moduleRoots(input).map((r) => r.replace(/^\.\/?/, "").replace(/\/+$/, ""));
    const under = (p: string) =>
      p.endsWith(".proto") && roots.some((r) => r === "" || p.startsWith(r + "/"));
    const changed = new Set([
      ...git("diff", "--name-only", "--no-renames", rev, "--").split("\n").filter(under),
      ...git("ls-files", "--others", "--exclude-standard").split("\n").filter(under),
    ]);
    const before = new Set(git("ls-tree", "-r", "--name-only", rev).split("\n").filter(under));
    const now = protoFiles(
      input,
      roots.map((r) => r || "."),
    );
    const unchangedPackages = new Set<string>();
    const unchangedKinds = new Map<string, Set<DeclaredKind>>();
    // Imports name files relative to their module root; git names them relative to the repository.
    const texts = new Map<string, string>();
    const repoPathOf = new Map<string, string>();
    const changedImports = new Set<string>();
    for (const [path, where] of now) {
      const p = where.split(sep).join("/").replace(/^\.\//, "");
      const text = readFileSync(join(input, where), "utf8");
      texts.set(path, text);
      repoPathOf.set(path, p);
      if (changed.has(p)) changedImports.add(path);
      else {
        unchangedPackages.add(packageOf(text));
        addKinds(unchangedKinds, text);
      }
    }
    const againstFiles = new Set<string>();
    for (const p of before) {
      const root = roots.find((r) => r === "" || p.startsWith(r + "/"));
      if (root === undefined) continue;
      const importPath = root === "" ? p : p.slice(root.length + 1);
      againstFiles.add(importPath);
      if (changed.has(p)) changedImports.add(importPath);
    }
    for (const path of dependentsOf(texts, changedImports)) changed.add(repoPathOf.get(path)!);
    const inputPaths = [...changed]
      .filter((p) => existsSync(join(input, p)))
      .map((p) => rel(cwd, join(input, p)));
    // buf takes the paths of a git input relative to the repository root.
    const againstPaths = [...changed].filter((p) => before.has(p));
    return {
      inputPaths,
      againstPaths,
      unchangedPackages,
      unchangedKinds,
      inputFiles: new Set(now.keys()),
      againstFiles,
      total: Math.max(now.size, before.size),
    };
  } catch {
    return undefined;
  }
}

export function changedFiles(
  input: string,
  against: string,
  cwd: string,
): ChangedFiles | undefined {
  if (process.env.GRABBIT_FULL_BUILD === "1") return undefined;
  const inputDir = resolve(cwd, input);
  if (input.includes("#") || !isDir(inputDir)) return undefined;
  const againstDir = resolve(cwd, against);
  const found =
    !against.includes("#") && isDir(againstDir)
      ? dirs(inputDir, againstDir, cwd)
      : gitRef(inputDir, against, cwd);
  if (!found) return undefined;
  const changed = Math.max(found.inputPaths.length, found.againstPaths.length);
  return changed <= Math.max(1, found.total * MAX_SHARE) ? found : undefined;
}
