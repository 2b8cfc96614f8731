// The rule catalog: every rule grabbit knows, its categories, and what it checks. The buf rows mirror
// `buf config ls-breaking-rules` (v2 membership, with the v1 membership where a v1 buf.yaml selects
// differently) so that a team's existing `use`/`except` lists select the same rules as in buf.

export type ConfigVersion = "v1" | "v2";

export type BufCategory = "FILE" | "PACKAGE" | "WIRE_JSON" | "WIRE";
export type GrabbitCategory = "GRABBIT" | "TYPESCRIPT";

/** A row of buf's rules. */
interface BufRule {
  id: string;
  /** Categories in a v2 configuration (and a v1beta1-less default), without buf's CSR. */
  categories: readonly BufCategory[];
  /** Left out: the same categories in a v1 configuration. null: buf has the rule in v2 only. */
  v1Categories?: null;
  /** Member of buf's CSR category (selectable, never printed: the SPEC's categories are the four). */
  csr: boolean;
  /** What the rule checks, finishing "Checks that ...". */
  purpose: string;
}

/** A row of grabbit's own rules: one category, the same in v1 and v2, never CSR. */
interface GrabbitRule {
  id: string;
  category: GrabbitCategory;
  /** What the rule checks, finishing "Checks that ...". */
  purpose: string;
}

