// The `breaking` section of buf.yaml (v1 and v2), read the way buf reads it, so that a team switching
// from `buf breaking` keeps its configuration. grabbit's own categories (GRABBIT, TYPESCRIPT) run next
// to whatever buf rules the file selects unless `except` or `--except` removes them; `--use` on the
// command line replaces the selection altogether.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ALL_CATEGORIES, GRABBIT_CATEGORIES, RULES, RULE_BY_ID, categoriesOf, type ConfigVersion } from "./rules/catalog.js";
import { InputError } from "./images.js";

export interface BreakingConfig {
  version: ConfigVersion;
  use: string[];
  except: string[];
  ignore: string[];
  ignoreOnly: Record<string, string[]>;
  ignoreUnstablePackages: boolean;
  /** v2 paths in ignore lists are relative to buf.yaml, through the module's directory. */
  roots: string[];
}

// --- a YAML subset: block maps and lists, flow lists, scalars, comments. buf.yaml needs no more. ---

type Yaml = string | number | boolean | null | Yaml[] | { [k: string]: Yaml };

function scalar(raw: string): Yaml {
  const s = raw.trim();
  if (s === "" || s === "~" || s === "null") return null;
  if (s === "true") return true;
  if (s === "false") return false;
  if ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'"))) return s.slice(1, -1);
  if (s.startsWith("[") && s.endsWith("]")) {
    const inner = s.slice(1, -1).trim();
    return inner === "" ? [] : inner.split(",").map((x) => scalar(x));
  }
  if (s.startsWith("{") && s.endsWith("}")) return {};
  return s;
}

function stripComment(line: string): string {
  let q: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === q) q = undefined;
    } else if (c === '"' || c === "'") q = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

