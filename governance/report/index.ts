// Output formats. text and github-actions follow buf's shapes so existing log parsers and problem
// matchers keep working; json is the SPEC's object; markdown is written for a pull-request comment.
import type { Report } from "../diff.js";
import { githubActions } from "./github-actions.js";
import { json } from "./json.js";
import { markdown } from "./markdown.js";
import { text } from "./text.js";

export const FORMATS = ["text", "json", "github-actions", "markdown"] as const;
export type Format = (typeof FORMATS)[number];

export function render(report: Report, format: Format): string {
  switch (format) {
    case "json":
      return json(report);
    case "github-actions":
      return githubActions(report);
    case "markdown":
      return markdown(report);
    default:
      return text(report);
  }
}
