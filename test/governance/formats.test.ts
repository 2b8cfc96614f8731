// Output formats against buf: for the same findings, every one of buf's formats prints what
// `buf breaking --error-format X` prints, byte for byte; grabbit's own run on the same pair prints the
// same bytes, and on a pair of renames buf's lines as buf prints them, grabbit's own findings after. SARIF is validated against the SARIF 2.1.0 schema (shipped by @microsoft/jest-sarif).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ajvDraft04 from "ajv-draft-04";
import * as ajvFormats from "ajv-formats";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../../cli/main.js";
import type { Report } from "../../governance/diff.js";
import { render } from "../../governance/report/index.js";
import { BUF, ROOT, proto, tempDir, writeTree } from "./helpers.js";

const BUF_FORMATS = [
  "text",
  "json",
  "msvs",
  "junit",
  "github-actions",
  "gitlab-code-quality",
] as const;

// Several findings over two files, with quotes, a map type (<, >) and a deleted file in the messages.
const OLD = {
  "demo/v1/a.proto": proto(
    "message A {\n  string name = 1;\n  int32 id = 2;\n  map<string, int32> counts = 3;\n  reserved 9;\n}\n\nenum E {\n  E_UNSPECIFIED = 0;\n  E_ONE = 1;\n}",
  ),
  "demo/v1/b.proto": proto("message B {\n  string id = 1;\n  string note = 2;\n}"),
  "demo/v1/gone.proto": proto("message Gone {\n  string id = 1;\n}"),
};
const NEW = {
  "demo/v1/a.proto": proto(
    "message A {\n  int64 name = 1;\n  string counts = 3;\n}\n\nenum E {\n  E_UNSPECIFIED = 0;\n}",
  ),
  "demo/v1/b.proto": proto("message B {\n  string id = 1;\n}"),
};

let dir = "";
const bufOut: Record<string, string> = {};

