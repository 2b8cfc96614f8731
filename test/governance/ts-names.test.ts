// `grabbit breaking --messages protobuf-es`: the TYPESCRIPT_* rules name enum members as protobuf-es
// does. It strips the enum's prefix when every value has it, so a value added without the prefix
// renames every member, which ts-proto (proto names as they are) never does.
import { describe, expect, it } from "vitest";
import { compareTrees, proto } from "./helpers.js";

const level = (values: string) => ({ "demo/v1/demo.proto": proto(`enum Level {\n${values}\n}`) });
const PREFIXED = "  LEVEL_UNSPECIFIED = 0;\n  LEVEL_WARN = 1;";

describe("TYPESCRIPT_ENUM_VALUE_RENAMED follows the message library", () => {
  it("protobuf-es: a value added without the prefix renames every member, and the report says so", async () => {
    const run = await compareTrees(level(PREFIXED), level(`${PREFIXED}\n  OTHER = 2;`), [
      "--use",
      "TYPESCRIPT",
      "--messages",
      "protobuf-es",
    ]);
    expect(run.code).toBe(100);
    const renamed = run
      .report!.changes.filter((c) => c.rule === "TYPESCRIPT_ENUM_VALUE_RENAMED")
      .map((c) => c.message);
    expect(renamed).toEqual([
      `Enum value "0" on enum "Level" changed its TypeScript member from "UNSPECIFIED" to "LEVEL_UNSPECIFIED". protobuf-es no longer strips the prefix "LEVEL_" (not every value has it now), which renames every member of the enum.`,
      `Enum value "1" on enum "Level" changed its TypeScript member from "WARN" to "LEVEL_WARN". protobuf-es no longer strips the prefix "LEVEL_" (not every value has it now), which renames every member of the enum.`,
    ]);
  });

  it("ts-proto (the default): the same change renames nothing", async () => {
    const run = await compareTrees(level(PREFIXED), level(`${PREFIXED}\n  OTHER = 2;`), [
      "--use",
      "TYPESCRIPT",
    ]);
    expect(run.code).toBe(0);
    expect(run.breaking).toEqual([]);
  });

  it("protobuf-es: a value added with the prefix keeps every member, and a renamed value is reported once, stripped", async () => {
    const added = await compareTrees(level(PREFIXED), level(`${PREFIXED}\n  LEVEL_FATAL = 2;`), [
      "--use",
      "TYPESCRIPT",
      "--messages",
      "protobuf-es",
    ]);
    expect(added.breaking).toEqual([]);
    const renamed = await compareTrees(
      level(PREFIXED),
      level("  LEVEL_UNSPECIFIED = 0;\n  LEVEL_WARNING = 1;"),
      ["--use", "TYPESCRIPT", "--messages", "protobuf-es"],
    );
    expect(renamed.report!.changes.filter((c) => c.breaking).map((c) => c.message)).toEqual([
      `Enum value "1" on enum "Level" changed its TypeScript member from "WARN" to "WARNING".`,
    ]);
  });

  it("protobuf-es: the last value without the prefix removed turns stripping on, renaming the others", async () => {
    const run = await compareTrees(
      level(`${PREFIXED}\n  OTHER = 2;`),
      level(`${PREFIXED}\n  reserved 2;`),
      ["--use", "TYPESCRIPT", "--messages", "protobuf-es"],
    );
    const renamed = run
      .report!.changes.filter((c) => c.rule === "TYPESCRIPT_ENUM_VALUE_RENAMED")
      .map((c) => c.message);
    expect(renamed).toHaveLength(2);
    expect(renamed[0]).toContain(
      `from "LEVEL_UNSPECIFIED" to "UNSPECIFIED". protobuf-es now strips the prefix "LEVEL_"`,
    );
  });

  it("refuses an unknown library", async () => {
    const run = await compareTrees(level(PREFIXED), level(PREFIXED), ["--messages", "protobuf"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`--messages takes ts-proto or protobuf-es, not "protobuf".`);
  });
});
