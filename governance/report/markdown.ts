// A pull-request comment: verdict, the SDK's bump, then tables.
import type { Report } from "../diff.js";

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function markdown(report: Report): string {
  const breaking = report.changes.filter((c) => c.breaking);
  const rest = report.changes.filter((c) => !c.breaking);
  const out: string[] = [];
  out.push(
    `### grabbit breaking: ${breaking.length ? `:x: ${breaking.length} breaking change${breaking.length === 1 ? "" : "s"}` : ":white_check_mark: no breaking changes"}`,
  );
  out.push("");
  out.push(
    `Semantic version bump for the SDK: **${report.bump}** (${report.changes.length} change${report.changes.length === 1 ? "" : "s"}).`,
  );
  const table = (title: string, rows: Report["changes"]) => {
    if (!rows.length) return;
    out.push(
      "",
      `#### ${title}`,
      "",
      "| Rule | Bump | Location | Message |",
      "| --- | --- | --- | --- |",
    );
    for (const c of rows)
      out.push(
        `| \`${c.rule}\` | ${c.bump} | \`${cell(c.path)}:${c.line}:${c.column}\` | ${cell(c.message)} |`,
      );
  };
  table("Breaking", breaking);
  table("Other changes", rest);
  return out.join("\n") + "\n";
}
