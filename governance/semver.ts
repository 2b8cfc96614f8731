// Semantic-version classification: breaking changes (and accepted ones) are major, additions and
// deprecations minor, comment and option edits patch; a whole change takes the largest.
export type Bump = "major" | "minor" | "patch" | "none";

const ORDER: Bump[] = ["none", "patch", "minor", "major"];

export function maxBump(bumps: Iterable<Bump>): Bump {
  let best = 0;
  for (const b of bumps) best = Math.max(best, ORDER.indexOf(b));
  return ORDER[best]!;
}

/** The next version after `version` for a bump ("1.2.3" + minor -> "1.3.0"; 0.x treats major as minor). */
export function nextVersion(version: string, bump: Bump): string {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) throw new Error(`not a semantic version: ${version}`);
  let [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (bump === "none") return `${major}.${minor}.${patch}`;
  if (bump === "major" && major > 0) return `${major + 1}.0.0`;
  if (bump === "major" || bump === "minor") return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}
