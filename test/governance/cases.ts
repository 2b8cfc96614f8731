// One case per rule: an old file, a new file that breaks the rule, and a new file with a nearby change
// that must not. Files are demo/v1/demo.proto unless a case gives whole trees.
import type { Tree } from "./helpers.js";

export interface RuleCase {
  rule: string;
  /** Categories/rules passed with --use (buf's category where the rule is not in FILE). */
  use: string;
  old: Tree | string;
  bad: Tree | string;
  good: Tree | string;
  /** Also compare the rule set with `buf breaking` on the bad pair. */
  buf?: boolean;
}

const P3 = `syntax = "proto3";\n\npackage demo.v1;\n`;
const P2 = `syntax = "proto2";\n\npackage demo.v1;\n`;
const ED = `edition = "2023";\n\npackage demo.v1;\n`;
const p3 = (body: string, extra = "") => `${P3}${extra}\n${body.trim()}\n`;
const p2 = (body: string, extra = "") => `${P2}${extra}\n${body.trim()}\n`;
const ed = (body: string, extra = "") => `${ED}${extra}\n${body.trim()}\n`;

const thing = (fields: string, extra = "") => p3(`message Thing {\n${fields}\n}`, extra);
const color = (values: string, extra = "") =>
  p3(`enum Color {\n  COLOR_UNSPECIFIED = 0;\n${values}\n}`, extra);
const svc = (methods: string, extra = "") =>
  p3(
    `message A { string id = 1; }\nmessage B { string id = 1; }\nservice S {\n${methods}\n}`,
    extra,
  );

const FILE_OPTION_CASES: Array<[string, string, string, string]> = [
  [
    "FILE_SAME_JAVA_PACKAGE",
    `option java_package = "com.a";`,
    `option java_package = "com.b";`,
    `option java_package = "com.a";`,
  ],
  [
    "FILE_SAME_JAVA_OUTER_CLASSNAME",
    `option java_outer_classname = "A";`,
    `option java_outer_classname = "B";`,
    `option java_outer_classname = "A";`,
  ],
  [
    "FILE_SAME_JAVA_MULTIPLE_FILES",
    ``,
    `option java_multiple_files = true;`,
    `option java_multiple_files = false;`,
  ],
  [
    "FILE_SAME_GO_PACKAGE",
    `option go_package = "a/b";`,
    `option go_package = "a/c";`,
    `option go_package = "a/b";`,
  ],
  [
    "FILE_SAME_OPTIMIZE_FOR",
    ``,
    `option optimize_for = CODE_SIZE;`,
    `option optimize_for = SPEED;`,
  ],
  [
    "FILE_SAME_CC_GENERIC_SERVICES",
    ``,
    `option cc_generic_services = true;`,
    `option cc_generic_services = false;`,
  ],
  [
    "FILE_SAME_JAVA_GENERIC_SERVICES",
    ``,
    `option java_generic_services = true;`,
    `option java_generic_services = false;`,
  ],
  [
    "FILE_SAME_PY_GENERIC_SERVICES",
    ``,
    `option py_generic_services = true;`,
    `option py_generic_services = false;`,
  ],
  [
    "FILE_SAME_CC_ENABLE_ARENAS",
    ``,
    `option cc_enable_arenas = false;`,
    `option cc_enable_arenas = true;`,
  ],
  ["FILE_SAME_OBJC_CLASS_PREFIX", ``, `option objc_class_prefix = "DMO";`, ``],
  ["FILE_SAME_CSHARP_NAMESPACE", ``, `option csharp_namespace = "Demo.V1";`, ``],
  ["FILE_SAME_SWIFT_PREFIX", ``, `option swift_prefix = "Dm";`, ``],
  ["FILE_SAME_PHP_CLASS_PREFIX", ``, `option php_class_prefix = "Dm";`, ``],
  ["FILE_SAME_PHP_NAMESPACE", ``, `option php_namespace = "Demo\\\\V1";`, ``],
  ["FILE_SAME_PHP_METADATA_NAMESPACE", ``, `option php_metadata_namespace = "Demo\\\\Meta";`, ``],
  ["FILE_SAME_RUBY_PACKAGE", ``, `option ruby_package = "Demo::V1";`, ``],
];

