// grabbit init's --messages: the buf.gen.yaml it writes for each message library (the consuming-repo
// e2e test runs both through buf and tsc), and a clear refusal of an unknown library.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { runInitCommand } from "../../cli/init.js";
import { scratchDir } from "../support/buf.js";

let out: string[];
beforeEach(() => {
  out = [];
  vi.spyOn(console, "log").mockImplementation((s: string) => void out.push(s));
  vi.spyOn(console, "error").mockImplementation((s: string) => void out.push(s));
});
afterEach(() => vi.restoreAllMocks());
const io = { stdout: (s: string) => void out.push(s), stderr: (s: string) => void out.push(s) };

type Plugin = { local: string; out: string; opt?: string[] };

describe("grabbit init --messages", () => {
  it("protobuf-es: protoc-gen-es and protoc-gen-grabbit with messages=protobuf-es and the same options", async () => {
    const dir = scratchDir("init-es");
    expect(await runInitCommand(["--dir", dir, "--messages", "protobuf-es"], io)).toBe(0);
    const plugins = (
      parse(readFileSync(join(dir, "buf.gen.yaml"), "utf8")) as { plugins: Plugin[] }
    ).plugins;
    expect(plugins.map((p) => p.local)).toEqual(["protoc-gen-es", "protoc-gen-grabbit"]);
    expect(plugins[0]!.opt).toEqual(["target=ts", "import_extension=js"]);
    expect(plugins[1]!.opt).toEqual(["messages=protobuf-es", "target=ts", "import_extension=js"]);
  });

  it("ts-proto by default", async () => {
    const dir = scratchDir("init-ts");
    expect(await runInitCommand(["--dir", dir], io)).toBe(0);
    const plugins = (
      parse(readFileSync(join(dir, "buf.gen.yaml"), "utf8")) as { plugins: Plugin[] }
    ).plugins;
    expect(plugins.map((p) => p.local)).toEqual(["protoc-gen-ts_proto", "protoc-gen-grabbit"]);
    expect(plugins[1]!.opt).not.toContain("messages=protobuf-es");
  });

  it("refuses an unknown library and writes nothing", async () => {
    const dir = scratchDir("init-bad");
    expect(await runInitCommand(["--dir", dir, "--messages", "protobufjs"], io)).toBe(1);
    expect(out.join("\n")).toContain(
      `grabbit init: --messages takes ts-proto or protobuf-es, not "protobufjs".`,
    );
    expect(() => readFileSync(join(dir, "buf.gen.yaml"))).toThrow(/ENOENT/);
  });
});
