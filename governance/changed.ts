// The fast path: when both sides are on this machine (two directories, or the working tree against a
// git ref of its own repository), the files whose text is the same on both sides cannot differ in any
// rule, so buf only builds the changed files (with `--path`; their imports come along as imports).
// Packages of the unchanged files are still needed (a package is deleted only when no file keeps it)
// and are read from their `package` statement. Anything unusual falls back to full builds.
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
        } else if (e.name.endsWith(".proto")) out.set(relative(base, p).split(sep).join("/"), join(root, relative(base, p)));
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

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function configText(dir: string): string {
  for (const n of ["buf.yaml", "buf.yml", "buf.work.yaml"]) if (existsSync(join(dir, n))) return `${n}\n${readFileSync(join(dir, n), "utf8")}`;
  return "";
}

function rel(cwd: string, p: string): string {
  return relative(cwd, p).split(sep).join("/") || ".";
}

/** Two directories with the same layout. */
function dirs(input: string, against: string, cwd: string): ChangedFiles | undefined {
  if (configText(input) !== configText(against)) return undefined;
  const roots = moduleRoots(input);
  const a = protoFiles(input, roots);
  const b = protoFiles(against, roots);
  const inputPaths: string[] = [];
  const againstPaths: string[] = [];
  const unchangedPackages = new Set<string>();
  for (const [path, where] of a) {
    const other = b.get(path);
    const text = readFileSync(join(input, where), "utf8");
    if (other !== undefined && readFileSync(join(against, other), "utf8") === text) unchangedPackages.add(packageOf(text));
    else {
      inputPaths.push(rel(cwd, join(input, where)));
      if (other !== undefined) againstPaths.push(rel(cwd, join(against, other)));
    }
  }
  for (const [path, where] of b) if (!a.has(path)) againstPaths.push(rel(cwd, join(against, where)));
  return { inputPaths, againstPaths, unchangedPackages, total: Math.max(a.size, b.size) };
}

/** The working tree of a repository against one of its own refs (`.git#branch=main`). */
function gitRef(input: string, against: string, cwd: string): ChangedFiles | undefined {
  const m = /^(.*?)\.git#(.*)$/.exec(against);
  if (!m) return undefined;
  const repo = resolve(cwd, m[1] || ".");
  const opts = Object.fromEntries(m[2]!.split(",").map((kv) => kv.split("=") as [string, string]));
  const keys = Object.keys(opts);
  const rev = opts.branch ?? opts.tag ?? opts.ref ?? opts.commit;
  if (!rev || keys.some((k) => !["branch", "tag", "ref", "commit", "depth"].includes(k))) return undefined;
  const git = (...args: string[]) => execFileSync("git", ["-C", repo, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 1 << 28 });
  try {
    if (resolve(git("rev-parse", "--show-toplevel").trim()) !== resolve(input)) return undefined;
    const cfg = configText(input);
    const name = cfg.slice(0, cfg.indexOf("\n"));
    if (!name || git("show", `${rev}:${name}`) !== cfg.slice(name.length + 1)) return undefined;
    const roots = moduleRoots(input).map((r) => r.replace(/^\.\/?/, "").replace(/\/+$/, ""));
    const under = (p: string) => p.endsWith(".proto") && roots.some((r) => r === "" || p.startsWith(r + "/"));
    const changed = new Set([
      ...git("diff", "--name-only", "--no-renames", rev, "--").split("\n").filter(under),
      ...git("ls-files", "--others", "--exclude-standard").split("\n").filter(under),
    ]);
    const before = new Set(git("ls-tree", "-r", "--name-only", rev).split("\n").filter(under));
    const now = protoFiles(input, roots.map((r) => r || "."));
    const unchangedPackages = new Set<string>();
    for (const where of now.values()) {
      const p = where.split(sep).join("/").replace(/^\.\//, "");
      if (!changed.has(p)) unchangedPackages.add(packageOf(readFileSync(join(input, where), "utf8")));
    }
    const inputPaths = [...changed].filter((p) => existsSync(join(input, p))).map((p) => rel(cwd, join(input, p)));
    // buf takes the paths of a git input relative to the repository root.
    const againstPaths = [...changed].filter((p) => before.has(p));
    return { inputPaths, againstPaths, unchangedPackages, total: Math.max(now.size, before.size) };
  } catch {
    return undefined;
  }
}

export function changedFiles(input: string, against: string, cwd: string): ChangedFiles | undefined {
  if (process.env.GRABBIT_FULL_BUILD === "1") return undefined;
  const inputDir = resolve(cwd, input);
  if (input.includes("#") || !isDir(inputDir)) return undefined;
  const againstDir = resolve(cwd, against);
  const found = !against.includes("#") && isDir(againstDir) ? dirs(inputDir, againstDir, cwd) : gitRef(inputDir, against, cwd);
  if (!found) return undefined;
  const changed = Math.max(found.inputPaths.length, found.againstPaths.length);
  return changed <= Math.max(1, found.total * MAX_SHARE) ? found : undefined;
}
