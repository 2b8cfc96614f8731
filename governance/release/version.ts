// The SDK's next version from the previous one and the contract's bump.
//
// 1.x and up: semver as written (major, minor, patch).
// 0.y.z (y >= 1): npm's caret treats y as the major (^0.4.2 is >=0.4.2 <0.5.0), so a breaking change
//   bumps y (0.4.2 -> 0.5.0) and additions as well as fixes bump z (0.4.2 -> 0.4.3): they stay inside
//   every existing ^0.4 range, which is what an addition promises.
// 0.0.z: every release is its own caret range already, so every bump gives 0.0.(z+1).
// Prereleases: a previous 2.0.0-beta.1 already stands for a major release. A change no larger than
//   what it stands for stays on that line (2.0.0-beta.2 with --preid beta, 2.0.0 without); a larger
//   one moves past it (1.5.0-rc.1 + major -> 2.0.0).
// Build metadata (+sha) is dropped: npm ignores it when comparing.
import semver from "semver";
import type { Bump } from "../semver.js";

export interface Version {
  major: number;
  minor: number;
  patch: number;
  pre: (string | number)[];
}

const PREID = /^[A-Za-z-][0-9A-Za-z-]*$/;

/** A semantic version (a leading v and build metadata allowed, as npm allows them), by the semver package. */
export function parseVersion(text: string): Version | undefined {
  const v = semver.parse(text.trim());
  return v ? { major: v.major, minor: v.minor, patch: v.patch, pre: [...v.prerelease] } : undefined;
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}${v.pre.length ? `-${v.pre.join(".")}` : ""}`;
}

/** Semver precedence: negative if a < b. A prerelease sorts before its release. */
export function compareVersions(a: Version, b: Version): number {
  return semver.compare(formatVersion(a), formatVersion(b));
}

/** The highest of some version strings (unparseable ones are skipped). */
export function highestVersion(versions: Iterable<string>): string | undefined {
  const valid = [...versions]
    .map((s) => semver.parse(s.trim()))
    .filter((v): v is semver.SemVer => v !== null);
  return valid.length ? semver.rsort(valid.map((v) => v.version))[0] : undefined;
}

const RANK: Record<Bump, number> = { none: 0, patch: 1, minor: 2, major: 3 };

function stableNext(v: Version, bump: Exclude<Bump, "none">): Version {
  // 0.y.z: y is the caret's major (a breaking change bumps it, anything else bumps z); 0.0.z: only z.
  const release: semver.ReleaseType =
    v.major > 0 ? bump : v.minor > 0 && bump === "major" ? "minor" : "patch";
  return parseVersion(semver.inc(formatVersion(v), release)!)!;
}

/** The largest bump a release version can stand for (from the rules above). */
function covers(v: Version): Bump {
  if (v.major > 0) return v.patch > 0 ? "patch" : v.minor > 0 ? "minor" : "major";
  if (v.minor > 0) return v.patch > 0 ? "minor" : "major";
  return "major";
}

export interface NextOptions {
  /** Make a prerelease with this identifier (beta -> 2.0.0-beta.0, then 2.0.0-beta.1). */
  preid?: string;
}

/**
 * The version after `previous` for a change of size `bump`; undefined when nothing changed (no release).
 * Throws on an unparseable version or prerelease identifier.
 */
export function nextVersion(
  previous: string,
  bump: Bump,
  options: NextOptions = {},
): string | undefined {
  const prev = parseVersion(previous);
  if (!prev) throw new RangeError(`"${previous}" is not a semantic version (MAJOR.MINOR.PATCH).`);
  if (options.preid !== undefined && !PREID.test(options.preid)) {
    throw new RangeError(
      `"${options.preid}" is not a prerelease identifier (letters, digits and "-", not starting with a digit).`,
    );
  }
  if (bump === "none") return undefined;
  const base: Version = { ...prev, pre: [] };
  let target: Version;
  if (prev.pre.length && RANK[bump] <= RANK[covers(base)]) target = base;
  else target = stableNext(base, bump);
  if (options.preid === undefined) return formatVersion(target);
  const sameLine =
    prev.pre.length > 0 && compareVersions(target, base) === 0 && prev.pre[0] === options.preid;
  const n = sameLine && typeof prev.pre[1] === "number" ? prev.pre[1] + 1 : 0;
  return formatVersion({ ...target, pre: [options.preid, n] });
}

/** Whether `wanted` (a version asked for by hand) is allowed after `previous` for a change of `bump`. */
export function checkChosenVersion(
  previous: string | undefined,
  wanted: string,
  bump: Bump,
): string | undefined {
  const w = parseVersion(wanted);
  if (!w) return `"${wanted}" is not a semantic version (MAJOR.MINOR.PATCH).`;
  if (previous === undefined) return undefined;
  const p = parseVersion(previous)!;
  if (compareVersions(w, p) <= 0) return `${wanted} is not above the previous version ${previous}.`;
  const needed = nextVersion(previous, bump);
  if (needed !== undefined && !w.pre.length && compareVersions(w, parseVersion(needed)!) < 0) {
    return `${wanted} is below ${needed}, the least a ${bump} change allows after ${previous}.`;
  }
  return undefined;
}
