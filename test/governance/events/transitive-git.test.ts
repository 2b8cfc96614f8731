// Transitive mode against git tags: a temporary repository with several tagged releases of an event
// contract (one reuses a field number removed two releases earlier), compared by the real buf at each
// tag. Non-transitive runs look at the newest tag only; transitive ones at every tag matching the
// pattern, and report per event the oldest version it is still compatible with.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, grabbit, tempDir } from "../helpers.js";
import { parse } from "./support.js";

let repo: string;
const git = (...args: string[]) =>
  execFileSync("git", ["-c", "user.name=ci", "-c", "user.email=ci@example.com", ...args], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });

const placed = (fields: string) => `message OrderPlaced {
  option (grabbit.v1.event) = { exchange: "shop" routing_key: "order.{region}.placed" };
  string region = 1;
${fields}
}
`;
const shipped = `message OrderShipped {
  option (grabbit.v1.event) = { exchange: "shop" routing_key: "order.shipped" };
  string id = 1;
}
`;
const file = (body: string) =>
  `syntax = "proto3";\n\npackage shop.v1;\n\nimport "grabbit/v1/options.proto";\n\n${body}`;

function release(body: string, tag?: string): void {
  writeFileSync(join(repo, "proto/shop/v1/orders.proto"), file(body));
  git("add", "-A");
  git("commit", "-q", "--allow-empty", "-m", tag ?? "work");
  if (tag) git("tag", tag);
}

beforeAll(() => {
  repo = tempDir("grabbit-events-git-");
  git("init", "-q", "-b", "main");
  cpSync(join(ROOT, "proto/grabbit"), join(repo, "proto/grabbit"), { recursive: true });
  mkdirSync(join(repo, "proto/shop/v1"), { recursive: true });
  writeFileSync(join(repo, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n");
  release(placed("  string note = 2;\n  int64 total = 3;"), "sdk-v1.0.0");
  // note removed without reserving its number
  release(placed("  int64 total = 3;"), "sdk-v1.1.0");
  release(placed("  int64 total = 3;\n  string extra = 4;") + "\n" + shipped, "sdk-v1.2.0");
  release(placed("  int64 total = 3;\n  string extra = 4;") + "\n" + shipped, "other-v9.0.0");
  // The working tree: number 2 reused with another type.
  writeFileSync(
    join(repo, "proto/shop/v1/orders.proto"),
    file(placed("  int64 qty = 2;\n  int64 total = 3;\n  string extra = 4;") + "\n" + shipped),
  );
});

afterAll(() => {
  if (repo) rmSync(repo, { recursive: true, force: true });
});

describe("--against-tags", () => {
  it("without --events-transitive, compares with the newest matching tag only: compatible", async () => {
    const r = parse(
      await grabbit(repo, [
        "breaking",
        "--events",
        "full",
        "--against-tags",
        "sdk-v*",
        "--format",
        "json",
      ]),
      repo,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.changes).toEqual([]);
    expect(r.events.map((e) => [e.event, e.versions, e.oldestCompatible])).toEqual([
      ["shop.v1.OrderPlaced", ["sdk-v1.2.0"], "sdk-v1.2.0"],
      ["shop.v1.OrderShipped", ["sdk-v1.2.0"], "sdk-v1.2.0"],
    ]);
  });

  it("with --events-transitive, finds the reused number against the release that still had it", async () => {
    const r = parse(
      await grabbit(repo, [
        "breaking",
        "--events",
        "full",
        "--events-transitive",
        "--against-tags",
        "sdk-v*",
        "--format",
        "json",
      ]),
      repo,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(100);
    const failing = r.changes.filter((c) => c.breaking);
    expect(failing.map((c) => [c.rule, c.against, c.directions])).toEqual([
      ["EVENT_FIELD_NUMBER_REUSED", "sdk-v1.0.0", ["BACKWARD", "FORWARD"]],
    ]);
    expect(failing[0]!.message).toMatch(
      /^against sdk-v1\.0\.0: Field number 2 of "shop\.v1\.OrderPlaced" was "note string" and is now "qty int64"/,
    );
    expect(failing[0]!.path).toBe("proto/shop/v1/orders.proto");
    // The notes of the removal (1.0.0 -> now) are listed too, failing nothing.
    expect(r.events).toEqual([
      {
        event: "shop.v1.OrderPlaced",
        mode: "full",
        versions: ["sdk-v1.0.0", "sdk-v1.1.0", "sdk-v1.2.0"],
        incompatible: ["sdk-v1.0.0"],
        oldestCompatible: "sdk-v1.1.0",
      },
      {
        event: "shop.v1.OrderShipped",
        mode: "full",
        versions: ["sdk-v1.2.0"],
        incompatible: [],
        oldestCompatible: "sdk-v1.2.0",
      },
    ]);
  });

  it("text output ends with the per-event summary", async () => {
    const r = await grabbit(repo, [
      "breaking",
      "--events",
      "full",
      "--events-transitive",
      "--against-tags",
      "sdk-v*",
    ]);
    expect(r.code).toBe(100);
    expect(r.stdout).toMatch(
      /^proto\/shop\/v1\/orders\.proto:\d+:3:against sdk-v1\.0\.0: Field number 2/m,
    );
    expect(r.stdout).toContain(
      "# shop.v1.OrderPlaced (full): compatible back to sdk-v1.1.0; breaks with sdk-v1.0.0\n",
    );
    expect(r.stdout).toContain(
      "# shop.v1.OrderShipped (full): compatible with every version back to sdk-v1.2.0\n",
    );
  });

  it("grabbit.yaml can turn transitive mode and the tag pattern on; a pattern matching nothing is an error", async () => {
    writeFileSync(
      join(repo, "grabbit.yaml"),
      'version: v1\nevents:\n  mode: backward\n  transitive: true\n  against_tags: "sdk-v*"\n',
    );
    try {
      const r = parse(
        await grabbit(repo, ["breaking", "--events", "backward", "--format", "json"]),
        repo,
      );
      expect(r.code).toBe(100);
      expect(r.events[0]!.oldestCompatible).toBe("sdk-v1.1.0");
      const none = await grabbit(repo, [
        "breaking",
        "--events",
        "full",
        "--against-tags",
        "nope-*",
      ]);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/--against-tags nope-\*: no tag of .* matches\./);
    } finally {
      rmSync(join(repo, "grabbit.yaml"));
    }
  });
});

describe("tag order", () => {
  it("versions sort by semantic version after the pattern's prefix, other tags keep git's date order", async () => {
    const { byVersion } = await import("../../../governance/events/sources.js");
    expect(
      byVersion(["sdk-v1.10.0", "sdk-v1.2.0", "sdk-v1.2.0-beta.1", "sdk-v0.9.0"], "sdk-v"),
    ).toEqual(["sdk-v0.9.0", "sdk-v1.2.0-beta.1", "sdk-v1.2.0", "sdk-v1.10.0"]);
    expect(byVersion(["release-b", "release-a"], "release-")).toEqual(["release-b", "release-a"]);
  });
});
