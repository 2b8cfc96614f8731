// `grabbit breaking` against `buf breaking` on the same pair of large synthetic inputs: a few thousand
// files of messages, enums, services and events, and a second version with scattered changes (some
// breaking, some not). Both tools run as child processes, end to end, with the same rules (FILE).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { figure, type Figure } from "./figure.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const buf = join(root, "node_modules/.bin/buf");

/** Writes `files` proto files under dir/proto (module root) and a buf.yaml. `changed` scatters edits. */
export function writeCorpus(dir: string, files: number, changed: boolean): void {
  mkdirSync(join(dir, "proto"), { recursive: true });
  writeFileSync(
    join(dir, "buf.yaml"),
    "version: v2\nmodules:\n  - path: proto\nbreaking:\n  use:\n    - FILE\n",
  );
  const packages = Math.max(1, Math.ceil(files / 50));
  for (let i = 0; i < files; i++) {
    const pkg = `corp.p${i % packages}.v1`;
    const d = join(dir, "proto", "corp", `p${i % packages}`, "v1");
    mkdirSync(d, { recursive: true });
    // Every 97th file carries a change when `changed`; the kind of change rotates.
    const kind = changed && i % 97 === 0 ? (i / 97) % 6 : -1;
    const lines: string[] = [`syntax = "proto3";`, ``, `package ${pkg};`, ``];
    if (i > 0 && i % packages !== 0)
      lines.push(`import "corp/p${(i - 1) % packages}/v1/f${i - 1}.proto";`, ``);
    lines.push(
      `// Status of thing ${i}.`,
      `enum Status${i} {`,
      `  STATUS${i}_UNSPECIFIED = 0;`,
      `  STATUS${i}_ACTIVE = 1;`,
    );
    if (kind !== 0) lines.push(`  STATUS${i}_GONE = 2;`);
    lines.push(`}`, ``);
    for (let m = 0; m < 4; m++) {
      lines.push(`// Message ${m} of file ${i}.`, `message M${i}x${m} {`);
      lines.push(`  string id = 1;`);
      lines.push(kind === 1 && m === 0 ? `  int64 count = 2;` : `  int32 count = 2;`);
      lines.push(`  repeated string tags = 3;`);
      lines.push(`  Status${i} status = 4;`);
      if (!(kind === 2 && m === 1)) lines.push(`  map<string, string> labels = 5;`);
      lines.push(`  optional double score = 6;`);
      if (kind === 3 && m === 2) lines.push(`  bool added = 7;`);
      lines.push(
        `  message Inner {`,
        `    string name = 1;`,
        `    bytes data = 2;`,
        `  }`,
        `  Inner inner = 8;`,
      );
      lines.push(`}`, ``);
    }
    lines.push(`// Service of file ${i}.`, `service Svc${i} {`);
    lines.push(`  rpc Get(M${i}x0) returns (M${i}x1);`);
    if (kind !== 4) lines.push(`  rpc List(M${i}x2) returns (stream M${i}x3);`);
    lines.push(
      kind === 5
        ? `  // Comment-only edit.\n  rpc Put(M${i}x1) returns (M${i}x0);`
        : `  rpc Put(M${i}x1) returns (M${i}x0);`,
    );
    lines.push(`}`, ``);
    writeFileSync(join(d, `f${i}.proto`), lines.join("\n"));
  }
}

interface Measured {
  ms: number;
  rssMb: number;
  status: number | null;
}

// /usr/bin/time -v reports the peak RSS of the child (and its children, for grabbit's buf builds
// that is the largest single process, which is what it prints as "Maximum resident set size").
function measure(cmd: string, args: string[], cwd: string): Measured {
  const start = performance.now();
  const r = spawnSync("/usr/bin/time", ["-v", cmd, ...args], {
    cwd,
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const ms = performance.now() - start;
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? "");
  return { ms, rssMb: m ? Number(m[1]) / 1024 : NaN, status: r.status };
}

function best(runs: Measured[]): Measured {
  return runs.reduce((a, b) => (b.ms < a.ms ? b : a));
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const files = quick ? 600 : 2000;
  const dir = mkdtempSync(join(tmpdir(), "grabbit-bench-breaking-"));
  try {
    writeCorpus(join(dir, "old"), files, false);
    writeCorpus(join(dir, "new"), files, true);
    const cli = join(root, "bin/grabbit.js");
    // buf breaking alone takes tens of seconds on the full pair: one run each keeps the bench near a minute.
    const reps = 1;
    const g: Measured[] = [];
    const b: Measured[] = [];
    for (let i = 0; i < reps; i++) {
      g.push(
        measure(
          process.execPath,
          [cli, "breaking", "new", "--against", "old", "--use", "FILE", "--format", "json"],
          dir,
        ),
      );
      b.push(measure(buf, ["breaking", "new", "--against", "old", "--error-format", "json"], dir));
    }
    const gb = best(g);
    const bb = best(b);
    if (gb.status !== 100 || bb.status !== 100)
      throw new Error(
        `expected both to find breaking changes (grabbit ${gb.status}, buf ${bb.status})`,
      );
    const out: Record<string, Figure> = {
      breaking_time_ms: {
        ...figure(gb.ms, bb.ms, "ms", "lower-is-better", "buf breaking (same inputs, FILE rules)"),
        note: `${files} files per side, ${reps} run${reps === 1 ? "" : "s"} each${reps === 1 ? "" : " (best)"}`,
      },
    };
    if (Number.isFinite(gb.rssMb) && Number.isFinite(bb.rssMb)) {
      out.breaking_peak_rss_mb = {
        ...figure(
          gb.rssMb,
          bb.rssMb,
          "MB",
          "lower-is-better",
          "buf breaking (same inputs, FILE rules)",
        ),
        note: "peak resident set of the largest process of each run (GNU time -v)",
      };
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
