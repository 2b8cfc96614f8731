// Output formats. buf's (text, msvs, junit, github-actions, gitlab-code-quality, and json under
// --error-format) print exactly what buf prints for buf's findings, then grabbit's own findings in the
// same format (the report's `failures`); json under --format is the SPEC's report object (every change,
// breaking or not, with its semantic-version bump, a rename as one change); sarif is for code scanning
// and markdown for a pull-request comment, both of grabbit's changes.
import type { Report } from "../diff.js";
import { bufJson, bufText, githubActions, gitlabCodeQuality, junit, msvs } from "./buf.js";
import { json } from "./json.js";
import { markdown } from "./markdown.js";
import { sarif } from "./sarif.js";

export const FORMATS = [
  "text",
  "json",
  "msvs",
  "junit",
  "github-actions",
  "gitlab-code-quality",
  "sarif",
  "markdown",
] as const;
export type Format = (typeof FORMATS)[number];

/** `json` as buf prints it (one object per finding per line), for `--error-format json`. */
export type Flavour = "grabbit" | "buf";

export function render(report: Report, format: Format, flavour: Flavour = "grabbit"): string {
  switch (format) {
    case "json":
      return flavour === "buf" ? bufJson(report) : json(report);
    case "msvs":
      return msvs(report);
    case "junit":
      return junit(report);
    case "github-actions":
      return githubActions(report);
    case "gitlab-code-quality":
      return gitlabCodeQuality(report);
    case "sarif":
      return sarif(report);
    case "markdown":
      return markdown(report);
    default:
      return bufText(report);
  }
}
