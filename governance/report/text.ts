// buf's text shape with the rule ID, so log parsers and editors that read buf's output keep working.
import type { Report } from "../diff.js";

/** `path:line:column: RULE_ID message`, breaking changes first (as buf prints them), then the rest. */
export function text(report: Report): string {
  const line = (c: Report["changes"][number]) => `${c.path}:${c.line}:${c.column}: ${c.rule} ${c.message}\n`;
  return report.changes.filter((c) => c.breaking).map(line).join("") + report.changes.filter((c) => !c.breaking).map(line).join("");
}
