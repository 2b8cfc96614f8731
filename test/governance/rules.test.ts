// A test per rule: the breaking pair reports it (exit 100), the nearby safe change does not.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RULES } from "../../governance/rules/catalog.js";
import { GRABBIT_CASES, OPTIONS_PROTO_PATH, RULE_CASES, type RuleCase } from "./cases.js";
import { ROOT, bufBreaking, compareTrees, type Tree } from "./helpers.js";

const options = readFileSync(join(ROOT, "proto", OPTIONS_PROTO_PATH), "utf8");

function tree(t: Tree | string, withOptions: boolean): Tree {
  // A v2 buf.yaml, as buf.yaml files are now: without one, buf (and grabbit) read the v1 rule set.
  const base = {
    "buf.yaml": "version: v2\n",
    ...(typeof t === "string" ? { "demo/v1/demo.proto": t } : t),
  };
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
      const ours = r.breaking.filter(
        (id) => !id.startsWith("GRABBIT_") && !id.startsWith("TYPESCRIPT_"),
      );
      expect([...new Set(ours)].sort()).toEqual([...new Set(buf.rules)].sort());
    }
  });
  it("does not report the safe change", async () => {
    const r = await run(c, "good");
    expect(r.stderr).toBe("");
    expect(r.breaking).not.toContain(c.rule);
  });
});

describe("GRABBIT_SERVICE_QUEUE_TYPE_CHANGED messages and bumps", () => {
  const service = (opts: string) =>
    tree(
      `syntax = "proto3";\n\npackage demo.v1;\n\nimport "grabbit/v1/options.proto";\n\nmessage A { string id = 1; }\nservice Orders {\n  option (grabbit.v1.service) = {\n    transports: [TRANSPORT_AMQP]\n${opts}\n  };\n  rpc Get(A) returns (A);\n}\n`,
      true,
    );
  const findings = async (before: string, after: string) => {
    const r = await compareTrees(service(before), service(after), ["--use", "GRABBIT"]);
    expect(r.stderr).toBe("");
    return r;
  };

  it("says why quorum -> classic breaks, at the queue_type line", async () => {
    const r = await findings(
      "    queue_type: QUEUE_TYPE_QUORUM",
      "    queue_type: QUEUE_TYPE_CLASSIC",
    );
    expect(r.code).toBe(100);
    const c = r.report!.changes.find((x) => x.rule === "GRABBIT_SERVICE_QUEUE_TYPE_CHANGED")!;
    expect(c).toMatchObject({
      breaking: true,
      bump: "major",
      path: "new/demo/v1/demo.proto",
      line: 11,
      column: 5,
    });
    expect(c.message).toBe(
      'Service "Orders" changed its AMQP request queue type from quorum to classic: servers declaring "demo.v1.Orders" as classic fail with PRECONDITION_FAILED wherever it exists as quorum, until it is deleted and re-created (existing deployments keep the type they created it with).',
    );
  });

  it("reports fixing an unspecified type, even to the one the broker picks anyway, and says how to accept it", async () => {
    const r = await findings("", "    queue_type: QUEUE_TYPE_QUORUM");
    expect(r.code).toBe(100);
    const c = r.report!.changes.find((x) => x.rule === "GRABBIT_SERVICE_QUEUE_TYPE_CHANGED")!;
    expect(c.bump).toBe("major");
    expect(c.message).toContain(
      "now fixes its AMQP request queue type to quorum (it was unspecified: quorum where the broker supports it, classic otherwise, any existing queue used as is)",
    );
    expect(c.message).toContain("grabbit:accept GRABBIT_SERVICE_QUEUE_TYPE_CHANGED");
  });

  it("leaving the type unspecified again is a patch: servers then use the existing queue of either type", async () => {
    const r = await findings("    queue_type: QUEUE_TYPE_CLASSIC", "");
    expect(r.code).toBe(0);
    expect(r.report!.bump).toBe("patch");
    expect(r.report!.changes).toEqual([
      expect.objectContaining({
        rule: "OPTION_CHANGED",
        breaking: false,
        bump: "patch",
        message: expect.stringContaining(
          'no longer fixes the type of its AMQP request queue "demo.v1.Orders" (was classic)',
        ),
      }),
    ]);
  });

  it("a grabbit:accept comment on the service accepts it when every environment already has the type", async () => {
    const accepted = Object.fromEntries(
      Object.entries(service("    queue_type: QUEUE_TYPE_QUORUM")).map(([k, v]) => [
        k,
        v.replace(
          "service Orders {",
          "// grabbit:accept GRABBIT_SERVICE_QUEUE_TYPE_CHANGED reason: every broker made it quorum already\nservice Orders {",
        ),
      ]),
    );
    const r = await compareTrees(service(""), accepted, ["--use", "GRABBIT"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const c = r.report!.changes.find((x) => x.rule === "GRABBIT_SERVICE_QUEUE_TYPE_CHANGED")!;
    expect(c).toMatchObject({ breaking: false, bump: "major" });
    expect(c.message).toMatch(/^Accepted \(every broker made it quorum already\): /);
  });
});
