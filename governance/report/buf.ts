// buf's own output formats (`buf breaking --error-format ...`), byte for byte for the same findings, so
// that problem matchers, CI parsers and dashboards written for buf keep working. Like buf, they list
// what fails the check and nothing else, one entry per rule's finding (the report's `failures`, where
// a rename is the findings buf prints for it, not grabbit's one change); an empty run prints nothing.
import { createHash } from "node:crypto";
import type { Change, Report } from "../diff.js";
import { RULE_BY_ID } from "../rules/catalog.js";

/** A finding with the end of its span, when the checker knows it (buf prints start and end). */
export type Located = Change & { endLine?: number; endColumn?: number };

const atLeast1 = (n: number | undefined) => (n === undefined || n <= 0 ? 1 : n);
const pathOf = (c: Located) => c.path || "<input>";
const endLine = (c: Located) => c.endLine ?? c.line;
const endColumn = (c: Located) => c.endColumn ?? c.column;

/** What buf would print: buf's findings in buf's order, then grabbit's own. */
export function failures(report: Report): Located[] {
  return report.failures;
}

/** Go's encoding/json escapes <, > and & (and U+2028/2029) in strings; so must we, to print the same bytes. */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** buf's FileAnnotation.String(): `path:line:column:message`. */
function annotation(c: Located): string {
  return `${pathOf(c)}:${atLeast1(c.line)}:${atLeast1(c.column)}:${c.message || c.rule || "FAILURE"}`;
}

export function bufText(report: Report): string {
  return failures(report)
    .map((c) => annotation(c) + "\n")
    .join("");
}

/** buf's json: one object per line (not grabbit's report object, which `--format json` prints). */
export function bufJson(report: Report): string {
  return failures(report)
    .map((c) => {
      const o: Record<string, unknown> = {};
      if (c.path) o.path = c.path;
      Object.assign(o, {
        start_line: atLeast1(c.line),
        start_column: atLeast1(c.column),
        end_line: atLeast1(endLine(c)),
        end_column: atLeast1(endColumn(c)),
      });
      if (c.rule) o.type = c.rule;
      if (c.message) o.message = c.message;
      return goJson(o) + "\n";
    })
    .join("");
}

export function msvs(report: Report): string {
  return failures(report)
    .map(
      (c) =>
        `${pathOf(c)}(${atLeast1(c.line)},${atLeast1(c.column)}) : error ${c.rule || "FAILURE"} : ${c.message || c.rule || "FAILURE"}\n`,
    )
    .join("");
}

/** Go's xml.EscapeText, as encoding/xml writes attribute values. */
function xmlAttr(s: string): string {
  return s.replace(
    /[&<>"'\t\n\r]/g,
    (ch) =>
      ({
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&#34;",
        "'": "&#39;",
        "\t": "&#x9;",
        "\n": "&#xA;",
        "\r": "&#xD;",
      })[ch]!,
  );
}

export function junit(report: Report): string {
  const found = failures(report);
  if (!found.length) return "";
  // One suite per file, as buf; grabbit's own findings, which follow buf's, get suites of their own
  // so that buf's suites (and their counts) stay as buf prints them.
  const suites: Array<{ path: string; own: boolean; list: Located[] }> = [];
  for (const c of found) {
    const own = RULE_BY_ID.get(c.rule)?.grabbit === true;
    const last = suites[suites.length - 1];
    if (last && last.path === pathOf(c) && last.own === own) last.list.push(c);
    else suites.push({ path: pathOf(c), own, list: [c] });
  }
  const out = ["<testsuites>"];
  for (const { path, list } of suites) {
    out.push(
      `  <testsuite name="${xmlAttr(path.replace(/\.proto$/, ""))}" tests="${list.length}" failures="${list.length}" errors="0">`,
    );
    for (const c of list) {
      const name = c.column
        ? `${c.rule}_${c.line}_${c.column}`
        : c.line
          ? `${c.rule}_${c.line}`
          : c.rule;
      out.push(`    <testcase name="${xmlAttr(name)}">`);
      out.push(
        `      <failure message="${xmlAttr(annotation(c))}" type="${xmlAttr(c.rule)}"></failure>`,
      );
      out.push("    </testcase>");
    }
    out.push("  </testsuite>");
  }
  out.push("</testsuites>");
  return out.join("\n") + "\n";
}

/** GitHub workflow commands, as buf writes them (the message as is, no title). */
export function githubActions(report: Report): string {
  return failures(report)
    .map((c) => {
      let s = `::error file=${pathOf(c)}`;
      if (c.line > 0) {
        s += `,line=${c.line}`;
        if (c.column > 0) s += `,col=${c.column}`;
        if (endLine(c) > 0) {
          s += `,endLine=${endLine(c)}`;
          if (endColumn(c) > 0) s += `,endColumn=${endColumn(c)}`;
        }
      }
      return `${s}::${c.message}\n`;
    })
    .join("");
}

/** GitLab Code Quality: one JSON array; each fingerprint is SHAKE256 (64 bytes) of the issue without it. */
export function gitlabCodeQuality(report: Report): string {
  const found = failures(report);
  if (!found.length) return "";
  const issues = found.map((c) => {
    const pos = (line: number, column: number) => ({
      ...(line ? { line } : {}),
      ...(column ? { column } : {}),
    });
    const issue: Record<string, unknown> = {};
    if (c.message) issue.description = c.message;
    if (c.rule) issue.check_name = c.rule;
    const location = {
      ...(c.path ? { path: c.path } : {}),
      positions: { begin: pos(c.line, c.column), end: pos(endLine(c), endColumn(c)) },
    };
    const body = { ...issue, location, severity: "minor" };
    const fingerprint = createHash("shake256", { outputLength: 64 })
      .update(goJson(body))
      .digest("hex");
    return { ...issue, fingerprint, location, severity: "minor" };
  });
  return goJson(issues) + "\n";
}
