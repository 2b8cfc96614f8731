// A test per rule: the breaking pair reports it (exit 100), the nearby safe change does not.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RULES } from "../../governance/rules/catalog.js";
import { GRABBIT_CASES, OPTIONS_PROTO_PATH, RULE_CASES, type RuleCase } from "./cases.js";
import { ROOT, bufBreaking, compareTrees, type Tree } from "./helpers.js";

const options = readFileSync(join(ROOT, "proto", OPTIONS_PROTO_PATH), "utf8");

function tree(t: Tree | string, withOptions: boolean): Tree {
  const base = typeof t === "string" ? { "demo/v1/demo.proto": t } : t;
  return withOptions ? { ...base, [OPTIONS_PROTO_PATH]: options } : base;
}

function run(c: RuleCase, side: "bad" | "good") {
  const withOptions = c.rule.startsWith("GRABBIT_");
  return compareTrees(tree(c.old, withOptions), tree(c[side], withOptions), ["--use", c.use]);
}

describe("every buf rule has a case", () => {
  it("covers the catalog", () => {
    const covered = new Set([...RULE_CASES, ...GRABBIT_CASES].map((c) => c.rule));
    expect(RULES.map((r) => r.id).filter((id) => !covered.has(id))).toEqual([]);
  });
});

describe.each([...RULE_CASES, ...GRABBIT_CASES])("$rule", (c) => {
  it("reports the breaking change", async () => {
    const r = await run(c, "bad");
    expect(r.stderr).toBe("");
    expect(r.breaking).toContain(c.rule);
    expect(r.code).toBe(100);
    const change = r.report!.changes.find((x) => x.rule === c.rule || x.message.includes(c.rule));
    expect(change?.path).toMatch(/^(new|old)\//);
    expect(change!.line).toBeGreaterThanOrEqual(1);
    expect(change!.bump).toBe("major");
    if (c.buf) {
      // Same rule IDs as buf on the same pair, for buf's own categories.
      const buf = bufBreaking(r.dir, [c.use]);
      const ours = r.breaking.filter((id) => !id.startsWith("GRABBIT_") && !id.startsWith("TYPESCRIPT_"));
      expect([...new Set(ours)].sort()).toEqual([...new Set(buf.rules)].sort());
    }
  });
  it("does not report the safe change", async () => {
    const r = await run(c, "good");
    expect(r.stderr).toBe("");
    expect(r.breaking).not.toContain(c.rule);
  });
});
