// The comparison: find the files that differ, index only those, run every rule family, then apply the
// configuration (ignore, ignore_only, unstable packages) and in-proto acceptances, and report the
// result twice: grabbit's changes (a rename folded into one, every change with a semantic-version bump)
// and buf's failures (each rule's finding as buf prints it, for buf's output formats).
import { Buffer } from "node:buffer";
import { ignored, ignoredPath, type BreakingConfig } from "./config.js";
import { locations, type Image, type ImageFile } from "./images.js";
import { indexSide } from "./model.js";
import {
  CHANGE_KINDS,
  RULE_BY_ID,
  categoriesOf,
  type ChangeKind,
  type RuleId,
} from "./rules/catalog.js";
import { checkChanges } from "./rules/changes.js";
import { Ctx, type Finding } from "./rules/context.js";
import { checkEnums } from "./rules/enum.js";
import type { MessageLibrary } from "./rules/ts-names.js";
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
  /**
   * grabbit's view, for its JSON, SARIF and markdown: every change once, breaking or not, with its bump.
   * A change several rules saw (a rename) is one change when grabbit's rules saw it too: the leading
   * rule's finding, naming the others ("also ...") and what a deletion really was ("renamed to ...").
   */
  changes: Change[];
  /**
   * buf's view, for buf's formats: what fails the check, one finding per rule exactly as the rule
   * reported it (nothing folded, nothing added to the message). buf's findings come first, in buf's
   * order and at buf's locations (a finding in a file that is gone has no path, as in buf); grabbit's
   * own findings follow, so that buf's part of the output is what buf prints.
   */
  failures: Change[];
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.length === b.length &&
    Buffer.from(a.buffer, a.byteOffset, a.length).equals(
      Buffer.from(b.buffer, b.byteOffset, b.length),
    )
  );
}

// Rules that describe a whole rename lead the group of findings a rename produces.
const RENAME_HEADS: readonly string[] = [
  "GRABBIT_EVENT_TYPE_CHANGED",
  "TYPESCRIPT_MESSAGE_RENAMED",
  "TYPESCRIPT_ENUM_RENAMED",
  "TYPESCRIPT_SERVICE_RENAMED",
  "TYPESCRIPT_METHOD_RENAMED",
] satisfies readonly RuleId[];

const ACCEPT = /grabbit:accept\s+([A-Z0-9_]+(?:\s*,\s*[A-Z0-9_]+)*)\s+reason:\s*(\S[^\n]*)/g;

export interface Acceptance {
  rules: string[];
  reason: string;
}

export function acceptances(f: Pick<Finding, "at">): Acceptance[] {
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
  for (const t of texts)
    for (const m of t.matchAll(ACCEPT))
      out.push({ rules: m[1]!.split(/\s*,\s*/), reason: m[2]!.trim() });
  return out;
}

export interface CompareOptions {
  config: BreakingConfig;
  enabled: Set<string>;
  /** buf's --exclude-imports: leave out findings in imports. */
  excludeImports?: boolean;
  /** The message library whose TypeScript names the TYPESCRIPT_* rules follow (default ts-proto). */
  messages?: MessageLibrary;
  onProgress?: (phase: string) => void;
}

export function compareImages(old: Image, cur: Image, opts: CompareOptions): Report {
  const changed: string[] = [];
  const onlyOld: string[] = [];
  const onlyNew: string[] = [];
  // Every file is compared, imports too (buf's rules see whole images); only what a partial build
  // pulled in as context is not (it is the same on both sides, whichever side happened to build it).
  const own = (f: ImageFile | undefined) => f !== undefined && !f.partialContext;
  for (const [path, f] of old.files) {
    if (!own(f)) continue;
    const g = cur.files.get(path);
    if (!own(g)) onlyOld.push(path);
    else if (!sameBytes(f.desc, g!.desc) || !sameBytes(f.src, g!.src)) changed.push(path);
  }
  for (const [path, g] of cur.files) if (own(g) && !own(old.files.get(path))) onlyNew.push(path);
  opts.onProgress?.(
    `comparing ${changed.length + onlyOld.length + onlyNew.length} changed of ${cur.files.size} files`,
  );

  const oldSide = indexSide(old, [...changed, ...onlyOld]);
  const newSide = indexSide(cur, [...changed, ...onlyNew]);
  const ctx = new Ctx(oldSide, newSide, opts.enabled, opts.messages);
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
  return finish(ctx.findings, old, opts, renames.targets, ctx.notes);
}

