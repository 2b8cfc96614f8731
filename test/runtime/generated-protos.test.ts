// The runtime's own protos (runtime/proto: grpc.health.v1, google.rpc.Status) are generated with
// protoc-gen-es into runtime/src/gen and committed. This regenerates them with the real buf into a
// temporary folder and fails on any difference, so an edited .proto cannot ship with stale code.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const runtimeDir = resolve(import.meta.dirname, "../../runtime");
const bin = resolve(import.meta.dirname, "../../node_modules/.bin");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

describe("runtime/src/gen", () => {
  const out = mkdtempSync(join(tmpdir(), "grabbit-runtime-gen-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("is what protoc-gen-es makes of runtime/proto today", () => {
    const template = readFileSync(join(runtimeDir, "buf.gen.yaml"), "utf8").replace(
      "out: src/gen",
      `out: ${out}`,
    );
    writeFileSync(join(out, "buf.gen.yaml"), template);
    execFileSync(join(bin, "buf"), ["generate", "--template", join(out, "buf.gen.yaml")], {
      cwd: runtimeDir,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      stdio: "pipe",
    });
    const fresh = files(out)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => relative(out, f))
      .sort();
    const committed = files(join(runtimeDir, "src/gen"))
      .map((f) => relative(join(runtimeDir, "src/gen"), f))
      .sort();
    expect(fresh).toEqual(committed);
    expect(fresh).toContain("grpc/health/v1/health_pb.ts");
    for (const name of fresh) {
      expect(readFileSync(join(out, name), "utf8"), name).toBe(
        readFileSync(join(runtimeDir, "src/gen", name), "utf8"),
      );
    }
  });
});
