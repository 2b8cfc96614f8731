// CHANGELOG.md entries from the breaking report: one section per kind of change, each line with the
// rule ID and file:line, so a reader of the SDK's changelog can open the contract where it changed.
import type { Change, Report } from "../diff.js";

export const SECTIONS = [
  "Breaking changes",
  "Added",
  "Deprecated",
  "Changed",
  "Documentation",
] as const;
export type Section = (typeof SECTIONS)[number];

export function sectionOf(change: Change): Section {
  // Accepted findings are not "breaking" for the gate but still break the SDK's callers.
  if (change.breaking || change.bump === "major") return "Breaking changes";
  if (change.rule === "DEPRECATED") return "Deprecated";
  if (change.rule === "COMMENT_CHANGED") return "Documentation";
  if (change.rule.endsWith("_ADDED") && change.rule !== "RESERVED_ADDED") return "Added";
  return "Changed";
}

// Messages quote proto text (map<string, int32>, routing keys such as order.*.created): escape what
// markdown would otherwise read as markup. Underscores inside names (placed_at_ms) are left alone:
// CommonMark never reads an intraword "_" as emphasis.
function escapeMarkdown(s: string): string {
  return s.replace(/[\\`*[\]<>|]/g, (c) => `\\${c}`).replace(/\s*\n\s*/g, " ");
}

export interface EntryInput {
  version: string;
  previous?: string;
  /** The contract the changes were measured against (a buf input such as .git#tag=v1.2.0). */
  against?: string;
  report?: Report;
  date: Date;
}

export function renderEntry({ version, previous, against, report, date }: EntryInput): string {
  const day = date.toISOString().slice(0, 10);
  const lines = [`## ${version} (${day})`, ""];
  if (!report || previous === undefined) {
    lines.push("First release of the generated SDK.", "");
    return lines.join("\n");
  }
  const n = report.changes.length;
  lines.push(
    `${report.bump === "none" ? "No" : capitalize(report.bump)} release after ${previous}: ${n} contract change${n === 1 ? "" : "s"}${against ? ` against \`${against}\`` : ""}.`,
    "",
  );
  const bySection = new Map<Section, Change[]>();
  for (const c of report.changes) {
    const s = sectionOf(c);
    bySection.set(s, [...(bySection.get(s) ?? []), c]);
  }
  for (const section of SECTIONS) {
    const changes = bySection.get(section);
    if (!changes) continue;
    lines.push(`### ${section}`, "");
    for (const c of changes) {
      const where = c.path ? ` (\`${c.path}${c.line ? `:${c.line}` : ""}\`)` : "";
      lines.push(`- \`${c.rule}\`${where}: ${escapeMarkdown(c.message)}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

const HEADER =
  "# Changelog\n\nAll notable changes to this SDK, newest first. Written by `grabbit release` from the contract's\nchanges; versions follow semantic versioning.\n";

/**
 * The changelog with `entry` (for `version`) on top: an existing entry for the same version (a release
 * run again after a failed publish) is replaced, text a person wrote above the entries is kept.
 */
export function addEntry(existing: string | undefined, version: string, entry: string): string {
  const text = existing && existing.trim() ? existing : HEADER;
  const blocks = splitEntries(text);
  const kept = blocks.entries.filter((e) => e.version !== version).map((e) => e.text);
  return (
    [blocks.head.trimEnd(), entry.trimEnd(), ...kept.map((t) => t.trimEnd())].join("\n\n") + "\n"
  );
}

function splitEntries(text: string): {
  head: string;
  entries: { version: string; text: string }[];
} {
  const parts = text.split(/^(?=## )/m);
  const head = parts[0]!.startsWith("## ") ? HEADER : parts.shift()!;
  return {
    head,
    entries: parts.map((p) => ({ version: /^## \[?([^\s\]]+)/.exec(p)?.[1] ?? "", text: p })),
  };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
