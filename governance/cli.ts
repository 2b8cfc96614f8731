// `grabbit <command>`: `init` (the generator's) and `breaking` (here). Exit codes follow buf: 0 nothing
// breaking, 100 breaking changes, 1 bad usage or input (always with a sentence saying why).
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { checkRuleName, loadConfig, selectRules } from "./config.js";
import { compareImages } from "./diff.js";
import { changedFiles, type ChangedFiles } from "./changed.js";
import { InputError, buildImage, pathMapper } from "./images.js";
import { FORMATS, render, type Format } from "./report/index.js";
import { maxBump } from "./semver.js";

const USAGE = `Usage: grabbit <command> [options]

Commands:
  init                                 write buf.yaml, buf.gen.yaml and proto/ for grabbit
  breaking [input] --against <ref>     report changes against <ref> and fail on breaking ones
  release [input] --package <dir|name> next SDK version, changelog, build, pack and publish

grabbit breaking options:
  --against <input>        what to compare with: a directory, an image (.binpb, .json),
                           .git#branch=main, path/.git#ref=..., anything buf accepts (required)
  --use RULE|CATEGORY      rules to run instead of the configured ones (repeatable, or comma list)
  --except RULE|CATEGORY   rules not to run (repeatable, or comma list)
  --format FORMAT          text (default), json, github-actions, markdown
  --error-format FORMAT    alias of --format
  --config PATH|DATA       buf.yaml to read the breaking section from
  --path PATH              only report changes in files under PATH (repeatable; as printed)
  --exclude-path PATH      do not report changes in files under PATH (repeatable)
  --exclude-imports        accepted for buf compatibility (imports are never compared)
Exit status: 0 no breaking change, 100 breaking changes, 1 bad usage or input.
`;

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
  isTTY: boolean;
}

const defaultIo = (): Io => ({
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  cwd: process.cwd(),
  isTTY: Boolean(process.stderr.isTTY),
});

export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "init") {
    // Loaded only when asked for: `breaking` must not pay for (or depend on) the generator.
    let mod: { runInit(argv: string[]): Promise<number> | number };
    try {
      mod = (await import("../generator/init.js" as string)) as typeof mod;
    } catch (err) {
      if ((err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
      io.stderr("grabbit: init is not available in this build.\n");
      return 1;
    }
    return await mod.runInit(rest);
  }
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
  if (command === "--help" || command === "-h" || command === "help") {
    io.stdout(USAGE);
    return 0;
  }
  io.stderr(command === undefined ? `grabbit: a command is required.\n\n${USAGE}` : `grabbit: unknown command "${command}".\n\n${USAGE}`);
  return 1;
}

interface Args {
  input: string;
  against?: string;
  use: string[];
  except: string[];
  format: Format;
  config?: string;
  paths: string[];
  excludePaths: string[];
}

function parseArgs(argv: string[]): Args | string {
  const a: Args = { input: ".", use: [], except: [], format: "text", paths: [], excludePaths: [] };
  let input: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const takes = ["--against", "--use", "--except", "--format", "--error-format", "--config", "--path", "--exclude-path"];
    if (takes.includes(flag)) {
      const value = eq > 0 && arg.startsWith("--") ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === "") return `${flag} needs a value.`;
      if (flag === "--against") a.against = value;
      else if (flag === "--use") a.use.push(...value.split(",").filter(Boolean));
      else if (flag === "--except") a.except.push(...value.split(",").filter(Boolean));
      else if (flag === "--config") a.config = value;
      else if (flag === "--path") a.paths.push(value.replace(/\/+$/, ""));
      else if (flag === "--exclude-path") a.excludePaths.push(value.replace(/\/+$/, ""));
      else {
        if (!(FORMATS as readonly string[]).includes(value)) return `unknown format "${value}"; use one of ${FORMATS.join(", ")}.`;
        a.format = value as Format;
      }
    } else if (arg === "-h" || arg === "--help") return "help";
    else if (arg === "--exclude-imports" || arg === "--limit-to-input-files") continue;
    else if (arg.startsWith("-") && arg !== "-") return `unknown flag "${arg}".`;
    else if (input === undefined) input = arg;
    else return `unexpected argument "${arg}" (only one input is compared).`;
  }
  if (input !== undefined) a.input = input;
  if (!a.against) return "--against is required (for example --against .git#branch=main).";
  return a;
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

function configDir(input: string, cwd: string): string {
  // buf reads the input directory's buf.yaml; for other inputs, the current directory's.
  const dir = resolve(cwd, input);
  try {
    if (!input.includes("#") && statSync(dir).isDirectory()) return dir;
  } catch {
    // not a local directory
  }
  return cwd;
}

async function breaking(argv: string[], io: Io): Promise<number> {
  const args = parseArgs(argv);
  if (args === "help") {
    io.stdout(USAGE);
    return 0;
  }
  if (typeof args === "string") {
    io.stderr(`grabbit breaking: ${args}\n`);
    return 1;
  }
  for (const id of [...args.use, ...args.except]) checkRuleName(id, args.use.includes(id) ? "--use" : "--except");
  const config = loadConfig(configDir(args.input, io.cwd), args.config !== undefined && existsSync(resolve(io.cwd, args.config)) ? resolve(io.cwd, args.config) : args.config);
  const enabled = selectRules(config, args.use, args.except);

  const p = progress(io);
  try {
    // buf builds dominate the run time: build only what differs when that can be known up front,
    // and both sides side by side.
    const changed = changedFiles(args.input, args.against!, io.cwd);
    p.phase(changed ? `building ${Math.max(changed.inputPaths.length, changed.againstPaths.length)} changed files with buf` : `building ${args.input} and ${args.against} with buf`);
    const build = (paths: ChangedFiles | undefined) =>
      Promise.all([
        buildImage(args.input, io.cwd, paths?.inputPaths, paths?.unchangedPackages).catch((e: unknown) => {
          throw e instanceof InputError ? new InputError(`input: ${e.message}`) : e;
        }),
        buildImage(args.against!, io.cwd, paths?.againstPaths, paths?.unchangedPackages).catch((e: unknown) => {
          throw e instanceof InputError ? new InputError(`--against: ${e.message}`) : e;
        }),
      ]);
    let images: Awaited<ReturnType<typeof build>>;
    try {
      images = await build(changed);
    } catch (err) {
      // A partial build can trip on what a whole one handles (excluded paths, odd layouts): the
      // whole build decides, and reports the input's real problem if there is one.
      if (!changed || !(err instanceof InputError)) throw err;
      p.phase(`building ${args.input} and ${args.against} with buf`);
      images = await build(undefined);
    }
    const [cur, old] = images;
    // A deleted file is printed where it lived: through the against input if it is a directory,
    // else where the current input keeps its files.
    old.externalPath = pathMapper(args.against!, io.cwd, cur.externalPath);
    let report = compareImages(old, cur, { config, enabled, onProgress: (s) => p.phase(s) });
    if (args.paths.length || args.excludePaths.length) {
      const under = (path: string, list: string[]) => list.some((q) => q === "." || path === q || path.startsWith(q.replace(/^\.\//, "") + "/"));
      const changes = report.changes.filter((c) => (!args.paths.length || under(c.path, args.paths)) && !under(c.path, args.excludePaths));
      report = { bump: maxBump(changes.map((c) => c.bump)), changes };
    }
    p.done();
    io.stdout(render(report, args.format));
    return report.changes.some((c) => c.breaking) ? 100 : 0;
  } finally {
    p.done();
  }
}
