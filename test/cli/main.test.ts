// The dispatcher (cli/main.ts): its command table is what `grabbit --help` lists and what an unknown
// command is told; a GrabbitError a command lets through becomes one sentence and its exit code.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { COMMANDS, main, type Io } from "../../cli/main.js";
import { checkBreaking } from "../../governance/check.js";
import {
  ConfigError,
  EXIT,
  GrabbitError,
  InputError,
  ReleaseError,
} from "../../governance/errors.js";
import { tempDir, writeTree } from "../governance/helpers.js";

async function run(
  argv: string[],
  cwd = process.cwd(),
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    cwd,
    isTTY: false,
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe("grabbit (the dispatcher)", () => {
  it("--help lists every command of the table, as before the table existed", async () => {
    expect(COMMANDS.map((c) => c.name)).toEqual(["init", "breaking", "release", "dlq"]);
    for (const flag of ["--help", "-h", "help"]) {
      const r = await run([flag]);
      expect(r.code).toBe(EXIT.OK);
      expect(r.stdout).toBe(`Usage: grabbit <command> [options]

Commands:
  init                                 write buf.yaml, buf.gen.yaml and proto/ for grabbit
  breaking [input] --against <ref>     report changes against <ref> and fail on breaking ones
  release [input] --package <dir|name> next SDK version, changelog, build, pack and publish
  dlq list|show|replay|purge <queue>   look into a dead-letter queue, replay or purge it

Run grabbit <command> --help for a command's options.
`);
    }
  });

  it("an unknown command exits 1 with a sentence and the list", async () => {
    const r = await run(["brekaing", "--against", "x"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^grabbit: unknown command "brekaing"\.\n/);
    for (const c of COMMANDS) expect(r.stderr).toContain(`  ${c.synopsis}`);
  });

  it("no command exits 1 and says one is required", async () => {
    const r = await run([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^grabbit: a command is required\.\n\nUsage: grabbit <command>/);
  });

  it("each command's --help is reached through the table", async () => {
    const expected: Record<string, RegExp> = {
      init: /^Usage: grabbit init /,
      breaking: /^Usage: grabbit breaking /,
      release: /^Usage: grabbit release /,
    };
    for (const [name, re] of Object.entries(expected)) {
      const r = await run([name, "--help"]);
      expect(r.code, name).toBe(0);
      expect(r.stdout, name).toMatch(re);
    }
  });

  it("an InputError from the check is one sentence prefixed with the command, exit 1", async () => {
    const dir = tempDir();
    writeTree(join(dir, "new"), {
      "buf.yaml": "version: v2\n",
      "a.proto": 'syntax = "proto3";\npackage a;\nmessage A {}\n',
    });
    const r = await run(["breaking", "new", "--against", "nowhere"], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^grabbit breaking: --against: /);
    expect(r.stderr.trimEnd().split("\n")[0]).not.toMatch(/at .*\.ts:\d+/);
  });

  it("a bad buf.yaml is a ConfigError (an InputError), exit 1", async () => {
    const dir = tempDir();
    writeTree(join(dir, "new"), {
      "buf.yaml": "version: v2\nbreaking:\n  use: [NOT_A_RULE]\n",
      "a.proto": 'syntax = "proto3";\npackage a;\n',
    });
    const err = await checkBreaking({ input: "new", against: "new", cwd: dir }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).name).toBe("ConfigError");
    const r = await run(["breaking", "new", "--against", "new"], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^grabbit breaking: .*"NOT_A_RULE" is not a known rule or category ID\.\n$/,
    );
  });
});

describe("GrabbitError", () => {
  it("each class has its own name, exit code 1 and keeps the cause it wraps", () => {
    const cause = new Error("buf exited with status 1");
    const cases: Array<[GrabbitError, string]> = [
      [new InputError("bad input", { cause }), "InputError"],
      [new ConfigError("bad buf.yaml"), "ConfigError"],
      [new ReleaseError("npm pack failed", { cause }), "ReleaseError"],
      [new GrabbitError("plain"), "GrabbitError"],
    ];
    for (const [err, name] of cases) {
      expect(err.name).toBe(name);
      expect(err.exitCode).toBe(EXIT.USAGE);
      expect(String(err.stack)).toMatch(new RegExp(`^${name}: `));
      expect(err).toBeInstanceOf(GrabbitError);
      expect(err).toBeInstanceOf(Error);
    }
    expect(cases[0]![0].cause).toBe(cause);
    expect(cases[1]![0].cause).toBeUndefined();
  });

  it("a side's build failure names the side and keeps buf's error as its cause", async () => {
    const dir = tempDir();
    writeTree(join(dir, "new"), {
      "buf.yaml": "version: v2\n",
      "a.proto": 'syntax = "proto3";\npackage a;\n',
    });
    const err = await checkBreaking({ input: "new", against: "nowhere", cwd: dir }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/^--against: /);
    expect((err as Error).cause).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(((err as Error).cause as Error).message);
  });
});
