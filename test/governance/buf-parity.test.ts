// Parity with the real `buf breaking` on pairs where the rules are easy to get subtly wrong (types that
// share an encoding, cardinality and presence, maps, oneofs, split ranges, moves between files): with
// all four buf categories selected, grabbit reports exactly buf's rule IDs.
import { execFileSync, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { checkBreaking } from "../../governance/check.js";
import {
  DEPRECATED_RULES,
  RULES,
  canonicalRuleIds,
  categoriesOf,
  isDeprecatedRuleId,
} from "../../governance/rules/catalog.js";
import { maxBump } from "../../governance/semver.js";
import { RULE_CASES } from "./cases.js";
import {
  BUF,
  bufBreaking,
  bufLines,
  compareTrees,
  grabbit,
  grabbitBufLines,
  jsonLines,
  proto,
  tempDir,
  writeTree,
  type Tree,
} from "./helpers.js";

const P = (b: string): Tree => ({ "demo/v1/demo.proto": proto(b) });
const P2 = (b: string): Tree => ({
  "demo/v1/demo.proto": proto(b, 'syntax = "proto2";\n\npackage demo.v1;\n'),
});
const E = (edition: 2023 | 2024, b: string): Tree => ({
  "demo/v1/demo.proto": proto(
    b,
    `edition = "${edition}";\n\npackage demo.v1;\n\nimport "google/protobuf/cpp_features.proto";\n`,
  ),
});
const pairs: Array<[string, Tree, Tree]> = [
  ["optional added", P("message T { string a = 1; }"), P("message T { optional string a = 1; }")],
  ["optional removed", P("message T { optional string a = 1; }"), P("message T { string a = 1; }")],
  [
    "map to repeated",
    P("message T { map<string,string> m = 1; }"),
    P("message T { message E { string key = 1; string value = 2; } repeated E m = 1; }"),
  ],
  [
    "nested deleted",
    P("message T { message In { string a = 1; } In i = 1; }"),
    P("message T { string x = 2; }"),
  ],
  [
    "enum to int",
    P("enum E { E_A = 0; } message T { E e = 1; }"),
    P("enum E { E_A = 0; } message T { int32 e = 1; }"),
  ],
  [
    "msg type change",
    P("message A { string a = 1; } message B { string b = 1; } message T { A x = 1; }"),
    P("message A { string a = 1; } message B { string b = 1; } message T { B x = 1; }"),
  ],
  ["string to bytes", P("message T { string a = 1; }"), P("message T { bytes a = 1; }")],
  ["sint32 to sint64", P("message T { sint32 a = 1; }"), P("message T { sint64 a = 1; }")],
  ["uint32 int32", P("message T { uint32 a = 1; }"), P("message T { int32 a = 1; }")],
  ["fixed32 sfixed32", P("message T { fixed32 a = 1; }"), P("message T { sfixed32 a = 1; }")],
  ["int64 uint64", P("message T { int64 a = 1; }"), P("message T { uint64 a = 1; }")],
  ["bool int32", P("message T { bool a = 1; }"), P("message T { int32 a = 1; }")],
  [
    "repeated string to single",
    P("message T { repeated string a = 1; }"),
    P("message T { string a = 1; }"),
  ],
  [
    "repeated msg to single",
    P("message M {} message T { repeated M a = 1; }"),
    P("message M {} message T { M a = 1; }"),
  ],
  [
    "proto2 optional to required",
    P2("message T { optional string a = 1; }"),
    P2("message T { required string a = 1; }"),
  ],
  [
    "proto2 optional to repeated int",
    P2("message T { optional int32 a = 1; }"),
    P2("message T { repeated int32 a = 1; }"),
  ],
  ["into oneof", P("message T { string a = 1; }"), P("message T { oneof o { string a = 1; } }")],
  [
    "oneof renamed",
    P("message T { oneof o { string a = 1; } }"),
    P("message T { oneof p { string a = 1; } }"),
  ],
  [
    "enum alias",
    P("enum E { option allow_alias = true; E_A = 0; E_B = 0; }"),
    P("enum E { E_A = 0; }"),
  ],
  [
    "rpc renamed",
    P("message A {} service S { rpc Get(A) returns (A); }"),
    P("message A {} service S { rpc Fetch(A) returns (A); }"),
  ],
  [
    "message moved file",
    {
      "demo/v1/a.proto": proto("message A { string x = 1; }"),
      "demo/v1/b.proto": proto("message B {}"),
    },
    {
      "demo/v1/a.proto": proto("message C {}"),
      "demo/v1/b.proto": proto("message B {}\nmessage A { string x = 1; }"),
    },
  ],
  [
    "json_name explicit same",
    P("message T { string a_b = 1; }"),
    P('message T { string a_b = 1 [json_name = "aB"]; }'),
  ],
  [
    "ext range grow",
    P2("message T { extensions 10 to 20; }"),
    P2("message T { extensions 10 to 15; extensions 16 to 20; }"),
  ],
  [
    "reserved split",
    P("message T { reserved 1 to 10; }"),
    P("message T { reserved 1 to 5, 6 to 10; }"),
  ],
  [
    "ext type",
    P2("message T { extensions 10 to 20; }\nextend T { optional int32 x = 10; }"),
    P2("message T { extensions 10 to 20; }\nextend T { optional int64 x = 10; }"),
  ],
  [
    "ext renamed",
    P2("message T { extensions 10 to 20; }\nextend T { optional int32 x = 10; }"),
    P2("message T { extensions 10 to 20; }\nextend T { optional int32 y = 10; }"),
  ],
  [
    "group",
    P2("message T { optional group G = 1 { optional int32 a = 2; } }"),
    P2("message T { optional group G = 1 { optional int64 a = 2; } }"),
  ],
  [
    "nested enum moved out",
    P("message T { enum E { E_A = 0; } E e = 1; }"),
    P("enum E { E_A = 0; } message T { E e = 1; }"),
  ],
  [
    "service moved file",
    { "demo/v1/a.proto": proto("message A {}\nservice S { rpc G(A) returns (A); }") },
    {
      "demo/v1/a.proto": proto("message A {}"),
      "demo/v1/b.proto": proto('import "demo/v1/a.proto";\nservice S { rpc G(A) returns (A); }'),
    },
  ],
  [
    "required removed",
    P2("message T { required int32 a = 1; }"),
    P2("message T { optional int32 a = 1; }"),
  ],
  [
    "field deleted reserved both",
    P("message T { int32 a = 1; int32 b = 2; }"),
    P('message T { int32 a = 1; reserved 2; reserved "b"; }'),
  ],
  [
    "enum value deleted reserved",
    P("enum E { E_A = 0; E_B = 1; }"),
    P('enum E { E_A = 0; reserved 1; reserved "E_B"; }'),
  ],
  ["proto3 to proto2", P("message T { int32 a = 1; }"), P2("message T { optional int32 a = 1; }")],
  [
    "message type to other package",
    {
      "demo/v1/a.proto": proto("message A {}\nmessage T { A a = 1; }"),
      "x/v1/x.proto": 'syntax = "proto3";\npackage x.v1;\nmessage A {}\n',
    },
    {
      "demo/v1/a.proto": proto('import "x/v1/x.proto";\nmessage A {}\nmessage T { x.v1.A a = 1; }'),
      "x/v1/x.proto": 'syntax = "proto3";\npackage x.v1;\nmessage A {}\n',
    },
  ],
];

const use = ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"];

describe("same rule IDs as buf breaking", () => {
  it.each(pairs)("%s", async (_name, before, after) => {
    const v2 = { "buf.yaml": "version: v2\n" };
    const r = await compareTrees({ ...v2, ...before }, { ...v2, ...after }, [
      "--use",
      use.join(","),
    ]);
    expect(r.stderr).toBe("");
    const ours = [...new Set(r.breaking.filter((x) => !/^(GRABBIT|TYPESCRIPT)_/.test(x)))].sort();
    const buf = [...new Set(bufBreaking(r.dir, use).rules)].sort();
    expect(ours).toEqual(buf);
  });
});

describe("same locations and messages as buf breaking", () => {
  // buf's formats print what buf prints, a deleted file without a path and a rename as its rules'
  // findings included (grabbit's own report folds a rename into one change; see cli.test.ts).
  const cases = RULE_CASES.filter((c) => c.buf);
  it.each(cases.map((c) => [c.rule, c] as const))("%s", async (_rule, c) => {
    const t = (x: Tree | string): Tree => ({
      "buf.yaml": "version: v2\n",
      ...(typeof x === "string" ? { "demo/v1/demo.proto": x } : x),
    });
    const r = await compareTrees(t(c.old), t(c.bad), ["--use", c.use]);
    const theirs = bufLines(r.dir, [c.use]);
    expect(theirs.length).toBeGreaterThan(0);
    // In buf's order too: the lines are compared as printed, not sorted.
    expect(await grabbitBufLines(r.dir, ["--use", c.use])).toEqual(theirs);
  });
});

// Differences the differential test (differential.test.ts) found, each kept as a case of its own: the
// same lines as buf (rule, path, line, column, message) with all four categories.
const FOUND: Array<[string, Tree, Tree]> = [
  [
    "enum default set where the first value was the default",
    P2("enum E { E_A = 0; E_B = 1; }\nmessage T { optional E e = 1; }"),
    P2("enum E { E_A = 0; E_B = 1; }\nmessage T { optional E e = 1 [default = E_B]; }"),
  ],
  [
    "closed enum whose first value is not zero",
    P2("enum E { E_B = 1; E_A = 0; }\nmessage T { optional E e = 1; }"),
    P2("enum E { E_B = 1; E_A = 0; }\nmessage T { optional E e = 1 [default = E_A]; }"),
  ],
  [
    "string default to int",
    P2('message T { optional string a = 1 [default = "b"]; }'),
    P2("message T { optional int32 a = 1; }"),
  ],
  [
    "bytes default removed",
    P2('message T { optional bytes a = 1 [default = "y"]; }'),
    P2("message T { optional bytes a = 1; }"),
  ],
  [
    "float defaults",
    P2(
      "message T { optional double a = 1 [default = 1234567]; optional float b = 2 [default = 0.1]; }",
    ),
    P2(
      "message T { optional double a = 1 [default = inf]; optional float b = 2 [default = 1e7]; }",
    ),
  ],
  [
    "int default to double default",
    P2("message T { optional int32 a = 1 [default = 2]; }"),
    P2("message T { optional double a = 1 [default = 2]; }"),
  ],
  [
    "enum to double prints the kind",
    P("enum E { E_A = 0; }\nmessage T { E e = 1; }"),
    P("enum E { E_A = 0; }\nmessage T { double e = 1; }"),
  ],
  [
    "message to bool prints the kind",
    P("message M {}\nmessage T { M m = 1; }"),
    P("message M {}\nmessage T { bool m = 1; }"),
  ],
  ["bytes to string", P("message T { bytes a = 1; }"), P("message T { string a = 1; }")],
  [
    "enum to another enum of the same short name with every value",
    {
      "demo/v1/demo.proto": proto(
        'import "x/v1/x.proto";\nenum E { E_A = 0; }\nmessage T { E e = 1; }',
      ),
      "x/v1/x.proto": 'syntax = "proto3";\npackage x.v1;\nenum E { E_A = 0; E_B = 1; }\n',
    },
    {
      "demo/v1/demo.proto": proto(
        'import "x/v1/x.proto";\nenum E { E_A = 0; }\nmessage T { x.v1.E e = 1; }',
      ),
      "x/v1/x.proto": 'syntax = "proto3";\npackage x.v1;\nenum E { E_A = 0; E_B = 1; }\n',
    },
  ],
  [
    "alias renamed",
    P("enum E { option allow_alias = true; E_A = 0; E_B = 1; E_C = 1; }"),
    P("enum E { option allow_alias = true; E_A = 0; E_B = 1; E_D = 1; }"),
  ],
  [
    "field renamed: FIELD_SAME_NAME and FIELD_SAME_JSON_NAME each",
    P("message T { string a_b = 1; }"),
    P("message T { string a_c = 1; }"),
  ],
  [
    "editions 2023 to 2024: the syntax is the same, the C++ string type default becomes VIEW",
    E(2023, "message T { string a = 1; bytes b = 2; }"),
    E(2024, "message T { string a = 1; bytes b = 2; }"),
  ],
  [
    "(pb.cpp).string_type of the field or the file, or the ctype, against the edition's default",
    E(
      2023,
      "option features.(pb.cpp).string_type = VIEW;\nmessage T { string a = 1 [ctype = STRING_PIECE]; bytes b = 2 [ctype = CORD]; string c = 3; string d = 4 [features.(pb.cpp).string_type = CORD]; }",
    ),
    E(2023, "message T { string a = 1; bytes b = 2; string c = 3; string d = 4; }"),
  ],
  [
    "proto3 ctype CORD is editions (pb.cpp).string_type CORD",
    P("message T { string a = 1; bytes b = 2 [ctype = CORD]; }"),
    E(
      2024,
      "message T { string a = 1 [features.field_presence = IMPLICIT]; bytes b = 2 [features.(pb.cpp).string_type = CORD, features.field_presence = IMPLICIT]; }",
    ),
  ],
  [
    "editions 2024 to 2023: a map's string key and value have no C++ string type of their own",
    E(2024, "message T { map<string, string> m = 1; string a = 2; }"),
    E(2023, "message T { map<string, string> m = 1; string a = 2; }"),
  ],
  [
    "STRING_PIECE is STRING when it goes, a change when it comes",
    P2(
      "message T { optional string a = 1 [ctype = STRING_PIECE]; optional string b = 2; optional string c = 3 [ctype = STRING_PIECE]; }",
    ),
    P2(
      "message T { optional string a = 1; optional string b = 2 [ctype = STRING_PIECE]; optional string c = 3 [ctype = STRING_PIECE]; }",
    ),
  ],
  [
    "required fields by label: editions LEGACY_REQUIRED is not one",
    P2("message T { required int32 a = 1; required int32 b = 2; }"),
    E(
      2023,
      "message T { int32 a = 1; int32 b = 2 [features.field_presence = LEGACY_REQUIRED]; message N { int32 c = 1 [features.field_presence = LEGACY_REQUIRED]; } }",
    ),
  ],
  [
    "LEGACY_REQUIRED set and unset within editions",
    E(2023, "message T { int32 a = 1 [features.field_presence = LEGACY_REQUIRED]; int32 b = 2; }"),
    E(2023, "message T { int32 a = 1; int32 b = 2 [features.field_presence = LEGACY_REQUIRED]; }"),
  ],
  [
    "the package's last extension deleted: from the file only",
    P2(
      "message M { extensions 10 to 30; }\nmessage N { extend M { optional int32 c = 12; } }\nextend M { optional int32 d = 13; }",
    ),
    P2("message M { extensions 10 to 30; }\nmessage N {}"),
  ],
  [
    "extensions deleted while one is left: from the package too, at the innermost message left",
    P2(
      "message M { extensions 10 to 30; }\nextend M { optional int32 a = 10; optional int32 b = 11; }\nmessage N {\n  extend M { optional int32 c = 12; }\n  message O { extend M { optional int32 d = 13; } }\n}",
    ),
    P2(
      "message M { extensions 10 to 30; }\nextend M { optional int32 a = 10; }\nmessage N {\n  message O {}\n}",
    ),
  ],
  [
    "the package's last message deleted: from the file only; its last service: from the package too",
    P("message M {}\nenum E { E_A = 0; }\nservice S {}"),
    P("enum E { E_A = 0; }"),
  ],
  [
    "the package's last enum deleted: from the file only",
    P("message M {}\nenum E { E_A = 0; }"),
    P("message M {}"),
  ],
  [
    "extension moved into a message's scope changes its full name",
    P2("message M { extensions 10 to 30; }\nextend M { optional int32 c = 12; }"),
    P2("message M { extensions 10 to 30; }\nmessage N { extend M { optional int32 c = 12; } }"),
  ],
  [
    "nested message moved to another file of the package",
    {
      "demo/v1/a.proto": proto("message T { message In {} string a = 1; }"),
      "demo/v1/b.proto": proto("message B {}"),
    },
    {
      "demo/v1/a.proto": proto("message T { string a = 1; }"),
      "demo/v1/b.proto": proto("message B { message In {} }"),
    },
  ],
  [
    "a message deleted with what it nests (map entries too): at the innermost message left",
    P(
      "message T {\n  string a = 1;\n  message In {\n    map<string, int32> m = 1;\n    message Deep {\n      map<int32, T> n = 1;\n    }\n  }\n}",
    ),
    P("message T {\n  string a = 1;\n}"),
  ],
  [
    "proto3 to editions 2024: a map entry's key and value keep their cardinality",
    P("message T {\n  map<string, int32> m = 1;\n  int32 a = 2;\n}"),
    E(
      2024,
      "message T {\n  map<string, int32> m = 1;\n  int32 a = 2 [features.field_presence = IMPLICIT];\n}",
    ),
  ],
  [
    "(pb.cpp).string_type changed on the field: at the feature",
    E(
      2024,
      "message T {\n  message In {\n    repeated bytes a = 1 [features.(pb.cpp).string_type = VIEW];\n    string b = 2 [features.(pb.cpp).string_type = CORD];\n  }\n}",
    ),
    E(
      2024,
      "message T {\n  message In {\n    repeated bytes a = 1 [features.(pb.cpp).string_type = CORD];\n    string b = 2;\n  }\n}",
    ),
  ],
  [
    "jstype dropped while a 64-bit integer becomes a 32-bit one: no jstype change for buf",
    P2(
      "message M { extensions 100 to 199; }\nmessage T {\n  optional fixed64 a = 1 [jstype = JS_NUMBER];\n  optional int64 b = 2 [jstype = JS_STRING];\n}\nextend M {\n  repeated fixed64 e = 102 [jstype = JS_NUMBER];\n}",
    ),
    P2(
      "message M { extensions 100 to 199; }\nmessage T {\n  optional sint32 a = 1;\n  optional uint64 b = 2;\n}\nextend M {\n  repeated sint32 e = 102;\n}",
    ),
  ],
  [
    "(pb.java).utf8_validation VERIFY over a field that validates no UTF-8: at the feature",
    E(
      2023,
      'import "google/protobuf/java_features.proto";\nmessage T {\n  string a = 1 [features.utf8_validation = NONE];\n  message In {\n    string b = 1 [features.utf8_validation = NONE, features.(pb.java).utf8_validation = VERIFY];\n  }\n}',
    ),
    E(
      2023,
      'import "google/protobuf/java_features.proto";\nmessage T {\n  string a = 1 [features.utf8_validation = NONE, features.(pb.java).utf8_validation = VERIFY];\n  message In {\n    string b = 1 [features.utf8_validation = NONE];\n  }\n}',
    ),
  ],
  [
    "proto3 to proto2 under java_string_check_utf8 = false: at the file option",
    P("option java_string_check_utf8 = false;\nmessage T {\n  string a = 1;\n}"),
    P2("option java_string_check_utf8 = false;\nmessage T {\n  optional string a = 1;\n}"),
  ],
  [
    "a file moved to another package: its nested messages are deleted from the package at the file, its nested enums at their message",
    {
      "demo/v1/a.proto": proto("message T {\n  message In {}\n  enum E { E_A = 0; }\n}"),
      "demo/v1/b.proto": proto("message B {}\nenum Z { Z_A = 0; }"),
    },
    {
      "demo/v1/a.proto": proto(
        "message T {\n  string x = 1;\n}",
        'syntax = "proto3";\n\npackage demo.v2;\n',
      ),
      "demo/v1/b.proto": proto("message B {}\nenum Z { Z_A = 0; }"),
    },
  ],
  [
    "an extension keeps explicit presence under a file's IMPLICIT field_presence",
    E(
      2023,
      "message M {\n  extensions 10 to 20;\n}\nextend M {\n  int32 a = 10;\n  int32 b = 11;\n}",
    ),
    E(
      2023,
      "option features.field_presence = IMPLICIT;\nmessage M {\n  extensions 10 to 20;\n}\nextend M {\n  int32 a = 10;\n  repeated int32 b = 11;\n}",
    ),
  ],
  [
    "a map entry's key changes UTF-8 validation: at the map field",
    P2("message T {\n  message In {\n    map<string, bool> m = 1;\n  }\n}"),
    E(2023, "message T {\n  message In {\n    map<string, bool> m = 1;\n  }\n}"),
  ],
  [
    "a map entry's value changes type: at the map field",
    P("message T {\n  map<string, int32> m = 1;\n}"),
    P("message T {\n  map<string, int64> m = 1;\n}"),
  ],
  [
    "a file with the package's extensions moves package while unchanged files stay: extensions not deleted from the package",
    {
      "demo/v1/a.proto": proto(
        "message M {\n  extensions 10 to 20;\n  enum E { E_A = 0; }\n}\nextend M {\n  optional int32 x = 10;\n}",
        'syntax = "proto2";\n\npackage demo.v1;\n',
      ),
      "demo/v1/b.proto": proto("message B {\n  enum Z { Z_A = 0; }\n}"),
      "demo/v1/c.proto": proto("message C {}"),
      "demo/v1/d.proto": proto("message D {}"),
      "demo/v1/e.proto": proto("message F {}"),
    },
    {
      "demo/v1/a.proto": proto(
        "message M {\n  extensions 10 to 20;\n  enum E { E_A = 0; }\n}\nextend M {\n  optional int32 x = 10;\n}",
        'syntax = "proto2";\n\npackage demo.v2;\n',
      ),
      "demo/v1/b.proto": proto("message B {\n  enum Z { Z_A = 0; }\n}"),
      "demo/v1/c.proto": proto("message C {}"),
      "demo/v1/d.proto": proto("message D {}"),
      "demo/v1/e.proto": proto("message F {}"),
    },
  ],
  [
    "idempotency_level no longer set: at 1:1, not at the RPC; set to anything: at the option",
    P(
      "message A {}\nservice S {\n  rpc G(A) returns (A) {\n    option idempotency_level = IDEMPOTENT;\n  }\n  rpc H(A) returns (A) {\n    option idempotency_level = IDEMPOTENT;\n  }\n  rpc I(A) returns (A) {\n    option idempotency_level = IDEMPOTENT;\n  }\n  rpc J(A) returns (A);\n}",
    ),
    P(
      "message A {}\nservice S {\n  rpc G(A) returns (A);\n  rpc H(A) returns (A) {\n    option deprecated = true;\n  }\n  rpc I(A) returns (A) {\n    option idempotency_level = IDEMPOTENCY_UNKNOWN;\n  }\n  rpc J(A) returns (A) {\n    option idempotency_level = NO_SIDE_EFFECTS;\n  }\n}",
    ),
  ],
  [
    "a field that becomes bytes across editions: no C++ string type change",
    E(2024, "message T {\n  repeated sint32 a = 1;\n}"),
    E(2023, "message T {\n  repeated bytes a = 1;\n}"),
  ],
  [
    "a proto3 field that becomes a string in editions 2024: no C++ string type change",
    P("message T {\n  repeated bool b = 2;\n}"),
    E(2024, "message T {\n  repeated string b = 2;\n}"),
  ],
];

describe("differences the differential test found", () => {
  it.each(FOUND)("%s", async (_name, before, after) => {
    const v2 = { "buf.yaml": "version: v2\n" };
    const r = await compareTrees({ ...v2, ...before }, { ...v2, ...after }, [
      "--use",
      use.join(","),
    ]);
    expect(r.stderr).toBe("");
    const theirs = bufLines(r.dir, use);
    expect(theirs.length).toBeGreaterThan(0);
    expect(await grabbitBufLines(r.dir, ["--use", use.join(",")])).toEqual(theirs);
  });
});

// Imports: buf's rules see whole images, dependencies (WKTs, features protos) included, and only
// --exclude-imports leaves their findings out. grabbit's partial builds pull in unchanged files of the
// module as imports too; those must never look deleted or added. Each pair runs with and without the flag.
const WKT_USER = (n: number) =>
  proto(
    `import "google/protobuf/timestamp.proto";\nmessage U${n} { google.protobuf.Timestamp at = 1; }`,
  );
const IMPORTS: Array<[string, Tree, Tree]> = [
  [
    "a file stops importing java_features.proto: it and descriptor.proto are deleted, so are packages pb and google.protobuf",
    P('import "google/protobuf/java_features.proto";\nmessage T { string a = 1; }'),
    P("message T { string a = 1; }"),
  ],
  [
    "an editions file stops importing java_features.proto but keeps cpp_features.proto: package pb stays",
    E(2023, 'import "google/protobuf/java_features.proto";\nmessage T { string a = 1; }'),
    E(2023, "message T { string a = 1; }"),
  ],
  [
    "a file stops importing timestamp.proto while its field goes",
    P(
      'import "google/protobuf/timestamp.proto";\nmessage T { google.protobuf.Timestamp at = 1; string a = 2; }',
    ),
    P("message T { string a = 2; }"),
  ],
  [
    "a WKT one changed file stops importing is still imported by unchanged ones: nothing deleted",
    {
      "demo/v1/a.proto": proto(
        'import "google/protobuf/timestamp.proto";\nmessage A { google.protobuf.Timestamp at = 1; string b = 2; }',
      ),
      "demo/v1/u1.proto": WKT_USER(1),
      "demo/v1/u2.proto": WKT_USER(2),
      "demo/v1/u3.proto": WKT_USER(3),
      "demo/v1/u4.proto": WKT_USER(4),
    },
    {
      "demo/v1/a.proto": proto("message A { string b = 2; }"),
      "demo/v1/u1.proto": WKT_USER(1),
      "demo/v1/u2.proto": WKT_USER(2),
      "demo/v1/u3.proto": WKT_USER(3),
      "demo/v1/u4.proto": WKT_USER(4),
    },
  ],
  [
    "a changed file stops importing an unchanged file of the module: no deletion of it",
    {
      "demo/v1/a.proto": proto('import "demo/v1/b.proto";\nmessage A { B b = 1; string c = 2; }'),
      "demo/v1/b.proto": proto("message B {}"),
      "demo/v1/c.proto": proto("message C {}"),
      "demo/v1/d.proto": proto("message D {}"),
    },
    {
      "demo/v1/a.proto": proto("message A { string c = 2; }"),
      "demo/v1/b.proto": proto("message B {}"),
      "demo/v1/c.proto": proto("message C {}"),
      "demo/v1/d.proto": proto("message D {}"),
    },
  ],
  [
    "a changed file starts importing an unchanged file of the module and a WKT: nothing added that buf reports",
    {
      "demo/v1/a.proto": proto("message A { string c = 2; }"),
      "demo/v1/b.proto": proto("message B {}"),
      "demo/v1/c.proto": proto("message C {}"),
      "demo/v1/d.proto": proto("message D {}"),
    },
    {
      "demo/v1/a.proto": proto(
        'import "demo/v1/b.proto";\nimport "google/protobuf/duration.proto";\nmessage A { B b = 1; int32 c = 2; google.protobuf.Duration d = 3; }',
      ),
      "demo/v1/b.proto": proto("message B {}"),
      "demo/v1/c.proto": proto("message C {}"),
      "demo/v1/d.proto": proto("message D {}"),
    },
  ],
];

describe("imports are compared as buf compares them", () => {
  const rows = IMPORTS.flatMap(([name, before, after]) => [
    [name, before, after, []] as const,
    [`${name} (--exclude-imports)`, before, after, ["--exclude-imports"]] as const,
  ]);
  it.each(rows)("%s", async (_name, before, after, flags) => {
    const v2 = { "buf.yaml": "version: v2\n" };
    const r = await compareTrees({ ...v2, ...before }, { ...v2, ...after }, [
      "--use",
      use.join(","),
    ]);
    const theirs = bufLines(r.dir, use, [...flags]);
    expect(await grabbitBufLines(r.dir, ["--use", use.join(","), ...flags])).toEqual(theirs);
  });

  it("the deleted imports are buf's findings without the flag and none with it", async () => {
    const [, before, after] = IMPORTS[0]!;
    const v2 = { "buf.yaml": "version: v2\n" };
    const r = await compareTrees({ ...v2, ...before }, { ...v2, ...after }, [
      "--use",
      use.join(","),
    ]);
    const theirs = bufLines(r.dir, use);
    expect(theirs).toContain(
      '<input>:1:1: FILE_NO_DELETE Previously present file "google/protobuf/java_features.proto" was deleted.',
    );
    expect(theirs).toContain(
      '<input>:1:1: PACKAGE_NO_DELETE Previously present package "pb" was deleted.',
    );
    expect(r.code).toBe(100);
    expect(bufLines(r.dir, use, ["--exclude-imports"])).toEqual([]);
    const excluded = await grabbit(r.dir, [
      "breaking",
      "new",
      "--against",
      "old",
      "--format",
      "json",
      "--use",
      use.join(","),
      "--exclude-imports",
    ]);
    expect([excluded.code, excluded.report?.changes.filter((c) => c.breaking)]).toEqual([0, []]);
  });

  it("a changed file that stops importing an unchanged file of the module keeps the partial build", async () => {
    // The unchanged file is an import of the partial build on one side only: context, not a dependency
    // that went (which would need whole builds to decide).
    const [, before, after] = IMPORTS.find(([n]) =>
      n.startsWith("a changed file stops importing"),
    )!;
    const dir = tempDir();
    writeTree(`${dir}/old`, { "buf.yaml": "version: v2\n", ...before });
    writeTree(`${dir}/new`, { "buf.yaml": "version: v2\n", ...after });
    const phases: string[] = [];
    const report = await checkBreaking({
      input: "new",
      against: "old",
      cwd: dir,
      use,
      onProgress: (p) => phases.push(p),
    });
    expect(phases.filter((p) => p.startsWith("building"))).toEqual([
      "building 1 changed files with buf",
    ]);
    expect(report.failures.map((f) => f.rule).sort()).toEqual([
      "FIELD_NO_DELETE",
      "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
      "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
    ]);
  });

  it.each([[[]], [["--exclude-imports"]]] as const)(
    "with --path, the files of the module outside it are imports, compared as in buf (%j)",
    async (flags) => {
      // buf takes --path on both sides only where both have the same paths: the working tree against a ref.
      const dir = tempDir();
      writeTree(dir, {
        "buf.yaml": `version: v2\nbreaking:\n  use: [${use.join(", ")}]\n`,
        "demo/v1/a.proto": proto('import "demo/v1/b.proto";\nmessage A { B b = 1; }'),
        "demo/v1/b.proto": proto("message B { string x = 1; }"),
      });
      const git = (...args: string[]) =>
        execFileSync("git", ["-c", "user.email=t@t", "-c", "user.name=t", ...args], {
          cwd: dir,
          stdio: "ignore",
        });
      git("init", "-q", "-b", "main");
      git("add", "-A");
      git("commit", "-q", "-m", "before");
      writeTree(dir, { "demo/v1/b.proto": proto("message B { int32 x = 1; }") });
      const args = [
        "breaking",
        "--against",
        ".git#branch=main",
        "--path",
        "demo/v1/a.proto",
        "--error-format",
        "json",
        ...flags,
      ];
      const theirs = jsonLines(spawnSync(BUF, args, { cwd: dir, encoding: "utf8" }).stdout);
      expect(theirs.length > 0).toBe(flags.length === 0);
      const ours = await grabbit(dir, args);
      expect(ours.stderr).toBe("");
      expect(jsonLines(ours.stdout)).toEqual(theirs);
    },
  );
});

describe("the rule catalog is buf's", () => {
  it.each(["v1", "v2"] as const)(
    "same IDs and categories as `buf config ls-breaking-rules --version %s`",
    (version) => {
      const out = execFileSync(
        BUF,
        ["config", "ls-breaking-rules", "--version", version, "--format", "json"],
        { encoding: "utf8" },
      );
      const theirs = out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { id: string; categories: string[] })
        .map((r) => `${r.id} ${[...r.categories].sort().join(",")}`)
        .sort();
      const ours = RULES.filter((r) => !r.grabbit)
        .filter((r) => version === "v2" || r.v1Categories !== null)
        .map((r) => `${r.id} ${[...categoriesOf(r, version)].sort().join(",")}`)
        .sort();
      expect(ours).toEqual(theirs);
    },
  );
});