// Generated once from `buf config ls-breaking-rules --version v2|v1 --format json` (buf 1.75; unchanged in 1.74, which the repo now pins — a test compares with the installed buf).
const BUF_RULES = [
  {
    id: "EXTENSION_NO_DELETE",
    categories: ["FILE"],
    v1Categories: null,
    csr: false,
    purpose: "extensions are not deleted from a given file.",
  },
  {
    id: "SERVICE_NO_DELETE",
    categories: ["FILE"],
    csr: false,
    purpose: "services are not deleted from a given file.",
  },
  {
    id: "ENUM_NO_DELETE",
    categories: ["FILE"],
    csr: true,
    purpose: "enums are not deleted from a given file.",
  },
  { id: "FILE_NO_DELETE", categories: ["FILE"], csr: true, purpose: "files are not deleted." },
  {
    id: "MESSAGE_NO_DELETE",
    categories: ["FILE"],
    csr: true,
    purpose: "messages are not deleted from a given file.",
  },
  {
    id: "ENUM_SAME_TYPE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "enums have the same type (open vs closed).",
  },
  {
    id: "FIELD_SAME_CARDINALITY",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "fields have the same cardinalities in a given message.",
  },
  {
    id: "FIELD_SAME_CPP_STRING_TYPE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose:
      "fields have the same C++ string type, based on ctype field option or (pb.cpp).string_type feature.",
  },
  {
    id: "FIELD_SAME_JAVA_UTF8_VALIDATION",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose:
      "fields have the same Java string UTF8 validation, based on java_string_check_utf8 file option or (pb.java).utf8_validation feature.",
  },
  {
    id: "FIELD_SAME_JSTYPE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "fields have the same value for the jstype option.",
  },
  {
    id: "FIELD_SAME_UTF8_VALIDATION",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "string fields have the same UTF8 validation mode.",
  },
  {
    id: "FILE_SAME_CC_ENABLE_ARENAS",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the cc_enable_arenas option.",
  },
  {
    id: "FILE_SAME_CC_GENERIC_SERVICES",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the cc_generic_services option.",
  },
  {
    id: "FILE_SAME_CSHARP_NAMESPACE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the csharp_namespace option.",
  },
  {
    id: "FILE_SAME_GO_PACKAGE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the go_package option.",
  },
  {
    id: "FILE_SAME_JAVA_GENERIC_SERVICES",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the java_generic_services option.",
  },
  {
    id: "FILE_SAME_JAVA_MULTIPLE_FILES",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the java_multiple_files option.",
  },
  {
    id: "FILE_SAME_JAVA_OUTER_CLASSNAME",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the java_outer_classname option.",
  },
  {
    id: "FILE_SAME_JAVA_PACKAGE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the java_package option.",
  },
  {
    id: "FILE_SAME_OBJC_CLASS_PREFIX",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the objc_class_prefix option.",
  },
  {
    id: "FILE_SAME_OPTIMIZE_FOR",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the optimize_for option.",
  },
  {
    id: "FILE_SAME_PHP_CLASS_PREFIX",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the php_class_prefix option.",
  },
  {
    id: "FILE_SAME_PHP_METADATA_NAMESPACE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the php_metadata_namespace option.",
  },
  {
    id: "FILE_SAME_PHP_NAMESPACE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the php_namespace option.",
  },
  {
    id: "FILE_SAME_PY_GENERIC_SERVICES",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the py_generic_services option.",
  },
  {
    id: "FILE_SAME_RUBY_PACKAGE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the ruby_package option.",
  },
  {
    id: "FILE_SAME_SWIFT_PREFIX",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "files have the same value for the swift_prefix option.",
  },
  {
    id: "RPC_NO_DELETE",
    categories: ["FILE", "PACKAGE"],
    csr: false,
    purpose: "rpcs are not deleted from a given service.",
  },
  {
    id: "ENUM_VALUE_NO_DELETE",
    categories: ["FILE", "PACKAGE"],
    csr: true,
    purpose: "enum values are not deleted from a given enum.",
  },
  {
    id: "EXTENSION_MESSAGE_NO_DELETE",
    categories: ["FILE", "PACKAGE"],
    csr: true,
    purpose: "extension ranges are not deleted from a given message.",
  },
  {
    id: "FIELD_NO_DELETE",
    categories: ["FILE", "PACKAGE"],
    csr: true,
    purpose: "fields are not deleted from a given message.",
  },
  {
    id: "FIELD_SAME_TYPE",
    categories: ["FILE", "PACKAGE"],
    csr: true,
    purpose: "fields have the same types in a given message.",
  },
  {
    id: "FILE_SAME_SYNTAX",
    categories: ["FILE", "PACKAGE"],
    csr: true,
    purpose: "files have the same syntax.",
  },
  {
    id: "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR",
    categories: ["FILE", "PACKAGE"],
    csr: true,
    purpose:
      "messages do not change the no_standard_descriptor_accessor option from false or unset to true.",
  },
  {
    id: "ONEOF_NO_DELETE",
    categories: ["FILE", "PACKAGE"],
    csr: true,
    purpose: "oneofs are not deleted from a given message.",
  },
  {
    id: "ENUM_SAME_JSON_FORMAT",
    categories: ["FILE", "PACKAGE", "WIRE_JSON"],
    csr: true,
    purpose: "enums have the same JSON format support.",
  },
  {
    id: "ENUM_VALUE_SAME_NAME",
    categories: ["FILE", "PACKAGE", "WIRE_JSON"],
    csr: true,
    purpose: "enum values have the same name.",
  },
  {
    id: "FIELD_SAME_JSON_NAME",
    categories: ["FILE", "PACKAGE", "WIRE_JSON"],
    csr: true,
    purpose: "fields have the same value for the json_name option.",
  },
  {
    id: "FIELD_SAME_NAME",
    categories: ["FILE", "PACKAGE", "WIRE_JSON"],
    csr: true,
    purpose: "fields have the same names in a given message.",
  },
  {
    id: "MESSAGE_SAME_JSON_FORMAT",
    categories: ["FILE", "PACKAGE", "WIRE_JSON"],
    csr: true,
    purpose: "messages have the same JSON format support.",
  },
  {
    id: "FIELD_SAME_DEFAULT",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    v1Categories: null,
    csr: true,
    purpose: "fields have the same default value, if a default is specified.",
  },
  {
    id: "FIELD_SAME_ONEOF",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "fields have the same oneofs in a given message.",
  },
  {
    id: "FILE_SAME_PACKAGE",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "files have the same package.",
  },
  {
    id: "MESSAGE_SAME_REQUIRED_FIELDS",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "messages have no added or deleted required fields.",
  },
  {
    id: "RESERVED_ENUM_NO_DELETE",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "reserved ranges and names are not deleted from a given enum.",
  },
  {
    id: "RESERVED_MESSAGE_NO_DELETE",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "reserved ranges and names are not deleted from a given message.",
  },
  {
    id: "RPC_SAME_CLIENT_STREAMING",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "rpcs have the same client streaming value.",
  },
  {
    id: "RPC_SAME_IDEMPOTENCY_LEVEL",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "rpcs have the same value for the idempotency_level option.",
  },
  {
    id: "RPC_SAME_REQUEST_TYPE",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "rpcs are have the same request type.",
  },
  {
    id: "RPC_SAME_RESPONSE_TYPE",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "rpcs are have the same response type.",
  },
  {
    id: "RPC_SAME_SERVER_STREAMING",
    categories: ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "rpcs have the same server streaming value.",
  },
  {
    id: "PACKAGE_ENUM_NO_DELETE",
    categories: ["PACKAGE"],
    csr: false,
    purpose: "enums are not deleted from a given package.",
  },
  {
    id: "PACKAGE_EXTENSION_NO_DELETE",
    categories: ["PACKAGE"],
    v1Categories: null,
    csr: false,
    purpose: "extensions are not deleted from a given package.",
  },
  {
    id: "PACKAGE_MESSAGE_NO_DELETE",
    categories: ["PACKAGE"],
    csr: false,
    purpose: "messages are not deleted from a given package.",
  },
  {
    id: "PACKAGE_NO_DELETE",
    categories: ["PACKAGE"],
    csr: false,
    purpose: "packages are not deleted.",
  },
  {
    id: "PACKAGE_SERVICE_NO_DELETE",
    categories: ["PACKAGE"],
    csr: false,
    purpose: "services are not deleted from a given package.",
  },
  {
    id: "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
    categories: ["WIRE_JSON"],
    csr: true,
    purpose: "enum values are not deleted from a given enum unless the name is reserved.",
  },
  {
    id: "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
    categories: ["WIRE_JSON"],
    csr: true,
    purpose: "fields are not deleted from a given message unless the name is reserved.",
  },
  {
    id: "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY",
    categories: ["WIRE_JSON"],
    csr: true,
    purpose: "fields have wire and JSON compatible cardinalities in a given message.",
  },
  {
    id: "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
    categories: ["WIRE_JSON"],
    csr: true,
    purpose: "fields have wire and JSON compatible types in a given message.",
  },
  {
    id: "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
    categories: ["WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "enum values are not deleted from a given enum unless the number is reserved.",
  },
  {
    id: "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
    categories: ["WIRE_JSON", "WIRE"],
    csr: true,
    purpose: "fields are not deleted from a given message unless the number is reserved.",
  },
  {
    id: "FIELD_WIRE_COMPATIBLE_CARDINALITY",
    categories: ["WIRE"],
    csr: false,
    purpose: "fields have wire-compatible cardinalities in a given message.",
  },
  {
    id: "FIELD_WIRE_COMPATIBLE_TYPE",
    categories: ["WIRE"],
    csr: false,
    purpose: "fields have wire-compatible types in a given message.",
  },
] as const satisfies readonly BufRule[];

// grabbit's own rules: the messaging contract (what RabbitMQ consumers bind to) and the generated
// TypeScript API (what callers compile against), both invisible to buf. A new rule is one row here
// (its id becomes a RuleId), a check that calls ctx.add("ITS_ID", ...) and a case in
// test/governance/cases.ts (rules.test.ts fails for a rule without one).
const GRABBIT_RULES = [
  {
    id: "GRABBIT_EVENT_REMOVED",
    category: "GRABBIT",
    purpose: "messages stay events: removing (grabbit.v1.event) stops publishing them.",
  },
  {
    id: "GRABBIT_EVENT_EXCHANGE_CHANGED",
    category: "GRABBIT",
    purpose:
      "events keep the exchange they are published to (queues bound to the old one stop receiving).",
  },
  {
    id: "GRABBIT_EVENT_EXCHANGE_KIND_CHANGED",
    category: "GRABBIT",
    purpose: "events keep their exchange kind (redeclaring an exchange with another kind fails).",
  },
  {
    id: "GRABBIT_EVENT_ROUTING_KEY_CHANGED",
    category: "GRABBIT",
    purpose:
      "events keep the shape of their routing key, so existing binding patterns still match.",
  },
  {
    id: "GRABBIT_EVENT_TYPE_CHANGED",
    category: "GRABBIT",
    purpose:
      "events keep their message full name (the AMQP `type` property consumers dispatch on).",
  },
  {
    id: "GRABBIT_EVENT_PERSISTENCE_CHANGED",
    category: "GRABBIT",
    purpose: "persistent events stay persistent (delivery_mode 2).",
  },
  {
    id: "GRABBIT_SERVICE_TRANSPORT_REMOVED",
    category: "GRABBIT",
    purpose: "services keep every transport they were served on.",
  },
  {
    id: "GRABBIT_SERVICE_REQUEST_QUEUE_CHANGED",
    category: "GRABBIT",
    purpose: "AMQP services keep their request queue.",
  },
  {
    id: "GRABBIT_SERVICE_QUEUE_TYPE_CHANGED",
    category: "GRABBIT",
    purpose:
      "AMQP services keep the type of their request queue (a server declaring an existing queue with another type gets PRECONDITION_FAILED); fixing a type that was unspecified counts too.",
  },
  {
    id: "GRABBIT_METHOD_IDEMPOTENCY_REMOVED",
    category: "GRABBIT",
    purpose: "methods declared idempotent stay idempotent (callers retry them).",
  },
  {
    id: "TYPESCRIPT_FIELD_RENAMED",
    category: "TYPESCRIPT",
    purpose: "fields keep their generated property name (camelCase, as ts-proto writes it).",
  },
  {
    id: "TYPESCRIPT_FIELD_OPTIONAL_CHANGED",
    category: "TYPESCRIPT",
    purpose: "fields keep proto3 `optional` (T versus T | undefined).",
  },
  {
    id: "TYPESCRIPT_ENUM_VALUE_RENAMED",
    category: "TYPESCRIPT",
    purpose: "enum values keep their generated member names.",
  },
  {
    id: "TYPESCRIPT_MESSAGE_RENAMED",
    category: "TYPESCRIPT",
    purpose: "messages keep their generated interface name.",
  },
  {
    id: "TYPESCRIPT_ENUM_RENAMED",
    category: "TYPESCRIPT",
    purpose: "enums keep their generated type name.",
  },
  {
    id: "TYPESCRIPT_SERVICE_RENAMED",
    category: "TYPESCRIPT",
    purpose: "services keep their generated client and server names.",
  },
  {
    id: "TYPESCRIPT_METHOD_RENAMED",
    category: "TYPESCRIPT",
    purpose: "methods keep their generated names.",
  },
] as const satisfies readonly GrabbitRule[];

/** Every rule ID grabbit knows: `Ctx.add` takes only these, so a misspelt ID does not compile. */
export type RuleId = (typeof BUF_RULES)[number]["id"] | (typeof GRABBIT_RULES)[number]["id"];

export interface RuleInfo {
  id: RuleId;
  /** Categories in a v2 (and v1beta1-less default) configuration, without buf's CSR. */
  categories: string[];
  /** Categories in a v1 configuration; null: the rule does not exist in v1. */
  v1Categories: string[] | null;
  /** Member of buf's CSR category (selectable, never printed: the SPEC's categories are the four). */
  csr: boolean;
  purpose: string;
  /** Rules of grabbit's own are on by default next to the buf rules the configuration selects. */
  grabbit: boolean;
}

export const RULES: readonly RuleInfo[] = [
  ...BUF_RULES.map((r: BufRule & { id: RuleId }) => ({
    id: r.id,
    categories: [...r.categories],
    v1Categories: r.v1Categories === null ? null : [...r.categories],
    csr: r.csr,
    purpose: `Checks that ${r.purpose}`,
    grabbit: false,
  })),
  ...GRABBIT_RULES.map((r: GrabbitRule & { id: RuleId }) => ({
    id: r.id,
    categories: [r.category],
    v1Categories: [r.category],
    csr: false,
    purpose: `Checks that ${r.purpose}`,
    grabbit: true,
  })),
];

/** The rules by ID; a lookup by any string (a configuration's, a finding's) tells whether it is a rule. */
export const RULE_BY_ID: ReadonlyMap<string, RuleInfo> = new Map(RULES.map((r) => [r.id, r]));

export function isRuleId(id: string): id is RuleId {
  return RULE_BY_ID.has(id);
}

export const BUF_CATEGORIES = ["FILE", "PACKAGE", "WIRE_JSON", "WIRE", "CSR"];
export const GRABBIT_CATEGORIES = ["GRABBIT", "TYPESCRIPT"];
export const ALL_CATEGORIES = [...BUF_CATEGORIES, ...GRABBIT_CATEGORIES];

export function categoriesOf(rule: RuleInfo, version: ConfigVersion): string[] {
  if (version === "v1") return rule.v1Categories ?? [];
  return rule.csr ? [...rule.categories, "CSR"] : rule.categories;
}

/**
 * Informational change kinds: not rules that can fail a build, but every change the SDK's semantic
 * version must account for. They share the finding shape, with breaking false.
 */
export const CHANGE_KINDS = {
  FILE_ADDED: "minor",
  PACKAGE_ADDED: "minor",
  MESSAGE_ADDED: "minor",
  ENUM_ADDED: "minor",
  SERVICE_ADDED: "minor",
  EXTENSION_ADDED: "minor",
  FIELD_ADDED: "minor",
  ONEOF_ADDED: "minor",
  ENUM_VALUE_ADDED: "minor",
  RPC_ADDED: "minor",
  EVENT_ADDED: "minor",
  TRANSPORT_ADDED: "minor",
  DEPRECATED: "minor",
  UNDEPRECATED: "patch",
  RESERVED_ADDED: "patch",
  OPTION_CHANGED: "patch",
  COMMENT_CHANGED: "patch",
} as const;
export type ChangeKind = keyof typeof CHANGE_KINDS;

/**
 * Rule IDs buf still accepts under a deprecated name, and the rules each stands for (as buf's
 * bufcheckserver spec lists them: a deprecated rule with no replacement selects nothing). buf accepts
 * all five in v1 (and v1beta1) configurations; v2 only keeps MESSAGE_SAME_MESSAGE_SET_WIRE_FORMAT, and
 * rejects the others as unknown.
 */
export const DEPRECATED_RULES: ReadonlyMap<
  string,
  { replacements: readonly string[]; versions: readonly ConfigVersion[] }
> = new Map([
  ["FIELD_SAME_CTYPE", { replacements: ["FIELD_SAME_CPP_STRING_TYPE"], versions: ["v1"] }],
  [
    "FIELD_SAME_LABEL",
    {
      replacements: [
        "FIELD_SAME_CARDINALITY",
        "FIELD_WIRE_COMPATIBLE_CARDINALITY",
        "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY",
      ],
      versions: ["v1"],
    },
  ],
  [
    "FILE_SAME_JAVA_STRING_CHECK_UTF8",
    { replacements: ["FIELD_SAME_JAVA_UTF8_VALIDATION"], versions: ["v1"] },
  ],
  ["FILE_SAME_PHP_GENERIC_SERVICES", { replacements: [], versions: ["v1"] }],
  ["MESSAGE_SAME_MESSAGE_SET_WIRE_FORMAT", { replacements: [], versions: ["v1", "v2"] }],
] as const);

/** Whether `id` is a deprecated rule ID that a configuration of `version` accepts. */
export function isDeprecatedRuleId(id: string, version: ConfigVersion): boolean {
  return DEPRECATED_RULES.get(id)?.versions.includes(version) ?? false;
}

/**
 * The rule or category IDs that `id` stands for in a configuration of `version`: its replacements when
 * it is a deprecated rule ID buf accepts there (possibly none), else `id` itself.
 */
export function canonicalRuleIds(id: string, version: ConfigVersion): string[] {
  const d = DEPRECATED_RULES.get(id);
  return d && d.versions.includes(version) ? [...d.replacements] : [id];
}

/** `canonicalRuleIds` over a `use`, `except` or `ignore_only` list. */
export function canonicalRuleList(ids: readonly string[], version: ConfigVersion): string[] {
  return [...new Set(ids.flatMap((id) => canonicalRuleIds(id, version)))];
}

/** The warning buf prints (on stderr) for a deprecated rule ID in a configuration, or undefined. */
export function deprecationWarning(id: string, version: ConfigVersion): string | undefined {
  const d = DEPRECATED_RULES.get(id);
  if (!d || !d.versions.includes(version)) return undefined;
  const by =
    d.replacements.length === 0
      ? "nothing: it no longer checks anything"
      : `${d.replacements.length === 1 ? "rule" : "rules"} ${d.replacements.join(", ")}`;
  return `Rule ${id} referenced in your buf.yaml is deprecated. It has been replaced by ${by}. ${id} will continue to work, but we recommend replacing it in your buf.yaml.`;
}
