// The comparison: find the files that differ, index only those, run every rule family, then apply the
// configuration (ignore, ignore_only, unstable packages), in-proto acceptances and rename collapsing,
// and give each change a location and a semantic-version bump.
import { Buffer } from "node:buffer";
import { ignored, ignoredPath, type BreakingConfig } from "./config.js";
import { locations, type Image } from "./images.js";
import { indexSide } from "./model.js";
import { CHANGE_KINDS, RULE_BY_ID, categoriesOf, type ChangeKind } from "./rules/catalog.js";
import { checkChanges } from "./rules/changes.js";
import { Ctx, type Finding } from "./rules/context.js";
import { checkEnums } from "./rules/enum.js";
import { checkFiles } from "./rules/file.js";
import { checkGrabbit } from "./rules/grabbit.js";
import { checkExtensions, checkMessages } from "./rules/message.js";
import { checkPackages } from "./rules/package.js";
import { findRenames, reportRenames } from "./rules/renames.js";
import { checkServices } from "./rules/service.js";
import { maxBump, type Bump } from "./semver.js";

export interface Change {
  rule: string;
  breaking: boolean;
  bump: Exclude<Bump, "none">;
  categories: string[];
  path: string;
  line: number;
  column: number;
  /** Where the element's span ends (buf's end_line/end_column); the start when there is no span. */
  endLine: number;
  endColumn: number;
  message: string;
}

