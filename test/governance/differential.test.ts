// Differential test: random proto pairs (test/governance/proto-gen.ts) through the real `buf breaking`
// and grabbit's checker, category by category (FILE, PACKAGE, WIRE_JSON, WIRE); every finding must
// agree (rule, path, line, column, message). A difference fails with the pair written out to a folder
// (printed). buf's rules do not depend on which category selected them, so each pair costs one buf run
// and one grabbit run with all four categories, and each category's findings are the rows of its rules.
// Both tools get the same command line, the rules coming from the pair's buf.yaml; every other seed
// adds --exclude-imports, so both ways of treating imports are compared. The seeds are fixed in `npm test`; `npm run fuzz` (HOSTILE_SEED=random, HOSTILE_SCALE=n) tries more.
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RULE_BY_ID } from "../../governance/rules/catalog.js";
import { BUF, grabbit, jsonLines, tempDir, writeTree, type Tree } from "./helpers.js";
import { genPair, type Pair } from "./proto-gen.js";

const CATEGORIES = ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"] as const;
const YAML = `version: v2\nbreaking:\n  use:\n${CATEGORIES.map((c) => `    - ${c}\n`).join("")}`;

const scale = Number(process.env.HOSTILE_SCALE ?? 1);
const COUNT = Math.max(1, Math.ceil(40 * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
const seedEnv = process.env.HOSTILE_SEED ?? "20261121";
const BASE = seedEnv === "random" ? Math.floor(Math.random() * 2 ** 31) : Number(seedEnv) | 0;
const CONCURRENCY = 4;

interface Row {
  rule: string;
  line: string;
}

function run(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The command line both tools run for a seed (after `buf` or `grabbit`). */
function argsFor(seed: number): string[] {
  return [
    "breaking",
    "new",
    "--against",
    "old",
    "--error-format",
    "json",
    ...(seed % 2 ? ["--exclude-imports"] : []),
  ];
}

async function bufRows(dir: string, args: string[]): Promise<Row[] | undefined> {
  const r = await run(BUF, args, dir);
  if (r.code !== 0 && r.code !== 100) return undefined;
  if (r.stdout.includes('"type":"COMPILE"')) return undefined; // a pair that does not compile
  return rowsOf(r.stdout);
}

/** `--error-format json` output (one object a line), buf's or grabbit's, as rows. */
function rowsOf(stdout: string): Row[] {
  return jsonLines(stdout).map((line) => ({
    rule: /^\S*:\d+:\d+: ([A-Z0-9_]+) /.exec(line)![1]!,
    line,
  }));
}

async function grabbitRows(
  dir: string,
  args: string[],
): Promise<{ rows: Row[]; stderr: string; code: number }> {
  // What grabbit prints in buf's format: the lines a team that switches from buf sees.
  const r = await grabbit(dir, args);
  return {
    rows: rowsOf(r.stdout).filter(
      (x) => RULE_BY_ID.has(x.rule) && !RULE_BY_ID.get(x.rule)!.grabbit,
    ),
    stderr: r.stderr,
    code: r.code,
  };
}

const inCategory = (rule: string, cat: string) =>
  RULE_BY_ID.get(rule)?.categories.includes(cat) ?? false;

/** Rows of `a` not matched one for one in `b`. */
function minus(a: string[], b: string[]): string[] {
  const left = new Map<string, number>();
  for (const x of b) left.set(x, (left.get(x) ?? 0) + 1);
  const out: string[] = [];
  for (const x of a) {
    const n = left.get(x) ?? 0;
    if (n > 0) left.set(x, n - 1);
    else out.push(x);
  }
  return out;
}

interface Outcome {
  seed: number;
  skipped: boolean;
  buf: number;
  matched: number;
  missing: string[];
  extra: string[];
  folder?: string;
}

const OUT = join(tmpdir(), "grabbit-differential");

function writeOut(pair: Pair, missing: string[], extra: string[]): string {
  const folder = join(OUT, String(pair.seed));
  mkdirSync(folder, { recursive: true });
  writeTree(join(folder, "old"), { ...pair.before, "buf.yaml": YAML });
  writeTree(join(folder, "new"), { ...pair.after, "buf.yaml": YAML });
  writeFileSync(
    join(folder, "DIFFERENCES.txt"),
    `seed ${pair.seed}\nedits:\n  ${pair.edits.join("\n  ")}\n\nbuf only (missed by grabbit):\n  ${missing.join("\n  ")}\n\ngrabbit only (extra):\n  ${extra.join("\n  ")}\n\nreplay: cd ${folder} && ${BUF} ${argsFor(pair.seed).join(" ")}\n`,
  );
  return folder;
}

async function check(seed: number): Promise<Outcome> {
  const pair = genPair(seed);
  const dir = tempDir("grabbit-differential-");
  const tree = (t: Tree) => ({ ...t, "buf.yaml": YAML });
  writeTree(join(dir, "old"), tree(pair.before));
  writeTree(join(dir, "new"), tree(pair.after));
  const theirs = await bufRows(dir, argsFor(seed));
  if (!theirs) return { seed, skipped: true, buf: 0, matched: 0, missing: [], extra: [] };
  const ours = await grabbitRows(dir, argsFor(seed));
  const missing: string[] = [];
  const extra: string[] = [];
  let total = 0;
  for (const cat of CATEGORIES) {
    const b = theirs.filter((x) => inCategory(x.rule, cat)).map((x) => x.line);
    const g = ours.rows.filter((x) => inCategory(x.rule, cat)).map((x) => x.line);
    total += b.length;
    missing.push(...minus(b, g).map((x) => `[${cat}] ${x}`));
    extra.push(...minus(g, b).map((x) => `[${cat}] ${x}`));
  }
  if (ours.code === 1) extra.push(`grabbit failed: ${ours.stderr.trim()}`);
  const outcome: Outcome = {
    seed,
    skipped: false,
    buf: total,
    matched: total - missing.length,
    missing,
    extra,
  };
  if (missing.length || extra.length) outcome.folder = writeOut(pair, missing, extra);
  return outcome;
}

const outcomes: Outcome[] = [];

afterAll(() => {
  const done = outcomes.filter((o) => !o.skipped);
  const buf = done.reduce((s, o) => s + o.buf, 0);
  const matched = done.reduce((s, o) => s + o.matched, 0);
  const extra = done.reduce((s, o) => s + o.extra.length, 0);
  const byRule = new Map<string, number>();
  for (const o of done)
    for (const x of [...o.missing, ...o.extra]) {
      const rule = /: ([A-Z0-9_]+) /.exec(x)?.[1] ?? "?";
      byRule.set(rule, (byRule.get(rule) ?? 0) + 1);
    }
  console.log(
    `[differential] base seed ${BASE}: ${done.length} pairs compared (${outcomes.length - done.length} did not compile); ` +
      `recall ${buf ? (matched / buf).toFixed(3) : "1"} (${matched} of ${buf} buf findings), ${extra} extra` +
      (byRule.size
        ? `\n  differences by rule: ${[...byRule]
            .sort((a, b) => b[1] - a[1])
            .map(([r, n]) => `${r} ${n}`)
            .join(", ")}`
        : ""),
  );
});

describe("grabbit breaking agrees with buf breaking on random pairs", () => {
  const seeds = Array.from({ length: COUNT }, (_, i) => BASE + i);
  it(`${COUNT} pairs from seed ${BASE}`, async () => {
    const queue = [...seeds];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let s = queue.shift(); s !== undefined; s = queue.shift())
          outcomes.push(await check(s));
      }),
    );
    // Every difference fails the run (none is left open).
    const failed = outcomes.filter((o) => o.missing.length || o.extra.length);
    const report = failed.map((o) =>
      `seed ${o.seed} (${o.folder}):\n    missed ${o.missing.join("\n    missed ")}\n    extra ${o.extra.join("\n    extra ")}`.replace(
        /\n    (missed|extra) $/gm,
        "",
      ),
    );
    expect(report).toEqual([]);
    // The generator must mostly produce pairs that compile, or the test proves little.
    expect(outcomes.filter((o) => o.skipped).length).toBeLessThan(COUNT / 2);
  }, 600_000);
});
