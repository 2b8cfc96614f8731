// `grabbit release`: the next version of an SDK package from the contract's changes, its changelog
// entry, a build (buf generate, tsc), the tarball and, with a registry, the publish. Exit 0 on a
// release (or when nothing changed), 1 with a sentence on bad usage or a failed step.
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { parseCommand, type CommandSpec } from "../args.js";
import type { Report } from "../diff.js";
import { InputError, ReleaseError } from "../errors.js";
import { checkBreaking } from "../check.js";
import { runBufBuild } from "../images.js";
import { addEntry, renderEntry } from "./changelog.js";
import {
  compile,
  dependencyRanges,
  generate,
  importedPackages,
  listFiles,
  pack,
  relativeOrAbsolute,
  run,
  writeManifest,
  writeReadme,
} from "./build.js";
import { publish, publishedVersion } from "./publish.js";
import { checkChosenVersion, nextVersion, parseVersion } from "./version.js";

const USAGE = `Usage: grabbit release [input] --package <dir|@scope/name> [options]

Computes the SDK's next version from the contract's changes since its previous release, writes the
changelog entry, generates and compiles the SDK (buf generate with ts-proto and protoc-gen-grabbit,
tsc to ESM and .d.ts), packs it and, with --registry or --publish, publishes it.

  input                    the contract now, anything buf accepts (default: .)
  --package <dir|name>     the SDK's folder (its package.json gives the name and previous version),
                           or an npm name such as @acme/orders-sdk (built under
                           node_modules/.cache/grabbit/release/, previous version from the registry)
  --against <input>        the contract of the previous release (.git#tag=orders-sdk-v1.4.2, a
                           directory, an image); required after the first release
  --tag-prefix <prefix>    without --against, compare with .git#tag=<prefix><previous version>
  --name <npm name>        the package name, when the folder has no package.json yet
  --registry <url>         read the previous version from this registry and publish there
  --publish                publish to npm's configured registry
  --dry-run                print the version and changelog entry, build and pack in a scratch
                           folder; write, publish nothing
  --version <x.y.z>        this version instead of the computed one (never below what the changes need)
  --initial-version <v>    the first release's version (default 1.0.0)
  --preid <id>             a prerelease: 2.0.0-<id>.0, then 2.0.0-<id>.1, ...
  --dist-tag <tag>         npm dist-tag (default latest, or the prerelease id)
  --template <file>        a buf.gen.yaml of your own writing into <package>/src
  --pack-destination <dir> where the tarball goes (default: the package folder)
  --format text|json       output (default text)
  -h, --help               this help
Exit status: 0 released or nothing to release, 1 bad usage or a failed step.
`;

export interface ReleaseIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
}

const defaultIo = (): ReleaseIo => ({
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  cwd: process.cwd(),
});

interface Args {
  input: string;
  package?: string;
  against?: string;
  tagPrefix?: string;
  name?: string;
  registry?: string;
  publish: boolean;
  dryRun: boolean;
  version?: string;
  initialVersion: string;
  preid?: string;
  distTag?: string;
  template?: string;
  packDestination?: string;
  format: "text" | "json";
}

const RELEASE: CommandSpec = {
  name: "release",
  positionals: { max: 1, what: "one contract input is released" },
  flags: {
    package: { type: "string" },
    against: { type: "string" },
    "tag-prefix": { type: "string" },
    name: { type: "string" },
    registry: { type: "string" },
    publish: { type: "boolean" },
    "dry-run": { type: "boolean" },
    version: { type: "string" },
    "initial-version": { type: "string" },
    preid: { type: "string" },
    "dist-tag": { type: "string" },
    template: { type: "string" },
    "pack-destination": { type: "string" },
    format: { type: "string" },
  },
};

