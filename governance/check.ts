// The breaking check as a function: `checkBreaking` builds both sides with buf, reads the configuration
// as buf does (each module with its own breaking section) and compares. `grabbit breaking`
// (governance/breaking.ts) and `grabbit release` (release/cli.ts) both call it; it prints nothing.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { changedFiles, type ChangedFiles } from "./changed.js";
import { checkRuleName, loadConfig, selectRules } from "./config.js";
import { compareImages, type Report } from "./diff.js";
import { InputError } from "./errors.js";
import type { MessageLibrary } from "./rules/ts-names.js";
import {
  buildImage,
  dependencyPaths,
  localDir,
  parseImage,
  pathMapper,
  runBufBuild,
  type Image,
} from "./images.js";

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

/** `buf build` with what buf breaking passes on to its builds: --config, --path and --exclude-path. */
async function bufBuild(
  input: string,
  cwd: string,
  o: { config?: string; paths: string[]; excludePaths: string[] },
): Promise<Image> {
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
    throw e instanceof InputError ? new InputError(`${side}: ${e.message}`, { cause: e }) : e;
  };
  let images: [Image, Image];
  if (
    o.config !== undefined ||
    o.againstConfig !== undefined ||
    paths.length ||
    excludePaths.length
  ) {
    // What buf breaking does with these flags: both sides built with them (paths apply to both).
    phase(`building ${o.input} and ${o.against} with buf`);
    const explicitAgainst = configFile(o.againstConfig, cwd);
    images = await Promise.all([
      bufBuild(o.input, cwd, {
        ...(explicit !== undefined ? { config: explicit } : {}),
        paths,
        excludePaths,
      }).catch(wrap("input")),
      bufBuild(o.against, cwd, {
        ...(explicitAgainst !== undefined ? { config: explicitAgainst } : {}),
        paths,
        excludePaths,
      }).catch(wrap("--against")),
    ]);
  } else {
    // buf builds dominate the run time: build only what differs when that can be known up front,
    // and both sides side by side.
    const changed = changedFiles(o.input, o.against, cwd);
    phase(
      changed
        ? `building ${Math.max(changed.inputPaths.length, changed.againstPaths.length)} changed files with buf`
        : `building ${o.input} and ${o.against} with buf`,
    );
    const build = (p: ChangedFiles | undefined) =>
      Promise.all([
        buildImage(
          o.input,
          cwd,
          p && {
            paths: p.inputPaths,
            packagesOutside: p.unchangedPackages,
            kindsOutside: p.unchangedKinds,
            moduleFiles: p.inputFiles,
          },
        ).catch(wrap("input")),
        buildImage(
          o.against,
          cwd,
          p && {
            paths: p.againstPaths,
            packagesOutside: p.unchangedPackages,
            kindsOutside: p.unchangedKinds,
            moduleFiles: p.againstFiles,
          },
        ).catch(wrap("--against")),
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
    if (partial && sameKeys(dependencyPaths(partial[0]), dependencyPaths(partial[1])))
      images = partial;
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
  return compareImages(old, cur, {
    config,
    enabled,
    excludeImports: o.excludeImports === true,
    onProgress: phase,
    ...(o.messages ? { messages: o.messages } : {}),
  });
}

function sameKeys(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((k) => b.has(k));
}
