// The registry side, through the npm client itself, so a team's .npmrc (tokens, scoped registries,
// proxies) applies exactly as it does to their own `npm publish`.
import { spawnSync } from "node:child_process";
import { ReleaseError } from "../errors.js";
import { run } from "./build.js";
import { highestVersion } from "./version.js";

function registryArgs(registry: string | undefined): string[] {
  return registry ? ["--registry", registry] : [];
}

/** The highest version of `name` in the registry (prereleases included), or undefined if never published. */
export function publishedVersion(
  name: string,
  registry: string | undefined,
  cwd: string,
): string | undefined {
  const r = spawnSync("npm", ["view", name, "versions", "--json", ...registryArgs(registry)], {
    cwd,
    encoding: "utf8",
  });
  if (r.error) throw new ReleaseError(`npm view ${name}: ${r.error.message}`);
  const out = r.stdout.trim();
  if (r.status !== 0) {
    // npm prints E404 (in JSON on stdout with --json, or on stderr) for a package never published.
    if (/E404|404 Not Found|is not in this registry/.test(out + r.stderr)) return undefined;
    throw new ReleaseError(
      `npm view ${name}${registry ? ` --registry ${registry}` : ""} failed:\n${(r.stderr + out).trim()}`,
    );
  }
  if (!out) return undefined;
  const parsed = JSON.parse(out) as string | string[];
  return highestVersion(Array.isArray(parsed) ? parsed : [parsed]);
}

export interface PublishOptions {
  registry?: string;
  /** The dist-tag; npm refuses a prerelease without one other than latest. */
  tag: string;
  cwd: string;
}

export function publish(tarball: string, { registry, tag, cwd }: PublishOptions): void {
  // --access public: a scoped package is otherwise refused as private on registries that bill for those.
  run(
    "npm",
    [
      "publish",
      tarball,
      "--tag",
      tag,
      "--access",
      "public",
      "--ignore-scripts",
      ...registryArgs(registry),
    ],
    cwd,
    `npm publish ${tarball}`,
  );
}
