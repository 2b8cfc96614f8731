// One case per event-compatibility rule and direction, each a small pair of protos built with the real
// buf: what breaks BACKWARD (new consumers reading old data), what breaks FORWARD (old consumers
// reading new data), what breaks both, and what is safe; then how the mode decides what fails.
import { describe, expect, it } from "vitest";
import { EVENT_RULES, type EventRuleId } from "../../../governance/events/compat.js";
import { FORMATS } from "../../../governance/report/index.js";
import { all, compareEvents, contract, event, failing } from "./support.js";

const P2 = `syntax = "proto2";`;
const ED = `edition = "2023";`;

interface Case {
  name: string;
  old: string;
  cur: string;
  /** rule:DIRECTIONS of the findings that fail under --events full. */
  fails: string[];
  syntax?: string;
  rollout?: string;
  /** Flags instead of --events full. */
  args?: string[];
  /** rule IDs of the findings that are listed without failing (notes), when the case is about one. */
  notes?: EventRuleId[];
}

const CASES: Case[] = [
  {
    name: "compatible: a field added",
    old: event(""),
    cur: event("  string note = 2;"),
    fails: [],
  },
  {
    name: "widened (int32 to int64, bool to uint32): old data reads intact, new values may not fit (FORWARD)",
    old: event("  int32 n = 2;\n  bool b = 3;"),
    cur: event("  int64 n = 2;\n  uint32 b = 3;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:FORWARD", "EVENT_FIELD_TYPE_CHANGED:FORWARD"],
  },
  {
    name: "int32 widened to int64 alone: consumers first",
    old: event("  int32 n = 2;"),
    cur: event("  int64 n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:FORWARD"],
    rollout: "consumers-first",
  },
  {
    name: "int64 narrowed to int32: BACKWARD",
    old: event("  int64 n = 2;"),
    cur: event("  int32 n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD"],
    rollout: "producers-first",
  },
  {
    name: "int32 to uint32: values change both ways",
    old: event("  int32 n = 2;"),
    cur: event("  uint32 n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
    rollout: "neither",
  },
  {
    name: "sint32 widened to sint64: FORWARD only",
    old: event("  sint32 n = 2;"),
    cur: event("  sint64 n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:FORWARD"],
  },
  {
    name: "sint32 to int32: zigzag is another encoding",
    old: event("  sint32 n = 2;"),
    cur: event("  int32 n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "fixed32 to sfixed32: signedness both ways",
    old: event("  fixed32 n = 2;"),
    cur: event("  sfixed32 n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "fixed64 to double: not the same value",
    old: event("  fixed64 n = 2;"),
    cur: event("  double n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "string to bytes: old bytes readers are fine, new bytes may not be UTF-8 (FORWARD)",
    old: event("  string s = 2;"),
    cur: event("  bytes s = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:FORWARD"],
  },
  {
    name: "message to bytes: bytes hold the message (BACKWARD fine), bytes need not parse (FORWARD)",
    old: event("  Inner m = 2;", "message Inner { string x = 1; }"),
    cur: event("  bytes m = 2;", "message Inner { string x = 1; }"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:FORWARD"],
  },
  {
    name: "string to message: neither reads the other",
    old: event("  string m = 2;", "message Inner { string x = 1; }"),
    cur: event("  Inner m = 2;", "message Inner { string x = 1; }"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
    rollout: "neither",
  },
  {
    name: "int32 to string: another wire type",
    old: event("  int32 n = 2;"),
    cur: event("  string n = 2;"),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "enum to int32: binary-compatible (JSON is not)",
    old: event("  Color c = 2;", "enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; }"),
    cur: event("  int32 c = 2;", "enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; }"),
    fails: [],
  },
  {
    name: "removed field, number reused with another type",
    old: event("  string note = 2;"),
    cur: event("  int64 count = 2;"),
    fails: ["EVENT_FIELD_NUMBER_REUSED:BACKWARD+FORWARD"],
  },
  {
    name: "removed field, number reserved: nothing",
    old: event("  string note = 2;"),
    cur: event("  reserved 2;"),
    fails: [],
  },
  {
    name: "repeated to singular: BACKWARD",
    old: event("  repeated string tags = 2;"),
    cur: event("  string tags = 2;"),
    fails: ["EVENT_FIELD_CARDINALITY_CHANGED:BACKWARD"],
  },
  {
    name: "singular to repeated: FORWARD",
    old: event("  string tags = 2;"),
    cur: event("  repeated string tags = 2;"),
    fails: ["EVENT_FIELD_CARDINALITY_CHANGED:FORWARD"],
  },
  {
    name: "a field became required (proto2): BACKWARD",
    syntax: P2,
    old: event("  optional int32 n = 2;").replace(
      "string region = 1",
      "optional string region = 1",
    ),
    cur: event("  required int32 n = 2;").replace(
      "string region = 1",
      "optional string region = 1",
    ),
    fails: ["EVENT_FIELD_REQUIRED:BACKWARD"],
  },
  {
    name: "a required field was removed (proto2): FORWARD",
    syntax: P2,
    old: event("  required int32 n = 2;").replace(
      "string region = 1",
      "optional string region = 1",
    ),
    cur: event("  reserved 2;").replace("string region = 1", "optional string region = 1"),
    fails: ["EVENT_FIELD_REQUIRED:FORWARD"],
  },
  {
    name: "a field became LEGACY_REQUIRED (editions): BACKWARD",
    syntax: ED,
    old: event("  int32 n = 2;"),
    cur: event("  int32 n = 2 [features.field_presence = LEGACY_REQUIRED];"),
    fails: ["EVENT_FIELD_REQUIRED:BACKWARD"],
  },
  {
    name: "enum value removed (open enum): BACKWARD",
    old: event(
      "  Color c = 2;",
      "enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; COLOR_BLUE = 2; }",
    ),
    cur: event("  Color c = 2;", "enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; }"),
    fails: ["EVENT_ENUM_VALUE_UNKNOWN:BACKWARD"],
  },
  {
    name: "enum value added (closed enum, proto2): FORWARD",
    syntax: P2,
    old: event("  optional Color c = 2;", "enum Color { COLOR_RED = 1; }").replace(
      "string region = 1",
      "optional string region = 1",
    ),
    cur: event("  optional Color c = 2;", "enum Color { COLOR_RED = 1; COLOR_BLUE = 2; }").replace(
      "string region = 1",
      "optional string region = 1",
    ),
    fails: ["EVENT_ENUM_VALUE_UNKNOWN:FORWARD"],
  },
  {
    name: "fields moved into a oneof: BACKWARD",
    old: event("  string a = 2;\n  string b = 3;"),
    cur: event("  oneof pick {\n    string a = 2;\n    string b = 3;\n  }"),
    fails: ["EVENT_FIELD_ONEOF_CHANGED:BACKWARD"],
  },
  {
    name: "fields moved out of a oneof: FORWARD",
    old: event("  oneof pick {\n    string a = 2;\n    string b = 3;\n  }"),
    cur: event("  string a = 2;\n  string b = 3;"),
    fails: ["EVENT_FIELD_ONEOF_CHANGED:FORWARD"],
  },
  {
    name: "one field into a new oneof: safe",
    old: event("  string a = 2;"),
    cur: event("  oneof pick {\n    string a = 2;\n  }"),
    fails: [],
  },
  {
    name: "renamed field: JSON only (does not fail without --events-json)",
    old: event("  string note = 2;"),
    cur: event("  string remark = 2;"),
    fails: [],
    notes: ["EVENT_FIELD_JSON_NAME_CHANGED"],
  },
  {
    name: "renamed field with --events-json: both ways",
    old: event("  string note = 2;"),
    cur: event("  string remark = 2;"),
    fails: ["EVENT_FIELD_JSON_NAME_CHANGED:BACKWARD+FORWARD"],
    args: ["--events", "full", "--events-json"],
  },
  {
    name: "renamed enum value with --events-json: both ways",
    old: event("  Color c = 2;", "enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; }"),
    cur: event("  Color c = 2;", "enum Color { COLOR_UNSPECIFIED = 0; COLOR_CRIMSON = 1; }"),
    fails: ["EVENT_ENUM_VALUE_JSON_NAME_CHANGED:BACKWARD+FORWARD"],
    args: ["--events", "full", "--events-json"],
  },
  {
    name: "removed field, number not reserved: a note",
    old: event("  string note = 2;"),
    cur: event(""),
    fails: [],
    notes: ["EVENT_FIELD_NUMBER_NOT_RESERVED"],
  },
  {
    name: "routing key changed: both ways",
    old: event(""),
    cur: event("", "", `exchange: "shop" routing_key: "orders.{region}.placed"`),
    fails: ["EVENT_ROUTING_KEY_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "exchange changed: both ways",
    old: event(""),
    cur: event("", "", `exchange: "shop2" routing_key: "order.{region}.placed"`),
    fails: ["EVENT_EXCHANGE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "type changed (event renamed): both ways",
    old: event(""),
    cur: event("").replace("OrderPlaced", "OrderCreated"),
    fails: ["EVENT_TYPE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "event removed: BACKWARD",
    old: event("", "message Other { string x = 1; }"),
    cur: "message Other { string x = 1; }\n",
    fails: ["EVENT_REMOVED:BACKWARD"],
  },
  {
    name: "message encoding changed to DELIMITED (editions): both ways",
    syntax: ED,
    old: event("  Inner m = 2;", "message Inner { string x = 1; }"),
    cur: event(
      "  Inner m = 2 [features.message_encoding = DELIMITED];",
      "message Inner { string x = 1; }",
    ),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "a message the event uses, transitively",
    old: event(
      "  Line line = 2;",
      "message Line { Item item = 1; }\nmessage Item { int64 qty = 1; }",
    ),
    cur: event(
      "  Line line = 2;",
      "message Line { Item item = 1; }\nmessage Item { string qty = 1; }",
    ),
    fails: ["EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD"],
  },
  {
    name: "a message no event uses is not checked",
    old: event("", "message Unused { int64 n = 1; }"),
    cur: event("", "message Unused { string n = 1; }"),
    fails: [],
  },
];

describe("event compatibility rules (--events full)", () => {
  it("every rule of EVENT_RULES has a case here that reports it", () => {
    const covered = new Set(
      CASES.flatMap((c) => [...c.fails.map((f) => f.split(":")[0]), ...(c.notes ?? [])]),
    );
    expect(Object.keys(EVENT_RULES).filter((id) => !covered.has(id))).toEqual([]);
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const r = await compareEvents(contract(c.old, c.syntax), contract(c.cur, c.syntax), c.args);
      expect(r.stderr).toBe("");
      expect(failing(r).sort()).toEqual([...c.fails].sort());
      for (const note of c.notes ?? [])
        expect(r.changes.filter((x) => !x.breaking).map((x) => x.rule)).toContain(note);
      expect(r.code).toBe(c.fails.length ? 100 : 0);
      if (c.rollout)
        expect(r.changes.filter((x) => x.breaking).map((x) => x.rollout)).toEqual([c.rollout]);
    });
  }
});

describe("what each finding says", () => {
  it("names the directions, the rollout order and the place in the current file; keeps the SPEC's fields", async () => {
    const r = await compareEvents(
      contract(event("  int64 n = 2;")),
      contract(event("  int32 n = 2;")),
    );
    const [c] = r.changes;
    expect(Object.keys(c!)).toEqual(
      expect.arrayContaining([
        "rule",
        "breaking",
        "bump",
        "categories",
        "path",
        "line",
        "column",
        "message",
        "event",
        "directions",
        "rollout",
        "wire",
        "mode",
        "against",
      ]),
    );
    expect(c).toMatchObject({
      rule: "EVENT_FIELD_TYPE_CHANGED",
      breaking: true,
      bump: "major",
      categories: ["EVENTS"],
      path: "new/demo/v1/orders.proto",
      line: 10,
      column: 3,
      event: "demo.v1.OrderPlaced",
      directions: ["BACKWARD"],
      rollout: "producers-first",
      wire: "binary",
      mode: "full",
      against: "old",
    });
    expect(c!.message).toMatch(
      /int64 to int32.*Breaks BACKWARD \(new consumers reading old data\); safe rollout: producers first/,
    );
  });

  it("a removed field whose number is not reserved is a note, not a failure", async () => {
    const r = await compareEvents(contract(event("  string note = 2;")), contract(event("")));
    expect(all(r)).toEqual(["EVENT_FIELD_NUMBER_NOT_RESERVED::binary"]);
    expect(r.code).toBe(0);
  });

  it("a closed enum says the value is not accepted; an open one says the consumer must handle it", async () => {
    const closed = await compareEvents(
      contract(
        event("  optional Color c = 2;", "enum Color { COLOR_RED = 1; COLOR_BLUE = 2; }").replace(
          "string region = 1",
          "optional string region = 1",
        ),
        P2,
      ),
      contract(
        event("  optional Color c = 2;", "enum Color { COLOR_RED = 1; }").replace(
          "string region = 1",
          "optional string region = 1",
        ),
        P2,
      ),
    );
    expect(closed.changes[0]!.message).toMatch(/closed there, so the value is not accepted/);
    const open = await compareEvents(
      contract(event("  Color c = 2;", "enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; }")),
      contract(event("  Color c = 2;", "enum Color { COLOR_UNSPECIFIED = 0; }")),
    );
    expect(open.changes[0]!.message).toMatch(/must handle it/);
  });

  it("JSON findings are listed, and fail with --events-json", async () => {
    const oldC = contract(
      event("  string note = 2;\n  Color c = 3;", "enum Color { COLOR_UNSPECIFIED = 0; }"),
    );
    const newC = contract(
      event("  string remark = 2;\n  int32 c = 3;", "enum Color { COLOR_UNSPECIFIED = 0; }"),
    );
    const quiet = await compareEvents(oldC, newC);
    expect(all(quiet).sort()).toEqual([
      "EVENT_FIELD_JSON_NAME_CHANGED:BACKWARD+FORWARD:json",
      "EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD:json",
    ]);
    expect(quiet.code).toBe(0);
    const loud = await compareEvents(oldC, newC, ["--events", "full", "--events-json"]);
    expect(failing(loud).sort()).toEqual([
      "EVENT_FIELD_JSON_NAME_CHANGED:BACKWARD+FORWARD",
      "EVENT_FIELD_TYPE_CHANGED:BACKWARD+FORWARD",
    ]);
    expect(loud.code).toBe(100);
  });
});

describe("modes", () => {
  const narrowed = [contract(event("  int64 n = 2;")), contract(event("  int32 n = 2;"))] as const;

  it("backward fails on a BACKWARD break, forward does not (it is listed, not failing)", async () => {
    expect((await compareEvents(...narrowed, ["--events", "backward"])).code).toBe(100);
    const fwd = await compareEvents(...narrowed, ["--events", "forward"]);
    expect(fwd.code).toBe(0);
    expect(fwd.changes.map((c) => [c.rule, c.breaking, c.mode])).toEqual([
      ["EVENT_FIELD_TYPE_CHANGED", false, "forward"],
    ]);
    expect(fwd.changes[0]!.message).toMatch(/not checked by mode forward/);
    expect((await compareEvents(...narrowed, ["--events", "none"])).code).toBe(0);
  });

  it("grabbit.yaml sets the mode per package and per event (the event wins), --events the default", async () => {
    const two = (t: string) =>
      contract(
        event(
          `  ${t} n = 2;`,
          `message OrderShipped {\n  option (grabbit.v1.event) = { exchange: "shop" routing_key: "order.shipped" };\n  ${t} n = 1;\n}`,
        ),
      );
    const yaml =
      "version: v1\nevents:\n  mode: full\n  packages:\n    demo: forward\n  messages:\n    demo.v1.OrderShipped: backward\n";
    const r = await compareEvents(
      two("int64"),
      two("int32"),
      ["--events-config", "grabbit.yaml", "--events", "full"],
      { "grabbit.yaml": yaml },
    );
    expect(r.stderr).toBe("");
    expect(r.changes.map((c) => [c.event, c.mode, c.breaking])).toEqual([
      ["demo.v1.OrderPlaced", "forward", false],
      ["demo.v1.OrderShipped", "backward", true],
    ]);
  });

  it("a grabbit.yaml mistake is one sentence with its place (exit 1)", async () => {
    const r = await compareEvents(
      contract(event("")),
      contract(event("")),
      ["--events-config", "grabbit.yaml"],
      { "grabbit.yaml": "version: v1\nevents:\n  mode: sideways\n" },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /grabbit\.yaml:3:9: events\.mode must be one of backward, forward, full, none\./,
    );
  });

  it("bad flags are refused with a sentence", async () => {
    expect(
      (await compareEvents(contract(event("")), contract(event("")), ["--events", "sideways"]))
        .stderr,
    ).toMatch(/--events takes backward, forward, full, none/);
    expect(
      (
        await compareEvents(contract(event("")), contract(event("")), [
          "--events",
          "full",
          "--use",
          "FILE",
        ])
      ).stderr,
    ).toMatch(/--use does not apply to --events/);
    expect(
      (
        await compareEvents(contract(event("")), contract(event("")), [
          "--events",
          "full",
          "--events-transitive",
        ])
      ).stderr,
    ).toMatch(/--events-transitive compares with every released version/);
  });
});

describe("acceptance in the proto", () => {
  it("grabbit:accept with a reason accepts an event finding (rule or the EVENTS category)", async () => {
    const cur = event(
      "  // grabbit:accept EVENT_FIELD_TYPE_CHANGED reason: no producer ever sent values past 2^31\n  int32 n = 2;",
    );
    const r = await compareEvents(contract(event("  int64 n = 2;")), contract(cur));
    expect(r.code).toBe(0);
    expect(r.changes[0]!.breaking).toBe(false);
    expect(r.changes[0]!.message).toMatch(
      /^Accepted \(no producer ever sent values past 2\^31\): /,
    );
    const byCategory = await compareEvents(
      contract(event("  int64 n = 2;")),
      contract(event("  // grabbit:accept EVENTS reason: drained\n  int32 n = 2;")),
    );
    expect(byCategory.code).toBe(0);
  });
});

describe("formats", () => {
  it("every format of grabbit breaking prints the event finding", async () => {
    for (const format of FORMATS) {
      const r = await compareEvents(
        contract(event("  int64 n = 2;")),
        contract(event("  int32 n = 2;")),
        ["--events", "full", "--format", format],
      );
      expect(r.code, format).toBe(100);
      expect(r.stdout, format).toContain("int64 to int32");
    }
  });
});
