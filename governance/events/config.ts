// grabbit.yaml: the event compatibility settings, next to buf.yaml (buf refuses unknown keys in buf.yaml,
// so they cannot live there). Read with the `yaml` library the buf.yaml reader uses, as strictly: an
// unknown key, a wrong type or an unknown mode is one sentence with file:line:column (ConfigError, exit 1).
//
//   version: v1
//   events:
//     mode: backward            # backward | forward | full | none; default backward
//     transitive: false         # compare with every version, not only the newest
//     json: false               # JSON findings fail too (grabbit's events travel as binary)
//     against_tags: "sdk-v*"    # default for --against-tags
//     packages: { billing.v1: full }               # by proto package (the longest prefix wins)
//     messages: { billing.v1.InvoicePaid: none }   # by event full name (wins over packages)
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  LineCounter,
  isMap,
  isScalar,
  parseDocument,
  type Node as YamlNode,
  type YAMLMap,
} from "yaml";
import { ConfigError } from "../errors.js";

export const MODES = ["backward", "forward", "full", "none"] as const;
export type Mode = (typeof MODES)[number];

export interface EventsConfig {
  mode: Mode;
  transitive: boolean;
  json: boolean;
  againstTags?: string;
  packages: Record<string, Mode>;
  messages: Record<string, Mode>;
  /** Where it came from, for messages ("defaults" without a file). */
  where: string;
}

export const DEFAULT_EVENTS_CONFIG: EventsConfig = {
  mode: "backward",
  transitive: false,
  json: false,
  packages: {},
  messages: {},
  where: "defaults",
};

class Src {
  readonly lines = new LineCounter();
  constructor(
    readonly where: string,
    readonly text: string,
  ) {}
  fail(
    node: { range?: [number, number, number?] | null | undefined } | null | undefined,
    sentence: string,
  ): never {
    const p = this.lines.linePos(node?.range?.[0] ?? 0);
    throw new ConfigError(`${this.where}:${p.line}:${p.col}: ${sentence}`);
  }
}

function map(
  src: Src,
  node: YamlNode | null | undefined,
  what: string,
  keys: string[] | null,
): Map<string, { key: YamlNode; value: YamlNode | null }> {
  const out = new Map<string, { key: YamlNode; value: YamlNode | null }>();
  if (node === null || node === undefined || (isScalar(node) && node.value === null)) return out;
  if (!isMap(node)) src.fail(node, `${what} must be a mapping.`);
  for (const pair of (node as YAMLMap).items) {
    const k = pair.key as YamlNode;
    const name = isScalar(k) ? String(k.value) : "";
    if (keys && !keys.includes(name))
      src.fail(k, `unknown key "${name}" in ${what}; known keys: ${keys.join(", ")}.`);
    out.set(name, { key: k, value: pair.value as YamlNode | null });
  }
  return out;
}

function scalar(
  src: Src,
  node: YamlNode | null | undefined,
  what: string,
): string | boolean | undefined {
  if (node === null || node === undefined) return undefined;
  if (!isScalar(node) || (typeof node.value !== "string" && typeof node.value !== "boolean"))
    src.fail(node, `${what} must be a string or a boolean.`);
  return node.value as string | boolean;
}

function mode(src: Src, node: YamlNode | null | undefined, what: string): Mode {
  const v = scalar(src, node, what);
  if (typeof v !== "string" || !(MODES as readonly string[]).includes(v))
    src.fail(node, `${what} must be one of ${MODES.join(", ")}.`);
  return v as Mode;
}

function bool(src: Src, node: YamlNode | null | undefined, what: string): boolean {
  const v = scalar(src, node, what);
  if (v === undefined) return false;
  if (typeof v !== "boolean") src.fail(node, `${what} must be true or false.`);
  return v;
}

/** Parses grabbit.yaml text. */
export function parseEventsConfig(where: string, text: string): EventsConfig {
  const src = new Src(where, text);
  const doc = parseDocument(text, { lineCounter: src.lines, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const p = src.lines.linePos(e.pos[0]);
    throw new ConfigError(`${where}:${p.line}:${p.col}: ${e.message.split("\n")[0]}`);
  }
  const top = map(src, doc.contents as YamlNode, "grabbit.yaml", ["version", "events"]);
  const version = scalar(src, top.get("version")?.value, "version");
  if (version !== "v1")
    src.fail(
      top.get("version")?.value ?? (doc.contents as YamlNode),
      `version must be v1 (add "version: v1").`,
    );
  const ev = map(src, top.get("events")?.value, "events", [
    "mode",
    "transitive",
    "json",
    "against_tags",
    "packages",
    "messages",
  ]);
  const cfg: EventsConfig = { ...DEFAULT_EVENTS_CONFIG, packages: {}, messages: {}, where };
  if (ev.has("mode")) cfg.mode = mode(src, ev.get("mode")!.value, "events.mode");
  cfg.transitive = bool(src, ev.get("transitive")?.value, "events.transitive");
  cfg.json = bool(src, ev.get("json")?.value, "events.json");
  const tags = scalar(src, ev.get("against_tags")?.value, "events.against_tags");
  if (tags !== undefined) {
    if (typeof tags !== "string" || !tags)
      src.fail(
        ev.get("against_tags")!.value,
        `events.against_tags must be a tag pattern such as "sdk-v*".`,
      );
    cfg.againstTags = tags as string;
  }
  for (const [key, into] of [
    ["packages", cfg.packages],
    ["messages", cfg.messages],
  ] as const) {
    for (const [name, pair] of map(src, ev.get(key)?.value, `events.${key}`, null)) {
      if (!/^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$/.test(name))
        src.fail(
          pair.key,
          `"${name}" is not a proto ${key === "packages" ? "package" : "message"} name.`,
        );
      into[name] = mode(src, pair.value, `events.${key}.${name}`);
    }
  }
  return cfg;
}

/** grabbit.yaml (or .yml) of a directory, or an explicit file; the defaults without one. */
export function loadEventsConfig(dir: string, explicit?: string): EventsConfig {
  let path = explicit;
  if (path !== undefined) {
    if (!existsSync(path)) throw new ConfigError(`--events-config ${path}: no such file.`);
    if (statSync(path).isDirectory())
      path =
        ["grabbit.yaml", "grabbit.yml"].map((n) => join(explicit!, n)).find(existsSync) ??
        join(explicit!, "grabbit.yaml");
  } else path = ["grabbit.yaml", "grabbit.yml"].map((n) => join(dir, n)).find(existsSync);
  if (path === undefined) return { ...DEFAULT_EVENTS_CONFIG, packages: {}, messages: {} };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(
      `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)}).`,
      { cause: err },
    );
  }
  return parseEventsConfig(path, text);
}

/** The mode of one event: its own entry, else its package's (longest prefix), else the default. */
export function modeOf(cfg: EventsConfig, event: string, pkg: string): Mode {
  const own = cfg.messages[event];
  if (own) return own;
  let best: string | undefined;
  for (const p of Object.keys(cfg.packages)) {
    if ((pkg === p || pkg.startsWith(p + ".")) && (best === undefined || p.length > best.length))
      best = p;
  }
  return best !== undefined ? cfg.packages[best]! : cfg.mode;
}
