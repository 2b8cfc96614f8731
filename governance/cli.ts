// `grabbit <command>`: `init` (the generator's), `breaking` (here) and `release`. Exit codes follow buf:
// 0 nothing breaking, 100 breaking changes, 1 bad usage or input (always with a sentence saying why).
// Every command's flags go through one parser (args.ts); the check itself is `checkBreaking`, a function
// that `grabbit release` calls too.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseCommand, type CommandSpec } from "./args.js";
import { checkRuleName, loadConfig, selectRules } from "./config.js";
import { compareImages, type Report } from "./diff.js";
import { changedFiles, type ChangedFiles } from "./changed.js";
import { InputError, buildImage, dependencyPaths, localDir, parseImage, pathMapper, runBufBuild, type Image } from "./images.js";
import { FORMATS, render, type Format } from "./report/index.js";
import { MESSAGE_LIBRARIES, type MessageLibrary } from "./rules/ts-names.js";

/** The flags that turn `breaking` into the event compatibility check (events/cli.ts). */
const EVENT_FLAGS = ["events", "events-transitive", "events-config", "events-json", "against-tags", "against-registry", "registry"];

const USAGE = `Usage: grabbit <command> [options]

Commands:
  init                                 write buf.yaml, buf.gen.yaml and proto/ for grabbit
  breaking [input] --against <ref>     report changes against <ref> and fail on breaking ones
  release [input] --package <dir|name> next SDK version, changelog, build, pack and publish
  dlq list|show|replay|purge <queue>   look into a dead-letter queue, replay or purge it

Run grabbit <command> --help for a command's options.
`;

const BREAKING_USAGE = `Usage: grabbit breaking [input] --against <input> [options]

Reports the changes of <input> (default .) against <input> and fails on breaking ones. Inputs are
anything buf takes: a directory, an image (.binpb, .json), .git#branch=main, path/.git#ref=...

  --against <input>         what to compare with (required)
  --against-config <file|data>
                            the buf.yaml to build the against input with
  --config <file|dir|data>  the buf.yaml to build the input with and read the breaking section from
  --use RULE|CATEGORY       rules to run instead of the configured ones (repeatable, or comma list)
  --except RULE|CATEGORY    rules not to run (repeatable, or comma list)
  --path <path>             only these files or directories, on both sides, as buf takes them
                            (relative to the current directory; repeatable)
  --exclude-path <path>     leave these files or directories out, on both sides (repeatable)
  --format <format>         ${FORMATS.join(", ")} (default text)
                            text, msvs, junit, github-actions and gitlab-code-quality print what buf
                            prints; json prints grabbit's report (every change and its semver bump)
  --error-format <format>   buf's flag: the same formats, but json is buf's (one object per line)
  --exclude-imports         leave out findings in imports (dependencies, and files outside --path);
                            without it they are compared as in buf
  --limit-to-input-files    compare only the files the input has: what only the against input
                            has (a deleted file) is not checked, as in buf
  --messages <library>      ts-proto (default) or protobuf-es: the TYPESCRIPT_* rules name enum
                            members as that library does (protobuf-es strips the enum's prefix)
  -h, --help                this help
Exit status: 0 no breaking change, 100 breaking changes, 1 bad usage or input.
`;

const INIT_USAGE = `Usage: grabbit init [--dir <repo>] [--proto <folder>] [--out <folder>] [--messages <library>]

Sets a repo up for grabbit: buf.yaml, buf.gen.yaml and a first .proto.
  --dir <repo>       the repo to set up (default: the current folder)
  --proto <folder>   folder of .proto files (default: proto)
  --out <folder>     folder generated TypeScript goes to (default: src/gen)
  --messages <lib>   the plugin for message types: ts-proto (default) or protobuf-es (protoc-gen-es)
  -h, --help         this help
`;

const BREAKING: CommandSpec = {
  name: "breaking",
  positionals: { max: 1, what: "only one input is compared" },
  flags: {
    against: { type: "string" },
    "against-config": { type: "string" },
    config: { type: "string" },
    use: { type: "string", multiple: true, commas: true },
    except: { type: "string", multiple: true, commas: true },
    path: { type: "string", multiple: true },
    "exclude-path": { type: "string", multiple: true },
    format: { type: "string" },
    "error-format": { type: "string" },
    "exclude-imports": { type: "boolean" },
    "limit-to-input-files": { type: "boolean" },
    messages: { type: "string" },
    // Event compatibility (events/cli.ts).
    events: { type: "string" },
    "events-transitive": { type: "boolean" },
    "events-config": { type: "string" },
    "events-json": { type: "boolean" },
    "against-tags": { type: "string" },
    "against-registry": { type: "string" },
    registry: { type: "string" },
  },
};

