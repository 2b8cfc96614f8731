// The rule catalog: every rule grabbit knows, its categories, and what it checks. The buf rows mirror
// `buf config ls-breaking-rules` (v2 membership, with the v1 membership where a v1 buf.yaml selects
// differently) so that a team's existing `use`/`except` lists select the same rules as in buf.

export type ConfigVersion = "v1" | "v2";

export interface RuleInfo {
  id: string;
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

type Row = [string, string, string | null, boolean, string];

// Generated once from `buf config ls-breaking-rules --version v2|v1 --format json` (buf 1.75; unchanged in 1.74, which the repo now pins — a test compares with the installed buf).
const BUF_ROWS: Row[] = [
  ["EXTENSION_NO_DELETE", "FILE", null, false, "extensions are not deleted from a given file."],
  ["SERVICE_NO_DELETE", "FILE", "FILE", false, "services are not deleted from a given file."],
  ["ENUM_NO_DELETE", "FILE", "FILE", true, "enums are not deleted from a given file."],
  ["FILE_NO_DELETE", "FILE", "FILE", true, "files are not deleted."],
  ["MESSAGE_NO_DELETE", "FILE", "FILE", true, "messages are not deleted from a given file."],
  ["ENUM_SAME_TYPE", "FILE PACKAGE", "FILE PACKAGE", false, "enums have the same type (open vs closed)."],
  ["FIELD_SAME_CARDINALITY", "FILE PACKAGE", "FILE PACKAGE", false, "fields have the same cardinalities in a given message."],
  ["FIELD_SAME_CPP_STRING_TYPE", "FILE PACKAGE", "FILE PACKAGE", false, "fields have the same C++ string type, based on ctype field option or (pb.cpp).string_type feature."],
  ["FIELD_SAME_JAVA_UTF8_VALIDATION", "FILE PACKAGE", "FILE PACKAGE", false, "fields have the same Java string UTF8 validation, based on java_string_check_utf8 file option or (pb.java).utf8_validation feature."],
  ["FIELD_SAME_JSTYPE", "FILE PACKAGE", "FILE PACKAGE", false, "fields have the same value for the jstype option."],
  ["FIELD_SAME_UTF8_VALIDATION", "FILE PACKAGE", "FILE PACKAGE", false, "string fields have the same UTF8 validation mode."],
  ["FILE_SAME_CC_ENABLE_ARENAS", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the cc_enable_arenas option."],
  ["FILE_SAME_CC_GENERIC_SERVICES", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the cc_generic_services option."],
  ["FILE_SAME_CSHARP_NAMESPACE", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the csharp_namespace option."],
  ["FILE_SAME_GO_PACKAGE", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the go_package option."],
  ["FILE_SAME_JAVA_GENERIC_SERVICES", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the java_generic_services option."],
  ["FILE_SAME_JAVA_MULTIPLE_FILES", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the java_multiple_files option."],
  ["FILE_SAME_JAVA_OUTER_CLASSNAME", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the java_outer_classname option."],
  ["FILE_SAME_JAVA_PACKAGE", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the java_package option."],
  ["FILE_SAME_OBJC_CLASS_PREFIX", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the objc_class_prefix option."],
  ["FILE_SAME_OPTIMIZE_FOR", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the optimize_for option."],
  ["FILE_SAME_PHP_CLASS_PREFIX", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the php_class_prefix option."],
  ["FILE_SAME_PHP_METADATA_NAMESPACE", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the php_metadata_namespace option."],
  ["FILE_SAME_PHP_NAMESPACE", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the php_namespace option."],
  ["FILE_SAME_PY_GENERIC_SERVICES", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the py_generic_services option."],
  ["FILE_SAME_RUBY_PACKAGE", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the ruby_package option."],
  ["FILE_SAME_SWIFT_PREFIX", "FILE PACKAGE", "FILE PACKAGE", false, "files have the same value for the swift_prefix option."],
  ["RPC_NO_DELETE", "FILE PACKAGE", "FILE PACKAGE", false, "rpcs are not deleted from a given service."],
  ["ENUM_VALUE_NO_DELETE", "FILE PACKAGE", "FILE PACKAGE", true, "enum values are not deleted from a given enum."],
  ["EXTENSION_MESSAGE_NO_DELETE", "FILE PACKAGE", "FILE PACKAGE", true, "extension ranges are not deleted from a given message."],
  ["FIELD_NO_DELETE", "FILE PACKAGE", "FILE PACKAGE", true, "fields are not deleted from a given message."],
  ["FIELD_SAME_TYPE", "FILE PACKAGE", "FILE PACKAGE", true, "fields have the same types in a given message."],
  ["FILE_SAME_SYNTAX", "FILE PACKAGE", "FILE PACKAGE", true, "files have the same syntax."],
  ["MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR", "FILE PACKAGE", "FILE PACKAGE", true, "messages do not change the no_standard_descriptor_accessor option from false or unset to true."],
  ["ONEOF_NO_DELETE", "FILE PACKAGE", "FILE PACKAGE", true, "oneofs are not deleted from a given message."],
  ["ENUM_SAME_JSON_FORMAT", "FILE PACKAGE WIRE_JSON", "FILE PACKAGE WIRE_JSON", true, "enums have the same JSON format support."],
  ["ENUM_VALUE_SAME_NAME", "FILE PACKAGE WIRE_JSON", "FILE PACKAGE WIRE_JSON", true, "enum values have the same name."],
  ["FIELD_SAME_JSON_NAME", "FILE PACKAGE WIRE_JSON", "FILE PACKAGE WIRE_JSON", true, "fields have the same value for the json_name option."],
  ["FIELD_SAME_NAME", "FILE PACKAGE WIRE_JSON", "FILE PACKAGE WIRE_JSON", true, "fields have the same names in a given message."],
  ["MESSAGE_SAME_JSON_FORMAT", "FILE PACKAGE WIRE_JSON", "FILE PACKAGE WIRE_JSON", true, "messages have the same JSON format support."],
  ["FIELD_SAME_DEFAULT", "FILE PACKAGE WIRE_JSON WIRE", null, true, "fields have the same default value, if a default is specified."],
  ["FIELD_SAME_ONEOF", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "fields have the same oneofs in a given message."],
  ["FILE_SAME_PACKAGE", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "files have the same package."],
  ["MESSAGE_SAME_REQUIRED_FIELDS", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "messages have no added or deleted required fields."],
  ["RESERVED_ENUM_NO_DELETE", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "reserved ranges and names are not deleted from a given enum."],
  ["RESERVED_MESSAGE_NO_DELETE", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "reserved ranges and names are not deleted from a given message."],
  ["RPC_SAME_CLIENT_STREAMING", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "rpcs have the same client streaming value."],
  ["RPC_SAME_IDEMPOTENCY_LEVEL", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "rpcs have the same value for the idempotency_level option."],
  ["RPC_SAME_REQUEST_TYPE", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "rpcs are have the same request type."],
  ["RPC_SAME_RESPONSE_TYPE", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "rpcs are have the same response type."],
  ["RPC_SAME_SERVER_STREAMING", "FILE PACKAGE WIRE_JSON WIRE", "FILE PACKAGE WIRE_JSON WIRE", true, "rpcs have the same server streaming value."],
  ["PACKAGE_ENUM_NO_DELETE", "PACKAGE", "PACKAGE", false, "enums are not deleted from a given package."],
  ["PACKAGE_EXTENSION_NO_DELETE", "PACKAGE", null, false, "extensions are not deleted from a given package."],
  ["PACKAGE_MESSAGE_NO_DELETE", "PACKAGE", "PACKAGE", false, "messages are not deleted from a given package."],
  ["PACKAGE_NO_DELETE", "PACKAGE", "PACKAGE", false, "packages are not deleted."],
  ["PACKAGE_SERVICE_NO_DELETE", "PACKAGE", "PACKAGE", false, "services are not deleted from a given package."],
  ["ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED", "WIRE_JSON", "WIRE_JSON", true, "enum values are not deleted from a given enum unless the name is reserved."],
  ["FIELD_NO_DELETE_UNLESS_NAME_RESERVED", "WIRE_JSON", "WIRE_JSON", true, "fields are not deleted from a given message unless the name is reserved."],
  ["FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY", "WIRE_JSON", "WIRE_JSON", true, "fields have wire and JSON compatible cardinalities in a given message."],
  ["FIELD_WIRE_JSON_COMPATIBLE_TYPE", "WIRE_JSON", "WIRE_JSON", true, "fields have wire and JSON compatible types in a given message."],
  ["ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED", "WIRE_JSON WIRE", "WIRE_JSON WIRE", true, "enum values are not deleted from a given enum unless the number is reserved."],
  ["FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "WIRE_JSON WIRE", "WIRE_JSON WIRE", true, "fields are not deleted from a given message unless the number is reserved."],
  ["FIELD_WIRE_COMPATIBLE_CARDINALITY", "WIRE", "WIRE", false, "fields have wire-compatible cardinalities in a given message."],
  ["FIELD_WIRE_COMPATIBLE_TYPE", "WIRE", "WIRE", false, "fields have wire-compatible types in a given message."],
];

// grabbit's own rules: the messaging contract (what RabbitMQ consumers bind to) and the generated
// TypeScript API (what callers compile against), both invisible to buf.
const GRABBIT_ROWS: Array<[string, string, string]> = [
  ["GRABBIT_EVENT_REMOVED", "GRABBIT", "messages stay events: removing (grabbit.v1.event) stops publishing them."],
  ["GRABBIT_EVENT_EXCHANGE_CHANGED", "GRABBIT", "events keep the exchange they are published to (queues bound to the old one stop receiving)."],
  ["GRABBIT_EVENT_EXCHANGE_KIND_CHANGED", "GRABBIT", "events keep their exchange kind (redeclaring an exchange with another kind fails)."],
  ["GRABBIT_EVENT_ROUTING_KEY_CHANGED", "GRABBIT", "events keep the shape of their routing key, so existing binding patterns still match."],
  ["GRABBIT_EVENT_TYPE_CHANGED", "GRABBIT", "events keep their message full name (the AMQP `type` property consumers dispatch on)."],
  ["GRABBIT_EVENT_PERSISTENCE_CHANGED", "GRABBIT", "persistent events stay persistent (delivery_mode 2)."],
  ["GRABBIT_SERVICE_TRANSPORT_REMOVED", "GRABBIT", "services keep every transport they were served on."],
  ["GRABBIT_SERVICE_REQUEST_QUEUE_CHANGED", "GRABBIT", "AMQP services keep their request queue."],
  ["GRABBIT_SERVICE_QUEUE_TYPE_CHANGED", "GRABBIT", "AMQP services keep the type of their request queue (a server declaring an existing queue with another type gets PRECONDITION_FAILED); fixing a type that was unspecified counts too."],
  ["GRABBIT_METHOD_IDEMPOTENCY_REMOVED", "GRABBIT", "methods declared idempotent stay idempotent (callers retry them)."],
  ["TYPESCRIPT_FIELD_RENAMED", "TYPESCRIPT", "fields keep their generated property name (camelCase, as ts-proto writes it)."],
  ["TYPESCRIPT_FIELD_OPTIONAL_CHANGED", "TYPESCRIPT", "fields keep proto3 `optional` (T versus T | undefined)."],
  ["TYPESCRIPT_ENUM_VALUE_RENAMED", "TYPESCRIPT", "enum values keep their generated member names."],
  ["TYPESCRIPT_MESSAGE_RENAMED", "TYPESCRIPT", "messages keep their generated interface name."],
  ["TYPESCRIPT_ENUM_RENAMED", "TYPESCRIPT", "enums keep their generated type name."],
  ["TYPESCRIPT_SERVICE_RENAMED", "TYPESCRIPT", "services keep their generated client and server names."],
  ["TYPESCRIPT_METHOD_RENAMED", "TYPESCRIPT", "methods keep their generated names."],
];

export const RULES: RuleInfo[] = [
  ...BUF_ROWS.map(([id, cats, v1, csr, purpose]) => ({
    id,
    categories: cats.split(" "),
    v1Categories: v1 === null ? null : v1.split(" "),
    csr,
    purpose: `Checks that ${purpose}`,
    grabbit: false,
  })),
  ...GRABBIT_ROWS.map(([id, cat, purpose]) => ({ id, categories: [cat], v1Categories: [cat], csr: false, purpose: `Checks that ${purpose}`, grabbit: true })),
];

export const RULE_BY_ID = new Map(RULES.map((r) => [r.id, r]));
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
export const DEPRECATED_RULES: ReadonlyMap<string, { replacements: readonly string[]; versions: readonly ConfigVersion[] }> = new Map([
  ["FIELD_SAME_CTYPE", { replacements: ["FIELD_SAME_CPP_STRING_TYPE"], versions: ["v1"] }],
  ["FIELD_SAME_LABEL", { replacements: ["FIELD_SAME_CARDINALITY", "FIELD_WIRE_COMPATIBLE_CARDINALITY", "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY"], versions: ["v1"] }],
  ["FILE_SAME_JAVA_STRING_CHECK_UTF8", { replacements: ["FIELD_SAME_JAVA_UTF8_VALIDATION"], versions: ["v1"] }],
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
  const by = d.replacements.length === 0 ? "nothing: it no longer checks anything" : `${d.replacements.length === 1 ? "rule" : "rules"} ${d.replacements.join(", ")}`;
  return `Rule ${id} referenced in your buf.yaml is deprecated. It has been replaced by ${by}. ${id} will continue to work, but we recommend replacing it in your buf.yaml.`;
}
