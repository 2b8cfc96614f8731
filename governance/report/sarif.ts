// SARIF 2.1.0 for code scanning (github/codeql-action/upload-sarif): one run of the grabbit tool, its
// rules with their descriptions, and one result per breaking change at its span: grabbit's view, where
// a rename several rules saw is one alert naming them all. Non-breaking changes are not alerts and are
// left out, as buf's formats leave them out.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Report } from "../diff.js";
import { RULE_BY_ID } from "../rules/catalog.js";

const SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json";

function toolVersion(): string | undefined {
  // governance/report/ in the sources, dist/governance/report/ when built: the package.json above.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, "package.json");
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "grabbit") return pkg.version;
    }
    dir = dirname(dir);
  }
  return undefined;
}

export function sarif(report: Report): string {
  const found = report.changes.filter((c) => c.breaking);
  const ids = [...new Set(found.map((c) => c.rule))].sort();
  const version = toolVersion();
  const rules = ids.map((id) => {
    const info = RULE_BY_ID.get(id);
    return {
      id,
      name: id,
      shortDescription: { text: info?.purpose ?? id },
      defaultConfiguration: { level: "error" },
      properties: { tags: ["breaking-change", ...(info?.categories ?? [])] },
    };
  });
  const results = found.map((c) => ({
    ruleId: c.rule,
    ruleIndex: ids.indexOf(c.rule),
    level: "error",
    message: { text: c.message },
    locations: c.path
      ? [
          {
            physicalLocation: {
              artifactLocation: { uri: encodeURI(c.path) },
              region: {
                startLine: Math.max(1, c.line),
                startColumn: Math.max(1, c.column),
                ...(c.endLine !== undefined ? { endLine: Math.max(1, c.endLine) } : {}),
                ...(c.endColumn !== undefined ? { endColumn: Math.max(1, c.endColumn) } : {}),
              },
            },
          },
        ]
      : [],
    partialFingerprints: { "grabbitFinding/v1": `${c.rule}:${c.path}:${c.message}` },
  }));
  const log = {
    $schema: SCHEMA,
    version: "2.1.0",
    runs: [
      {
        tool: {
          driver: {
            name: "grabbit",
            informationUri: "https://github.com/grabbit/grabbit",
            ...(version ? { version, semanticVersion: version } : {}),
            rules,
          },
        },
        results,
        properties: { bump: report.bump },
      },
    ],
  };
  return JSON.stringify(log, null, 2) + "\n";
}
