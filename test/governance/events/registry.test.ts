// Transitive mode against a registry: verdaccio on loopback (started here, nothing proxied) holds several
// published versions of an SDK package. The first is made by the real `grabbit release` (so the release
// path is shown to carry the contract image); later ones are packages holding a `contract.binpb` built
// by the real buf; one old version predates the image and is skipped, and said so.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRelease } from "../../../governance/release/cli.js";
import { BUF, grabbit } from "../helpers.js";
import { scratchDir } from "../../support/buf.js";
import { sh, startRegistry, type LoopbackRegistry } from "../../support/registry.js";
import { parse, writeModule } from "./support.js";

const SDK = "@grabbit-sdk/events-demo";
let registry: string;
let loopback: LoopbackRegistry | undefined;
let home: string;
let work: string;

const contract = (fields: string) => ({
  "shop/v1/orders.proto": `syntax = "proto3";

package shop.v1;

import "grabbit/v1/options.proto";

message OrderPlaced {
  option (grabbit.v1.event) = { exchange: "shop" routing_key: "order.{region}.placed" };
  string region = 1;
${fields}
}
`,
});

/** A package of `version` whose tarball holds the contract image (or not), published to the registry. */
function publishVersion(version: string, fields: string, withImage = true): void {
  const dir = mkdtempSync(join(home, `pkg-${version}-`));
  const proto = join(dir, "proto");
  writeModule(proto, contract(fields));
  if (withImage) sh(BUF, ["build", proto, "-o", join(dir, "contract.binpb")], dir);
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: SDK, version, files: withImage ? ["contract.binpb"] : ["proto/"] }),
  );
  sh("npm", ["publish", "--registry", registry, "--access", "public", "--ignore-scripts"], dir);
}

beforeAll(async () => {
  loopback = await startRegistry("grabbit-events-registry");
  registry = loopback.url;
  home = loopback.home;

  // 0.9.0: published before packages carried their contract.
  publishVersion("0.9.0", "  string note = 2;", false);
  // 1.0.0: by grabbit release itself (a dry run packs the tarball; npm publishes it).
  work = scratchDir("events-registry");
  writeModule(join(work, "proto"), contract("  string note = 2;\n  int64 total = 3;"));
  writeFileSync(join(work, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n");
  let out = "";
  let err = "";
  const code = await runRelease(
    [
      "--package",
      "sdk",
      "--name",
      SDK,
      "--dry-run",
      "--pack-destination",
      "packs",
      "--format",
      "json",
    ],
    { cwd: work, stdout: (s) => void (out += s), stderr: (s) => void (err += s) },
  );
  expect(err).toBe("");
  expect(code).toBe(0);
  const { tarball, version } = JSON.parse(out) as { tarball: string; version: string };
  expect(version).toBe("1.0.0");
  expect(sh("tar", ["-tzf", tarball], work).split("\n")).toContain("package/contract.binpb");
  sh(
    "npm",
    ["publish", tarball, "--registry", registry, "--access", "public", "--ignore-scripts"],
    work,
  );
  // 1.1.0 drops note without reserving 2; 1.2.0 narrows total.
  publishVersion("1.1.0", "  int64 total = 3;");
  publishVersion("1.2.0", "  int32 total = 3;");
}, 300_000);

afterAll(async () => {
  await loopback?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("--against-registry", () => {
  // The contract now: number 2 reused as an int64, total back to int32.
  const now = () => {
    const dir = mkdtempSync(join(home, "now-"));
    writeModule(join(dir, "proto"), contract("  int64 qty = 2;\n  int32 total = 3;"));
    writeFileSync(join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n");
    return dir;
  };

  it("transitive: every published version with its image, oldest first; the oldest compatible one per event", async () => {
    const dir = now();
    const r = parse(
      await grabbit(dir, [
        "breaking",
        "--events",
        "backward",
        "--events-transitive",
        "--against-registry",
        SDK,
        "--registry",
        registry,
        "--format",
        "json",
      ]),
      dir,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(100);
    expect(r.skipped).toEqual([
      {
        version: "0.9.0",
        reason: "the package has no contract.binpb (released before grabbit carried the contract)",
      },
    ]);
    expect(
      r.changes
        .filter((c) => c.breaking)
        .map((c) => [c.against, c.rule, c.directions.join("+")])
        .sort(),
    ).toEqual([
      ["1.0.0", "EVENT_FIELD_NUMBER_REUSED", "BACKWARD+FORWARD"],
      ["1.0.0", "EVENT_FIELD_TYPE_CHANGED", "BACKWARD"],
      ["1.1.0", "EVENT_FIELD_TYPE_CHANGED", "BACKWARD"],
    ]);
    expect(r.events).toEqual([
      {
        event: "shop.v1.OrderPlaced",
        mode: "backward",
        versions: ["1.0.0", "1.1.0", "1.2.0"],
        incompatible: ["1.0.0", "1.1.0"],
        oldestCompatible: "1.2.0",
      },
    ]);
  });

  it("not transitive: the newest published version only", async () => {
    const dir = now();
    const r = parse(
      await grabbit(dir, [
        "breaking",
        "--events",
        "backward",
        "--against-registry",
        SDK,
        "--registry",
        registry,
        "--format",
        "json",
      ]),
      dir,
    );
    expect(r.code).toBe(0);
    expect(r.events[0]!.versions).toEqual(["1.2.0"]);
  });

  it("a package never published is one sentence (exit 1)", async () => {
    const dir = now();
    const r = await grabbit(dir, [
      "breaking",
      "--events",
      "full",
      "--against-registry",
      "@grabbit-sdk/nope",
      "--registry",
      registry,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /--against-registry @grabbit-sdk\/nope: the package was never published to http:\/\/127\.0\.0\.1:\d+\./,
    );
  });
});