export interface Report {
  bump: Bump;
  changes: Change[];
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

// Rules that describe a whole rename lead the group of findings a rename produces.
const RENAME_HEADS = ["GRABBIT_EVENT_TYPE_CHANGED", "TYPESCRIPT_MESSAGE_RENAMED", "TYPESCRIPT_ENUM_RENAMED", "TYPESCRIPT_SERVICE_RENAMED", "TYPESCRIPT_METHOD_RENAMED"];

const ACCEPT = /grabbit:accept\s+([A-Z0-9_]+(?:\s*,\s*[A-Z0-9_]+)*)\s+reason:\s*(\S[^\n]*)/g;

interface Acceptance {
  rules: string[];
  reason: string;
}

function acceptances(f: Finding): Acceptance[] {
  const locs = locations(f.at.file.image);
  const out: Acceptance[] = [];
  const texts: string[] = [];
  // The element itself and every enclosing declaration (a deleted field is accepted on its message).
  for (let n = f.at.spath.length; n >= 0; n--) {
    const loc = locs.get(f.at.spath.slice(0, n).join("."));
    if (loc) texts.push(loc.leading, loc.trailing, ...loc.detached);
  }
  for (const file of ["2", "12"]) {
    const loc = locs.get(file);
    if (loc) texts.push(loc.leading, ...loc.detached);
  }
  for (const t of texts) for (const m of t.matchAll(ACCEPT)) out.push({ rules: m[1]!.split(/\s*,\s*/), reason: m[2]!.trim() });
  return out;
}

export interface CompareOptions {
  config: BreakingConfig;
  enabled: Set<string>;
  onProgress?: (phase: string) => void;
}

export function compareImages(old: Image, cur: Image, opts: CompareOptions): Report {
  const changed: string[] = [];
  const onlyOld: string[] = [];
  const onlyNew: string[] = [];
  // Imports (dependencies, and files a partial build pulled in) are context, not subjects.
  const own = (f: { isImport: boolean } | undefined) => f !== undefined && !f.isImport;
  for (const [path, f] of old.files) {
    if (!own(f)) continue;
    const g = cur.files.get(path);
    if (!own(g)) onlyOld.push(path);
    else if (!sameBytes(f.desc, g!.desc) || !sameBytes(f.src, g!.src)) changed.push(path);
  }
  for (const [path, g] of cur.files) if (own(g) && !own(old.files.get(path))) onlyNew.push(path);
  opts.onProgress?.(`comparing ${changed.length + onlyOld.length + onlyNew.length} changed of ${cur.files.size} files`);

  const oldSide = indexSide(old, [...changed, ...onlyOld]);
  const newSide = indexSide(cur, [...changed, ...onlyNew]);
  const ctx = new Ctx(oldSide, newSide, opts.enabled);
  const renames = findRenames(ctx);
  checkFiles(ctx, changed, onlyOld, onlyNew);
  checkPackages(ctx);
  checkMessages(ctx);
  checkExtensions(ctx);
  checkEnums(ctx);
  checkServices(ctx);
  checkGrabbit(ctx);
  reportRenames(ctx, renames);
  checkChanges(ctx, renames);
  return finish(ctx.findings, opts.config, renames.targets, ctx.notes);
}

function finish(findings: Finding[], cfg: BreakingConfig, renameTargets: Set<string>, notes: Map<string, string>): Report {
  const kept = findings.filter((f) => {
    if (f.at.file.image.isImport) return false;
    if (f.subject?.startsWith("rpc-added:") && renameTargets.has(f.subject.slice("rpc-added:".length))) return false;
    if (!f.breaking) return !ignoredPath(cfg, cfg.ignore, f.at.file.path);
    return !ignored(cfg, f.rule, f.at.file.path, f.at.file.pkg);
  });

  // One change, one finding: rules that saw the same rename share a subject.
  const groups = new Map<string, Finding[]>();
  const out: Array<{ head: Finding; others: string[] }> = [];
  for (const f of kept) {
    if (!f.subject || !f.breaking) {
      out.push({ head: f, others: [] });
      continue;
    }
    const g = groups.get(f.subject);
    if (g) g.push(f);
    else groups.set(f.subject, [f]);
  }
  for (const g of groups.values()) {
    // buf's own rules each keep their finding, at buf's location with buf's message (a team that
    // switches from buf sees every line it saw there); a change is folded into one finding only when
    // grabbit's rules saw it too.
    if (!g.some((f) => RULE_BY_ID.get(f.rule)?.grabbit)) {
      for (const f of g) out.push({ head: f, others: [] });
      continue;
    }
    const head = g.find((f) => RENAME_HEADS.includes(f.rule)) ?? g[0]!;
    out.push({ head, others: [...new Set(g.filter((f) => f !== head).map((f) => f.rule))] });
  }

  const changes: Change[] = out.map(({ head, others }) => {
    const locs = locations(head.at.file.image);
    const spath = head.at.spath;
    // A file-level finding is at 1:1, as buf prints it (the file's own span starts after its header).
    const loc = spath.length === 0 ? undefined : (head.sub && locs.get([...spath, ...head.sub].join("."))) || locs.get(spath.join("."));
    const note = head.subject !== undefined && !RENAME_HEADS.includes(head.rule) ? notes.get(head.subject) : undefined;
    let message = head.message + (note ? ` (${note})` : "") + (others.length ? ` (also ${others.join(", ")})` : "");
    let breaking = head.breaking;
    let bump: Exclude<Bump, "none">;
    let categories: string[] = [];
    if (head.breaking) {
      bump = "major";
      const info = RULE_BY_ID.get(head.rule)!;
      categories = categoriesOf(info, cfg.version).filter((c) => c !== "CSR");
      const ids = [head.rule, ...others];
      const names = new Set([...ids, ...ids.flatMap((id) => categoriesOf(RULE_BY_ID.get(id)!, cfg.version))]);
      const accepted = acceptances(head).find((a) => a.rules.some((r) => names.has(r)));
      if (accepted) {
        // Accepted: it no longer fails the check, but it still is a major change of the SDK.
        breaking = false;
        message = `Accepted (${accepted.reason}): ${message}`;
      }
    } else {
      bump = head.bump ?? CHANGE_KINDS[head.rule as ChangeKind];
    }
    return {
      rule: head.rule,
      breaking,
      bump,
      categories,
      path: head.at.file.owner.externalPath(head.at.file.path),
      line: loc?.line ?? 1,
      column: loc?.column ?? 1,
      endLine: loc?.endLine ?? loc?.line ?? 1,
      endColumn: loc?.endColumn ?? loc?.column ?? 1,
      message,
    };
  });
  changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.line - b.line || a.column - b.column || (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0)));
  return { bump: maxBump(changes.map((c) => c.bump)), changes };
}
