// Semantic-version classification: breaking changes (and accepted ones) are major, additions and
// deprecations minor, comment and option edits patch; a whole change takes the largest.
export type Bump = "major" | "minor" | "patch" | "none";

const ORDER: Bump[] = ["none", "patch", "minor", "major"];

export function maxBump(bumps: Iterable<Bump>): Bump {
  let best = 0;
  for (const b of bumps) best = Math.max(best, ORDER.indexOf(b));
  return ORDER[best]!;
}

// The next version of an SDK from a bump lives with the release command (release/version.ts).
