// Output formats against buf: for the same findings, every one of buf's formats prints what
// `buf breaking --error-format X` prints, byte for byte; and grabbit's own run on the same pair prints
// the same lines. SARIF is validated against the SARIF 2.1.0 schema (shipped by @microsoft/jest-sarif).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ajvDraft04 from "ajv-draft-04";
import * as ajvFormats from "ajv-formats";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../../governance/cli.js";
import type { Report } from "../../governance/diff.js";
import { render } from "../../governance/report/index.js";
import { BUF, ROOT, proto, tempDir, writeTree } from "./helpers.js";

const BUF_FORMATS = ["text", "json", "msvs", "junit", "github-actions", "gitlab-code-quality"] as const;

// Several findings over two files, with quotes, a map type (<, >) and a deleted file in the messages.
const OLD = {
  "demo/v1/a.proto": proto('message A {\n  string name = 1;\n  int32 id = 2;\n  map<string, int32> counts = 3;\n  reserved 9;\n}\n\nenum E {\n  E_UNSPECIFIED = 0;\n  E_ONE = 1;\n}'),
  "demo/v1/b.proto": proto("message B {\n  string id = 1;\n  string note = 2;\n}"),
  "demo/v1/gone.proto": proto("message Gone {\n  string id = 1;\n}"),
};
const NEW = {
  "demo/v1/a.proto": proto("message A {\n  int64 name = 1;\n  string counts = 3;\n}\n\nenum E {\n  E_UNSPECIFIED = 0;\n}"),
  "demo/v1/b.proto": proto("message B {\n  string id = 1;\n}"),
};

let dir = "";
const bufOut: Record<string, string> = {};

beforeAll(() => {
  dir = tempDir();
  writeTree(join(dir, "old"), OLD);
  writeTree(join(dir, "new"), NEW);
  for (const f of BUF_FORMATS) {
    const r = spawnSync(BUF, ["breaking", "new", "--against", "old", "--error-format", f], { cwd: dir, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(100);
    bufOut[f] = r.stdout;
  }
});

/** buf's own findings (from its json) as grabbit's report, ends included. */
function bufReport(): Report {
  const changes = bufOut.json!
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { path?: string; start_line: number; start_column: number; end_line: number; end_column: number; type: string; message: string })
    // A finding without a file (a deleted file) has no position either: buf prints <input> and 1:1.
    .map((x) => {
      const at = x.path === undefined ? { line: 0, column: 0, endLine: 0, endColumn: 0 } : { line: x.start_line, column: x.start_column, endLine: x.end_line, endColumn: x.end_column };
      return { rule: x.type, breaking: true, bump: "major" as const, categories: [], path: x.path ?? "", ...at, message: x.message };
    });
  return { bump: "major", changes };
}

// grabbit's own run: a pair without the deleted file (buf prints a deleted file as <input> with no
// position; where grabbit prints it is the checker's business, not the formats').
let dir2 = "";
const bufOut2: Record<string, string> = {};
beforeAll(() => {
  dir2 = tempDir();
  // Nor the map field turned scalar: how buf words that type change is the checker's parity too.
  const noMap = (t: Record<string, string>) => ({ ...t, "demo/v1/a.proto": t["demo/v1/a.proto"]!.replace(/^ *(map<string, int32>|string) counts = 3;\n/m, "") });
  const { "demo/v1/gone.proto": _gone, ...old } = OLD;
  writeTree(join(dir2, "old"), noMap(old));
  writeTree(join(dir2, "new"), noMap(NEW));
  for (const f of BUF_FORMATS) bufOut2[f] = spawnSync(BUF, ["breaking", "new", "--against", "old", "--error-format", f], { cwd: dir2, encoding: "utf8" }).stdout;
});

async function run(args: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = "";
  const code = await main(["breaking", "new", "--against", "old", ...args], { cwd: dir2, isTTY: false, stdout: (s) => void (stdout += s), stderr: () => {} });
  return { code, stdout };
}

describe("buf's formats, for the same findings", () => {
  it.each(BUF_FORMATS)("%s is what buf prints", (format) => {
    expect(render(bufReport(), format, "buf")).toBe(bufOut[format]);
  });

  it("an empty run prints nothing, as buf", () => {
    for (const f of BUF_FORMATS) expect(render({ bump: "none", changes: [] }, f, "buf")).toBe("");
  });
});

describe("grabbit's own run on the pair", () => {
  // Every format, ends included (github-actions, json and gitlab-code-quality print where each span
  // ends, and gitlab-code-quality's fingerprint hashes them): grabbit's run matches buf byte for byte.
  it.each(BUF_FORMATS)("--error-format %s prints buf's output", async (format) => {
    const r = await run(["--error-format", format]);
    expect(r.code).toBe(100);
    expect(r.stdout).toBe(bufOut2[format]);
  });

  it("--format json stays grabbit's report object", async () => {
    const r = await run(["--format", "json"]);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.bump).toBe("major");
    expect(report.changes.filter((c) => c.breaking).length).toBe(bufOut2.text!.trim().split("\n").length);
  });
});

describe("SARIF 2.1.0", () => {
  const schema = JSON.parse(readFileSync(join(ROOT, "node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json"), "utf8")) as object;
  // CommonJS modules under NodeNext: the class is the default of the module object (module.exports.default).
  const Ajv = ajvDraft04.default.default;
  const addFormats = ajvFormats.default.default;
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false });
  addFormats(ajv);
  const validate = ajv.compile(schema);

  it("is valid against the SARIF 2.1.0 schema, one result per breaking finding", async () => {
    const r = await run(["--format", "sarif"]);
    expect(r.code).toBe(100);
    const log = JSON.parse(r.stdout) as { version: string; runs: Array<{ tool: { driver: { name: string; rules: Array<{ id: string }> } }; results: Array<{ ruleId: string; ruleIndex: number; level: string; locations: Array<{ physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } } }> }> }> };
    expect(validate(log), JSON.stringify(validate.errors, null, 2)).toBe(true);
    expect(log.version).toBe("2.1.0");
    const results = log.runs[0]!.results;
    expect(results).toHaveLength(bufOut2.text!.trim().split("\n").length);
    for (const res of results) {
      expect(res.level).toBe("error");
      expect(log.runs[0]!.tool.driver.rules[res.ruleIndex]!.id).toBe(res.ruleId);
    }
    expect(results.some((res) => res.locations[0]?.physicalLocation.artifactLocation.uri === "new/demo/v1/b.proto")).toBe(true);
  });

  it("an empty run is a valid log with no results", () => {
    const log = JSON.parse(render({ bump: "none", changes: [] }, "sarif")) as object;
    expect(validate(log), JSON.stringify(validate.errors)).toBe(true);
  });

  it("is refused by the schema when broken (the validator validates)", () => {
    expect(validate({ version: "2.1.0", runs: [{ tool: {} }] })).toBe(false);
  });
});
