// The SPEC's object: {"bump": ..., "changes": [{rule, breaking, bump, categories, path, line, column, message}]}.
import type { Report } from "../diff.js";

export function json(report: Report): string {
  return JSON.stringify({ bump: report.bump, changes: report.changes }) + "\n";
}
