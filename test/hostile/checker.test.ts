// Hostile input to `grabbit breaking` through main(): random bytes and damaged copies of a real image
// as .binpb, random --config data, random argument lists, and git refs that do not exist. Every run
// must end with exit 0, 100 or 1, and a 1 must come with one sentence on stderr, never a stack.
// (Each run starts buf, so the run counts are kept modest.)
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../../cli/main.js";
import { BUF, tempDir, writeTree, proto } from "../governance/helpers.js";
import { runs, tally } from "./support.js";

let dir: string;
let image: Uint8Array;

beforeAll(() => {
  dir = tempDir("grabbit-hostile-checker-");
  writeTree(join(dir, "mod"), {
    "demo/v1/demo.proto": proto(`
message Order {
  string id = 1;
  int32 count = 2;
  repeated string tags = 3;
  map<string, int64> totals = 4;
  oneof pay { string card = 5; string iban = 6; }
}
enum State { STATE_UNSPECIFIED = 0; STATE_OPEN = 1; }
service Orders { rpc Get(Order) returns (Order); }
`),
  });
  execFileSync(BUF, ["build", join(dir, "mod"), "-o", join(dir, "good.binpb")], { stdio: "pipe" });
  // A plain Uint8Array: Buffer.slice() would share memory, and the damage would pile up run after run.
  image = new Uint8Array(readFileSync(join(dir, "good.binpb")));
  expect(Buffer.isBuffer(image)).toBe(false);
});

interface Outcome {
  code: number;
  stderr: string;
}

async function check(argv: string[], cwd = dir): Promise<Outcome> {
  let stderr = "";
  let code: number;
  try {
    code = await main(argv, {
      cwd,
      isTTY: false,
      stdout: () => {},
      stderr: (s) => void (stderr += s),
    });
  } catch (err) {
    throw new Error(
      `main(${JSON.stringify(argv).slice(0, 200)}) threw: ${err instanceof Error ? err.stack : String(err)}`,
    );
  }
  expect([0, 1, 100]).toContain(code);
  if (code === 1) {
    expect(stderr.trim()).not.toBe("");
    expect(stderr).not.toMatch(/\n\s+at /);
  }
  return { code, stderr };
}

function count(outcomes: Record<string, number>, code: number): void {
  const key = `exit ${code}`;
  outcomes[key] = (outcomes[key] ?? 0) + 1;
}

let seq = 0;
function writeImage(bytes: Uint8Array): string {
  const path = join(dir, `img-${seq++}.binpb`);
  writeFileSync(path, bytes);
  return path;
}

