// buf.yaml and buf.work.yaml as buf reads them, with the installed buf as the oracle: for each shape of
// configuration, `grabbit breaking --error-format json` and `buf breaking --error-format json` agree on
// the exit code and on the findings (path, start, rule); a configuration buf refuses is refused too,
// with one sentence at file:line:column and exit 1.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../cli/main.js";
import { BUF, grabbit, proto, tempDir, writeTree, type Tree } from "./helpers.js";

interface Side {
  code: number;
  findings: string[];
  stderr: string;
}

const findings = (stdout: string) =>
  stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map(
      (l) =>
        JSON.parse(l) as { path?: string; start_line: number; start_column: number; type: string },
    )
    .map((x) => `${x.path ?? "<input>"}:${x.start_line}:${x.start_column} ${x.type}`)
    .sort();

/** Runs both tools in `cwd` with the same arguments. */
async function both(cwd: string, args: string[]): Promise<{ buf: Side; grabbit: Side }> {
  const b = spawnSync(BUF, ["breaking", ...args, "--error-format", "json"], {
    cwd,
    encoding: "utf8",
  });
  let stdout = "";
  let stderr = "";
  const code = await main(["breaking", ...args, "--error-format", "json"], {
    cwd,
    isTTY: false,
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
  });
  return {
    buf: { code: b.status ?? -1, findings: findings(b.stdout ?? ""), stderr: b.stderr ?? "" },
    grabbit: { code, findings: findings(stdout), stderr },
  };
}

const message = (fields: string) => `message Order {\n${fields}}\n`;
// Deleting field 2 while reserving its number: FILE breaks (FIELD_NO_DELETE), WIRE and WIRE_JSON
// do not (WIRE_JSON still wants the name reserved: FIELD_NO_DELETE_UNLESS_NAME_RESERVED).
const BEFORE = proto(message("  string id = 1;\n  string note = 2;\n"));
const AFTER = proto(message("  string id = 1;\n  reserved 2;\n"));

/** old/ and new/ with the same buf.yaml (and more files) on both sides; checks run inside new/. */
function pair(
  config: Tree,
  files: { before: Tree; after: Tree } = {
    before: { "demo/v1/demo.proto": BEFORE },
    after: { "demo/v1/demo.proto": AFTER },
  },
): string {
  const dir = tempDir();
  writeTree(join(dir, "old"), { ...files.before, ...config });
  writeTree(join(dir, "new"), { ...files.after, ...config });
  return dir;
}

async function agree(config: Tree, files?: { before: Tree; after: Tree }): Promise<Side> {
  const dir = pair(config, files);
  const r = await both(join(dir, "new"), ["--against", "../old"]);
  expect(r.grabbit.code, r.grabbit.stderr).toBe(r.buf.code);
  expect(r.grabbit.findings).toEqual(r.buf.findings);
  return r.grabbit;
}