beforeAll(() => {
  dir = tempDir();
  writeTree(join(dir, "old"), OLD);
  writeTree(join(dir, "new"), NEW);
  for (const f of BUF_FORMATS) {
    const r = spawnSync(BUF, ["breaking", "new", "--against", "old", "--error-format", f], {
      cwd: dir,
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(100);
    bufOut[f] = r.stdout;
  }
});

/** buf's own findings (from its json) as grabbit's report, ends included. */
function bufReport(): Report {
  const failures = bufOut
    .json!.trim()
    .split("\n")
    .map(
      (l) =>
        JSON.parse(l) as {
          path?: string;
          start_line: number;
          start_column: number;
          end_line: number;
          end_column: number;
          type: string;
          message: string;
        },
    )
    // A finding without a file (a deleted file) has no position either: buf prints <input> and 1:1.
    .map((x) => {
      const at =
        x.path === undefined
          ? { line: 0, column: 0, endLine: 0, endColumn: 0 }
          : {
              line: x.start_line,
              column: x.start_column,
              endLine: x.end_line,
              endColumn: x.end_column,
            };
      return {
        rule: x.type,
        breaking: true,
        bump: "major" as const,
        categories: [],
        path: x.path ?? "",
        ...at,
        message: x.message,
      };
    });
  return { bump: "major", changes: failures, failures };
}

const EMPTY: Report = { bump: "none", changes: [], failures: [] };

async function run(
  cwd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(["breaking", "new", "--against", "old", ...args], {
    cwd,
    isTTY: false,
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
  });
  return { code, stdout, stderr };
}

describe("buf's formats, for the same findings", () => {
  it.each(BUF_FORMATS)("%s is what buf prints", (format) => {
    expect(render(bufReport(), format, "buf")).toBe(bufOut[format]);
  });

  it("an empty run prints nothing, as buf", () => {
    for (const f of BUF_FORMATS) expect(render(EMPTY, f, "buf")).toBe("");
  });
});

describe("grabbit's own run on the pair", () => {
  // Every format, ends included (github-actions, json and gitlab-code-quality print where each span
  // ends, and gitlab-code-quality's fingerprint hashes them), and the deleted file without a path:
  // grabbit's run matches buf byte for byte.
  it.each(BUF_FORMATS)("--error-format %s prints buf's output", async (format) => {
    const r = await run(dir, ["--error-format", format]);
    expect(r.code).toBe(100);
    expect(r.stdout).toBe(bufOut[format]);
  });

  it("--format json stays grabbit's report object, the deleted file at its previous path", async () => {
    const r = await run(dir, ["--format", "json"]);
    const report = JSON.parse(r.stdout) as Report;
    expect(Object.keys(report)).toEqual(["bump", "changes"]);
    expect(report.bump).toBe("major");
    expect(report.changes.filter((c) => c.breaking).length).toBe(
      bufOut.text!.trim().split("\n").length,
    );
    expect(report.changes.find((c) => c.rule === "FILE_NO_DELETE")!.path).toBe(
      "old/demo/v1/gone.proto",
    );
  });
});

// A rename with grabbit's rules on (the default): buf prints a finding per rule (FIELD_SAME_NAME and
// FIELD_SAME_JSON_NAME for a field, MESSAGE_NO_DELETE and PACKAGE_MESSAGE_NO_DELETE for a message);
// grabbit's JSON folds each rename into one change, but its buf formats print buf's lines as they
// are, then grabbit's own findings (TYPESCRIPT_*) after them.
describe("renames in buf's formats, grabbit's rules on", () => {
  const yaml = "version: v2\nbreaking:\n  use: [FILE, PACKAGE]\n";
  let rdir = "";
  const renamed: Record<string, string> = {};
  beforeAll(() => {
    rdir = tempDir();
    writeTree(join(rdir, "old"), {
      "buf.yaml": yaml,
      "demo/v1/a.proto": proto(
        "message Order {\n  string order_id = 1;\n  int32 n = 2;\n}\n\nmessage Line {\n  string sku = 1;\n}",
      ),
    });
    writeTree(join(rdir, "new"), {
      "buf.yaml": yaml,
      "demo/v1/a.proto": proto(
        "message Order {\n  string purchase_id = 1;\n  int32 n = 2;\n}\n\nmessage Item {\n  string sku = 1;\n}",
      ),
    });
    for (const f of BUF_FORMATS) {
      const r = spawnSync(BUF, ["breaking", "new", "--against", "old", "--error-format", f], {
        cwd: rdir,
        encoding: "utf8",
      });
      expect(r.status, r.stderr).toBe(100);
      renamed[f] = r.stdout;
    }
  });
  const lines = (s: string) => s.split("\n").slice(0, -1);
  const own = ["TYPESCRIPT_FIELD_RENAMED", "TYPESCRIPT_MESSAGE_RENAMED"];

  it("buf reports each rename as several findings", () => {
    const types = lines(renamed.json!).map((l) => (JSON.parse(l) as { type: string }).type);
    expect(types.sort()).toEqual([
      "FIELD_SAME_JSON_NAME",
      "FIELD_SAME_NAME",
      "MESSAGE_NO_DELETE",
      "PACKAGE_MESSAGE_NO_DELETE",
    ]);
  });

  it("grabbit's JSON folds each rename into one change", async () => {
    const report = JSON.parse((await run(rdir, ["--format", "json"])).stdout) as Report;
    const breaking = report.changes.filter((c) => c.breaking);
    expect(breaking.map((c) => c.rule)).toEqual(["FIELD_SAME_NAME", "TYPESCRIPT_MESSAGE_RENAMED"]);
    expect(breaking[0]!.message).toMatch(
      /\(also FIELD_SAME_JSON_NAME, TYPESCRIPT_FIELD_RENAMED\)$/,
    );
    expect(breaking[1]!.message).toMatch(/\(also MESSAGE_NO_DELETE, PACKAGE_MESSAGE_NO_DELETE\)$/);
  });

  // Formats of one line per finding: buf's lines first, identical, then one line per grabbit finding.
  it.each(["text", "json", "msvs", "github-actions"] as const)(
    "%s: buf's lines as buf prints them, then grabbit's",
    async (format) => {
      const r = await run(rdir, ["--error-format", format]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(100);
      const theirs = lines(renamed[format]!);
      const ours = lines(r.stdout);
      expect(ours.slice(0, theirs.length)).toEqual(theirs);
      const extra = ours.slice(theirs.length);
      expect(extra).toHaveLength(2);
      // (json escapes the quotes)
      expect(extra[0]).toMatch(/TypeScript property from \\?"orderId\\?" to \\?"purchaseId\\?"/);
      expect(extra[1]).toMatch(/\\?"demo\.v1\.Line\\?" was renamed to \\?"demo\.v1\.Item\\?"/);
      expect(r.stdout).not.toMatch(/\(also |\(renamed to /);
    },
  );

  it("junit: buf's suites as buf prints them, grabbit's findings in a suite of their own after them", async () => {
    const ours = lines((await run(rdir, ["--error-format", "junit"])).stdout);
    const theirs = lines(renamed.junit!);
    // buf's document up to its closing </testsuites>, then grabbit's suite, then the closing tag.
    expect(ours.slice(0, theirs.length - 1)).toEqual(theirs.slice(0, -1));
    expect(ours[theirs.length - 1]).toBe(
      '  <testsuite name="new/demo/v1/a" tests="2" failures="2" errors="0">',
    );
    expect(ours.at(-1)).toBe("</testsuites>");
    const cases = (ls: string[]) =>
      ls
        .filter((l) => l.includes("<testcase "))
        .map((l) => /name="([A-Z_]+?)(_\d+)*"/.exec(l)?.[1]);
    expect(cases(ours)).toEqual([...cases(theirs), ...own]);
  });

  it("gitlab-code-quality: buf's issues as buf prints them (fingerprints too), then grabbit's", async () => {
    const theirs = JSON.parse(renamed["gitlab-code-quality"]!) as Array<{ check_name: string }>;
    const ours = JSON.parse(
      (await run(rdir, ["--error-format", "gitlab-code-quality"])).stdout,
    ) as Array<{ check_name: string }>;
    expect(ours.slice(0, theirs.length)).toEqual(theirs);
    expect(ours.slice(theirs.length).map((i) => i.check_name)).toEqual(own);
  });

  it("with only buf's rules selected, every format is buf's output byte for byte", async () => {
    for (const f of BUF_FORMATS)
      expect((await run(rdir, ["--error-format", f, "--use", "FILE,PACKAGE"])).stdout, f).toBe(
        renamed[f],
      );
  });

  it("SARIF and markdown are grabbit's: one alert per rename", async () => {
    const sarif = JSON.parse((await run(rdir, ["--format", "sarif"])).stdout) as {
      runs: Array<{ results: Array<{ ruleId: string }> }>;
    };
    expect(sarif.runs[0]!.results.map((x) => x.ruleId)).toEqual([
      "FIELD_SAME_NAME",
      "TYPESCRIPT_MESSAGE_RENAMED",
    ]);
    expect((await run(rdir, ["--format", "markdown"])).stdout).toMatch(/:x: 2 breaking changes/);
  });
});

describe("SARIF 2.1.0", () => {
  const schema = JSON.parse(
    readFileSync(
      join(ROOT, "node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json"),
      "utf8",
    ),
  ) as object;
  // CommonJS modules under NodeNext: the class is the default of the module object (module.exports.default).
  const Ajv = ajvDraft04.default.default;
  const addFormats = ajvFormats.default.default;
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false });
  addFormats(ajv);
  const validate = ajv.compile(schema);

  it("is valid against the SARIF 2.1.0 schema, one result per breaking finding", async () => {
    const r = await run(dir, ["--format", "sarif"]);
    expect(r.code).toBe(100);
    const log = JSON.parse(r.stdout) as {
      version: string;
      runs: Array<{
        tool: { driver: { name: string; rules: Array<{ id: string }> } };
        results: Array<{
          ruleId: string;
          ruleIndex: number;
          level: string;
          locations: Array<{
            physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } };
          }>;
        }>;
      }>;
    };
    expect(validate(log), JSON.stringify(validate.errors, null, 2)).toBe(true);
    expect(log.version).toBe("2.1.0");
    const results = log.runs[0]!.results;
    expect(results).toHaveLength(bufOut.text!.trim().split("\n").length);
    for (const res of results) {
      expect(res.level).toBe("error");
      expect(log.runs[0]!.tool.driver.rules[res.ruleIndex]!.id).toBe(res.ruleId);
    }
    expect(
      results.some(
        (res) => res.locations[0]?.physicalLocation.artifactLocation.uri === "new/demo/v1/b.proto",
      ),
    ).toBe(true);
  });

  it("an empty run is a valid log with no results", () => {
    const log = JSON.parse(render(EMPTY, "sarif")) as object;
    expect(validate(log), JSON.stringify(validate.errors)).toBe(true);
  });

  it("is refused by the schema when broken (the validator validates)", () => {
    expect(validate({ version: "2.1.0", runs: [{ tool: {} }] })).toBe(false);
  });
});