export function parseYaml(text: string): Yaml {
  const lines = text
    .split(/\r?\n/)
    .map((l) => stripComment(l).replace(/\s+$/, ""))
    .filter((l) => l.trim() !== "" && l.trim() !== "---");
  let i = 0;
  const indentOf = (l: string) => l.length - l.trimStart().length;

  function block(indent: number): Yaml {
    if (i >= lines.length) return null;
    const first = lines[i]!;
    if (first.trimStart().startsWith("- ") || first.trim() === "-") {
      const list: Yaml[] = [];
      while (i < lines.length && indentOf(lines[i]!) === indent && lines[i]!.trimStart().startsWith("-")) {
        const rest = lines[i]!.trimStart().slice(1);
        if (rest.trim() === "") {
          i++;
          list.push(i < lines.length && indentOf(lines[i]!) > indent ? block(indentOf(lines[i]!)) : null);
        } else if (/^\s*[^"'\[{][^:]*:(\s|$)/.test(rest)) {
          // "- key: value" starts a map whose keys sit at the column after "- ".
          const col = indent + 1 + (rest.length - rest.trimStart().length);
          lines[i] = " ".repeat(col) + rest.trimStart();
          list.push(block(col));
        } else {
          list.push(scalar(rest));
          i++;
        }
      }
      return list;
    }
    const map: { [k: string]: Yaml } = {};
    while (i < lines.length && indentOf(lines[i]!) === indent) {
      const l = lines[i]!.trim();
      const m = /^("[^"]*"|'[^']*'|[^:]+):(\s+(.*))?$/.exec(l);
      if (!m) throw new InputError(`cannot parse buf.yaml line "${l}"`);
      const key = String(scalar(m[1]!));
      i++;
      if (m[3] !== undefined && m[3] !== "") map[key] = scalar(m[3]);
      else if (i < lines.length && indentOf(lines[i]!) > indent) map[key] = block(indentOf(lines[i]!));
      else if (i < lines.length && indentOf(lines[i]!) === indent && lines[i]!.trimStart().startsWith("-")) map[key] = block(indent);
      else map[key] = null;
    }
    return map;
  }
  return lines.length ? block(indentOf(lines[0]!)) : null;
}

function strings(v: Yaml | undefined, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError(`buf.yaml: ${what} must be a list`);
  return v.map((x) => String(x));
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new InputError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

function readConfigText(dir: string, explicit?: string): { text: string; where: string } | undefined {
  if (explicit !== undefined) {
    if (existsSync(explicit)) {
      // A directory means "the configuration that lives there", as for an input directory.
      if (statSync(explicit).isDirectory()) {
        const inside = readConfigText(explicit);
        if (!inside) throw new InputError(`--config ${explicit}: a directory without buf.yaml; give the configuration file`);
        return inside;
      }
      return { text: readText(explicit), where: explicit };
    }
    // buf also accepts the configuration itself as the flag's value.
    if (/[\n:{]/.test(explicit)) return { text: explicit, where: "--config" };
    throw new InputError(`--config ${explicit}: no such file`);
  }
  for (const name of ["buf.yaml", "buf.yml"]) {
    const p = join(dir, name);
    if (existsSync(p)) return { text: readText(p), where: p };
  }
  return undefined;
}

function yamlOrJson(text: string, where: string): { [k: string]: Yaml } {
  let doc: Yaml;
  try {
    doc = text.trimStart().startsWith("{") ? (JSON.parse(text) as Yaml) : parseYaml(text);
  } catch (err) {
    throw new InputError(`${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (doc === null) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new InputError(`${where}: not a buf.yaml mapping`);
  return doc;
}

/** Reads the `breaking` section for an input directory (or an explicit --config file or data). */
export function loadConfig(dir: string, explicit?: string): BreakingConfig {
  const found = readConfigText(dir, explicit);
  const doc = found ? yamlOrJson(found.text, found.where) : {};
  const version = String(doc.version ?? "v2") as string;
  if (!["v1", "v1beta1", "v2"].includes(version)) throw new InputError(`${found?.where}: unknown version "${version}"`);
  let section = doc.breaking as { [k: string]: Yaml } | null | undefined;
  // v2 lets each module carry its own section; with a single configured one, use it.
  if (!section && Array.isArray(doc.modules)) {
    const withSection = (doc.modules as Array<{ [k: string]: Yaml }>).filter((m) => m && typeof m === "object" && m.breaking);
    if (withSection.length >= 1) section = withSection[0]!.breaking as { [k: string]: Yaml };
  }
  section ??= {};
  const ignoreOnlyRaw = section.ignore_only as { [k: string]: Yaml } | null | undefined;
  const ignoreOnly: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(ignoreOnlyRaw ?? {})) ignoreOnly[k] = strings(v, `ignore_only.${k}`);
  const cfg: BreakingConfig = {
    version: version === "v2" ? "v2" : "v1",
    use: strings(section.use, "breaking.use"),
    except: strings(section.except, "breaking.except"),
    ignore: strings(section.ignore, "breaking.ignore"),
    ignoreOnly,
    ignoreUnstablePackages: section.ignore_unstable_packages === true,
    roots: version === "v2" && Array.isArray(doc.modules) ? (doc.modules as Array<{ [k: string]: Yaml }>).map((m) => normalizeRoot(String((m && typeof m === "object" && m.path) || "."))) : [""],
  };
  for (const id of [...cfg.use, ...cfg.except, ...Object.keys(cfg.ignoreOnly)]) checkRuleName(id, found?.where ?? "buf.yaml");
  return cfg;
}

function normalizeRoot(r: string): string {
  return r.replace(/^\.\/?/, "").replace(/\/+$/, "");
}

export function checkRuleName(id: string, where: string): void {
  if (!RULE_BY_ID.has(id) && !ALL_CATEGORIES.includes(id)) throw new InputError(`${where}: unknown rule or category "${id}"`);
}

/** The module roots of a directory input (where its .proto files live), for printing paths. */
export function moduleRoots(dir: string): string[] {
  try {
    const work = join(dir, "buf.work.yaml");
    if (existsSync(work)) {
      const doc = yamlOrJson(readFileSync(work, "utf8"), work);
      const dirs = strings(doc.directories, "directories");
      if (dirs.length) return dirs;
    }
    const found = readConfigText(dir);
    if (found) {
      const doc = yamlOrJson(found.text, found.where);
      if (doc.version === "v2" && Array.isArray(doc.modules)) {
        const paths = (doc.modules as Array<{ [k: string]: Yaml }>).map((m) => String((m && typeof m === "object" && m.path) || "."));
        if (paths.length) return paths;
      }
      const roots = (doc.build as { [k: string]: Yaml } | undefined)?.roots;
      if (Array.isArray(roots) && roots.length) return roots.map(String);
    }
  } catch {
    // A config we cannot read still lets buf decide; paths then print as in the image.
  }
  return ["."];
}

/**
 * The set of rule IDs that run. buf's rules come from `use` (FILE when empty) minus `except`; grabbit's
 * categories are added unless excluded. CLI `--use` replaces the configured list, `--except` adds to it.
 */
export function selectRules(cfg: BreakingConfig, cliUse: string[], cliExcept: string[]): Set<string> {
  const explicit = cliUse.length > 0;
  const use = explicit ? cliUse : cfg.use.length ? cfg.use : ["FILE"];
  const except = [...cfg.except, ...cliExcept];
  const match = (names: string[], id: string) => {
    const rule = RULE_BY_ID.get(id)!;
    const cats = categoriesOf(rule, cfg.version);
    return names.some((n) => n === id || cats.includes(n));
  };
  const out = new Set<string>();
  for (const rule of RULES) {
    const inUse = match(use, rule.id) || (!explicit && rule.grabbit && !use.some((u) => GRABBIT_CATEGORIES.includes(u) || RULE_BY_ID.get(u)?.grabbit));
    if (inUse && !match(except, rule.id)) out.add(rule.id);
  }
  return out;
}

const UNSTABLE = /^v\d+(?:p\d+)?(?:alpha|beta|test)\d*$|^v\d+test.*$/;

export function isUnstablePackage(pkg: string): boolean {
  return pkg.split(".").some((part) => UNSTABLE.test(part));
}

function under(path: string, prefix: string): boolean {
  const p = prefix.replace(/\/+$/, "");
  return p === "." || p === "" || path === p || path.startsWith(p + "/");
}

/** Whether an ignore list names the file at image path `path`. */
export function ignoredPath(cfg: BreakingConfig, list: string[], path: string): boolean {
  const paths = cfg.roots.map((r) => (r ? `${r}/${path}` : path));
  return list.some((p) => paths.some((q) => under(q, p)));
}

/** Whether the configuration ignores a finding of `rule` at image path `path` in package `pkg`. */
export function ignored(cfg: BreakingConfig, rule: string, path: string, pkg: string | undefined): boolean {
  if (ignoredPath(cfg, cfg.ignore, path)) return true;
  if (cfg.ignoreUnstablePackages && pkg !== undefined && isUnstablePackage(pkg)) return true;
  const info = RULE_BY_ID.get(rule);
  const cats = info ? categoriesOf(info, cfg.version) : [];
  for (const [key, paths] of Object.entries(cfg.ignoreOnly)) {
    if ((key === rule || cats.includes(key)) && ignoredPath(cfg, paths, path)) return true;
  }
  return false;
}