describe("grabbit breaking under hostile input", () => {
  it("random bytes as an image, on either side: exit 1 with a sentence", async () => {
    const outcomes: Record<string, number> = {};
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, asInput) => {
        const bad = writeImage(bytes);
        const good = join(dir, "good.binpb");
        const r = await check([
          "breaking",
          asInput ? bad : good,
          "--against",
          asInput ? good : bad,
          "--format",
          "json",
        ]);
        // Empty bytes are a valid empty image (no files): comparing it is a legitimate answer.
        if (bytes.length > 0 && r.code === 1) expect(r.stderr).toMatch(/^grabbit breaking: .+\n$/);
        count(outcomes, r.code);
        tried++;
      }),
      runs(150),
    );
    tally("checker random-byte images", tried, outcomes);
    expect(outcomes["exit 1"]).toBeGreaterThan(tried / 2);
  }, 300_000);

  it("damaged copies of a real image (truncated, bytes flipped, bytes inserted): a report or exit 1, never a crash", async () => {
    const damage = fc.oneof(
      fc
        .nat({ max: image.length - 1 })
        .map((n) => ({ kind: "truncate" as const, at: n, bytes: [] as number[] })),
      fc
        .tuple(
          fc.nat({ max: image.length - 1 }),
          fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }),
        )
        .map(([at, bytes]) => ({ kind: "flip" as const, at, bytes })),
      fc
        .tuple(
          fc.nat({ max: image.length - 1 }),
          fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }),
        )
        .map(([at, bytes]) => ({ kind: "insert" as const, at, bytes })),
    );
    // The undamaged copy compares clean: the outcomes below are the damage's doing.
    expect(
      (await check(["breaking", writeImage(image.slice()), "--against", join(dir, "good.binpb")]))
        .code,
    ).toBe(0);
    const outcomes: Record<string, number> = {};
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(damage, async (d) => {
        let bytes: Uint8Array;
        if (d.kind === "truncate") bytes = image.slice(0, d.at);
        else if (d.kind === "insert")
          bytes = new Uint8Array([...image.slice(0, d.at), ...d.bytes, ...image.slice(d.at)]);
        else {
          bytes = image.slice();
          d.bytes.forEach((b, i) => {
            if (d.at + i < bytes.length) bytes[d.at + i] = b;
          });
        }
        const r = await check([
          "breaking",
          writeImage(bytes),
          "--against",
          join(dir, "good.binpb"),
          "--format",
          "json",
        ]);
        count(outcomes, r.code);
        tried++;
      }),
      runs(200),
    );
    tally("checker damaged images", tried, outcomes);
  }, 900_000);

  it("random --config data and argument lists: exit 0, 1 or 100, never a crash", async () => {
    const good = join(dir, "good.binpb");
    const json: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });
    const config = fc.oneof(
      fc.string({ maxLength: 60 }),
      // Paths that exist but are no configuration file: directories, a binary image.
      fc.constantFrom(".", "..", "/", good),
      json.map((v) => JSON.stringify(v)),
      fc
        .record({ version: fc.constantFrom("v1", "v2", "v3", 1, null), breaking: json })
        .map((v) => JSON.stringify(v)),
      fc
        .record({
          version: fc.constant("v2"),
          breaking: fc.record({
            use: fc.array(fc.constantFrom("FILE", "WIRE", "NOPE", "FIELD_NO_DELETE", "", "*"), {
              maxLength: 3,
            }),
            except: fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 }),
            ignore: fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 }),
          }),
        })
        .map((v) => JSON.stringify(v)),
    );
    const token = fc.oneof(
      fc.constantFrom(
        "breaking",
        "--against",
        "--format",
        "--error-format",
        "--use",
        "--except",
        "--config",
        "json",
        "text",
        "markdown",
        "github-actions",
        "xml",
        "FIELD_NO_DELETE",
        "FILE",
        "NOPE",
        "",
        "-",
        "--",
        "--unknown",
        "-h",
        good,
        good,
      ),
      fc.stringMatching(/^[a-z0-9_-]{1,10}$/), // relative paths that do not exist in an empty cwd
    );
    const argv = fc.oneof(
      fc.array(token, { maxLength: 8 }),
      config.map((c) => ["breaking", good, "--against", good, "--config", c]),
    );
    const empty = mkdtempSync(join(tmpdir(), "grabbit-empty-"));
    const outcomes: Record<string, number> = {};
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(argv, async (a) => {
        count(outcomes, (await check(a, empty)).code);
        tried++;
      }),
      runs(300),
    );
    tally("checker argv and config", tried, outcomes);
  }, 300_000);

  it("git refs that do not exist, and repositories that are not there: exit 1 naming the ref", async () => {
    const repo = join(dir, "repo");
    writeTree(repo, { "demo/v1/demo.proto": proto("message A { string id = 1; }\n") });
    const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, stdio: "pipe" });
    git("init", "-q", "-b", "main");
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", ".");
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "one");
    const refs = [
      ".git#branch=no-such-branch",
      ".git#tag=v999.0.0",
      ".git#ref=0123456789abcdef0123456789abcdef01234567",
      ".git#ref=HEAD~5",
      ".git#branch=main,subdir=missing",
      "nowhere/.git#branch=main",
      ".git#nonsense=1",
    ];
    const outcomes: Record<string, number> = {};
    for (const ref of refs) {
      const r = await check(["breaking", ".", "--against", ref], repo);
      expect({ ref, code: r.code }).toEqual({ ref, code: 1 });
      expect(r.stderr).toMatch(/^grabbit breaking: /);
      count(outcomes, r.code);
    }
    tally("checker missing git refs", refs.length, outcomes);
  });
});
