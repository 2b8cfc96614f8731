// The pure parts of `grabbit release`: the next version (1.x, 0.y, 0.0.z, prereleases) and the
// changelog entry built from a breaking report.
import { describe, expect, it } from "vitest";
import type { Change, Report } from "../../governance/diff.js";
import { addEntry, renderEntry, sectionOf } from "../../governance/release/changelog.js";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importedPackages } from "../../governance/release/build.js";
import { runRelease } from "../../governance/release/cli.js";
import {
  checkChosenVersion,
  compareVersions,
  highestVersion,
  nextVersion,
  parseVersion,
} from "../../governance/release/version.js";

describe("nextVersion", () => {
  it("follows semver from 1.0.0 on", () => {
    expect(nextVersion("1.4.2", "major")).toBe("2.0.0");
    expect(nextVersion("1.4.2", "minor")).toBe("1.5.0");
    expect(nextVersion("1.4.2", "patch")).toBe("1.4.3");
    expect(nextVersion("1.4.2", "none")).toBeUndefined();
    expect(nextVersion("v1.4.2+build.7", "minor")).toBe("1.5.0");
  });

  it("on 0.y.z bumps y for breaking changes and z for the rest, as npm's caret ranges read 0.y", () => {
    expect(nextVersion("0.4.2", "major")).toBe("0.5.0");
    expect(nextVersion("0.4.2", "minor")).toBe("0.4.3");
    expect(nextVersion("0.4.2", "patch")).toBe("0.4.3");
    expect(nextVersion("0.1.0", "major")).toBe("0.2.0");
  });

  it("on 0.0.z moves z whatever the change (each 0.0.z is its own caret range)", () => {
    expect(nextVersion("0.0.3", "major")).toBe("0.0.4");
    expect(nextVersion("0.0.3", "minor")).toBe("0.0.4");
  });

  it("keeps a prerelease line while the change fits it, and moves past it when it does not", () => {
    // 2.0.0-beta.1 already stands for a major release.
    expect(nextVersion("2.0.0-beta.1", "minor")).toBe("2.0.0");
    expect(nextVersion("2.0.0-beta.1", "major", { preid: "beta" })).toBe("2.0.0-beta.2");
    expect(nextVersion("2.0.0-beta.1", "patch", { preid: "rc" })).toBe("2.0.0-rc.0");
    // 1.5.0-rc.1 stands for a minor one: a breaking change goes to the next major.
    expect(nextVersion("1.5.0-rc.1", "major")).toBe("2.0.0");
    expect(nextVersion("1.5.0-rc.1", "major", { preid: "rc" })).toBe("2.0.0-rc.0");
    expect(nextVersion("1.4.3-rc.0", "minor")).toBe("1.5.0");
    expect(nextVersion("1.4.3-rc.0", "patch")).toBe("1.4.3");
    // From a release, a prerelease of the next version.
    expect(nextVersion("1.4.2", "minor", { preid: "beta" })).toBe("1.5.0-beta.0");
    // 0.x prereleases follow the 0.x rules.
    expect(nextVersion("0.5.0-beta.0", "minor")).toBe("0.5.0");
    expect(nextVersion("0.4.3-beta.0", "major")).toBe("0.5.0");
    // A prerelease with no number after its id starts counting.
    expect(nextVersion("3.0.0-alpha", "major", { preid: "alpha" })).toBe("3.0.0-alpha.0");
  });

  it("refuses what is not a version or a prerelease id", () => {
    expect(() => nextVersion("1.2", "minor")).toThrow(/not a semantic version/);
    expect(() => nextVersion("01.2.3", "minor")).toThrow(/not a semantic version/);
    expect(() => nextVersion("1.2.3", "minor", { preid: "1beta" })).toThrow(
      /not a prerelease identifier/,
    );
    expect(() => nextVersion("1.2.3", "minor", { preid: "be.ta" })).toThrow(
      /not a prerelease identifier/,
    );
  });
});

