// buf.yaml (v1beta1, v1, v2) and buf.work.yaml, read the way buf reads them, so that a team switching
// from `buf breaking` keeps its configuration: a real YAML parser (flow maps and lists, anchors, quoting),
// buf's strictness (unknown keys, wrong types, duplicate keys and a missing version are errors, each one
// sentence with file:line:column), and v2's modules each with their own `breaking` section (the top-level
// one is the default for modules without one). grabbit's own categories (GRABBIT, TYPESCRIPT) run next
// to whatever buf rules a section selects unless `except` or `--except` removes them; `--use` on the
// command line replaces the selection altogether.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  LineCounter,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Node as YamlNode,
  type Pair,
  type YAMLMap,
} from "yaml";
import {
  ALL_CATEGORIES,
  GRABBIT_CATEGORIES,
  RULES,
  RULE_BY_ID,
  canonicalRuleList,
  categoriesOf,
  deprecationWarning,
  isDeprecatedRuleId,
  type ConfigVersion,
} from "./rules/catalog.js";
import { ConfigError } from "./errors.js";

/** One `breaking` section, with the module it applies to. */
export interface ModuleConfig {
  /** The module's directory relative to buf.yaml ("" for the root), as buf.yaml's `path` says. */
  root: string;
  use: string[];
  except: string[];
  /** Paths relative to buf.yaml (v2, through the module's directory) or to the module root (v1). */
  ignore: string[];
  ignoreOnly: Record<string, string[]>;
  ignoreUnstablePackages: boolean;
  /** The rules that run for this module, filled by selectRules. */
  enabled?: Set<string>;
}

export interface BreakingConfig extends ModuleConfig {
  version: ConfigVersion;
  /** Module roots relative to buf.yaml; [""] for a v1 configuration or a v2 one without modules. */
  roots: string[];
  /** Every module with the section that applies to it (v2: its own, else the top-level one). */
  modules: ModuleConfig[];
  /** Where the configuration lives (a directory), to tell which module a file belongs to. */
  dir?: string;
  /** Other directories holding the same modules (the against input), for files deleted since. */
  otherDirs: string[];
  /** Warnings buf would print (deprecated rule IDs), for stderr. */
  warnings: string[];
  /** The file it came from, for messages. */
  where: string;
  /** A v1 workspace: module roots are directories of buf.work.yaml (image paths are relative to them). */
  workspace?: boolean;
}

// --- reading YAML with positions -------------------------------------------------------------------

class Source {
  readonly lines = new LineCounter();
  constructor(
    readonly where: string,
    readonly text: string,
  ) {}
  /** `file:line:column` of a node (or of the document start). */
  at(node: { range?: [number, number, number?] | null | undefined } | null | undefined): string {
    const offset = node?.range?.[0] ?? 0;
    const p = this.lines.linePos(offset);
    return `${this.where}:${p.line}:${p.col}`;
  }
  fail(node: Parameters<Source["at"]>[0], sentence: string): never {
    throw new ConfigError(`${this.at(node)}: ${sentence}`);
  }
}

function parse(src: Source): YamlNode | null {
  const doc = parseDocument(src.text, {
    lineCounter: src.lines,
    uniqueKeys: true,
    prettyErrors: false,
    strict: true,
  });
  const err = doc.errors[0];
  if (err) {
    const p = src.lines.linePos(err.pos[0]);
    const msg = err.message
      .split("\n")[0]!
      .replace(/ at line \d+, column \d+.*$/, "")
      .replace(/\.$/, "");
    throw new ConfigError(
      `${src.where}${p ? `:${p.line}:${p.col}` : ""}: ${err.code === "DUPLICATE_KEY" ? "a key is given twice (buf refuses duplicate keys)" : `not valid YAML (${msg})`}.`,
    );
  }
  return (doc.contents as YamlNode | null) ?? null;
}

function keyOf(pair: Pair): string {
  return isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
}

/** The pairs of a map node, refusing keys buf does not know there. */
function mapping(
  src: Source,
  node: unknown,
  what: string,
  known: readonly string[] | null,
): Map<string, Pair<YamlNode, YamlNode | null>> {
  if (node === null || node === undefined || (isScalar(node) && node.value === null))
    return new Map();
  if (!isMap(node)) src.fail(node as YamlNode, `${what} must be a mapping (key: value).`);
  const out = new Map<string, Pair<YamlNode, YamlNode | null>>();
  for (const pair of (node as YAMLMap<YamlNode, YamlNode | null>).items) {
    const key = keyOf(pair);
    if (known && !known.includes(key))
      src.fail(
        pair.key,
        `unknown key "${key}" in ${what} (buf refuses it; known keys: ${known.join(", ")}).`,
      );
    out.set(key, pair);
  }
  return out;
}

