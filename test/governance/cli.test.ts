// The CLI around the rules: configuration, in-proto acceptance, renames, semantic versions, formats,
// exit codes, and inputs of every kind (directories, images, git refs, broken ones).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { changedFiles } from "../../governance/changed.js";
import { BUF, ROOT, compareTrees, grabbit, proto, tempDir, writeTree } from "./helpers.js";

const demo = (body: string) => ({ "demo/v1/demo.proto": proto(body) });
const OLD = demo(`
// An order.
message Order {
  string id = 1;
  int32 count = 2;
  string note = 3;
}
`);

describe("exit codes and the json report", () => {
  it("exits 0 with bump none when nothing changed", async () => {
    const r = await compareTrees(OLD, OLD);
    expect(r.code).toBe(0);
    expect(r.report).toEqual({ bump: "none", changes: [] });
  });

  it("exits 100 on a breaking change, with exactly the SPEC's keys", async () => {
    const r = await compareTrees(
      OLD,
      demo(`
// An order.
message Order {
  string id = 1;
  int32 count = 2;
}
`),
    );
    expect(r.code).toBe(100);
    expect(Object.keys(r.report!)).toEqual(["bump", "changes"]);
    expect(r.report!.bump).toBe("major");
    const c = r.report!.changes[0]!;
    expect(Object.keys(c)).toEqual([
      "rule",
      "breaking",
      "bump",
      "categories",
      "path",
      "line",
      "column",
      "endLine",
      "endColumn",
      "message",
    ]);
    expect(c).toMatchObject({
      rule: "FIELD_NO_DELETE",
      breaking: true,
      bump: "major",
      categories: ["FILE", "PACKAGE"],
      path: "new/demo/v1/demo.proto",
      line: 6,
      column: 1,
    });
    expect(c.message).toBe(
      'Previously present field "3" with name "note" on message "Order" was deleted.',
    );
  });

  it("exits 0 on additions and classifies them minor", async () => {
    const r = await compareTrees(
      OLD,
      demo(`
// An order.
message Order {
  string id = 1;
  int32 count = 2;
  string note = 3;
  bool urgent = 4;
}

message Refund {
  string order_id = 1;
}
`),
    );
    expect(r.code).toBe(0);
    expect(r.report!.bump).toBe("minor");
    expect(r.report!.changes.map((c) => [c.rule, c.breaking, c.bump, c.line])).toEqual([
      ["FIELD_ADDED", false, "minor", 10],
      ["MESSAGE_ADDED", false, "minor", 13],
    ]);
  });

  it("classifies a deprecation minor and a comment-only edit patch", async () => {
    const deprecated = await compareTrees(
      OLD,
      demo(`
// An order.
message Order {
  string id = 1;
  int32 count = 2;
  string note = 3 [deprecated = true];
}
`),
    );
    expect(deprecated.code).toBe(0);
    expect(deprecated.report!.changes.map((c) => [c.rule, c.bump])).toEqual([
      ["DEPRECATED", "minor"],
    ]);
    const comment = await compareTrees(
      OLD,
      demo(`
// An order placed by a customer.
message Order {
  string id = 1;
  int32 count = 2;
  string note = 3;
}
`),
    );
    expect(comment.report).toMatchObject({
      bump: "patch",
      changes: [{ rule: "COMMENT_CHANGED", breaking: false, bump: "patch", line: 6, column: 1 }],
    });
  });

  it("points a type change at the type, and a deleted file at the previous file", async () => {
    const typed = await compareTrees(
      OLD,
      demo(`
// An order.
message Order {
  string id = 1;
  int64 count = 2;
  string note = 3;
}
`),
    );
    expect(typed.report!.changes[0]).toMatchObject({ rule: "FIELD_SAME_TYPE", line: 8, column: 3 });
    const gone = await compareTrees(
      { ...OLD, "demo/v1/extra.proto": proto("message Extra {}") },
      OLD,
    );
    expect(gone.report!.changes[0]).toMatchObject({
      rule: "FILE_NO_DELETE",
      path: "old/demo/v1/extra.proto",
      line: 1,
      column: 1,
    });
  });
});