describe("version order", () => {
  it("is semver precedence, prereleases before their release", () => {
    const sorted = [
      "1.0.0",
      "1.0.0-rc.1",
      "1.0.0-beta.11",
      "1.0.0-beta.2",
      "1.0.0-beta",
      "1.0.0-alpha.beta",
      "1.0.0-alpha.1",
      "1.0.0-alpha",
      "0.9.9",
    ]
      .map((s) => parseVersion(s)!)
      .sort(compareVersions)
      .map((v) => `${v.major}.${v.minor}.${v.patch}${v.pre.length ? "-" + v.pre.join(".") : ""}`);
    expect(sorted).toEqual([
      "0.9.9",
      "1.0.0-alpha",
      "1.0.0-alpha.1",
      "1.0.0-alpha.beta",
      "1.0.0-beta",
      "1.0.0-beta.2",
      "1.0.0-beta.11",
      "1.0.0-rc.1",
      "1.0.0",
    ]);
    expect(highestVersion(["1.2.0", "1.10.0", "1.9.9", "2.0.0-rc.0", "garbage"])).toBe(
      "2.0.0-rc.0",
    );
    expect(highestVersion([])).toBeUndefined();
  });

  it("lets a chosen version through only above what the change needs", () => {
    expect(checkChosenVersion("0.9.0", "1.0.0", "minor")).toBeUndefined(); // graduating from 0.x
    expect(checkChosenVersion("1.4.2", "1.4.3", "minor")).toMatch(
      /below 1\.5\.0, the least a minor change allows/,
    );
    expect(checkChosenVersion("1.4.2", "1.4.2", "patch")).toMatch(/not above the previous version/);
    expect(checkChosenVersion("1.4.2", "nope", "patch")).toMatch(/not a semantic version/);
  });
});

const change = (
  rule: string,
  bump: Change["bump"],
  breaking: boolean,
  line: number,
  message: string,
): Change => ({
  rule,
  breaking,
  bump,
  categories: breaking ? ["FILE"] : [],
  path: "proto/shop/v1/orders.proto",
  line,
  column: 3,
  endLine: line,
  endColumn: 3,
  message,
});

