// GitHub workflow commands: each change becomes an annotation on its line of the pull request.
import type { Report } from "../diff.js";

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
