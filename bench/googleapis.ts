// The plugin at googleapis scale, by hand (minutes, gigabytes: not part of `npm run bench`):
//   node --import tsx bench/googleapis.ts [--with-ts-proto] [--ts-proto-heap-mb N] [--json]
// Stages the googleapis protos shipped by the google-proto-files devDependency (google/** and
// grafeas/**, without its copy of google/protobuf: buf brings the well-known types, and that copy
// carries protobuf's own test files, which do not compile), builds one image with buf, then runs ONE
// `buf generate` over every file with protoc-gen-grabbit alone, and with --with-ts-proto a second one
// with ts-proto beside it. Each plugin process runs under GNU time: its wall time and peak RSS are
// printed, with buf's total and the machine's load (the machine is shared). A plugin that fails (ts-proto
// runs out of Node's default heap on googleapis; --ts-proto-heap-mb raises it) is reported with
// buf's message, next to what the other plugin measured in the same run.
// Fails with a sentence when GNU time, buf or the package is missing, or when buf fails otherwise.
import { execFileSync, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { peerVersion } from "./figure.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const BUF = join(REPO, "node_modules/.bin/buf");
const PROTOS = join(REPO, "node_modules/google-proto-files");
const withTsProto = process.argv.includes("--with-ts-proto");
const json = process.argv.includes("--json");
const heapArg = process.argv.indexOf("--ts-proto-heap-mb");
const tsProtoHeapMb = heapArg > 0 ? Number(process.argv[heapArg + 1]) : undefined;

function fail(sentence: string): never {
  process.stderr.write(`googleapis bench: ${sentence}\n`);
  process.exit(1);
}
if (!existsSync("/usr/bin/time"))
  fail(
    "GNU time (/usr/bin/time) is needed to read each plugin's peak memory; install the `time` package.",
  );
if (!existsSync(BUF)) fail("node_modules/.bin/buf is missing: run npm install.");
if (!existsSync(join(PROTOS, "google")))
  fail("node_modules/google-proto-files is missing: run npm install (it is a devDependency).");
if (!existsSync(join(REPO, "dist/generator/main.js")))
  fail("the plugin is not built: run `npm run build` first.");

const work = mkdtempSync(join(tmpdir(), "grabbit-googleapis-"));
const log = (line: string) => json || process.stderr.write(`${line}\n`);
try {
  const src = join(work, "src");
  cpSync(join(PROTOS, "google"), join(src, "google"), { recursive: true });
  cpSync(join(PROTOS, "grafeas"), join(src, "grafeas"), { recursive: true });
  rmSync(join(src, "google/protobuf"), { recursive: true, force: true });
  const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) =>
    f.endsWith(".proto"),
  );
  const withServices = files.filter((f) =>
    /^service\s/m.test(readFileSync(join(src, f), "utf8")),
  ).length;
  log(
    `staged ${files.length} files (${withServices} with services) from google-proto-files ${peerVersion("google-proto-files")}; building the image...`,
  );
  const image = join(work, "image.binpb");
  execFileSync(BUF, ["build", src, "-o", image], { stdio: ["ignore", "ignore", "inherit"] });

  /** One buf generate with the given plugins, each under GNU time; returns buf's wall time and each plugin's. */
  const generate = (plugins: { name: string; command: string[]; opt?: string[] }[]) => {
    const template = {
      version: "v2",
      plugins: plugins.map((p) => ({
        local: ["/usr/bin/time", "-f", "%e %M", "-o", join(work, `${p.name}.time`), ...p.command],
        out: join(work, `out-${p.name}`),
        strategy: "all",
        ...(p.opt ? { opt: p.opt } : {}),
      })),
    };
    const templatePath = join(work, "buf.gen.json");
    writeFileSync(templatePath, JSON.stringify(template));
    const load = loadavg()[0]!.toFixed(1);
    const start = performance.now();
    const run = spawnSync(BUF, ["generate", image, "--template", templatePath], {
      encoding: "utf8",
      maxBuffer: 1 << 26,
      env: process.env,
    });
    const totalS = (performance.now() - start) / 1000;
    const result: Record<string, unknown> = {
      buf_generate_s: Math.round(totalS * 10) / 10,
      load_at_start: Number(load),
      load_at_end: Number(loadavg()[0]!.toFixed(1)),
    };
    if (run.status !== 0)
      result.error = run.stderr
        .split("\n")
        .filter(
          (l) =>
            l.trim() && !l.includes("does not support required features") && !l.includes(".proto,"),
        )
        .slice(0, 6)
        .join(" ")
        .slice(0, 600);
    for (const p of plugins) {
      const timeFile = join(work, `${p.name}.time`);
      if (!existsSync(timeFile)) {
        result[p.name] = { finished: false };
        continue;
      }
      // GNU time writes "Command exited with non-zero status N" first when the plugin failed.
      const lines = readFileSync(timeFile, "utf8").trim().split("\n");
      const [seconds, kb] = lines.at(-1)!.split(/\s+/).map(Number);
      const outDir = join(work, `out-${p.name}`);
      const out = existsSync(outDir)
        ? readdirSync(outDir, { recursive: true }).filter((f) => String(f).endsWith(".ts")).length
        : 0;
      result[p.name] = {
        wall_s: seconds,
        peak_rss_mb: Math.round(kb! / 1024),
        files_written: out,
        ...(lines.length > 1 ? { failed: lines[0] } : {}),
      };
    }
    if (run.status !== 0 && plugins.length === 1)
      fail(`buf generate failed: ${String(result.error)}`);
    return result;
  };

  const grabbit = { name: "grabbit", command: ["node", join(REPO, "bin/protoc-gen-grabbit.js")] };
  const report: Record<string, unknown> = {
    files: files.length,
    files_with_services: withServices,
    google_proto_files: peerVersion("google-proto-files"),
  };
  log("buf generate with protoc-gen-grabbit alone...");
  report.grabbit_alone = generate([grabbit]);
  log(JSON.stringify(report.grabbit_alone));
  if (withTsProto) {
    log(
      `buf generate with protoc-gen-grabbit and ts-proto ${peerVersion("ts-proto")} beside it...`,
    );
    report.grabbit_with_ts_proto = generate([
      grabbit,
      {
        name: "ts_proto",
        command: tsProtoHeapMb
          ? [
              "node",
              `--max-old-space-size=${tsProtoHeapMb}`,
              join(REPO, "node_modules/ts-proto/protoc-gen-ts_proto"),
            ]
          : [join(REPO, "node_modules/.bin/protoc-gen-ts_proto")],
        opt: ["outputServices=none", "esModuleInterop=true", "importSuffix=.js", "env=node"],
      },
    ]);
    log(JSON.stringify(report.grabbit_with_ts_proto));
  }
  process.stdout.write(JSON.stringify(report, null, json ? 0 : 2) + "\n");
} finally {
  rmSync(work, { recursive: true, force: true });
}