function parseArgs(argv: string[]): Args | string {
  const p = parseCommand(RELEASE, argv);
  if (typeof p === "string") return p;
  if (p.help) return "help";
  const v = p.values as Record<string, string | boolean | undefined>;
  const s = (k: string) => v[k] as string | undefined;
  const a: Args = {
    input: p.positionals[0] ?? ".",
    publish: v.publish === true,
    dryRun: v["dry-run"] === true,
    initialVersion: s("initial-version") ?? "1.0.0",
    format: (s("format") ?? "text") as Args["format"],
  };
  const optional: Array<[keyof Args, string]> = [
    ["package", "package"],
    ["against", "against"],
    ["tagPrefix", "tag-prefix"],
    ["name", "name"],
    ["registry", "registry"],
    ["version", "version"],
    ["preid", "preid"],
    ["distTag", "dist-tag"],
    ["template", "template"],
    ["packDestination", "pack-destination"],
  ];
  for (const [key, flag] of optional)
    if (s(flag) !== undefined) (a as unknown as Record<string, unknown>)[key] = s(flag);
  if (a.format !== "text" && a.format !== "json")
    return `unknown format "${a.format}"; use text or json.`;
  if (!a.package)
    return "--package is required: the SDK's folder (for example --package sdk) or its npm name.";
  if (!parseVersion(a.initialVersion))
    return `--initial-version: "${a.initialVersion}" is not a semantic version.`;
  if (a.name !== undefined && !NPM_NAME.test(a.name))
    return `--name: "${a.name}" is not an npm package name.`;
  return a;
}

const NPM_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

export interface ReleaseResult {
  name: string;
  previous: string | null;
  version: string | null;
  bump: Report["bump"] | "initial";
  released: boolean;
  dryRun: boolean;
  against: string | null;
  packageDir: string;
  tarball: string | null;
  published: boolean;
  registry: string | null;
  distTag: string | null;
  gitTag: string | null;
  changelog: string | null;
  changes: Report["changes"];
}

/** The contract's changes since `against`: the breaking checker, called as a function. */
async function compare(
  input: string,
  against: string,
  cwd: string,
  io: ReleaseIo,
): Promise<Report> {
  try {
    return await checkBreaking({
      input,
      against,
      cwd,
      onWarning: (w) => io.stderr(`grabbit release: warning: ${w}\n`),
    });
  } catch (err) {
    if (err instanceof InputError)
      throw new ReleaseError(`comparing ${input} with ${against}: ${err.message}`, { cause: err });
    throw err;
  }
}