describe("buf.yaml shapes, checked against buf", () => {
  it("v2 with a flow map: breaking: {use: [WIRE_JSON]}", async () => {
    const r = await agree({ "buf.yaml": "version: v2\nbreaking: {use: [WIRE_JSON]}\n" });
    expect(r.findings).toEqual(["demo/v1/demo.proto:5:1 FIELD_NO_DELETE_UNLESS_NAME_RESERVED"]);
  });

  it("v2 with a flow map that passes: breaking: {use: [WIRE]}", async () => {
    const r = await agree({ "buf.yaml": "version: v2\nbreaking: {use: [WIRE]}\n" });
    expect(r.code).toBe(0);
  });

  it("v2 block style with except, quoted IDs and comments", async () => {
    await agree({
      "buf.yaml":
        "version: v2 # the config\nbreaking:\n  use:\n    - 'FILE'\n  except:\n    - \"FIELD_NO_DELETE\" # allowed here\n",
    });
  });

  it("v1 with ignore_only as a flow map", async () => {
    const r = await agree({
      "buf.yaml":
        "version: v1\nbreaking:\n  use: [FILE]\n  ignore_only: {FIELD_NO_DELETE: [demo/v1]}\n",
    });
    expect(r.code).toBe(0);
  });

  it("v1 with a deprecated rule ID (FIELD_SAME_LABEL) is accepted, as buf accepts it", async () => {
    await agree({ "buf.yaml": "version: v1\nbreaking:\n  use: [FIELD_SAME_LABEL, WIRE]\n" });
  });

  it("v2 modules, each with its own breaking section; the top-level one for modules without", async () => {
    const m = (pkg: string, fields: string) =>
      proto(message(fields), `syntax = "proto3";\n\npackage ${pkg};\n`);
    const before = {
      "a/pa/x.proto": m("pa", "  string s = 1;\n"),
      "b/pb/x.proto": m("pb", "  string s = 1;\n"),
    };
    const after = {
      "a/pa/x.proto": m("pa", "  reserved 1;\n"),
      "b/pb/x.proto": m("pb", "  reserved 1;\n"),
    };
    const yaml =
      "version: v2\nmodules:\n  - path: a\n    breaking: {use: [WIRE]}\n  - path: b\nbreaking:\n  use: [FILE]\n";
    const r = await agree({ "buf.yaml": yaml }, { before, after });
    // Only module b (FILE, from the top level) breaks; module a runs WIRE, which a reserved number passes.
    expect(r.findings).toEqual(["b/pb/x.proto:5:1 FIELD_NO_DELETE"]);
    // And the other way round: module b's own section decides for b.
    const flipped =
      "version: v2\nmodules:\n  - path: a\n  - path: b\n    breaking:\n      use: [WIRE]\n";
    expect((await agree({ "buf.yaml": flipped }, { before, after })).findings).toEqual([
      "a/pa/x.proto:5:1 FIELD_NO_DELETE",
    ]);
  });

  it("buf.work.yaml: each directory's buf.yaml has its own section", async () => {
    const m = (pkg: string, fields: string) =>
      proto(message(fields), `syntax = "proto3";\n\npackage ${pkg};\n`);
    const config = {
      "buf.work.yaml": "version: v1\ndirectories: [a, b]\n",
      "a/buf.yaml": "version: v1\nbreaking: {use: [WIRE]}\n",
      "b/buf.yaml": "version: v1\n",
    };
    const r = await agree(config, {
      before: {
        "a/pa/x.proto": m("pa", "  string s = 1;\n"),
        "b/pb/x.proto": m("pb", "  string s = 1;\n"),
      },
      after: {
        "a/pa/x.proto": m("pa", "  reserved 1;\n"),
        "b/pb/x.proto": m("pb", "  reserved 1;\n"),
      },
    });
    expect(r.findings).toEqual(["b/pb/x.proto:5:1 FIELD_NO_DELETE"]);
  });
});