const INIT: CommandSpec = {
  name: "init",
  positionals: { max: 0, what: "" },
  flags: { dir: { type: "string" }, proto: { type: "string" }, out: { type: "string" }, messages: { type: "string" } },
};

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
  isTTY: boolean;
  /** Asks on the terminal (grabbit dlq purge); default: stdin when it is a terminal. */
  prompt?: (question: string) => Promise<string>;
}

const defaultIo = (): Io => ({
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  cwd: process.cwd(),
  isTTY: Boolean(process.stderr.isTTY),
});

export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "init") return init(rest, io);
  if (command === "breaking") {
    try {
      return await breaking(rest, io);
    } catch (err) {
      if (err instanceof InputError) {
        io.stderr(`grabbit breaking: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  }
  if (command === "release") return (await import("./release/cli.js")).runRelease(rest, io);
  if (command === "dlq") return dlq(rest, io);
  if (command === "--help" || command === "-h" || command === "help") {
    io.stdout(USAGE);
    return 0;
  }
  io.stderr(command === undefined ? `grabbit: a command is required.\n\n${USAGE}` : `grabbit: unknown command "${command}".\n\n${USAGE}`);
  return 1;
}

/** `grabbit dlq` (cli/dlq.ts), loaded only when asked for: it needs @grabbit/runtime, which `breaking` does not. */
async function dlq(argv: string[], io: Io): Promise<number> {
  let mod: typeof import("../cli/dlq.js");
  try {
    mod = await import("../cli/dlq.js");
  } catch (err) {
    if ((err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
    io.stderr("grabbit dlq: needs @grabbit/runtime; install it (npm install @grabbit/runtime).\n");
    return 1;
  }
  return mod.runDlq(argv, { ...io, ...(io.prompt ? {} : { prompt: mod.terminalPrompt() }) });
}

async function init(argv: string[], io: Io): Promise<number> {
  const args = parseCommand(INIT, argv);
  if (typeof args === "string") {
    io.stderr(`grabbit init: ${args}\n`);
    return 1;
  }
  if (args.help) {
    io.stdout(INIT_USAGE);
    return 0;
  }
  // Loaded only when asked for: `breaking` must not pay for (or depend on) the generator.
  let mod: { runInit(argv: string[]): Promise<number> | number };
  try {
    mod = (await import("../generator/init.js" as string)) as typeof mod;
  } catch (err) {
    if ((err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
    io.stderr("grabbit: init is not available in this build.\n");
    return 1;
  }
  const flags = Object.entries(args.values).flatMap(([k, v]) => (typeof v === "string" ? [`--${k}`, v] : []));
  return await mod.runInit(flags);
}

/** What `grabbit breaking` checks: the same options as its flags, for callers such as `grabbit release`. */
export interface BreakingOptions {
  input: string;
  against: string;
  cwd: string;
  config?: string;
  againstConfig?: string;
  use?: string[];
  except?: string[];
  paths?: string[];
  excludePaths?: string[];
  /** buf's --limit-to-input-files: the against input is cut down to the files the input has. */
  limitToInputFiles?: boolean;
  /** buf's --exclude-imports: findings in imported files (on either side) are left out. */
  excludeImports?: boolean;
  /** The message library whose names the TYPESCRIPT_* rules follow (`--messages`; default ts-proto). */
  messages?: MessageLibrary;
  onProgress?: (phase: string) => void;
  /** Warnings buf would print (deprecated rule IDs in buf.yaml). */
  onWarning?: (text: string) => void;
}

interface Args extends BreakingOptions {
  format: Format;
  flavour: "grabbit" | "buf";
}

function toArgs(argv: string[], cwd: string): Args | "help" | string {
  const p = parseCommand(BREAKING, argv);
  if (typeof p === "string") return p;
  if (p.help) return "help";
  const v = p.values as Record<string, string | string[] | boolean | undefined>;
  if (v.format !== undefined && v["error-format"] !== undefined) return "give --format or --error-format, not both.";
  const format = (v.format ?? v["error-format"] ?? "text") as string;
  if (!(FORMATS as readonly string[]).includes(format)) return `unknown format "${format}"; use one of ${FORMATS.join(", ")}.`;
  if (v.against === undefined) return "--against is required (for example --against .git#branch=main).";
  const list = (k: string) => (v[k] as string[] | undefined) ?? [];
  const messages = (v.messages ?? "ts-proto") as MessageLibrary;
  if (!MESSAGE_LIBRARIES.includes(messages)) return `--messages takes ${MESSAGE_LIBRARIES.join(" or ")}, not "${messages}".`;
  return {
    messages,
    input: p.positionals[0] ?? ".",
    against: v.against as string,
    cwd,
    ...(v.config !== undefined ? { config: v.config as string } : {}),
    ...(v["against-config"] !== undefined ? { againstConfig: v["against-config"] as string } : {}),
    use: list("use"),
    except: list("except"),
    paths: list("path"),
    excludePaths: list("exclude-path"),
    limitToInputFiles: v["limit-to-input-files"] === true,
    excludeImports: v["exclude-imports"] === true,
    format: format as Format,
    flavour: v["error-format"] !== undefined ? "buf" : "grabbit",
  };
}

/** A progress line on a terminal, shown only once a run has taken a while. */
function progress(io: Io): { phase(s: string): void; done(): void } {
  if (!io.isTTY) return { phase() {}, done() {} };
  const start = Date.now();
  let current = "";
  let shown = false;
  const draw = () => {
    shown = true;
    io.stderr(`\r\x1b[2Kgrabbit breaking: ${current} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
  };
  const timer = setInterval(() => Date.now() - start > 1000 && draw(), 250);
  timer.unref();
  return {
    phase(s) {
      current = s;
      if (shown) draw();
    },
    done() {
      clearInterval(timer);
      if (shown) io.stderr("\r\x1b[2K");
    },
  };
}

/** `buf build` with what buf breaking passes on to its builds: --config, --path and --exclude-path. */
async function bufBuild(input: string, cwd: string, o: { config?: string; paths: string[]; excludePaths: string[] }): Promise<Image> {
  const bytes = await runBufBuild(input, cwd, o.config, o.paths, o.excludePaths);
  return { input, files: parseImage(bytes), externalPath: pathMapper(input, cwd) };
}

/** A --config value: a file (a directory stands for its buf.yaml, as for an input) or the data itself. */
function configFile(value: string | undefined, cwd: string): string | undefined {
  if (value === undefined || !existsSync(resolve(cwd, value))) return value;
  const path = resolve(cwd, value);
  if (!statSync(path).isDirectory()) return path;
  return ["buf.yaml", "buf.yml"].map((n) => join(path, n)).find((p) => existsSync(p)) ?? path;
}

/**
 * buf's --limit-to-input-files: buf builds the against input with the input's files as its paths, so
 * a file only the against input has is gone from it (no deletion to report, nor its declarations in
 * the package rules), and one the input has only as an import is an import there too.
 */
function limitToInputFiles(old: Image, cur: Image): void {
  for (const [path, f] of old.files) {
    if (f.isImport) continue;
    const mine = cur.files.get(path);
    if (!mine) old.files.delete(path);
    else if (mine.isImport) old.files.set(path, { ...f, isImport: true });
  }
}

/**
 * The check itself: builds both sides with buf, reads the configuration as buf does (each module with
 * its own breaking section) and compares. Throws InputError on bad usage or input.
 */
export async function checkBreaking(o: BreakingOptions): Promise<Report> {
  const cwd = o.cwd;
  const use = o.use ?? [];
  const except = o.except ?? [];
  const paths = o.paths ?? [];
  const excludePaths = o.excludePaths ?? [];
  const explicit = configFile(o.config, cwd);
  const config = loadConfig(localDir(o.input, cwd) ?? cwd, explicit);
  for (const w of config.warnings) o.onWarning?.(w);
  for (const id of use) checkRuleName(id, "--use", config.version);
  for (const id of except) checkRuleName(id, "--except", config.version);
  const againstDir = localDir(o.against, cwd);
  if (againstDir) config.otherDirs.push(againstDir);
  const enabled = selectRules(config, use, except);
  const phase = o.onProgress ?? (() => {});

  const wrap = (side: string) => (e: unknown) => {
    throw e instanceof InputError ? new InputError(`${side}: ${e.message}`) : e;
  };
  let images: [Image, Image];
  if (o.config !== undefined || o.againstConfig !== undefined || paths.length || excludePaths.length) {
    // What buf breaking does with these flags: both sides built with them (paths apply to both).
    phase(`building ${o.input} and ${o.against} with buf`);
    const explicitAgainst = configFile(o.againstConfig, cwd);
    images = await Promise.all([
      bufBuild(o.input, cwd, { ...(explicit !== undefined ? { config: explicit } : {}), paths, excludePaths }).catch(wrap("input")),
      bufBuild(o.against, cwd, { ...(explicitAgainst !== undefined ? { config: explicitAgainst } : {}), paths, excludePaths }).catch(wrap("--against")),
    ]);
  } else {
    // buf builds dominate the run time: build only what differs when that can be known up front,
    // and both sides side by side.
    const changed = changedFiles(o.input, o.against, cwd);
    phase(changed ? `building ${Math.max(changed.inputPaths.length, changed.againstPaths.length)} changed files with buf` : `building ${o.input} and ${o.against} with buf`);
    const build = (p: ChangedFiles | undefined) =>
      Promise.all([
        buildImage(o.input, cwd, p && { paths: p.inputPaths, packagesOutside: p.unchangedPackages, kindsOutside: p.unchangedKinds, moduleFiles: p.inputFiles }).catch(wrap("input")),
        buildImage(o.against, cwd, p && { paths: p.againstPaths, packagesOutside: p.unchangedPackages, kindsOutside: p.unchangedKinds, moduleFiles: p.againstFiles }).catch(wrap("--against")),
      ]);
    let partial: [Image, Image] | undefined;
    try {
      partial = changed && (await build(changed));
    } catch (err) {
      // A partial build can trip on what a whole one handles (excluded paths, odd layouts): the
      // whole build decides, and reports the input's real problem if there is one.
      if (!(err instanceof InputError)) throw err;
    }
    // Dependencies are compared like the module's files. Where the partial builds pulled in different
    // ones (a changed file stopped importing a WKT), only whole builds tell whether an unchanged file
    // still imports it; where they pulled in the same ones, whole builds would add the same to both.
    if (partial && sameKeys(dependencyPaths(partial[0]), dependencyPaths(partial[1]))) images = partial;
    else {
      if (changed) phase(`building ${o.input} and ${o.against} with buf`);
      images = await build(undefined);
    }
  }
  const [cur, old] = images;
  if (o.limitToInputFiles) limitToInputFiles(old, cur);
  // A deleted file is printed where it lived: through the against input if it is a directory,
  // else where the current input keeps its files.
  old.externalPath = pathMapper(o.against, cwd, cur.externalPath);
  return compareImages(old, cur, { config, enabled, excludeImports: o.excludeImports === true, onProgress: phase, ...(o.messages ? { messages: o.messages } : {}) });
}

function sameKeys(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((k) => b.has(k));
}

async function breaking(argv: string[], io: Io): Promise<number> {
  const parsed = parseCommand(BREAKING, argv);
  if (typeof parsed !== "string" && !parsed.help && EVENT_FLAGS.some((k) => parsed.values[k] !== undefined)) {
    return (await import("./events/cli.js")).runEvents(parsed.values, parsed.positionals, io);
  }
  const args = toArgs(argv, io.cwd);
  if (args === "help") {
    io.stdout(BREAKING_USAGE + (await import("./events/cli.js")).EVENTS_USAGE);
    return 0;
  }
  if (typeof args === "string") {
    io.stderr(`grabbit breaking: ${args}\n`);
    return 1;
  }
  const p = progress(io);
  try {
    const report = await checkBreaking({ ...args, onProgress: (s) => p.phase(s), onWarning: (w) => io.stderr(`grabbit breaking: warning: ${w}\n`) });
    p.done();
    io.stdout(render(report, args.format, args.flavour));
    return report.changes.some((c) => c.breaking) ? 100 : 0;
  } finally {
    p.done();
  }
}
