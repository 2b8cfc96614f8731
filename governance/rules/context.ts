// What every rule family gets: both sides and a way to report a finding against an element.
import type { FileEl, MessageEl, Side } from "../model.js";
import type { ChangeKind, RuleId } from "./catalog.js";
import type { MessageLibrary } from "./ts-names.js";

export interface At {
  file: FileEl;
  spath: number[];
}

export interface Finding {
  /** A rule of the catalog (breaking) or a change kind (informational). */
  rule: RuleId | ChangeKind;
  /** False for informational change kinds (additions, deprecations, comments). */
  breaking: boolean;
  at: At;
  /** A more precise sub-path for the location (e.g. the field's type), falling back to the element. */
  sub?: number[];
  /** The sub-path or nothing: where it has no source, the finding is at 1:1 as buf prints it. */
  subOnly?: boolean;
  message: string;
  /** Findings that share a subject describe one change (a rename): they are reported once. */
  subject?: string;
  /** For a change kind, an explicit bump that overrides the kind's default. */
  bump?: "major" | "minor" | "patch";
}

export class Ctx {
  readonly findings: Finding[] = [];
  /** What a subject turned out to be (a rename), told even when only buf's deletion rules run. */
  readonly notes = new Map<string, string>();
  constructor(
    readonly old: Side,
    readonly cur: Side,
    readonly enabled: Set<string>,
    /** The message library the TYPESCRIPT_* rules name members after. */
    readonly messages: MessageLibrary = "ts-proto",
  ) {}

  /** Whether `rule` is selected (to skip work whose findings would be dropped). */
  on(rule: RuleId): boolean {
    return this.enabled.has(rule);
  }

  /** Reports a finding of `rule` if the rule is selected. Only catalog IDs compile (rules/catalog.ts). */
  add(
    rule: RuleId,
    at: At,
    message: string,
    extra: Partial<Pick<Finding, "sub" | "subOnly" | "subject">> = {},
  ): void {
    if (!this.enabled.has(rule)) return;
    this.findings.push({ rule, breaking: true, at, message, ...extra });
  }

  /** Reports a non-breaking change, always (the semantic version needs every change). */
  change(
    kind: ChangeKind,
    at: At,
    message: string,
    extra: Partial<Pick<Finding, "sub" | "subject" | "bump">> = {},
  ): void {
    this.findings.push({ rule: kind, breaking: false, at, message, ...extra });
  }
}

/** A file-level anchor: the package statement, else the syntax statement, else line 1. */
export function fileAt(file: FileEl): At {
  return { file, spath: [] };
}

export function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}

/**
 * Where buf points a deleted nested declaration: the innermost message around it (named inside the
 * package `pkg`, as `local` is) that `side` still has, in `file` when one is given. buf walks up the
 * whole name, so a message deleted with its parent points at the grandparent.
 */
export function enclosingMessage(
  side: Side,
  pkg: string,
  local: string,
  file?: FileEl,
): MessageEl | undefined {
  const prefix = pkg ? pkg + "." : "";
  const parts = local.split(".");
  for (let i = parts.length - 1; i > 0; i--) {
    const m = side.messages.get(prefix + parts.slice(0, i).join("."));
    if (m && (!file || m.file.path === file.path)) return m;
  }
  return undefined;
}
