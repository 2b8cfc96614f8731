// Test support for `grabbit breaking`: write an old and a new tree of protos into a temp dir, run the
// CLI in-process (or buf, for comparison) and hand back the exit code and the parsed report.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../../cli/main.js";
import type { Report } from "../../governance/diff.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BUF = join(ROOT, "node_modules/.bin/buf");

export type Tree = Record<string, string>;

export function tempDir(prefix = "grabbit-breaking-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeTree(dir: string, tree: Tree): void {
  for (const [path, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

/** A proto3 file of package demo.v1 (or a header given in `head`). */
export function proto(body: string, head = `syntax = "proto3";\n\npackage demo.v1;\n`): string {
  return `${head}\n${body.trim()}\n`;
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  report?: Report;
  /** Rule IDs of breaking findings, including those a rename folded into one ("also ..."). */
  breaking: string[];
  all: string[];
}

export async function grabbit(cwd: string, argv: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    cwd,
    isTTY: false,
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
  });
  let report: Report | undefined;
  // grabbit's report object (--format json), not buf's json (--error-format json, one object a line).
  if (argv.includes("--format") && argv[argv.indexOf("--format") + 1] === "json") {
    try {
      report = JSON.parse(stdout) as Report;
    } catch {
      report = undefined;
    }
  }
  const also = (m: string) => /\(also ([A-Z0-9_, ]+)\)$/.exec(m)?.[1]?.split(", ") ?? [];
  const breaking = report
    ? report.changes.filter((c) => c.breaking).flatMap((c) => [c.rule, ...also(c.message)])
    : [];
  const all = report ? report.changes.map((c) => c.rule) : [];
  return { code, stdout, stderr, ...(report ? { report } : {}), breaking, all };
}

/** Writes old/ and new/ trees and compares them with the given extra arguments. */
export async function compareTrees(
  oldTree: Tree,
  newTree: Tree,
  args: string[] = [],
): Promise<Run & { dir: string }> {
  const dir = tempDir();
  writeTree(join(dir, "old"), oldTree);
  writeTree(join(dir, "new"), newTree);
  const run = await grabbit(dir, [
    "breaking",
    "new",
    "--against",
    "old",
    "--format",
    "json",
    ...args,
  ]);
  return { ...run, dir };
}

/** Output of `--error-format json` (buf's, or grabbit's in buf's format) as `path:line:column: RULE message`. */
export function jsonLines(stdout: string): string[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim().startsWith("{"))
    .map(
      (l) =>
        JSON.parse(l) as {
          path?: string;
          start_line: number;
          start_column: number;
          type: string;
          message: string;
        },
    )
    .map((x) => `${x.path ?? "<input>"}:${x.start_line}:${x.start_column}: ${x.type} ${x.message}`);
}

/** `buf breaking` on the same kind of trees: its findings as `path:line:column: RULE message`. */
export function bufLines(dir: string, use: string[], flags: string[] = []): string[] {
  bufBreaking(dir, use);
  const r = spawnSync(
    BUF,
    ["breaking", "new", "--against", "old", "--error-format", "json", ...flags],
    { cwd: dir, encoding: "utf8" },
  );
  return jsonLines(r.stdout ?? "");
}

/** grabbit's findings in buf's json format (what buf's formats print), as `bufLines` gives buf's. */
export async function grabbitBufLines(dir: string, args: string[]): Promise<string[]> {
  const r = await grabbit(dir, [
    "breaking",
    "new",
    "--against",
    "old",
    "--error-format",
    "json",
    ...args,
  ]);
  if (r.stderr) throw new Error(`grabbit breaking failed: ${r.stderr}`);
  return jsonLines(r.stdout);
}

/** `buf breaking` on the same kind of trees: the rule IDs it reports. */
export function bufBreaking(dir: string, use: string[]): { code: number; rules: string[] } {
  // buf reads the configuration from the input module's buf.yaml.
  const yaml = `version: v2\nbreaking:\n  use:\n${use.map((u) => `    - ${u}\n`).join("")}`;
  writeFileSync(join(dir, "new", "buf.yaml"), yaml);
  writeFileSync(join(dir, "old", "buf.yaml"), yaml);
  const r = spawnSync(BUF, ["breaking", "new", "--against", "old", "--error-format", "json"], {
    cwd: dir,
    encoding: "utf8",
  });
  const rules = (r.stdout ?? "")
    .split("\n")
    .filter((l) => l.trim().startsWith("{"))
    .map((l) => (JSON.parse(l) as { type: string }).type);
  return { code: r.status ?? -1, rules };
}
