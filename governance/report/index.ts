// Output formats. text and github-actions follow buf's shapes so existing log parsers and problem
// matchers keep working; json is the SPEC's object; markdown is written for a pull-request comment.
import type { Report } from "../diff.js";

export const FORMATS = ["text", "json", "github-actions", "markdown"] as const;
export type Format = (typeof FORMATS)[number];

export function render(report: Report, format: Format): string {
  switch (format) {
    case "json":
      return JSON.stringify(report) + "\n";
    case "github-actions":
      return githubActions(report);
    case "markdown":
      return markdown(report);
    default:
      return text(report);
  }
}

/** `path:line:column: RULE_ID message`, breaking changes first (as buf prints them), then the rest. */
export function text(report: Report): string {
  const line = (c: Report["changes"][number]) => `${c.path}:${c.line}:${c.column}: ${c.rule} ${c.message}\n`;
  return report.changes.filter((c) => c.breaking).map(line).join("") + report.changes.filter((c) => !c.breaking).map(line).join("");
}

// Workflow commands must escape %, CR and LF in the message, and also : and , in properties.
const escData = (s: string) => s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
const escProp = (s: string) => escData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");

export function githubActions(report: Report): string {
  return report.changes
    .map((c) => {
      const level = c.breaking ? "error" : c.bump === "major" ? "warning" : "notice";
      return `::${level} file=${escProp(c.path)},line=${c.line},col=${c.column},title=${escProp(c.rule)}::${escData(c.message)}\n`;
    })
    .join("");
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function markdown(report: Report): string {
  const breaking = report.changes.filter((c) => c.breaking);
  const rest = report.changes.filter((c) => !c.breaking);
  const out: string[] = [];
  out.push(`### grabbit breaking: ${breaking.length ? `:x: ${breaking.length} breaking change${breaking.length === 1 ? "" : "s"}` : ":white_check_mark: no breaking changes"}`);
  out.push("");
  out.push(`Semantic version bump for the SDK: **${report.bump}** (${report.changes.length} change${report.changes.length === 1 ? "" : "s"}).`);
  const table = (title: string, rows: Report["changes"]) => {
    if (!rows.length) return;
    out.push("", `#### ${title}`, "", "| Rule | Bump | Location | Message |", "| --- | --- | --- | --- |");
    for (const c of rows) out.push(`| \`${c.rule}\` | ${c.bump} | \`${cell(c.path)}:${c.line}:${c.column}\` | ${cell(c.message)} |`);
  };
  table("Breaking", breaking);
  table("Other changes", rest);
  return out.join("\n") + "\n";
}