describe("usage and input errors exit 1 with a sentence", () => {
  const cases: Array<[string, string[], RegExp]> = [
    ["no command", [], /a command is required/],
    ["unknown command", ["frobnicate"], /unknown command "frobnicate"/],
    ["missing --against", ["breaking", "."], /--against is required/],
    ["unknown flag", ["breaking", ".", "--against", ".", "--nope"], /unknown flag "--nope"/],
    [
      "unknown format",
      ["breaking", ".", "--against", ".", "--format", "xml"],
      /unknown format "xml"/,
    ],
    [
      "unknown rule",
      ["breaking", ".", "--against", ".", "--use", "NOT_A_RULE"],
      /--use: "NOT_A_RULE" is not a known rule or category ID/,
    ],
    ["two inputs", ["breaking", "a", "b", "--against", "."], /unexpected argument "b"/],
    ["a flag without its value", ["breaking", ".", "--against"], /--against needs a value/],
    [
      "a value for a switch",
      ["breaking", ".", "--against", ".", "--exclude-imports=yes"],
      /--exclude-imports takes no value/,
    ],
    [
      "--format and --error-format",
      ["breaking", ".", "--against", ".", "--format", "json", "--error-format", "json"],
      /give --format or --error-format, not both/,
    ],
    [
      "unknown release flag",
      ["release", "--package", "sdk", "--nope"],
      /^grabbit release: unknown flag "--nope"\.\n$/,
    ],
    ["unknown init flag", ["init", "--nope"], /^grabbit init: unknown flag "--nope"\.\n$/],
    ["init takes no arguments", ["init", "here"], /^grabbit init: unexpected argument "here"/],
  ];
  it.each(cases)("%s", async (_name, argv, message) => {
    const r = await grabbit(tempDir(), argv);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });

  it("a missing directory", async () => {
    const dir = tempDir();
    writeTree(join(dir, "old"), OLD);
    const r = await grabbit(dir, ["breaking", "nowhere", "--against", "old"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^grabbit breaking: input: cannot build "nowhere": /);
  });

  it("a proto that does not compile", async () => {
    const r = await compareTrees(OLD, demo("message Order { string id = 1 }"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/input: cannot build "new": .*demo\.proto:\d+:\d+/);
  });

  it("a broken image", async () => {
    const dir = tempDir();
    writeTree(dir, OLD);
    writeFileSync(join(dir, "broken.binpb"), "this is not an image");
    const r = await grabbit(dir, ["breaking", ".", "--against", "broken.binpb"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--against: cannot build "broken.binpb"/);
  });

  it("a bad buf.yaml", async () => {
    const r = await compareTrees(OLD, {
      ...OLD,
      "buf.yaml": "version: v2\nbreaking:\n  use:\n    - NO_SUCH\n",
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /new\/buf\.yaml:4:7: "NO_SUCH" is not a known rule or category ID\.\n$/,
    );
  });
});

describe("inputs", () => {
  it("compares against a binary image built by buf", async () => {
    const dir = tempDir();
    writeTree(join(dir, "old"), OLD);
    writeTree(join(dir, "new"), demo("message Order { string id = 1; }"));
    execFileSync(BUF, ["build", "old", "-o", "old.binpb"], { cwd: dir });
    const r = await grabbit(dir, ["breaking", "new", "--against", "old.binpb", "--format", "json"]);
    expect(r.code).toBe(100);
    expect(r.breaking).toEqual(["FIELD_NO_DELETE", "FIELD_NO_DELETE"]);
  });

  it("compares against a git branch (.git#branch=main) and reports a missing ref", async () => {
    const dir = tempDir();
    const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, stdio: "pipe" });
    git("init", "-q", "-b", "main");
    git("config", "user.email", "t@example.com");
    git("config", "user.name", "t");
    writeTree(dir, {
      "buf.yaml": "version: v2\nmodules:\n  - path: proto\n",
      ...Object.fromEntries(Object.entries(OLD).map(([k, v]) => [`proto/${k}`, v])),
    });
    git("add", ".");
    git("commit", "-q", "-m", "v1");
    writeTree(dir, {
      "proto/demo/v1/demo.proto": proto(
        "// An order.\nmessage Order {\n  string id = 1;\n  int32 count = 2;\n}",
      ),
    });
    const r = await grabbit(dir, ["breaking", "--against", ".git#branch=main", "--format", "json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(100);
    expect(r.report!.changes[0]).toMatchObject({
      rule: "FIELD_NO_DELETE",
      path: "proto/demo/v1/demo.proto",
    });
    const missing = await grabbit(dir, ["breaking", "--against", ".git#branch=nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--against: cannot build "\.git#branch=nope"/);
  });
});

describe("configuration (buf.yaml breaking section and flags)", () => {
  const before = demo("message Order {\n  string id = 1;\n  string note = 2;\n}");
  const after = demo("message Order {\n  string id = 1;\n  reserved 2;\n}");
  const withYaml = (yaml: string) => ({ ...after, "buf.yaml": yaml });

  it("defaults to FILE: a reserved deletion still breaks", async () => {
    const r = await compareTrees(before, after);
    expect(r.breaking).toEqual(["FIELD_NO_DELETE"]);
  });

  it("use: WIRE lets a deletion that reserves the number pass", async () => {
    const r = await compareTrees(before, withYaml("version: v2\nbreaking:\n  use:\n    - WIRE\n"));
    expect(r.code).toBe(0);
  });

  it("except drops a rule", async () => {
    const r = await compareTrees(
      before,
      withYaml("version: v2\nbreaking:\n  use: [FILE]\n  except:\n    - FIELD_NO_DELETE\n"),
    );
    expect(r.code).toBe(0);
  });

  it("ignore skips paths, ignore_only skips a rule under paths", async () => {
    expect(
      (await compareTrees(before, withYaml("version: v2\nbreaking:\n  ignore:\n    - demo/v1\n")))
        .code,
    ).toBe(0);
    expect(
      (
        await compareTrees(
          before,
          withYaml(
            "version: v2\nbreaking:\n  ignore_only:\n    FIELD_NO_DELETE:\n      - demo/v1/demo.proto\n",
          ),
        )
      ).code,
    ).toBe(0);
    expect(
      (
        await compareTrees(
          before,
          withYaml("version: v2\nbreaking:\n  ignore_only:\n    RPC_NO_DELETE:\n      - demo\n"),
        )
      ).code,
    ).toBe(100);
  });

  it("ignore_unstable_packages skips v1alpha1 packages", async () => {
    const alpha = (body: string) => ({
      "demo/v1alpha1/demo.proto": proto(body, 'syntax = "proto3";\n\npackage demo.v1alpha1;\n'),
    });
    const o = alpha("message Order { string id = 1; string note = 2; }");
    const n = alpha("message Order { string id = 1; }");
    expect((await compareTrees(o, n)).code).toBe(100);
    expect(
      (
        await compareTrees(o, {
          ...n,
          "buf.yaml": "version: v2\nbreaking:\n  ignore_unstable_packages: true\n",
        })
      ).code,
    ).toBe(0);
  });

  it("v1 buf.yaml selects v1 membership", async () => {
    const r = await compareTrees(
      before,
      withYaml("version: v1\nbreaking:\n  use:\n    - WIRE_JSON\n"),
    );
    expect(r.breaking).toEqual(["FIELD_NO_DELETE_UNLESS_NAME_RESERVED"]);
  });

  it("--use replaces the configuration, --except removes, --config points elsewhere", async () => {
    expect(
      (
        await compareTrees(before, withYaml("version: v2\nbreaking:\n  use: [WIRE]\n"), [
          "--use",
          "FIELD_NO_DELETE",
        ])
      ).breaking,
    ).toEqual(["FIELD_NO_DELETE"]);
    expect((await compareTrees(before, after, ["--except", "FIELD_NO_DELETE"])).code).toBe(0);
    // As in buf, --config names the module's configuration: the input is the module (run inside it).
    const dir = tempDir();
    writeTree(join(dir, "old"), before);
    writeTree(join(dir, "new"), after);
    const r = await grabbit(join(dir, "new"), [
      "breaking",
      "--against",
      "../old",
      "--config",
      "version: v2\nbreaking:\n  use: [WIRE]\n",
    ]);
    expect(r.code).toBe(0);
  });

  it("--config may name a directory holding buf.yaml; one without it is a sentence, exit 1", async () => {
    const dir = tempDir();
    writeTree(join(dir, "old"), before);
    writeTree(join(dir, "new"), withYaml("version: v2\nbreaking:\n  use: [WIRE]\n"));
    const r = await grabbit(join(dir, "new"), ["breaking", "--against", "../old", "--config", "."]);
    expect(r.code).toBe(0);
    const none = await compareTrees(before, after, ["--config", "old"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/--config \S*old: a directory without buf\.yaml/);
  });
});

describe("acceptance comments in the proto", () => {
  it("accepts the named rule with a reason: not failing, still major", async () => {
    const r = await compareTrees(
      demo("message Order {\n  string id = 1;\n  string note = 2;\n}"),
      demo(
        "// grabbit:accept FIELD_NO_DELETE reason: note moved to v2.Order\nmessage Order {\n  string id = 1;\n}",
      ),
    );
    expect(r.code).toBe(0);
    expect(r.report!.bump).toBe("major");
    const c = r.report!.changes.find((x) => x.rule === "FIELD_NO_DELETE")!;
    expect(c.breaking).toBe(false);
    expect(c.bump).toBe("major");
    expect(c.message).toMatch(
      /^Accepted \(note moved to v2\.Order\): Previously present field "2"/,
    );
  });

  it("does not accept another rule, nor an acceptance without a reason", async () => {
    const old = demo("message Order {\n  string id = 1;\n  string note = 2;\n}");
    expect(
      (
        await compareTrees(
          old,
          demo(
            "// grabbit:accept FIELD_SAME_TYPE reason: other\nmessage Order {\n  string id = 1;\n}",
          ),
        )
      ).code,
    ).toBe(100);
    expect(
      (
        await compareTrees(
          old,
          demo("// grabbit:accept FIELD_NO_DELETE\nmessage Order {\n  string id = 1;\n}"),
        )
      ).code,
    ).toBe(100);
  });
});

// A rename is one change in grabbit's own report (--format json, SARIF, markdown): the leading rule's
// finding, naming the other rules that saw it. buf's formats print every rule's finding as buf does.
describe("renames are one change in grabbit's report, buf's findings in buf's formats", () => {
  const text = async (dir: string, args: string[] = []) =>
    (await grabbit(dir, ["breaking", "new", "--against", "old", "--error-format", "text", ...args]))
      .stdout;

  it("a renamed message is reported once, not deleted plus added", async () => {
    const r = await compareTrees(
      demo("message Order { string id = 1; int32 n = 2; }"),
      demo("message Purchase { string id = 1; int32 n = 2; }"),
      ["--use", "FILE,PACKAGE,TYPESCRIPT"],
    );
    expect(r.report!.changes).toHaveLength(1);
    expect(r.report!.changes[0]!.rule).toBe("TYPESCRIPT_MESSAGE_RENAMED");
    expect(r.report!.changes[0]!.message).toMatch(
      /"demo\.v1\.Order" was renamed to "demo\.v1\.Purchase".*\(also MESSAGE_NO_DELETE, PACKAGE_MESSAGE_NO_DELETE\)/,
    );
    expect(await text(r.dir, ["--use", "FILE,PACKAGE,TYPESCRIPT"])).toBe(
      [
        'new/demo/v1/demo.proto:1:1:Previously present message "Order" was deleted from file.',
        'new/demo/v1/demo.proto:1:1:Previously present message "Order" was deleted from package "demo.v1".',
        'new/demo/v1/demo.proto:5:1:Message "demo.v1.Order" was renamed to "demo.v1.Purchase" (same fields): the wire format is unchanged, but the generated type "Order" is now "Purchase".',
      ].join("\n") + "\n",
    );
  });

  it("a renamed field is one change under buf's FIELD_SAME_NAME, and buf's two lines plus grabbit's in text", async () => {
    const r = await compareTrees(
      demo("message Order { string order_id = 1; }"),
      demo("message Order { string purchase_id = 1; }"),
    );
    expect(r.report!.changes.map((c) => c.rule)).toEqual(["FIELD_SAME_NAME"]);
    expect(r.report!.changes[0]!.message).toMatch(
      /also FIELD_SAME_JSON_NAME, TYPESCRIPT_FIELD_RENAMED/,
    );
    expect(await text(r.dir)).toBe(
      [
        'new/demo/v1/demo.proto:5:17:Field "1" with name "purchase_id" on message "Order" changed option "json_name" from "orderId" to "purchaseId".',
        'new/demo/v1/demo.proto:5:24:Field "1" on message "Order" changed name from "order_id" to "purchase_id".',
        'new/demo/v1/demo.proto:5:24:Field "1" on message "Order" changed its TypeScript property from "orderId" to "purchaseId"; callers that use it no longer compile.',
      ].join("\n") + "\n",
    );
  });

  it("a wire-safe rename of the proto name keeping the TypeScript name is not a TypeScript break", async () => {
    const r = await compareTrees(
      demo("message Order { string order_id = 1; }"),
      demo("message Order { string orderId = 1; }"),
      ["--use", "TYPESCRIPT"],
    );
    expect(r.code).toBe(0);
  });

  it("an accepted rename is accepted in every format", async () => {
    const r = await compareTrees(
      demo("message Order { string order_id = 1; }"),
      demo(
        "message Order {\n  // grabbit:accept TYPESCRIPT_FIELD_RENAMED reason: no TypeScript caller yet\n  string purchase_id = 1;\n}",
      ),
    );
    expect(r.code).toBe(0);
    const rename = r.report!.changes.find((c) => c.rule === "FIELD_SAME_NAME")!;
    expect([rename.breaking, rename.bump]).toEqual([false, "major"]);
    expect(rename.message).toMatch(
      /^Accepted \(no TypeScript caller yet\): .*\(also FIELD_SAME_JSON_NAME, TYPESCRIPT_FIELD_RENAMED\)$/,
    );
    expect(await text(r.dir)).toBe("");
  });
});

describe("routing keys", () => {
  const options = readFileSync(join(ROOT, "proto/grabbit/v1/options.proto"), "utf8");
  const event = (opts: string) => ({
    "grabbit/v1/options.proto": options,
    "demo/v1/demo.proto": proto(
      `message OrderCreated {\n  option (grabbit.v1.event) = {${opts}};\n  string region = 1;\n  string zone = 2;\n}`,
      'syntax = "proto3";\n\npackage demo.v1;\n\nimport "grabbit/v1/options.proto";\n',
    ),
  });
  const check = (a: string, b: string) => compareTrees(event(a), event(b), ["--use", "GRABBIT"]);

  it("a placeholder renamed at the same word still breaks typed filters", async () => {
    const r = await check(
      `exchange: "o" routing_key: "order.{region}.created"`,
      `exchange: "o" routing_key: "order.{zone}.created"`,
    );
    expect(r.breaking).toEqual(["GRABBIT_EVENT_ROUTING_KEY_CHANGED"]);
    expect(r.report!.changes[0]!.message).toMatch(/placeholders/);
  });

  it("a new word breaks bindings like order.*.created", async () => {
    const r = await check(
      `exchange: "o" routing_key: "order.{region}.created"`,
      `exchange: "o" routing_key: "order.{region}.{zone}.created"`,
    );
    expect(r.report!.changes[0]!.message).toMatch(
      /consumers bound to "order\.\*\.created" no longer match/,
    );
  });

  it("a fanout exchange ignores the key", async () => {
    const r = await check(
      `exchange: "o" exchange_kind: EXCHANGE_KIND_FANOUT routing_key: "a"`,
      `exchange: "o" exchange_kind: EXCHANGE_KIND_FANOUT routing_key: "b"`,
    );
    expect(r.code).toBe(0);
    expect(r.report!.changes.map((c) => [c.rule, c.bump])).toEqual([["OPTION_CHANGED", "patch"]]);
  });

  it("the implicit key is the full name: spelling it out is no change", async () => {
    const r = await check(`exchange: "o"`, `exchange: "o" routing_key: "demo.v1.OrderCreated"`);
    expect(r.code).toBe(0);
    expect(r.report!.changes.filter((c) => c.rule !== "COMMENT_CHANGED")).toEqual([]);
  });
});

describe("formats", () => {
  const pair = async (format: string) => {
    const dir = tempDir();
    writeTree(join(dir, "old"), demo("message Order {\n  string id = 1;\n  string note = 2;\n}"));
    writeTree(join(dir, "new"), demo("message Order {\n  string id = 1;\n  bool urgent = 3;\n}"));
    return grabbit(dir, ["breaking", "new", "--against", "old", "--error-format", format]);
  };

  it("text is buf's path:line:column:message, breaking findings only", async () => {
    const r = await pair("text");
    expect(r.code).toBe(100);
    expect(r.stdout).toBe(
      'new/demo/v1/demo.proto:5:1:Previously present field "2" with name "note" on message "Order" was deleted.\n',
    );
  });

  it("github-actions annotations as buf writes them", async () => {
    const r = await pair("github-actions");
    expect(r.stdout).toMatch(
      /^::error file=new\/demo\/v1\/demo\.proto,line=5,col=1,endLine=\d+,endColumn=\d+::Previously present field "2" with name "note" on message "Order" was deleted\.\n$/,
    );
  });

  it("--help on every command, exit 0", async () => {
    for (const argv of [
      ["--help"],
      ["breaking", "--help"],
      ["breaking", "-h"],
      ["release", "--help"],
      ["init", "--help"],
    ]) {
      const r = await grabbit(tempDir(), argv);
      expect(r.code, argv.join(" ")).toBe(0);
      expect(r.stdout).toMatch(/^Usage: grabbit/);
    }
  });

  it("markdown for a pull-request comment", async () => {
    const r = await pair("markdown");
    expect(r.stdout).toMatch(/^### grabbit breaking: :x: 1 breaking change\n/);
    expect(r.stdout).toContain("Semantic version bump for the SDK: **major**");
    expect(r.stdout).toContain("| `FIELD_NO_DELETE` | major | `new/demo/v1/demo.proto:5:1` |");
    expect(r.stdout).toContain("#### Other changes");
  });
});

describe("the real bin", () => {
  beforeAll(() => {
    // bin/grabbit.js runs the compiled CLI; build it when this checkout has not been built yet.
    if (!existsSync(join(ROOT, "dist/cli/main.js")))
      spawnSync(join(ROOT, "node_modules/.bin/tsc"), ["-p", "tsconfig.build.json"], { cwd: ROOT });
  });

  it("node bin/grabbit.js breaking exits 100 and prints json", () => {
    const dir = tempDir();
    writeTree(join(dir, "old"), OLD);
    writeTree(join(dir, "new"), demo("message Order { string id = 1; }"));
    const r = spawnSync(
      process.execPath,
      [join(ROOT, "bin/grabbit.js"), "breaking", "new", "--against", "old", "--format", "json"],
      { cwd: dir, encoding: "utf8" },
    );
    expect(r.status).toBe(100);
    const report = JSON.parse(r.stdout) as { bump: string; changes: Array<{ rule: string }> };
    expect(report.bump).toBe("major");
    expect(report.changes.map((c) => c.rule)).toContain("FIELD_NO_DELETE");
  });

  it("node bin/grabbit.js with bad usage exits 1", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "bin/grabbit.js"), "breaking"], {
      encoding: "utf8",
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--against is required/);
  });
});

/** `new` against `old` in `dir`, once as the CLI chooses (partial builds where it can) and once whole. */
async function fastAndFull(dir: string) {
  const argv = ["breaking", "new", "--against", "old", "--format", "json"];
  const fast = await grabbit(dir, argv);
  process.env.GRABBIT_FULL_BUILD = "1";
  try {
    return { fast, full: await grabbit(dir, argv) };
  } finally {
    delete process.env.GRABBIT_FULL_BUILD;
  }
}

describe("partial builds give the same report as full builds", () => {
  const many = (variant: boolean) => {
    const tree: Record<string, string> = {};
    for (let i = 0; i < 12; i++) {
      const pkg = `demo.p${i % 3}`;
      const imp = i >= 3 ? `import "p${(i - 3) % 3}/f${i - 3}.proto";\n` : "";
      const dep = i >= 3 ? `  M${i - 3} prev = 9;\n` : "";
      const changed = variant && (i === 4 || i === 7);
      tree[`p${i % 3}/f${i}.proto`] =
        `syntax = "proto3";\n\npackage ${pkg};\n\n${imp}\n// M${i}.\nmessage M${i} {\n  string id = 1;\n${changed ? "  int64 n = 2;\n" : "  int32 n = 2;\n"}${dep}}\n`;
    }
    if (variant) delete tree["p2/f11.proto"];
    if (variant) tree["p0/f6.proto"] = tree["p0/f6.proto"]!.replace("// M6.", "// M6, commented.");
    return tree;
  };

  it("between directories and against a git ref", async () => {
    const dir = tempDir();
    writeTree(join(dir, "old"), many(false));
    writeTree(join(dir, "new"), many(true));
    const { fast, full } = await fastAndFull(dir);
    expect(fast.report).toEqual(full.report);
    expect(fast.report!.changes.map((c) => c.rule).sort()).toEqual([
      "COMMENT_CHANGED",
      "FIELD_SAME_TYPE",
      "FIELD_SAME_TYPE",
      "FILE_NO_DELETE",
    ]);

    const repo = tempDir();
    const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, stdio: "pipe" });
    git("init", "-q", "-b", "main");
    writeTree(repo, many(false));
    git("add", ".");
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "v1");
    execFileSync("rm", ["-rf", ...Object.keys(many(false)).map((p) => join(repo, p))]);
    writeTree(repo, many(true));
    const viaGit = await grabbit(repo, [
      "breaking",
      ".",
      "--against",
      ".git#branch=main",
      "--format",
      "json",
    ]);
    expect(viaGit.stderr).toBe("");
    expect(
      viaGit.report!.changes.map((c) => [c.rule, c.path.replace(/^new\//, ""), c.line]),
    ).toEqual(
      full.report!.changes.map((c) => [c.rule, c.path.replace(/^(new|old)\//, ""), c.line]),
    );
  });
});

describe("the partial build also checks the files that import a changed one", () => {
  // base/types.proto changes Amount from a message to an enum. shop/order.proto, unchanged, has a
  // field of that type: its field changed type although its text did not. shop/cart.proto has one too,
  // through shop/all.proto's `import public`. shop/invoice.proto imports order.proto without public:
  // it cannot name Amount, so it needs no build. Ten other files are untouched.
  const tree = (variant: boolean): Record<string, string> => {
    const head = (pkg: string) => `syntax = "proto3";\n\npackage ${pkg};\n`;
    const out: Record<string, string> = {
      "base/types.proto": proto(
        variant
          ? "enum Amount {\n  AMOUNT_UNSPECIFIED = 0;\n}"
          : "message Amount {\n  int64 units = 1;\n}",
        head("demo.base"),
      ),
      "shop/order.proto": proto(
        'import "base/types.proto";\n\nmessage Order {\n  string id = 1;\n  demo.base.Amount total = 2;\n}',
        head("demo.shop"),
      ),
      "shop/invoice.proto": proto(
        'import "shop/order.proto";\n\nmessage Invoice {\n  Order order = 1;\n}',
        head("demo.shop"),
      ),
      "shop/all.proto": proto('import public "base/types.proto";', head("demo.shop")),
      "shop/cart.proto": proto(
        'import "shop/all.proto";\n\nmessage Cart {\n  demo.base.Amount total = 1;\n}',
        head("demo.shop"),
      ),
    };
    for (let i = 0; i < 10; i++)
      out[`other/f${i}.proto`] = proto(`message F${i} {\n  string id = 1;\n}`, head("demo.other"));
    return out;
  };

  it("between directories and against a git ref, as a full build would", async () => {
    const dir = tempDir();
    writeTree(join(dir, "old"), tree(false));
    writeTree(join(dir, "new"), tree(true));
    const partial = changedFiles("new", "old", dir);
    const built = ["base/types.proto", "shop/all.proto", "shop/cart.proto", "shop/order.proto"];
    expect(partial?.inputPaths.sort()).toEqual(built.map((p) => `new/${p}`));
    expect(partial?.againstPaths.sort()).toEqual(built.map((p) => `old/${p}`));
    const { fast, full } = await fastAndFull(dir);
    expect(fast.report).toEqual(full.report);
    for (const file of ["new/shop/order.proto", "new/shop/cart.proto"]) {
      expect(fast.report!.changes.filter((c) => c.path === file).map((c) => c.rule)).toContain(
        "FIELD_SAME_TYPE",
      );
    }

    const repo = tempDir();
    const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, stdio: "pipe" });
    git("init", "-q", "-b", "main");
    // The git fast path needs the module's buf.yaml, to see that the layout is the same at both ends.
    writeTree(repo, { "buf.yaml": "version: v2\n", ...tree(false) });
    git("add", ".");
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "v1");
    writeTree(repo, tree(true));
    expect(changedFiles(".", ".git#branch=main", repo)?.inputPaths.sort()).toEqual(built);
    const viaGit = await grabbit(repo, [
      "breaking",
      ".",
      "--against",
      ".git#branch=main",
      "--format",
      "json",
    ]);
    expect(viaGit.stderr).toBe("");
    expect(viaGit.report!.changes.map((c) => [c.rule, c.path, c.line])).toEqual(
      full.report!.changes.map((c) => [c.rule, c.path.replace(/^(new|old)\//, ""), c.line]),
    );
  });
});

describe("a rename seen by buf's rules only", () => {
  it("says what the deletion really was in grabbit's report, and prints buf's line as is", async () => {
    const r = await compareTrees(
      demo("message Order { string id = 1; int32 n = 2; }"),
      demo("message Purchase { string id = 1; int32 n = 2; }"),
      ["--use", "FILE"],
    );
    expect(r.report!.changes.map((c) => [c.rule, c.message])).toEqual([
      [
        "MESSAGE_NO_DELETE",
        'Previously present message "Order" was deleted from file. (renamed to "demo.v1.Purchase")',
      ],
    ]);
    const buf = await grabbit(r.dir, ["breaking", "new", "--against", "old", "--use", "FILE"]);
    expect(buf.stdout).toBe(
      'new/demo/v1/demo.proto:1:1:Previously present message "Order" was deleted from file.\n',
    );
  });
});

describe("--limit-to-input-files, as buf", () => {
  // buf applies it by building the against input with the input's file paths, which works where the
  // paths are the same on both sides: the working tree against a git ref.
  it("leaves out what only the against input has, and prints what buf prints", async () => {
    const repo = tempDir();
    const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, stdio: "pipe" });
    git("init", "-q", "-b", "main");
    const yaml = "version: v2\nbreaking:\n  use: [FILE, PACKAGE]\n";
    writeTree(repo, {
      "buf.yaml": yaml,
      ...OLD,
      "demo/v1/gone.proto": proto("message Gone {\n  string id = 1;\n}"),
      "other/v1/o.proto": proto("message O {}", 'syntax = "proto3";\n\npackage other.v1;\n'),
    });
    git("add", ".");
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "v1");
    git("rm", "-q", "demo/v1/gone.proto", "other/v1/o.proto");
    writeTree(repo, demo("message Order {\n  string id = 1;\n  int32 count = 2;\n}"));
    const args = ["breaking", "--against", ".git#branch=main"];
    const whole = await grabbit(repo, args);
    const limited = await grabbit(repo, [...args, "--limit-to-input-files"]);
    expect(whole.stdout).toBe(spawnSync(BUF, args, { cwd: repo, encoding: "utf8" }).stdout);
    expect(limited.stdout).toBe(
      spawnSync(BUF, [...args, "--limit-to-input-files"], { cwd: repo, encoding: "utf8" }).stdout,
    );
    expect(whole.stdout).toMatch(
      /<input>:1:1:Previously present file "demo\/v1\/gone\.proto" was deleted\./,
    );
    expect(limited.stdout).not.toMatch(/gone|other/);
    expect(limited.stdout).toMatch(
      /Previously present field "3" with name "note" on message "Order" was deleted\./,
    );
    expect(limited.code).toBe(100);
  });
});

describe("partial builds fall back to whole ones", () => {
  it("when buf.yaml excludes a directory that holds a changed file", async () => {
    const yaml = "version: v2\nmodules:\n  - path: .\n    excludes:\n      - scratch\n";
    const base = {
      "buf.yaml": yaml,
      ...OLD,
      "scratch/wip.proto": 'syntax = "proto3";\npackage scratch;\nmessage W {}\n',
    };
    const r = await compareTrees(base, {
      ...base,
      "scratch/wip.proto": 'syntax = "proto3";\npackage scratch;\nmessage W { string x = 1; }\n',
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.report).toEqual({ bump: "none", changes: [] });
  });
});

describe("ignore paths are relative to buf.yaml, as in buf", () => {
  it("v2 with a module directory", async () => {
    const inProto = (t: Record<string, string>) =>
      Object.fromEntries(Object.entries(t).map(([k, v]) => [`proto/${k}`, v]));
    const yaml = (ignore: string) =>
      `version: v2\nmodules:\n  - path: proto\nbreaking:\n  ignore:\n    - ${ignore}\n`;
    const before = inProto(demo("message Order {\n  string id = 1;\n  string note = 2;\n}"));
    const after = inProto(demo("message Order {\n  string id = 1;\n}"));
    expect(
      (
        await compareTrees(
          { ...before, "buf.yaml": yaml("proto/demo") },
          { ...after, "buf.yaml": yaml("proto/demo") },
        )
      ).code,
    ).toBe(0);
    const r = await compareTrees(
      { ...before, "buf.yaml": yaml("demo") },
      { ...after, "buf.yaml": yaml("demo") },
    );
    expect(r.code).toBe(100);
    expect(r.report!.changes[0]!.path).toBe("new/proto/demo/v1/demo.proto");
  });
});

describe("proto3 optional toggled", () => {
  it("is one change in grabbit's report: buf's cardinality rule, naming the TypeScript one", async () => {
    const r = await compareTrees(
      demo("message Order { string note = 1; }"),
      demo("message Order { optional string note = 1; }"),
    );
    const text = await grabbit(r.dir, ["breaking", "new", "--against", "old"]);
    // In buf's formats: buf's line as buf prints it, then grabbit's own.
    const [bufLine, ownLine, end] = text.stdout.split("\n");
    expect(bufLine).toMatch(
      /^new\/demo\/v1\/demo\.proto:\d+:\d+:Field "1" with name "note" on message "Order" changed cardinality from "optional with implicit presence" to "optional with explicit presence"\.$/,
    );
    expect(ownLine).toMatch(/changed its TypeScript type from "T" to "T \| undefined"/);
    expect(end).toBe("");
    expect(r.report!.changes.map((c) => [c.rule, c.message])).toEqual([
      [
        "FIELD_SAME_CARDINALITY",
        'Field "1" with name "note" on message "Order" changed cardinality from "optional with implicit presence" to "optional with explicit presence". (also TYPESCRIPT_FIELD_OPTIONAL_CHANGED)',
      ],
    ]);
    const ts = await compareTrees(
      demo("message Order { string note = 1; }"),
      demo("message Order { optional string note = 1; }"),
      ["--use", "TYPESCRIPT"],
    );
    expect(ts.report!.changes[0]!.message).toMatch(
      /changed its TypeScript type from "T" to "T \| undefined"/,
    );
  });
});

describe("renames stay in their scope, events may move", () => {
  const options = readFileSync(join(ROOT, "proto/grabbit/v1/options.proto"), "utf8");
  const head = (pkg: string) =>
    `syntax = "proto3";\n\npackage ${pkg};\n\nimport "grabbit/v1/options.proto";\n`;
  it("same-shaped messages in different packages are not a rename", async () => {
    const r = await compareTrees(
      {
        "a/v1/a.proto": proto(
          "message X { string id = 1; }",
          'syntax = "proto3";\n\npackage a.v1;\n',
        ),
      },
      {
        "a/v1/a.proto": proto("message Keep {}", 'syntax = "proto3";\n\npackage a.v1;\n'),
        "b/v1/b.proto": proto(
          "message Y { string id = 1; }",
          'syntax = "proto3";\n\npackage b.v1;\n',
        ),
      },
      ["--use", "FILE,TYPESCRIPT"],
    );
    expect(r.report!.changes.map((c) => c.rule).sort()).toEqual([
      "FILE_ADDED",
      "MESSAGE_ADDED",
      "MESSAGE_NO_DELETE",
      "PACKAGE_ADDED",
    ]);
  });
  it("an event moved to another package changes its type", async () => {
    const ev = (pkg: string) =>
      proto(
        `message OrderCreated {\n  option (grabbit.v1.event) = {exchange: "orders" routing_key: "order.created"};\n  string id = 1;\n}`,
        head(pkg),
      );
    const r = await compareTrees(
      { "grabbit/v1/options.proto": options, "a/v1/a.proto": ev("a.v1") },
      { "grabbit/v1/options.proto": options, "b/v1/b.proto": ev("b.v1") },
      ["--use", "GRABBIT"],
    );
    expect(r.breaking).toEqual(["GRABBIT_EVENT_TYPE_CHANGED"]);
    expect(r.report!.changes.find((c) => c.breaking)!.message).toMatch(
      /"a\.v1\.OrderCreated" was renamed to "b\.v1\.OrderCreated"/,
    );
  });
});
