// The rule catalog as data: IDs are unique, each is reported by some check, and what checks report is
// a catalog ID, at compile time (RuleId) and in the sources. That each rule really fires on a breaking
// pair is rules.test.ts's "covers the catalog" (and events/rules.test.ts for EVENT_RULES).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EVENT_RULES, type EventRuleId } from "../../governance/events/compat.js";
import {
  CHANGE_KINDS,
  RULES,
  RULE_BY_ID,
  isRuleId,
  type RuleId,
} from "../../governance/rules/catalog.js";
import type { Ctx } from "../../governance/rules/context.js";
import { ROOT } from "./helpers.js";

const RULES_DIR = join(ROOT, "governance/rules");
const sources = readdirSync(RULES_DIR)
  .filter((f) => f.endsWith(".ts") && f !== "catalog.ts")
  .map((f) => readFileSync(join(RULES_DIR, f), "utf8"))
  .join("\n");

describe("the rule catalog", () => {
  it("has unique, well-formed IDs apart from the change kinds", () => {
    const ids = RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[A-Z][A-Z0-9_]+$/);
    expect(ids.filter((id) => id in CHANGE_KINDS)).toEqual([]);
    expect(Object.keys(EVENT_RULES).filter((id) => RULE_BY_ID.has(id))).toEqual([]);
    expect(RULES.filter((r) => !r.purpose.startsWith("Checks that ")).map((r) => r.id)).toEqual([]);
  });

  it("every rule is named by a check in governance/rules/", () => {
    expect(RULES.map((r) => r.id).filter((id) => !sources.includes(`"${id}"`))).toEqual([]);
  });

  it("every ID a check reports with a literal is a catalog rule", () => {
    const used = [...sources.matchAll(/ctx\.(?:add|on)\(\s*"([A-Z0-9_]+)"/g)].map((m) => m[1]!);
    expect(used.length).toBeGreaterThan(50);
    expect(used.filter((id) => !isRuleId(id))).toEqual([]);
  });

  it("a misspelt rule ID does not compile", () => {
    // Type-level: `tsc --noEmit` (npm test's pretest) fails if these lines stop being errors, i.e. if
    // Ctx.add or an event finding went back to taking any string. Never called at run time.
    const typeCheckOnly = (ctx: Ctx, at: Parameters<Ctx["add"]>[1]) => {
      // @ts-expect-error FIELD_NO_DELTE is not a RuleId
      ctx.add("FIELD_NO_DELTE", at, "");
      // @ts-expect-error nor is a change kind: those go through ctx.change
      ctx.add("FIELD_ADDED", at, "");
      ctx.add("FIELD_NO_DELETE", at, "");
      // @ts-expect-error EVENT_RULES keys only
      const bad: EventRuleId = "EVENT_FIELD_TYPE_CHANGE";
      const good: RuleId = "TYPESCRIPT_FIELD_RENAMED";
      return [bad, good];
    };
    expect(typeof typeCheckOnly).toBe("function");
    expect(isRuleId("FIELD_NO_DELETE")).toBe(true);
    expect(isRuleId("FIELD_NO_DELTE")).toBe(false);
  });
});