describe("deprecated rule IDs are buf's", () => {
  // buf accepts a deprecated ID where its spec for the configuration version lists it, warns, and runs
  // the replacements it names (a deprecated rule without replacements selects nothing).
  const rows = [...DEPRECATED_RULES.keys()].flatMap((id) =>
    (["v1", "v2"] as const).map((v) => [id, v] as const),
  );
  it.each(rows)("%s in a %s buf.yaml", (id, version) => {
    const dir = tempDir();
    const tree: Tree = {
      "buf.yaml": `version: ${version}\nbreaking:\n  use: [${id}]\n`,
      "x.proto": 'syntax = "proto3";\npackage x;\nmessage M { string a = 1; }\n',
    };
    writeTree(`${dir}/old`, tree);
    writeTree(`${dir}/new`, tree);
    const r = spawnSync(BUF, ["breaking", "new", "--against", "old"], {
      cwd: dir,
      encoding: "utf8",
    });
    const unknown = r.stderr.includes("is not a known rule or category ID");
    expect(unknown).toBe(!isDeprecatedRuleId(id, version));
    if (!unknown) {
      const m = /has been replaced by rules? ([A-Z0-9_, ]+)\./.exec(r.stderr);
      expect(m ? m[1]!.split(", ") : []).toEqual(canonicalRuleIds(id, version));
    }
  });
});

describe("semantic versions", () => {
  it("takes the largest bump", () => {
    expect(maxBump([])).toBe("none");
    expect(maxBump(["patch", "minor", "patch"])).toBe("minor");
    expect(maxBump(["minor", "major"])).toBe("major");
  });
});