export async function runRelease(argv: string[], io: ReleaseIo = defaultIo()): Promise<number> {
  const args = parseArgs(argv);
  if (args === "help") {
    io.stdout(USAGE);
    return 0;
  }
  if (typeof args === "string") {
    io.stderr(`grabbit release: ${args}\n`);
    return 1;
  }
  try {
    const result = await release(args, io);
    io.stdout(args.format === "json" ? JSON.stringify(result) + "\n" : describe(result, io.cwd));
    return 0;
  } catch (err) {
    if (err instanceof ReleaseError || err instanceof RangeError) {
      io.stderr(`grabbit release: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function readJson(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new ReleaseError(`${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

async function release(args: Args, io: ReleaseIo): Promise<ReleaseResult> {
  const cwd = io.cwd;
  // A scoped npm name (not a folder that exists) is released from the registry alone.
  const byName = args.package!.startsWith("@") && !existsSync(resolve(cwd, args.package!));
  const pkgDir = byName
    ? join(
        cwd,
        "node_modules/.cache/grabbit/release",
        args.package!.replace(/^@/, "").replace("/", "-"),
      )
    : resolve(cwd, args.package!);
  if (existsSync(pkgDir) && !statSync(pkgDir).isDirectory())
    throw new ReleaseError(`--package: ${args.package} is a file, not a folder.`);
  const manifest = readJson(join(pkgDir, "package.json"));
  const name = byName ? args.package! : (args.name ?? (manifest?.name as string | undefined));
  if (!name)
    throw new ReleaseError(
      `${args.package} has no package.json yet: name the package with --name @scope/name.`,
    );
  if (!NPM_NAME.test(name)) throw new ReleaseError(`"${name}" is not an npm package name.`);
  if (manifest?.name !== undefined && args.name !== undefined && manifest.name !== args.name) {
    throw new ReleaseError(
      `--name ${args.name} differs from ${manifest.name} in ${join(args.package!, "package.json")}.`,
    );
  }

  // The registry knows what was really published; the folder's package.json stands in without one.
  const fromRegistry = byName || args.registry !== undefined || args.publish;
  const previous = fromRegistry
    ? publishedVersion(name, args.registry, cwd)
    : (manifest?.version as string | undefined);
  if (previous !== undefined && !parseVersion(previous))
    throw new ReleaseError(
      `the previous version "${previous}" of ${name} is not a semantic version.`,
    );

  let against = args.against;
  if (against === undefined && previous !== undefined && args.tagPrefix !== undefined)
    against = `.git#tag=${args.tagPrefix}${previous}`;
  if (previous !== undefined && against === undefined) {
    throw new ReleaseError(
      `${name} was released before (${previous}): pass --against with the contract of that release (for example --against .git#tag=${basename(name)}-v${previous}) or --tag-prefix.`,
    );
  }

  let report: Report | undefined;
  let version: string | undefined;
  if (previous === undefined) {
    version = args.version ?? args.initialVersion;
    if (args.preid !== undefined && !parseVersion(version)!.pre.length)
      version = `${version}-${args.preid}.0`;
  } else {
    report = await compare(args.input, against!, cwd, io);
    if (args.version !== undefined) {
      const problem = checkChosenVersion(previous, args.version, report.bump);
      if (problem) throw new ReleaseError(`--version: ${problem}`);
      version = args.version;
    } else {
      version = nextVersion(
        previous,
        report.bump,
        args.preid !== undefined ? { preid: args.preid } : {},
      );
    }
  }
  const base: ReleaseResult = {
    name,
    previous: previous ?? null,
    version: version ?? null,
    bump: report?.bump ?? "initial",
    released: false,
    dryRun: args.dryRun,
    // A first release compares with nothing, whatever --against says.
    against: previous !== undefined ? against! : null,
    packageDir: pkgDir,
    tarball: null,
    published: false,
    registry: args.registry ?? null,
    distTag: null,
    gitTag: null,
    changelog: null,
    changes: report?.changes ?? [],
  };
  if (version === undefined) return base; // nothing changed: no release

  const entry = renderEntry({
    version,
    ...(previous !== undefined ? { previous } : {}),
    ...(against !== undefined ? { against } : {}),
    ...(report ? { report } : {}),
    date: new Date(),
  });
  const pre = parseVersion(version)!.pre;
  const distTag = args.distTag ?? (pre.length ? String(pre[0]) : "latest");
  if (pre.length && distTag === "latest")
    throw new ReleaseError(
      `${version} is a prerelease: give it a --dist-tag other than latest, so that plain installs keep the last release.`,
    );

  // A dry run builds beside the package (same node_modules above it), in a folder it then removes.
  mkdirSync(dirname(pkgDir), { recursive: true });
  const buildDir = args.dryRun
    ? mkdtempSync(join(dirname(pkgDir), `.${basename(pkgDir)}-dry-run-`))
    : pkgDir;
  try {
    mkdirSync(buildDir, { recursive: true });
    if (args.dryRun)
      for (const f of ["package.json", "CHANGELOG.md", "README.md"])
        if (existsSync(join(pkgDir, f))) copyFileSync(join(pkgDir, f), join(buildDir, f));
    if (byName && previous !== undefined && !existsSync(join(buildDir, "CHANGELOG.md")))
      fetchPreviousChangelog(name, previous, args.registry, buildDir);

    generate({
      input: args.input,
      cwd,
      srcDir: join(buildDir, "src"),
      ...(args.template !== undefined ? { template: args.template } : {}),
    });
    compile(buildDir);
    // The contract itself rides along as a buf image, so `grabbit breaking --against-registry` can
    // compare with every published version without their git tags.
    writeFileSync(join(buildDir, CONTRACT_IMAGE), await contractImage(args.input, cwd));
    const dependencies = dependencyRanges(importedPackages(join(buildDir, "src")), buildDir);
    const contract = contractName(buildDir);
    writeManifest(buildDir, { name, version, dependencies, contract });
    writeReadme(buildDir, name, contract);
    const changelogPath = join(buildDir, "CHANGELOG.md");
    writeFileSync(
      changelogPath,
      addEntry(
        existsSync(changelogPath) ? readFileSync(changelogPath, "utf8") : undefined,
        version,
        entry,
      ),
    );

    const dest = args.packDestination ? resolve(cwd, args.packDestination) : buildDir;
    const tarball = pack(buildDir, dest);
    const doPublish = !args.dryRun && (args.registry !== undefined || args.publish);
    if (doPublish)
      publish(tarball, {
        ...(args.registry !== undefined ? { registry: args.registry } : {}),
        tag: distTag,
        cwd,
      });
    return {
      ...base,
      released: !args.dryRun,
      tarball: args.dryRun && !args.packDestination ? null : tarball,
      published: doPublish,
      distTag,
      gitTag: args.tagPrefix !== undefined ? `${args.tagPrefix}${version}` : null,
      changelog: entry,
    };
  } finally {
    if (args.dryRun) rmSync(buildDir, { recursive: true, force: true });
  }
}

/** The buf image of the released contract, in the package beside dist/ (see events/sources.ts). */
export const CONTRACT_IMAGE = "contract.binpb";

async function contractImage(input: string, cwd: string): Promise<Uint8Array> {
  try {
    return await runBufBuild(input, cwd);
  } catch (err) {
    if (err instanceof InputError)
      throw new ReleaseError(`buf build ${input}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** The proto packages the SDK was generated from, for its description (demo.v1, billing.v2). */
function contractName(buildDir: string): string {
  const pkgs = new Set<string>();
  for (const f of listFiles(join(buildDir, "src"))) {
    if (!f.endsWith(".ts") || f.startsWith("google/") || f.startsWith("grabbit/")) continue;
    const dir = dirname(f);
    if (dir !== ".") pkgs.add(dir.replaceAll("/", "."));
  }
  return [...pkgs].sort().join(", ") || "protobuf";
}

/** Carries the changelog on when the SDK is built from its name only: it lives in the last tarball. */
function fetchPreviousChangelog(
  name: string,
  previous: string,
  registry: string | undefined,
  buildDir: string,
): void {
  const scratch = mkdtempSync(join(dirname(buildDir), ".previous-"));
  try {
    const out = run(
      "npm",
      [
        "pack",
        `${name}@${previous}`,
        "--json",
        "--ignore-scripts",
        "--pack-destination",
        scratch,
        ...(registry ? ["--registry", registry] : []),
      ],
      scratch,
      `npm pack ${name}@${previous}`,
    );
    const file = (JSON.parse(out.slice(out.indexOf("["))) as { filename: string }[])[0]?.filename;
    if (!file) return;
    run(
      "tar",
      ["-xzf", join(scratch, file), "-C", scratch, "package/CHANGELOG.md"],
      scratch,
      "tar",
    );
    cpSync(join(scratch, "package/CHANGELOG.md"), join(buildDir, "CHANGELOG.md"));
  } catch {
    // An older release without a changelog: start a new one.
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function describe(r: ReleaseResult, cwd: string): string {
  if (r.version === null)
    return `grabbit release: ${r.name} ${r.previous}: the contract did not change since ${r.against}; nothing to release.\n`;
  const lines: string[] = [];
  const verb = r.dryRun ? "would release" : "released";
  const why =
    r.previous === null
      ? "first release"
      : `${r.bump} change${r.changes.length === 1 ? "" : "s"} (${r.changes.length}) since ${r.previous}, against ${r.against}`;
  lines.push(`grabbit release: ${verb} ${r.name} ${r.version} (${why})`);
  if (r.tarball) lines.push(`  tarball    ${relativeOrAbsolute(cwd, r.tarball)}`);
  if (r.published)
    lines.push(
      `  published  ${r.registry ?? "npm's configured registry"} under dist-tag ${r.distTag}`,
    );
  else if (!r.dryRun)
    lines.push(
      `  not published (give --registry <url> or --publish; or run: npm publish ${r.tarball ? relativeOrAbsolute(cwd, r.tarball) : "<tarball>"})`,
    );
  if (r.gitTag)
    lines.push(`  tag the contract: git tag ${r.gitTag} && git push origin ${r.gitTag}`);
  lines.push("", r.changelog ?? "");
  return lines.join("\n").trimEnd() + "\n";
}