export const RULE_CASES: RuleCase[] = [
  ...FILE_OPTION_CASES.map(([rule, o, b, g]) => ({
    rule,
    use: "FILE",
    old: thing("  string id = 1;", o),
    bad: thing("  string id = 1;", b),
    good: thing("  string id = 1;", g),
  })),
  {
    rule: "FILE_NO_DELETE",
    use: "FILE",
    old: {
      "demo/v1/demo.proto": thing("  string id = 1;"),
      "demo/v1/other.proto": p3("message Other {}"),
    },
    bad: { "demo/v1/demo.proto": thing("  string id = 1;") },
    good: {
      "demo/v1/demo.proto": thing("  string id = 1;"),
      "demo/v1/other.proto": p3("message Other { string x = 1; }"),
    },
    buf: true,
  },
  {
    rule: "FILE_SAME_PACKAGE",
    use: "FILE",
    old: thing("  string id = 1;"),
    bad: thing("  string id = 1;").replace("package demo.v1;", "package demo.v2;"),
    good: thing("  string id = 1;\n  string name = 2;"),
    buf: true,
  },
  {
    rule: "FILE_SAME_SYNTAX",
    use: "FILE",
    old: p2("message Thing { optional string id = 1; }"),
    bad: ed("message Thing { string id = 1; }"),
    good: p2("message Thing { optional string id = 1; optional string b = 2; }"),
    buf: true,
  },
  {
    rule: "MESSAGE_NO_DELETE",
    use: "FILE",
    old: p3("message Thing { string id = 1; }\nmessage Gone { int32 x = 1; }"),
    bad: p3("message Thing { string id = 1; }"),
    good: p3("message Thing { string id = 1; }\nmessage Gone { int32 x = 1; int32 y = 2; }"),
    buf: true,
  },
  {
    rule: "ENUM_NO_DELETE",
    use: "FILE",
    old: p3("message Thing { string id = 1; }\nenum Gone { GONE_UNSPECIFIED = 0; }"),
    bad: p3("message Thing { string id = 1; }"),
    good: p3("message Thing { string id = 1; }\nenum Gone { GONE_UNSPECIFIED = 0; GONE_X = 1; }"),
    buf: true,
  },
  {
    rule: "SERVICE_NO_DELETE",
    use: "FILE",
    old: svc("  rpc Get(A) returns (B);"),
    bad: p3("message A { string id = 1; }\nmessage B { string id = 1; }"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Put(A) returns (B);"),
    buf: true,
  },
  {
    rule: "EXTENSION_NO_DELETE",
    use: "FILE",
    old: p2(
      "message Thing { extensions 100 to 200; }\nextend Thing { optional string note = 100; }",
    ),
    bad: p2("message Thing { extensions 100 to 200; }"),
    good: p2(
      "message Thing { extensions 100 to 200; }\nextend Thing { optional string note = 100; optional string more = 101; }",
    ),
    buf: true,
  },
  {
    rule: "PACKAGE_MESSAGE_NO_DELETE",
    use: "PACKAGE",
    old: {
      "demo/v1/a.proto": p3("message Thing { string id = 1; }\nmessage Moved { string id = 1; }"),
      "demo/v1/b.proto": p3("message Other {}"),
    },
    bad: {
      "demo/v1/a.proto": p3("message Thing { string id = 1; }"),
      "demo/v1/b.proto": p3("message Other {}"),
    },
    good: {
      "demo/v1/a.proto": p3("message Thing { string id = 1; }"),
      "demo/v1/b.proto": p3("message Other {}\nmessage Moved { string id = 1; }"),
    },
    buf: true,
  },
  {
    rule: "PACKAGE_ENUM_NO_DELETE",
    use: "PACKAGE",
    // Another enum stays in the package: buf reports a deletion only while the package still has one.
    old: {
      "demo/v1/a.proto": p3("enum E { E_UNSPECIFIED = 0; }"),
      "demo/v1/b.proto": p3("message Other {}\nenum K { K_UNSPECIFIED = 0; }"),
    },
    bad: {
      "demo/v1/a.proto": p3("message Keep {}"),
      "demo/v1/b.proto": p3("message Other {}\nenum K { K_UNSPECIFIED = 0; }"),
    },
    good: {
      "demo/v1/a.proto": p3("message Keep {}"),
      "demo/v1/b.proto": p3(
        "message Other {}\nenum K { K_UNSPECIFIED = 0; }\nenum E { E_UNSPECIFIED = 0; }",
      ),
    },
    buf: true,
  },
  {
    rule: "PACKAGE_SERVICE_NO_DELETE",
    use: "PACKAGE",
    old: { "demo/v1/a.proto": svc("  rpc Get(A) returns (B);") },
    bad: { "demo/v1/a.proto": p3("message A { string id = 1; }\nmessage B { string id = 1; }") },
    good: {
      "demo/v1/a.proto": p3("message A { string id = 1; }\nmessage B { string id = 1; }"),
      "demo/v1/s.proto": p3(`import "demo/v1/a.proto";\nservice S { rpc Get(A) returns (B); }`),
    },
  },
  {
    rule: "PACKAGE_EXTENSION_NO_DELETE",
    use: "PACKAGE",
    // One extension stays: buf (and so grabbit) reports a deletion only while the package still has one.
    old: {
      "demo/v1/a.proto": p2(
        "message Thing { extensions 100 to 200; }\nextend Thing { optional string note = 100; optional string tag = 101; }",
      ),
    },
    bad: {
      "demo/v1/a.proto": p2(
        "message Thing { extensions 100 to 200; }\nextend Thing { optional string tag = 101; }",
      ),
    },
    good: {
      "demo/v1/a.proto": p2(
        "message Thing { extensions 100 to 200; }\nextend Thing { optional string tag = 101; }",
      ),
      "demo/v1/x.proto": p2(
        `import "demo/v1/a.proto";\nextend Thing { optional string note = 100; }`,
      ),
    },
  },
  {
    rule: "PACKAGE_NO_DELETE",
    use: "PACKAGE",
    old: {
      "demo/v1/a.proto": p3("message Thing {}"),
      "other/v1/o.proto": `syntax = "proto3";\npackage other.v1;\nmessage O {}\n`,
    },
    bad: { "demo/v1/a.proto": p3("message Thing {}") },
    good: {
      "demo/v1/a.proto": p3("message Thing {}"),
      "other/v1/p.proto": `syntax = "proto3";\npackage other.v1;\nmessage O {}\n`,
    },
    buf: true,
  },
  {
    rule: "FIELD_NO_DELETE",
    use: "FILE",
    old: thing("  string id = 1;\n  string name = 2;"),
    bad: thing("  string id = 1;"),
    good: thing("  string id = 1;\n  string name = 2;\n  string more = 3;"),
    buf: true,
  },
  {
    rule: "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
    use: "WIRE",
    old: thing("  string id = 1;\n  string name = 2;"),
    bad: thing("  string id = 1;"),
    good: thing("  string id = 1;\n  reserved 2;"),
    buf: true,
  },
  {
    rule: "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
    use: "WIRE_JSON",
    old: thing("  string id = 1;\n  string name = 2;"),
    bad: thing("  string id = 1;\n  reserved 2;"),
    good: thing('  string id = 1;\n  reserved 2;\n  reserved "name";'),
    buf: true,
  },
  {
    rule: "FIELD_SAME_TYPE",
    use: "FILE",
    old: thing("  int32 count = 1;"),
    bad: thing("  int64 count = 1;"),
    good: thing("  int32 count = 1;\n  int64 more = 2;"),
    buf: true,
  },
  {
    rule: "FIELD_WIRE_COMPATIBLE_TYPE",
    use: "WIRE",
    old: thing("  int32 count = 1;"),
    bad: thing("  string count = 1;"),
    good: thing("  int64 count = 1;"),
    buf: true,
  },
  {
    rule: "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
    use: "WIRE_JSON",
    old: thing("  int32 count = 1;"),
    bad: thing("  int64 count = 1;"),
    good: thing("  int32 count = 1;\n  int64 more = 2;"),
    buf: true,
  },
  {
    rule: "FIELD_SAME_NAME",
    use: "WIRE_JSON",
    old: thing("  string id = 1;"),
    bad: thing("  string key = 1;"),
    good: thing("  string id = 1;\n  string key = 2;"),
    buf: true,
  },
  {
    rule: "FIELD_SAME_JSON_NAME",
    use: "WIRE_JSON",
    old: thing("  string id = 1;"),
    bad: thing('  string id = 1 [json_name = "ident"];'),
    good: thing('  string id = 1 [json_name = "id"];'),
    buf: true,
  },
  {
    rule: "FIELD_SAME_CARDINALITY",
    use: "FILE",
    old: thing("  string id = 1;"),
    bad: thing("  repeated string id = 1;"),
    good: thing("  string id = 1;\n  repeated string ids = 2;"),
    buf: true,
  },
  {
    rule: "FIELD_WIRE_COMPATIBLE_CARDINALITY",
    use: "WIRE",
    old: thing("  int32 n = 1;"),
    bad: thing("  repeated int32 n = 1;"),
    good: thing("  int32 n = 1;\n  repeated int32 ns = 2;"),
    buf: true,
  },
  {
    rule: "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY",
    use: "WIRE_JSON",
    old: thing("  string id = 1;"),
    bad: thing("  repeated string id = 1;"),
    good: thing("  optional string id = 1;"),
    buf: true,
  },
  {
    rule: "FIELD_SAME_ONEOF",
    use: "WIRE",
    old: thing("  oneof pick {\n    string a = 1;\n    string b = 2;\n  }"),
    bad: thing("  string a = 1;\n  oneof pick {\n    string b = 2;\n  }"),
    good: thing("  oneof pick {\n    string a = 1;\n    string b = 2;\n    string c = 3;\n  }"),
    buf: true,
  },
  {
    rule: "FIELD_SAME_DEFAULT",
    use: "WIRE",
    old: p2("message Thing { optional int32 n = 1 [default = 5]; }"),
    bad: p2("message Thing { optional int32 n = 1 [default = 6]; }"),
    good: p2("message Thing { optional int32 n = 1 [default = 5]; optional int32 m = 2; }"),
    buf: true,
  },
  {
    rule: "FIELD_SAME_JSTYPE",
    use: "FILE",
    old: thing("  int64 n = 1;"),
    bad: thing("  int64 n = 1 [jstype = JS_STRING];"),
    good: thing("  int64 n = 1 [jstype = JS_NORMAL];"),
    buf: true,
  },
  {
    rule: "FIELD_SAME_CPP_STRING_TYPE",
    use: "FILE",
    old: p2("message Thing { optional string s = 1; }"),
    bad: p2("message Thing { optional string s = 1 [ctype = CORD]; }"),
    good: p2("message Thing { optional string s = 1 [ctype = STRING]; }"),
    buf: true,
  },
  {
    rule: "FIELD_SAME_JAVA_UTF8_VALIDATION",
    use: "FILE",
    old: p2("message Thing { optional string s = 1; }"),
    bad: p2("message Thing { optional string s = 1; }", "option java_string_check_utf8 = true;\n"),
    good: p2(
      "message Thing { optional string s = 1; }",
      "option java_string_check_utf8 = false;\n",
    ),
    buf: true,
  },
  {
    rule: "FIELD_SAME_UTF8_VALIDATION",
    use: "FILE",
    old: ed("message Thing { string s = 1; }"),
    bad: ed("message Thing { string s = 1 [features.utf8_validation = NONE]; }"),
    good: ed("message Thing { string s = 1 [features.utf8_validation = VERIFY]; }"),
    buf: true,
  },
  {
    rule: "ONEOF_NO_DELETE",
    use: "FILE",
    old: thing("  oneof pick {\n    string a = 1;\n  }"),
    bad: thing("  string a = 1;"),
    good: thing("  oneof pick {\n    string a = 1;\n    string b = 2;\n  }"),
  },
  {
    rule: "RESERVED_MESSAGE_NO_DELETE",
    use: "WIRE",
    old: thing("  string id = 1;\n  reserved 5 to 9;"),
    bad: thing("  string id = 1;\n  reserved 5 to 7;"),
    good: thing("  string id = 1;\n  reserved 5 to 10;"),
    buf: true,
  },
  {
    rule: "EXTENSION_MESSAGE_NO_DELETE",
    use: "FILE",
    old: p2("message Thing { extensions 100 to 200; }"),
    bad: p2("message Thing { extensions 100 to 150; }"),
    good: p2("message Thing { extensions 100 to 300; }"),
    buf: true,
  },
  {
    rule: "MESSAGE_SAME_REQUIRED_FIELDS",
    use: "WIRE",
    old: p2("message Thing { optional string id = 1; }"),
    bad: p2("message Thing { optional string id = 1; required string name = 2; }"),
    good: p2("message Thing { optional string id = 1; optional string name = 2; }"),
    buf: true,
  },
  {
    rule: "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR",
    use: "FILE",
    old: p3("message Thing { string id = 1; }"),
    bad: p3("message Thing { option no_standard_descriptor_accessor = true; string id = 1; }"),
    good: p3("message Thing { option no_standard_descriptor_accessor = false; string id = 1; }"),
    buf: true,
  },
  {
    rule: "MESSAGE_SAME_JSON_FORMAT",
    use: "WIRE_JSON",
    old: ed("message Thing { string id = 1; }"),
    bad: ed("message Thing { option features.json_format = LEGACY_BEST_EFFORT; string id = 1; }"),
    good: ed("message Thing { option features.json_format = ALLOW; string id = 1; }"),
    buf: true,
  },
  {
    rule: "ENUM_VALUE_NO_DELETE",
    use: "FILE",
    old: color("  COLOR_RED = 1;\n  COLOR_BLUE = 2;"),
    bad: color("  COLOR_RED = 1;"),
    good: color("  COLOR_RED = 1;\n  COLOR_BLUE = 2;\n  COLOR_GREEN = 3;"),
    buf: true,
  },
  {
    rule: "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
    use: "WIRE",
    old: color("  COLOR_RED = 1;\n  COLOR_BLUE = 2;"),
    bad: color("  COLOR_RED = 1;"),
    good: color("  COLOR_RED = 1;\n  reserved 2;"),
    buf: true,
  },
  {
    rule: "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
    use: "WIRE_JSON",
    old: color("  COLOR_RED = 1;\n  COLOR_BLUE = 2;"),
    bad: color("  COLOR_RED = 1;\n  reserved 2;"),
    good: color('  COLOR_RED = 1;\n  reserved 2;\n  reserved "COLOR_BLUE";'),
    buf: true,
  },
  {
    rule: "ENUM_VALUE_SAME_NAME",
    use: "WIRE_JSON",
    old: color("  COLOR_RED = 1;"),
    bad: color("  COLOR_CRIMSON = 1;"),
    good: color("  COLOR_RED = 1;\n  COLOR_CRIMSON = 2;"),
    buf: true,
  },
  {
    rule: "RESERVED_ENUM_NO_DELETE",
    use: "WIRE",
    old: color("  COLOR_RED = 1;\n  reserved 5 to 9;"),
    bad: color("  COLOR_RED = 1;\n  reserved 5 to 7;"),
    good: color("  COLOR_RED = 1;\n  reserved 5 to 10;"),
    buf: true,
  },
  {
    rule: "ENUM_SAME_TYPE",
    use: "FILE",
    old: ed("enum Color { COLOR_UNSPECIFIED = 0; }"),
    bad: ed("enum Color { option features.enum_type = CLOSED; COLOR_UNSPECIFIED = 0; }"),
    good: ed("enum Color { option features.enum_type = OPEN; COLOR_UNSPECIFIED = 0; }"),
    buf: true,
  },
  {
    rule: "ENUM_SAME_JSON_FORMAT",
    use: "WIRE_JSON",
    old: ed("enum Color { COLOR_UNSPECIFIED = 0; }"),
    bad: ed(
      "enum Color { option features.json_format = LEGACY_BEST_EFFORT; COLOR_UNSPECIFIED = 0; }",
    ),
    good: ed("enum Color { option features.json_format = ALLOW; COLOR_UNSPECIFIED = 0; }"),
    buf: true,
  },
  {
    rule: "RPC_NO_DELETE",
    use: "FILE",
    old: svc("  rpc Get(A) returns (B);\n  rpc Put(A) returns (B);"),
    bad: svc("  rpc Get(A) returns (B);"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Put(A) returns (B);\n  rpc List(A) returns (B);"),
    buf: true,
  },
  {
    rule: "RPC_SAME_REQUEST_TYPE",
    use: "WIRE",
    old: svc("  rpc Get(A) returns (B);"),
    bad: svc("  rpc Get(B) returns (B);"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Put(B) returns (B);"),
    buf: true,
  },
  {
    rule: "RPC_SAME_RESPONSE_TYPE",
    use: "WIRE",
    old: svc("  rpc Get(A) returns (B);"),
    bad: svc("  rpc Get(A) returns (A);"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Put(A) returns (A);"),
    buf: true,
  },
  {
    rule: "RPC_SAME_CLIENT_STREAMING",
    use: "WIRE",
    old: svc("  rpc Get(A) returns (B);"),
    bad: svc("  rpc Get(stream A) returns (B);"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Up(stream A) returns (B);"),
    buf: true,
  },
  {
    rule: "RPC_SAME_SERVER_STREAMING",
    use: "WIRE",
    old: svc("  rpc Get(A) returns (B);"),
    bad: svc("  rpc Get(A) returns (stream B);"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Down(A) returns (stream B);"),
    buf: true,
  },
  {
    rule: "RPC_SAME_IDEMPOTENCY_LEVEL",
    use: "WIRE",
    old: svc("  rpc Get(A) returns (B);"),
    bad: svc("  rpc Get(A) returns (B) { option idempotency_level = NO_SIDE_EFFECTS; }"),
    good: svc("  rpc Get(A) returns (B) { option idempotency_level = IDEMPOTENCY_UNKNOWN; }"),
    buf: true,
  },
];

// --- grabbit's own rules: events and services over RabbitMQ ---

const G = `syntax = "proto3";\n\npackage demo.v1;\n\nimport "grabbit/v1/options.proto";\n`;
export const OPTIONS_PROTO_PATH = "grabbit/v1/options.proto";
const g = (body: string, extra = "") => `${G}${extra}\n${body.trim()}\n`;
const ev = (opts: string, fields = "  string region = 1;\n  string id = 2;") =>
  g(`message OrderCreated {\n  option (grabbit.v1.event) = {${opts}};\n${fields}\n}`);
const gs = (opts: string, methodOpts = "") =>
  g(
    `message A { string id = 1; }\nmessage B { string id = 1; }\nservice Orders {\n  option (grabbit.v1.service) = {${opts}};\n  rpc Get(A) returns (B) {${methodOpts}}\n}`,
  );

export const GRABBIT_CASES: RuleCase[] = [
  {
    rule: "GRABBIT_EVENT_REMOVED",
    use: "GRABBIT",
    old: ev(`exchange: "orders"`),
    bad: g("message OrderCreated {\n  string region = 1;\n  string id = 2;\n}"),
    good: ev(`exchange: "orders" routing_key: "order.created"`),
  },
  {
    rule: "GRABBIT_EVENT_EXCHANGE_CHANGED",
    use: "GRABBIT",
    old: ev(`exchange: "orders"`),
    bad: ev(`exchange: "sales"`),
    good: ev(``).replace("import", 'option (grabbit.v1.file) = {exchange: "orders"};\n\nimport'),
  },
  {
    rule: "GRABBIT_EVENT_EXCHANGE_KIND_CHANGED",
    use: "GRABBIT",
    old: ev(`exchange: "orders"`),
    bad: ev(`exchange: "orders" exchange_kind: EXCHANGE_KIND_DIRECT`),
    good: ev(`exchange: "orders" exchange_kind: EXCHANGE_KIND_TOPIC`),
  },
  {
    rule: "GRABBIT_EVENT_ROUTING_KEY_CHANGED",
    use: "GRABBIT",
    old: ev(`exchange: "orders" routing_key: "order.{region}.created"`),
    bad: ev(`exchange: "orders" routing_key: "order.{region}.{id}.created"`),
    good: ev(
      `exchange: "orders" routing_key: "order.{region}.created"`,
      "  string region = 1;\n  string id = 2;\n  string extra = 3;",
    ),
  },
  {
    rule: "GRABBIT_EVENT_PERSISTENCE_CHANGED",
    use: "GRABBIT",
    old: ev(`exchange: "orders"`),
    bad: ev(`exchange: "orders" persistent: false`),
    good: ev(`exchange: "orders" persistent: true`),
  },
  {
    rule: "GRABBIT_EVENT_TYPE_CHANGED",
    use: "GRABBIT",
    old: ev(`exchange: "orders" routing_key: "order.created"`),
    bad: ev(`exchange: "orders" routing_key: "order.created"`).replace(
      "OrderCreated",
      "OrderPlaced",
    ),
    good: ev(`exchange: "orders" routing_key: "order.created"`).replace(
      "message OrderCreated",
      "// Renamed nothing.\nmessage OrderCreated",
    ),
  },
  {
    rule: "GRABBIT_SERVICE_TRANSPORT_REMOVED",
    use: "GRABBIT",
    old: gs(`transports: [TRANSPORT_GRPC, TRANSPORT_AMQP]`),
    bad: gs(`transports: [TRANSPORT_GRPC]`),
    good: gs(`transports: [TRANSPORT_AMQP, TRANSPORT_GRPC]`),
  },
  {
    rule: "GRABBIT_SERVICE_REQUEST_QUEUE_CHANGED",
    use: "GRABBIT",
    old: gs(`transports: [TRANSPORT_AMQP]`),
    bad: gs(`transports: [TRANSPORT_AMQP] request_queue: "orders.requests"`),
    good: gs(`transports: [TRANSPORT_AMQP] request_queue: "demo.v1.Orders"`),
  },
  {
    // quorum -> classic breaks; dropping the type (back to "auto", which uses any existing queue) does not.
    rule: "GRABBIT_SERVICE_QUEUE_TYPE_CHANGED",
    use: "GRABBIT",
    old: gs(`transports: [TRANSPORT_AMQP] queue_type: QUEUE_TYPE_QUORUM`),
    bad: gs(`transports: [TRANSPORT_AMQP] queue_type: QUEUE_TYPE_CLASSIC`),
    good: gs(`transports: [TRANSPORT_AMQP]`),
  },
  {
    // Unspecified -> a type breaks too (an existing queue may have the other one); on a moved queue
    // the type is a new queue's, and only the move is reported.
    rule: "GRABBIT_SERVICE_QUEUE_TYPE_CHANGED",
    use: "GRABBIT",
    old: gs(`transports: [TRANSPORT_AMQP]`),
    bad: gs(`transports: [TRANSPORT_AMQP] queue_type: QUEUE_TYPE_CLASSIC`),
    good: gs(
      `transports: [TRANSPORT_AMQP] request_queue: "orders.fast" queue_type: QUEUE_TYPE_CLASSIC`,
    ),
  },
  {
    rule: "GRABBIT_METHOD_IDEMPOTENCY_REMOVED",
    use: "GRABBIT",
    old: gs(`transports: [TRANSPORT_AMQP]`, " option (grabbit.v1.method) = {idempotent: true}; "),
    bad: gs(`transports: [TRANSPORT_AMQP]`),
    good: gs(`transports: [TRANSPORT_AMQP]`, " option idempotency_level = IDEMPOTENT; "),
  },
  // --- the generated TypeScript API ---
  {
    rule: "TYPESCRIPT_FIELD_RENAMED",
    use: "TYPESCRIPT",
    old: thing("  string order_id = 1;"),
    bad: thing("  string order_key = 1;"),
    good: thing("  string orderId = 1;"),
  },
  {
    rule: "TYPESCRIPT_FIELD_OPTIONAL_CHANGED",
    use: "TYPESCRIPT",
    old: thing("  string note = 1;"),
    bad: thing("  optional string note = 1;"),
    good: thing("  string note = 1;\n  optional string more = 2;"),
  },
  {
    rule: "TYPESCRIPT_ENUM_VALUE_RENAMED",
    use: "TYPESCRIPT",
    old: color("  COLOR_RED = 1;"),
    bad: color("  COLOR_CRIMSON = 1;"),
    good: color("  COLOR_RED = 1;\n  COLOR_CRIMSON = 2;"),
  },
  {
    rule: "TYPESCRIPT_MESSAGE_RENAMED",
    use: "TYPESCRIPT",
    old: p3("message Thing { string id = 1; int32 n = 2; }"),
    bad: p3("message Item { string id = 1; int32 n = 2; }"),
    good: p3(
      "message Thing { string id = 1; int32 n = 2; }\nmessage Item { string id = 1; int32 n = 2; }",
    ),
  },
  {
    rule: "TYPESCRIPT_ENUM_RENAMED",
    use: "TYPESCRIPT",
    old: p3("enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; }"),
    bad: p3("enum Colour { COLOUR_UNSPECIFIED = 0; COLOUR_RED = 1; }"),
    good: p3("enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; COLOR_BLUE = 2; }"),
  },
  {
    rule: "TYPESCRIPT_SERVICE_RENAMED",
    use: "TYPESCRIPT",
    old: svc("  rpc Get(A) returns (B);"),
    bad: svc("  rpc Get(A) returns (B);").replace("service S", "service T"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Put(A) returns (B);"),
  },
  {
    rule: "TYPESCRIPT_METHOD_RENAMED",
    use: "TYPESCRIPT",
    old: svc("  rpc Get(A) returns (B);"),
    bad: svc("  rpc Fetch(A) returns (B);"),
    good: svc("  rpc Get(A) returns (B);\n  rpc Fetch(A) returns (B);"),
  },
];