describe("changelog entries", () => {
  const report: Report = {
    bump: "major",
    changes: [
      change(
        "FIELD_NO_DELETE",
        "major",
        true,
        18,
        'Previously present field "3" with name "note" on message "Order" was deleted.',
      ),
      change(
        "GRABBIT_EVENT_ROUTING_KEY_CHANGED",
        "major",
        false,
        24,
        'Accepted (no consumer yet): routing key "order.*.placed" changed.',
      ),
      change(
        "FIELD_ADDED",
        "minor",
        false,
        31,
        'Field "4" with name "tags" (map<string, string>) was added to message "Order".',
      ),
      change("DEPRECATED", "minor", false, 12, 'Field "total" was deprecated.'),
      change("OPTION_CHANGED", "patch", false, 7, "Timeout changed."),
      change("RESERVED_ADDED", "patch", false, 19, "Reserved 3."),
      change("COMMENT_CHANGED", "patch", false, 5, "Comment of message Order changed."),
    ],
    // buf's view is for buf's formats; the changelog reads grabbit's changes.
    failures: [],
  };

  it("groups changes by kind, each with its rule and file:line, markup escaped", () => {
    const entry = renderEntry({
      version: "2.0.0",
      previous: "1.4.2",
      against: ".git#tag=v1.4.2",
      report,
      date: new Date("2026-03-04T10:00:00Z"),
    });
    expect(entry).toBe(`## 2.0.0 (2026-03-04)

Major release after 1.4.2: 7 contract changes against \`.git#tag=v1.4.2\`.

### Breaking changes

- \`FIELD_NO_DELETE\` (\`proto/shop/v1/orders.proto:18\`): Previously present field "3" with name "note" on message "Order" was deleted.
- \`GRABBIT_EVENT_ROUTING_KEY_CHANGED\` (\`proto/shop/v1/orders.proto:24\`): Accepted (no consumer yet): routing key "order.\\*.placed" changed.

### Added

- \`FIELD_ADDED\` (\`proto/shop/v1/orders.proto:31\`): Field "4" with name "tags" (map\\<string, string\\>) was added to message "Order".

### Deprecated

- \`DEPRECATED\` (\`proto/shop/v1/orders.proto:12\`): Field "total" was deprecated.

### Changed

- \`OPTION_CHANGED\` (\`proto/shop/v1/orders.proto:7\`): Timeout changed.
- \`RESERVED_ADDED\` (\`proto/shop/v1/orders.proto:19\`): Reserved 3.

### Documentation

- \`COMMENT_CHANGED\` (\`proto/shop/v1/orders.proto:5\`): Comment of message Order changed.
`);
    // An accepted finding is not breaking for the gate, but it is for the SDK's callers.
    expect(sectionOf(report.changes[1]!)).toBe("Breaking changes");
  });

  it("says so for a first release", () => {
    expect(renderEntry({ version: "1.0.0", date: new Date("2026-03-04T00:00:00Z") })).toBe(
      "## 1.0.0 (2026-03-04)\n\nFirst release of the generated SDK.\n",
    );
  });

  it("puts new entries on top, replaces an entry of the same version, keeps a hand-written preface", () => {
    const first = addEntry(undefined, "1.0.0", "## 1.0.0 (2026-03-01)\n\nFirst.\n");
    expect(first.startsWith("# Changelog\n")).toBe(true);
    const second = addEntry(first, "1.1.0", "## 1.1.0 (2026-03-02)\n\nSecond.\n");
    expect(second.indexOf("## 1.1.0")).toBeLessThan(second.indexOf("## 1.0.0"));
    const redo = addEntry(second, "1.1.0", "## 1.1.0 (2026-03-03)\n\nSecond, again.\n");
    expect(redo.match(/## 1\.1\.0/g)).toHaveLength(1);
    expect(redo).toContain("Second, again.");
    expect(redo).not.toContain("(2026-03-02)");
    const own = addEntry(
      "# Orders SDK changes\n\nAsk #orders for help.\n\n## [1.0.0] - 2026-01-01\n\nOld style.\n",
      "1.0.1",
      "## 1.0.1 (2026-03-05)\n\nPatch.\n",
    );
    expect(own).toBe(
      "# Orders SDK changes\n\nAsk #orders for help.\n\n## 1.0.1 (2026-03-05)\n\nPatch.\n\n## [1.0.0] - 2026-01-01\n\nOld style.\n",
    );
  });
});

describe("the SDK's dependencies", () => {
  it("are the packages the generated code imports, not what its comments mention", () => {
    const src = mkdtempSync(join(tmpdir(), "grabbit-sdk-src-"));
    try {
      mkdirSync(join(src, "shop/v1"), { recursive: true });
      writeFileSync(
        join(src, "shop/v1/orders.ts"),
        `/* eslint-disable */
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  type Long,
  util,
} from "long";
import * as $0 from "./common.js";
export * from "node:events";

/**
 * Clients should import "orders.proto" and export { x } from "nowhere" in their own code.
 */
export const text = 'import "fake"';
`,
      );
      expect(importedPackages(src)).toEqual(["@bufbuild/protobuf", "@grabbit/runtime", "long"]);
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  });
});

describe("grabbit release usage", () => {
  const capture = async (argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runRelease(argv, {
      stdout: (s) => void (out += s),
      stderr: (s) => void (err += s),
      cwd: process.cwd(),
    });
    return { code, out, err };
  };

  it("exits 1 with a sentence on bad usage", async () => {
    expect(await capture([])).toMatchObject({
      code: 1,
      err: expect.stringMatching(/^grabbit release: --package is required/),
    });
    expect(await capture(["--package", "sdk", "--bogus"])).toMatchObject({
      code: 1,
      err: 'grabbit release: unknown flag "--bogus".\n',
    });
    expect(await capture(["--package", "sdk", "--format", "xml"])).toMatchObject({
      code: 1,
      err: expect.stringContaining('unknown format "xml"'),
    });
    expect(await capture(["--package", "sdk", "--against"])).toMatchObject({
      code: 1,
      err: "grabbit release: --against needs a value.\n",
    });
    expect(await capture(["--package", "sdk", "--initial-version", "one"])).toMatchObject({
      code: 1,
      err: expect.stringContaining("not a semantic version"),
    });
    expect(await capture(["--package", "sdk", "--name", "Not A Name"])).toMatchObject({
      code: 1,
      err: expect.stringContaining("is not an npm package name"),
    });
    const help = await capture(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("Usage: grabbit release");
  });
});
