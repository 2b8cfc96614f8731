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
import type { Bump } from "../semver.js";

export interface Version {
  major: number;
  minor: number;
  patch: number;
  pre: (string | number)[];
}

const NUM = "0|[1-9]\\d*";
const ID = "(?:0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*)";
const VERSION = new RegExp(`^v?(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${ID}(?:\\.${ID})*))?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$`);
const PREID = /^[A-Za-z-][0-9A-Za-z-]*$/;

export function parseVersion(text: string): Version | undefined {
  const m = VERSION.exec(text.trim());
  if (!m) return undefined;
  const pre = m[4] === undefined ? [] : m[4].split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre };
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}${v.pre.length ? `-${v.pre.join(".")}` : ""}`;
}

/** Semver precedence: negative if a < b. A prerelease sorts before its release. */
export function compareVersions(a: Version, b: Version): number {
  for (const k of ["major", "minor", "patch"] as const) if (a[k] !== b[k]) return a[k] - b[k];
  if (!a.pre.length || !b.pre.length) return (b.pre.length ? 1 : 0) - (a.pre.length ? 1 : 0);
  for (let i = 0; i < Math.max(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return x - y;
    if (typeof x === "number") return -1; // numeric identifiers sort before alphanumeric ones
    if (typeof y === "number") return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** The highest of some version strings (unparseable ones are skipped). */
export function highestVersion(versions: Iterable<string>): string | undefined {
  let best: Version | undefined;
  for (const s of versions) {
    const v = parseVersion(s);
    if (v && (!best || compareVersions(v, best) > 0)) best = v;
  }
  return best && formatVersion(best);
}

const RANK: Record<Bump, number> = { none: 0, patch: 1, minor: 2, major: 3 };

function stableNext(v: Version, bump: Exclude<Bump, "none">): Version {
  const { major, minor, patch } = v;
  if (major > 0) {
    if (bump === "major") return { major: major + 1, minor: 0, patch: 0, pre: [] };
    if (bump === "minor") return { major, minor: minor + 1, patch: 0, pre: [] };
    return { major, minor, patch: patch + 1, pre: [] };
  }
  if (minor > 0 && bump === "major") return { major: 0, minor: minor + 1, patch: 0, pre: [] };
  return { major: 0, minor, patch: patch + 1, pre: [] };
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
export function nextVersion(previous: string, bump: Bump, options: NextOptions = {}): string | undefined {
  const prev = parseVersion(previous);
  if (!prev) throw new RangeError(`"${previous}" is not a semantic version (MAJOR.MINOR.PATCH).`);
  if (options.preid !== undefined && !PREID.test(options.preid)) {
    throw new RangeError(`"${options.preid}" is not a prerelease identifier (letters, digits and "-", not starting with a digit).`);
  }
  if (bump === "none") return undefined;
  const base: Version = { ...prev, pre: [] };
  let target: Version;
  if (prev.pre.length && RANK[bump] <= RANK[covers(base)]) target = base;
  else target = stableNext(base, bump);
  if (options.preid === undefined) return formatVersion(target);
  const sameLine = prev.pre.length > 0 && compareVersions(target, base) === 0 && prev.pre[0] === options.preid;
  const n = sameLine && typeof prev.pre[1] === "number" ? prev.pre[1] + 1 : 0;
  return formatVersion({ ...target, pre: [options.preid, n] });
}

/** Whether `wanted` (a version asked for by hand) is allowed after `previous` for a change of `bump`. */
export function checkChosenVersion(previous: string | undefined, wanted: string, bump: Bump): string | undefined {
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