describe("configurations buf refuses: one sentence at file:line:column, exit 1", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["bad YAML", "version: v2\nbreaking:\n  use: [WIRE\n", /buf\.yaml:\d+:\d+: not valid YAML \(/],
    [
      "an unknown key in breaking",
      "version: v2\nbreaking:\n  usee: [WIRE]\n",
      /buf\.yaml:3:3: unknown key "usee" in breaking \(buf refuses it/,
    ],
    [
      "an unknown top-level key",
      "version: v2\nfoo: 1\n",
      /buf\.yaml:2:1: unknown key "foo" in a v2 buf\.yaml/,
    ],
    [
      "a string where buf wants a list",
      "version: v2\nbreaking:\n  use: WIRE\n",
      /buf\.yaml:3:8: breaking\.use must be a list/,
    ],
    [
      "a string list where buf wants a map of lists",
      "version: v2\nbreaking:\n  ignore_only: {FIELD_NO_DELETE: a.proto}\n",
      /buf\.yaml:3:34: breaking\.ignore_only\.FIELD_NO_DELETE must be a list/,
    ],
    [
      "a number where buf wants a bool",
      "version: v2\nbreaking:\n  ignore_unstable_packages: 3\n",
      /buf\.yaml:3:29: breaking\.ignore_unstable_packages must be true or false/,
    ],
    [
      "a key given twice",
      "version: v2\nbreaking:\n  use: [WIRE]\n  use: [FILE]\n",
      /buf\.yaml:4:3: a key is given twice/,
    ],
    [
      "an unknown rule",
      "version: v2\nbreaking:\n  use:\n    - NO_SUCH\n",
      /buf\.yaml:4:7: "NO_SUCH" is not a known rule or category ID/,
    ],
    [
      "a v2-only rule ID deprecated in v1 only",
      "version: v2\nbreaking:\n  use: [FIELD_SAME_LABEL]\n",
      /buf\.yaml:3:9: "FIELD_SAME_LABEL" is not a known rule or category ID/,
    ],
    ["no version", "breaking: {use: [WIRE]}\n", /buf\.yaml:1:1: "version" is not set/],
    ["an unknown version", "version: v3\n", /buf\.yaml:1:10: unknown version "v3"/],
    [
      "build.roots on v1",
      "version: v1\nbuild: {roots: [x]}\n",
      /buf\.yaml:2:9: build\.roots cannot be set on version v1/,
    ],
    [
      "a module that is not a mapping",
      "version: v2\nmodules: [a]\n",
      /buf\.yaml:2:11: a module must be a mapping/,
    ],
  ];
  it.each(cases)("%s", async (_name, yaml, sentence) => {
    const dir = pair({ "buf.yaml": yaml });
    const r = await both(join(dir, "new"), ["--against", "../old"]);
    expect(r.buf.code).toBe(1);
    expect(r.grabbit.code).toBe(1);
    expect(r.grabbit.stderr).toMatch(sentence);
    // One sentence on one line.
    expect(r.grabbit.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("a bad buf.work.yaml", async () => {
    const dir = pair({ "buf.work.yaml": "version: v1\ndirectories: a\n" });
    const r = await grabbit(join(dir, "new"), ["breaking", "--against", "../old"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/buf\.work\.yaml:2:14: directories must be a list/);
  });
});

describe("--config, --against-config, --path and --exclude-path as buf has them", () => {
  it("--config data and --against-config file", async () => {
    const dir = pair({});
    writeTree(dir, { "wire.yaml": "version: v2\nbreaking:\n  use: [WIRE]\n" });
    const data = await both(join(dir, "new"), [
      "--against",
      "../old",
      "--config",
      "version: v2\nbreaking:\n  use: [WIRE_JSON]\n",
    ]);
    expect(data.grabbit).toMatchObject({ code: data.buf.code, findings: data.buf.findings });
    expect(data.grabbit.findings).toEqual([
      "demo/v1/demo.proto:5:1 FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
    ]);
    const files = await both(join(dir, "new"), [
      "--against",
      "../old",
      "--config",
      "../wire.yaml",
      "--against-config",
      "../wire.yaml",
    ]);
    expect(files.grabbit).toMatchObject({ code: 0, findings: files.buf.findings });
    expect(files.buf.code).toBe(0);
  });

  it("an input inside the configured module is refused, as buf refuses it", async () => {
    const dir = pair({});
    const r = await both(dir, ["new", "--against", "old", "--config", "version: v2\n"]);
    expect(r.buf.code).toBe(1);
    expect(r.grabbit.code).toBe(1);
    expect(r.grabbit.stderr).toMatch(
      /^grabbit breaking: input: cannot build "new": failed to build input "new" because it is contained by module/,
    );
  });

  it("--path and --exclude-path limit both sides, against a git ref", async () => {
    const dir = tempDir();
    const two = (note: boolean): Tree => ({
      "buf.yaml": "version: v2\n",
      "demo/v1/a.proto": proto(
        `message A {\n  string id = 1;\n${note ? "  string note = 2;\n" : ""}}`,
      ),
      "demo/v2/b.proto": proto(
        `message B {\n  string id = 1;\n${note ? "  string note = 2;\n" : ""}}`,
        'syntax = "proto3";\n\npackage demo.v2;\n',
      ),
    });
    writeTree(dir, two(true));
    const git = (...a: string[]) => spawnSync("git", a, { cwd: dir, encoding: "utf8" });
    git("init", "-q", "-b", "main");
    git("add", ".");
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "v1");
    writeTree(dir, two(false));
    for (const args of [
      ["--path", "demo/v1/a.proto"],
      ["--path", "demo/v2"],
      ["--exclude-path", "demo/v1"],
      ["--exclude-path", "demo"],
      ["--path", "nowhere"],
      ["--path", "demo/v1", "--exclude-path", "demo/v1"],
    ]) {
      const r = await both(dir, ["--against", ".git#branch=main", ...args]);
      expect({ args, code: r.grabbit.code, findings: r.grabbit.findings }).toEqual({
        args,
        code: r.buf.code,
        findings: r.buf.findings,
      });
    }
  });
});
