// The released versions an event is checked against: git tags matching a pattern (each built by buf
// from the tag, `path/.git#tag=...,subdir=...`), or every published version of the SDK package in an
// npm registry (each version's tarball carries its contract as `contract.binpb`, written by
// `grabbit release`; fetched with `npm pack` so a team's .npmrc applies as for `npm publish`).
// Oldest first, by semantic version (tags that are not versions: by tag date). A git or npm failure is
// an InputError with the tool's own words; a package version without the image is skipped, and said.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { InputError } from "../errors.js";
import { buildImage, parseImage, type Image } from "../images.js";
import { CONTRACT_IMAGE } from "../release/cli.js";
import { compareVersions, parseVersion } from "../release/version.js";

export interface Version {
  label: string;
  load(): Promise<Image>;
}

function tool(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw new InputError(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0)
    throw new InputError(
      `${cmd} ${args.join(" ")} failed: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" ")}`,
    );
  return r.stdout;
}

/** Sorts labels oldest first: by the semantic version after the pattern's prefix, else as given. */
export function byVersion(labels: string[], prefix: string): string[] {
  const v = (l: string) => parseVersion(l.slice(prefix.length).replace(/^v/, ""));
  if (!labels.every((l) => v(l))) return labels;
  return [...labels].sort((a, b) => compareVersions(v(a)!, v(b)!));
}

/** Tags matching `pattern` (git's glob) in the repository holding `inputDir`, oldest first. */
export function tagVersions(pattern: string, inputDir: string, cwd: string): Version[] {
  const top = tool("git", ["rev-parse", "--show-toplevel"], inputDir).trim();
  // Tag order by date is the fallback for tags that are not versions.
  const tags = tool(
    "git",
    ["for-each-ref", "--sort=creatordate", "--format=%(refname:short)", `refs/tags/${pattern}`],
    top,
  )
    .split("\n")
    .map((t) => t.trim())
    .filter(Boolean);
  if (!tags.length) throw new InputError(`--against-tags ${pattern}: no tag of ${top} matches.`);
  const subdir = relative(top, inputDir).split(sep).join("/");
  const gitDir = relative(cwd, join(top, ".git")) || ".git";
  const prefix = pattern.includes("*") ? pattern.slice(0, pattern.indexOf("*")) : "";
  return byVersion(tags, prefix).map((tag) => ({
    label: tag,
    load: () =>
      buildImage(`${gitDir}#tag=${tag}${subdir ? `,subdir=${subdir}` : ""}`, cwd).catch(
        (e: unknown) => {
          throw e instanceof InputError
            ? new InputError(`tag ${tag}: ${e.message}`, { cause: e })
            : e;
        },
      ),
  }));
}

export interface RegistryVersions {
  versions: Version[];
  /** Versions whose tarball has no contract image. */
  skipped: { version: string; reason: string }[];
}

/** Every published version of `pkg` (from `registry`, else npm's configured one), oldest first. */
export async function registryVersions(
  pkg: string,
  registry: string | undefined,
  cwd: string,
): Promise<RegistryVersions> {
  const reg = registry ? ["--registry", registry] : [];
  const r = spawnSync("npm", ["view", pkg, "versions", "--json", ...reg], {
    cwd,
    encoding: "utf8",
  });
  if (r.error) throw new InputError(`npm view ${pkg}: ${r.error.message}`);
  if (r.status !== 0) {
    if (/E404|404 Not Found|is not in this registry/.test(r.stdout + r.stderr))
      throw new InputError(
        `--against-registry ${pkg}: the package was never published${registry ? ` to ${registry}` : ""}.`,
      );
    throw new InputError(
      `npm view ${pkg} failed: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" ")}`,
    );
  }
  const parsed = JSON.parse(r.stdout.trim() || "[]") as string | string[];
  const list = (Array.isArray(parsed) ? parsed : [parsed]).filter((v) => parseVersion(v));
  list.sort((a, b) => compareVersions(parseVersion(a)!, parseVersion(b)!));
  const scratch = mkdtempSync(join(tmpdir(), "grabbit-events-"));
  const versions: Version[] = [];
  const skipped: RegistryVersions["skipped"] = [];
  try {
    // One `npm pack` for all versions (npm fetches them side by side).
    const out = tool(
      "npm",
      [
        "pack",
        ...list.map((v) => `${pkg}@${v}`),
        "--json",
        "--ignore-scripts",
        "--pack-destination",
        scratch,
        ...reg,
      ],
      scratch,
    );
    const packed = JSON.parse(out.slice(out.indexOf("["))) as {
      version: string;
      filename: string;
    }[];
    for (const v of list) {
      const entry = packed.find((p) => p.version === v);
      const tgz =
        entry &&
        [
          join(scratch, entry.filename),
          join(scratch, entry.filename.replace(/^@/, "").replace(/\//, "-")),
        ].find(existsSync);
      if (!tgz) {
        skipped.push({ version: v, reason: "npm pack returned no tarball" });
        continue;
      }
      const dir = join(scratch, v);
      mkdirSync(dir, { recursive: true });
      const x = spawnSync("tar", ["-xzf", tgz, "-C", dir, `package/${CONTRACT_IMAGE}`], {
        encoding: "utf8",
      });
      const file = join(dir, "package", CONTRACT_IMAGE);
      if (x.status !== 0 || !existsSync(file)) {
        skipped.push({
          version: v,
          reason: `the package has no ${CONTRACT_IMAGE} (released before grabbit carried the contract)`,
        });
        continue;
      }
      const bytes = readFileSync(file);
      versions.push({
        label: v,
        load: async () => ({
          input: `${pkg}@${v}`,
          files: parseImage(bytes),
          externalPath: (p) => p,
        }),
      });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { versions, skipped };
}