/** Findings reported as one: a fold of the rules that saw one change, or a finding on its own. */
interface Unit {
  head: Finding;
  members: Finding[];
}

/** Groups the findings that describe one change (a shared subject) when grabbit's rules saw it too. */
function units(kept: Finding[]): Unit[] {
  const groups = new Map<string, Finding[]>();
  const out: Unit[] = [];
  for (const f of kept) {
    if (!f.subject || !f.breaking) {
      out.push({ head: f, members: [f] });
      continue;
    }
    const g = groups.get(f.subject);
    if (g) g.push(f);
    else groups.set(f.subject, [f]);
  }
  for (const g of groups.values()) {
    // Only buf's rules saw it: each keeps its own finding, as in buf.
    if (!g.some((f) => RULE_BY_ID.get(f.rule)?.grabbit)) {
      for (const f of g) out.push({ head: f, members: [f] });
      continue;
    }
    const head = g.find((f) => RENAME_HEADS.includes(f.rule)) ?? g[0]!;
    out.push({ head, members: [head, ...g.filter((f) => f !== head)] });
  }
  return out;
}

export interface Where {
  path: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/** Where a finding points, as buf prints it; event findings (governance/events) are placed the same way. */
export function where(f: Pick<Finding, "at" | "sub" | "subOnly">): Where {
  const locs = locations(f.at.file.image);
  const spath = f.at.spath;
  // A file-level finding is at 1:1, as buf prints it (the file's own span starts after its header).
  const sub = f.sub && locs.get([...spath, ...f.sub].join("."));
  const loc =
    spath.length === 0 ? undefined : sub || (f.subOnly ? undefined : locs.get(spath.join(".")));
  return {
    path: f.at.file.owner.externalPath(f.at.file.path),
    line: loc?.line ?? 1,
    column: loc?.column ?? 1,
    endLine: loc?.endLine ?? loc?.line ?? 1,
    endColumn: loc?.endColumn ?? loc?.column ?? 1,
  };
}

/** The grabbit:accept comment that covers a unit, if any: it may name any of its rules or their categories. */
function acceptanceOf(u: Unit, cfg: BreakingConfig): Acceptance | undefined {
  const ids = [...new Set(u.members.map((f) => f.rule))];
  const names = new Set([
    ...ids,
    ...ids.flatMap((id) => categoriesOf(RULE_BY_ID.get(id)!, cfg.version)),
  ]);
  return acceptances(u.head).find((a) => a.rules.some((r) => names.has(r)));
}

/** grabbit's change for a unit: the head's finding, naming the other rules and what a deletion was. */
function toChange(
  u: Unit,
  accepted: Acceptance | undefined,
  cfg: BreakingConfig,
  notes: Map<string, string>,
): Change {
  const { head } = u;
  const others = [...new Set(u.members.slice(1).map((f) => f.rule))];
  const note =
    head.subject !== undefined && !RENAME_HEADS.includes(head.rule)
      ? notes.get(head.subject)
      : undefined;
  let message =
    head.message +
    (note ? ` (${note})` : "") +
    (others.length ? ` (also ${others.join(", ")})` : "");
  if (!head.breaking) {
    return {
      rule: head.rule,
      breaking: false,
      bump: head.bump ?? CHANGE_KINDS[head.rule as ChangeKind],
      categories: [],
      ...where(head),
      message,
    };
  }
  // Accepted: it no longer fails the check, but it still is a major change of the SDK.
  if (accepted) message = `Accepted (${accepted.reason}): ${message}`;
  const categories = categoriesOf(RULE_BY_ID.get(head.rule)!, cfg.version).filter(
    (c) => c !== "CSR",
  );
  return {
    rule: head.rule,
    breaking: !accepted,
    bump: "major",
    categories,
    ...where(head),
    message,
  };
}

/** buf's annotation for one finding: its rule's message as is, and no file for one that is gone. */
function toFailure(f: Finding, old: Image, cfg: BreakingConfig): Change {
  const categories = categoriesOf(RULE_BY_ID.get(f.rule)!, cfg.version).filter((c) => c !== "CSR");
  // buf anchors a finding on the current files; one it can only place in a deleted file (the file
  // itself, a package's last file) it prints without a path, at line 0 (printed 1:1, as buf does).
  const at =
    f.at.file.owner === old ? { path: "", line: 0, column: 0, endLine: 0, endColumn: 0 } : where(f);
  return { rule: f.rule, breaking: true, bump: "major", categories, ...at, message: f.message };
}

const cmp = <T>(a: T, b: T) => (a < b ? -1 : a > b ? 1 : 0);

/** buf's order (bufanalysis): findings without a file first, then path, start, rule, message, end. */
function bufOrder(a: Change, b: Change): number {
  if (!a.path !== !b.path) return a.path ? 1 : -1;
  return (
    cmp(a.path, b.path) ||
    a.line - b.line ||
    a.column - b.column ||
    cmp(a.rule, b.rule) ||
    cmp(a.message, b.message) ||
    a.endLine - b.endLine ||
    a.endColumn - b.endColumn
  );
}

/** buf's findings in buf's order without duplicates (buf prints each distinct annotation once), then grabbit's. */
function bufView(failures: Change[]): Change[] {
  const byKey = new Map<string, Change>();
  for (const c of failures) {
    const key = JSON.stringify([
      c.path,
      c.line,
      c.column,
      c.endLine,
      c.endColumn,
      c.rule,
      c.message,
    ]);
    if (!byKey.has(key)) byKey.set(key, c);
  }
  const unique = [...byKey.values()];
  const own = (c: Change) => RULE_BY_ID.get(c.rule)?.grabbit === true;
  return [...unique.filter((c) => !own(c)).sort(bufOrder), ...unique.filter(own).sort(bufOrder)];
}

/**
 * Whether a finding in an import is left out. buf's rules see imports as any file, and only
 * --exclude-imports leaves their findings out; grabbit's own rules and its non-breaking changes are
 * about the module's files (a WKT imported for the first time is no change of the SDK).
 */
function inImportLeftOut(f: Finding, excludeImports: boolean): boolean {
  if (!f.at.file.image.isImport) return false;
  return excludeImports || !f.breaking || RULE_BY_ID.get(f.rule)?.grabbit === true;
}

function finish(
  findings: Finding[],
  old: Image,
  opts: CompareOptions,
  renameTargets: Set<string>,
  notes: Map<string, string>,
): Report {
  const cfg = opts.config;
  const kept = findings.filter((f) => {
    if (inImportLeftOut(f, opts.excludeImports === true)) return false;
    if (
      f.subject?.startsWith("rpc-added:") &&
      renameTargets.has(f.subject.slice("rpc-added:".length))
    )
      return false;
    if (!f.breaking) return !ignoredPath(cfg, cfg.ignore, f.at.file.path);
    return !ignored(cfg, f.rule, f.at.file.path, f.at.file.pkg);
  });

  const changes: Change[] = [];
  const failures: Change[] = [];
  for (const u of units(kept)) {
    const accepted = u.head.breaking ? acceptanceOf(u, cfg) : undefined;
    changes.push(toChange(u, accepted, cfg, notes));
    if (u.head.breaking && !accepted)
      for (const f of u.members) failures.push(toFailure(f, old, cfg));
  }
  changes.sort(
    (a, b) => cmp(a.path, b.path) || a.line - b.line || a.column - b.column || cmp(a.rule, b.rule),
  );
  return { bump: maxBump(changes.map((c) => c.bump)), changes, failures: bufView(failures) };
}