function isNull(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

function str(src: Source, node: YamlNode | null | undefined, what: string): string | undefined {
  if (isNull(node)) return undefined;
  if (!isScalar(node)) src.fail(node, `${what} must be a string.`);
  // buf (Go yaml) takes any scalar's text into a string field.
  return node.source ?? String(node.value);
}

function list(
  src: Source,
  node: YamlNode | null | undefined,
  what: string,
): { value: string; node: YamlNode }[] {
  if (isNull(node)) return [];
  if (!isSeq(node))
    src.fail(
      node!,
      `${what} must be a list (for example [${what.endsWith("use") || what.endsWith("except") ? "FILE" : "proto/foo"}]), not ${isMap(node) ? "a mapping" : "a single value"}.`,
    );
  return node.items.map((item) => {
    const n = item as YamlNode;
    if (!isScalar(n) || n.value === null) src.fail(n, `every item of ${what} must be a string.`);
    return { value: n.source ?? String(n.value), node: n };
  });
}

const TRUE = ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"];
const FALSE = ["false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"];

function bool(src: Source, node: YamlNode | null | undefined, what: string): boolean {
  if (isNull(node)) return false;
  // Go's yaml takes YAML 1.1 booleans (yes/no, on/off) into a bool field, as buf does.
  const text = isScalar(node) ? (node.source ?? String(node.value)) : undefined;
  if (text !== undefined && TRUE.includes(text)) return true;
  if (text !== undefined && FALSE.includes(text)) return false;
  return src.fail(node, `${what} must be true or false.`);
}

// --- buf.yaml ----------------------------------------------------------------------------------------

const TOP_V1 = ["version", "name", "deps", "build", "lint", "breaking"];
const TOP_V2 = ["version", "name", "modules", "deps", "lint", "breaking", "plugins", "policies"];
const MODULE_V2 = ["path", "name", "includes", "excludes", "lint", "breaking"];
const BUILD_V1 = ["roots", "excludes"];
const BREAKING = [
  "use",
  "except",
  "ignore",
  "ignore_only",
  "ignore_unstable_packages",
  "disable_builtin",
];
const VERSIONS = ["v1beta1", "v1", "v2"];

interface Section {
  use: string[];
  except: string[];
  ignore: string[];
  ignoreOnly: Record<string, string[]>;
  ignoreUnstablePackages: boolean;
}

function section(
  src: Source,
  node: YamlNode | null | undefined,
  what: string,
  version: ConfigVersion,
  warnings: string[],
): Section | undefined {
  if (isNull(node)) return undefined;
  const m = mapping(src, node, what, BREAKING);
  const ids = (key: string) => {
    const items = list(src, m.get(key)?.value, `${what}.${key}`);
    for (const { value, node } of items) checkConfigRule(src, node, value, version, warnings);
    return canonicalRuleList(
      items.map((i) => i.value),
      version,
    );
  };
  const ignoreOnly: Record<string, string[]> = {};
  const only = m.get("ignore_only");
  for (const [key, pair] of mapping(src, only?.value, `${what}.ignore_only`, null).entries()) {
    checkConfigRule(src, pair.key, key, version, warnings);
    for (const id of canonicalRuleList([key], version))
      ignoreOnly[id] = [
        ...(ignoreOnly[id] ?? []),
        ...list(src, pair.value, `${what}.ignore_only.${key}`).map((i) => clean(i.value)),
      ];
  }
  return {
    use: ids("use"),
    except: ids("except"),
    ignore: list(src, m.get("ignore")?.value, `${what}.ignore`).map((i) => clean(i.value)),
    ignoreOnly,
    ignoreUnstablePackages: bool(
      src,
      m.get("ignore_unstable_packages")?.value,
      `${what}.ignore_unstable_packages`,
    ),
  };
}

function checkConfigRule(
  src: Source,
  node: YamlNode,
  id: string,
  version: ConfigVersion,
  warnings: string[],
): void {
  if (isDeprecatedRuleId(id, version)) {
    const w = deprecationWarning(id, version);
    if (w && !warnings.includes(w)) warnings.push(w);
    return;
  }
  if (!RULE_BY_ID.has(id) && !ALL_CATEGORIES.includes(id))
    src.fail(node, `"${id}" is not a known rule or category ID.`);
}

function clean(path: string): string {
  return path.replace(/^\.\//, "").replace(/\/+$/, "") || ".";
}

function normalizeRoot(r: string): string {
  const c = clean(r);
  return c === "." ? "" : c;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(
      `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)}).`,
      { cause: err },
    );
  }
}

/** The configuration text for a directory, or an explicit --config file, directory or data. */
function readConfigText(dir: string, explicit?: string, flag = "--config"): Source | undefined {
  if (explicit !== undefined) {
    if (existsSync(explicit)) {
      // A directory means "the configuration that lives there", as for an input directory.
      if (statSync(explicit).isDirectory()) {
        const inside = readConfigText(explicit);
        if (!inside)
          throw new ConfigError(
            `${flag} ${explicit}: a directory without buf.yaml; give the configuration file.`,
          );
        return inside;
      }
      return new Source(explicit, readText(explicit));
    }
    // buf also accepts the configuration itself as the flag's value.
    if (/[\n:{]/.test(explicit)) return new Source(flag, explicit);
    throw new ConfigError(`${flag} ${explicit}: no such file.`);
  }
  for (const name of ["buf.yaml", "buf.yml"]) {
    const p = join(dir, name);
    if (existsSync(p)) return new Source(p, readText(p));
  }
  return undefined;
}

interface BufYaml {
  version: ConfigVersion;
  rawVersion: string;
  top: Section | undefined;
  modules: { root: string; section: Section | undefined }[];
  roots: string[];
}

function readBufYaml(src: Source, warnings: string[]): BufYaml {
  const root = parse(src);
  if (isNull(root))
    throw new ConfigError(
      `${src.where}:1:1: "version" is not set; add "version: v2" (buf refuses a buf.yaml without one).`,
    );
  const probe = mapping(src, root, "buf.yaml", null);
  const vPair = probe.get("version");
  const rawVersion = str(src, vPair?.value, "version");
  if (rawVersion === undefined)
    src.fail(root, `"version" is not set; add "version: v2" (buf refuses a buf.yaml without one).`);
  if (!VERSIONS.includes(rawVersion))
    src.fail(vPair!.value, `unknown version "${rawVersion}"; buf knows ${VERSIONS.join(", ")}.`);
  const version: ConfigVersion = rawVersion === "v2" ? "v2" : "v1";
  const top = mapping(src, root, `a ${rawVersion} buf.yaml`, rawVersion === "v2" ? TOP_V2 : TOP_V1);
  const topSection = section(src, top.get("breaking")?.value, "breaking", version, warnings);
  if (version === "v1") {
    const build = mapping(src, top.get("build")?.value, "build", BUILD_V1);
    const rootsNode = build.get("roots");
    const roots = list(src, rootsNode?.value, "build.roots").map((r) => normalizeRoot(r.value));
    list(src, build.get("excludes")?.value, "build.excludes");
    if (roots.length && rawVersion === "v1")
      src.fail(
        rootsNode!.key,
        `build.roots cannot be set on version v1 (only v1beta1); v1 has one root, the directory of buf.yaml.`,
      );
    const effective = roots.length ? roots : [""];
    return {
      version,
      rawVersion,
      top: topSection,
      modules: effective.map((r) => ({ root: r, section: topSection })),
      roots: effective,
    };
  }
  const modulesNode = top.get("modules")?.value;
  if (!isNull(modulesNode) && !isSeq(modulesNode))
    src.fail(modulesNode!, `modules must be a list of modules ([{path: proto}]).`);
  const modules: BufYaml["modules"] = [];
  for (const item of isSeq(modulesNode) ? (modulesNode.items as YamlNode[]) : []) {
    const m = mapping(src, item, "a module", MODULE_V2);
    const path = str(src, m.get("path")?.value, "a module's path") ?? ".";
    for (const k of ["includes", "excludes"]) list(src, m.get(k)?.value, `a module's ${k}`);
    modules.push({
      root: normalizeRoot(path),
      section:
        section(
          src,
          m.get("breaking")?.value,
          `the breaking section of module "${path}"`,
          version,
          warnings,
        ) ?? topSection,
    });
  }
  if (!modules.length) modules.push({ root: "", section: topSection });
  return { version, rawVersion, top: topSection, modules, roots: modules.map((m) => m.root) };
}

const EMPTY: Section = {
  use: [],
  except: [],
  ignore: [],
  ignoreOnly: {},
  ignoreUnstablePackages: false,
};

/**
 * Reads the breaking configuration for an input directory (or an explicit --config file or data).
 * Without any buf.yaml, buf's defaults: a v1 configuration with the FILE rules.
 */
export function loadConfig(dir: string, explicit?: string): BreakingConfig {
  const warnings: string[] = [];
  // A v1 workspace (buf.work.yaml): each directory is a module with its own buf.yaml and section.
  const work =
    explicit === undefined && !existsSync(join(dir, "buf.yaml")) ? readWorkspace(dir) : undefined;
  if (work) {
    const modules: ModuleConfig[] = work.map((d) => {
      const src = readConfigText(join(dir, d));
      const y = src ? readBufYaml(src, warnings) : undefined;
      if (y?.version === "v2")
        throw new ConfigError(
          `${src!.where}: a v2 buf.yaml cannot be a module of a buf.work.yaml; move its modules into one v2 buf.yaml.`,
        );
      return { ...(y?.top ?? EMPTY), root: normalizeRoot(d) };
    });
    return {
      ...modules[0]!,
      version: "v1",
      roots: modules.map((m) => m.root),
      modules,
      dir,
      otherDirs: [],
      warnings,
      where: join(dir, "buf.work.yaml"),
      workspace: true,
    };
  }
  const src = readConfigText(dir, explicit);
  const y: BufYaml = src
    ? readBufYaml(src, warnings)
    : {
        version: "v1",
        rawVersion: "v1",
        top: undefined,
        modules: [{ root: "", section: undefined }],
        roots: [""],
      };
  const modules: ModuleConfig[] = y.modules.map((m) => ({ root: m.root, ...(m.section ?? EMPTY) }));
  // The top-level fields: the first module's section (what a single-module layout uses); every module's
  // own ignore paths are kept with it.
  const first = modules[0]!;
  return {
    ...first,
    version: y.version,
    roots: y.roots,
    modules,
    dir,
    otherDirs: [],
    warnings,
    where: src?.where ?? join(dir, "buf.yaml"),
  };
}

/** Checks a rule ID given on the command line (--use, --except). */
export function checkRuleName(id: string, where: string, version: ConfigVersion = "v2"): void {
  if (isDeprecatedRuleId(id, version)) return;
  if (!RULE_BY_ID.has(id) && !ALL_CATEGORIES.includes(id))
    throw new ConfigError(`${where}: "${id}" is not a known rule or category ID.`);
}

// --- buf.work.yaml -----------------------------------------------------------------------------------

/** The directories of a buf.work.yaml, checked as buf checks them; undefined without one. */
export function readWorkspace(dir: string): string[] | undefined {
  const path = join(dir, "buf.work.yaml");
  if (!existsSync(path)) return undefined;
  const src = new Source(path, readText(path));
  const root = parse(src);
  const m = mapping(src, root, "buf.work.yaml", ["version", "directories"]);
  const v = str(src, m.get("version")?.value, "version");
  if (v === undefined) src.fail(root, `"version" is not set; add "version: v1".`);
  if (v !== "v1")
    src.fail(m.get("version")!.value, `unknown buf.work.yaml version "${v}"; buf knows v1.`);
  const dirs = list(src, m.get("directories")?.value, "directories");
  if (!dirs.length) src.fail(root, `directories is empty; list the module directories.`);
  return dirs.map((d) => clean(d.value));
}

/** The module roots of a directory input (where its .proto files live), for printing paths. */
export function moduleRoots(dir: string): string[] {
  try {
    const work = readWorkspace(dir);
    if (work?.length) return work;
    const src = readConfigText(dir);
    if (src) {
      const y = readBufYaml(src, []);
      const roots = y.roots.map((r) => r || ".");
      if (roots.length) return roots;
    }
  } catch {
    // A config we cannot read still lets buf decide; paths then print as in the image.
  }
  return ["."];
}

// --- which rules run, and for which files --------------------------------------------------------------

/**
 * The set of rule IDs that run, over every module: each module's rules come from its `use` (FILE when
 * empty) minus `except`, and grabbit's categories are added unless excluded. CLI `--use` replaces the
 * configured lists, `--except` adds to them. Each module keeps its own set (see `ignored`).
 */
export function selectRules(
  cfg: BreakingConfig,
  cliUse: string[],
  cliExcept: string[],
): Set<string> {
  const use = canonicalRuleList(cliUse, cfg.version);
  const except = canonicalRuleList(cliExcept, cfg.version);
  const all = new Set<string>();
  for (const m of cfg.modules) {
    m.enabled = selectFor(m, cfg.version, use, except, cliUse.length > 0);
    for (const id of m.enabled) all.add(id);
  }
  cfg.enabled = cfg.modules[0]!.enabled;
  return all;
}

function selectFor(
  section: Section,
  version: ConfigVersion,
  cliUse: string[],
  cliExcept: string[],
  explicit: boolean,
): Set<string> {
  const use = explicit ? cliUse : section.use.length ? section.use : ["FILE"];
  const except = [...section.except, ...cliExcept];
  const match = (names: string[], id: string) => {
    const rule = RULE_BY_ID.get(id)!;
    const cats = categoriesOf(rule, version);
    return names.some((n) => n === id || cats.includes(n));
  };
  const out = new Set<string>();
  for (const rule of RULES) {
    const inUse =
      match(use, rule.id) ||
      (!explicit &&
        rule.grabbit &&
        !use.some((u) => GRABBIT_CATEGORIES.includes(u) || RULE_BY_ID.get(u)?.grabbit));
    if (inUse && !match(except, rule.id)) out.add(rule.id);
  }
  return out;
}

/**
 * The module configuration that applies to a file, by its image path: the module whose directory holds
 * it (in the input, or in the against input for a file deleted since). With one module, that one.
 */
export function configFor(cfg: BreakingConfig, path: string): ModuleConfig {
  if (cfg.modules.length === 1) return cfg.modules[0]!;
  const cache = ((cfg as { _byPath?: Map<string, ModuleConfig> })._byPath ??= new Map());
  let hit = cache.get(path);
  if (hit) return hit;
  for (const dir of [cfg.dir, ...cfg.otherDirs]) {
    if (dir === undefined) continue;
    hit = cfg.modules.find((m) => existsSync(join(dir, m.root, path)));
    if (hit) break;
  }
  hit ??= cfg.modules[0]!;
  cache.set(path, hit);
  return hit;
}

const UNSTABLE = /^v\d+(?:p\d+)?(?:alpha|beta|test)\d*$|^v\d+test.*$/;

export function isUnstablePackage(pkg: string): boolean {
  return pkg.split(".").some((part) => UNSTABLE.test(part));
}

function under(path: string, prefix: string): boolean {
  const p = prefix.replace(/\/+$/, "");
  return p === "." || p === "" || path === p || path.startsWith(p + "/");
}

/**
 * Whether an ignore list names the file at image path `path`. v2 lists are relative to buf.yaml, so
 * the path is seen through its module's directory; the configuration's own `ignore` list means the
 * ignore list of the file's module.
 */
export function ignoredPath(cfg: BreakingConfig, list: string[], path: string): boolean {
  const m = configFor(cfg, path);
  const names = list === cfg.ignore ? m.ignore : list;
  const full = cfg.version === "v2" && m.root ? `${m.root}/${path}` : path;
  return names.some((p) => under(full, p));
}

/** Whether the configuration ignores a finding of `rule` at image path `path` in package `pkg`. */
export function ignored(
  cfg: BreakingConfig,
  rule: string,
  path: string,
  pkg: string | undefined,
): boolean {
  const m = configFor(cfg, path);
  // A rule the file's own module does not run (another module's section turned it on).
  if (m.enabled && !m.enabled.has(rule)) return true;
  if (ignoredPath(cfg, m.ignore, path)) return true;
  if (m.ignoreUnstablePackages && pkg !== undefined && isUnstablePackage(pkg)) return true;
  const info = RULE_BY_ID.get(rule);
  const cats = info ? categoriesOf(info, cfg.version) : [];
  for (const [key, paths] of Object.entries(m.ignoreOnly)) {
    if ((key === rule || cats.includes(key)) && ignoredPath(cfg, paths, path)) return true;
  }
  return false;
}
