// Which dead letters a list, show or replay is about: by message id, type, reason, age and headers.
// Every condition given must hold; an empty selection matches everything. A message whose age
// cannot be told (no failure time and no timestamp) matches no age condition.

import type { DeadLetter } from "./message.js";

export interface Selection {
  /** Message ids (the `message_id` property); any of them. */
  ids?: string[];
  /** Full message names (`type`); any of them. A trailing `.*` matches a package. */
  types?: string[];
  /** The reason contains this text (case-insensitive), or matches this expression. */
  reason?: string | RegExp;
  /** Dead-lettered (last failure, else published) at least this long ago, in ms. */
  olderThanMs?: number;
  /** Dead-lettered less than this long ago, in ms. */
  newerThanMs?: number;
  /** Headers that must have exactly these values (compared as text). */
  headers?: Record<string, string>;
}

export function isEmptySelection(s: Selection): boolean {
  return (
    !s.ids?.length &&
    !s.types?.length &&
    s.reason === undefined &&
    s.olderThanMs === undefined &&
    s.newerThanMs === undefined &&
    !Object.keys(s.headers ?? {}).length
  );
}

export function matches(d: DeadLetter, s: Selection, now = Date.now()): boolean {
  if (s.ids?.length && (d.messageId === undefined || !s.ids.includes(d.messageId))) return false;
  if (s.types?.length && !s.types.some((t) => typeMatches(d.type, t))) return false;
  if (s.reason !== undefined) {
    const reason = d.reason ?? "";
    if (
      typeof s.reason === "string"
        ? !reason.toLowerCase().includes(s.reason.toLowerCase())
        : !s.reason.test(reason)
    )
      return false;
  }
  if (s.olderThanMs !== undefined || s.newerThanMs !== undefined) {
    const at = d.lastFailure ?? d.publishedAt;
    if (at === undefined) return false;
    if (s.olderThanMs !== undefined && now - at < s.olderThanMs) return false;
    if (s.newerThanMs !== undefined && now - at >= s.newerThanMs) return false;
  }
  for (const [name, value] of Object.entries(s.headers ?? {})) {
    const v = d.headers[name.toLowerCase()] ?? d.headers[name];
    if (
      v === undefined ||
      v === null ||
      (typeof v === "object" ? JSON.stringify(v) : String(v)) !== value
    )
      return false;
  }
  return true;
}

function typeMatches(type: string | undefined, pattern: string): boolean {
  if (type === undefined) return false;
  return pattern.endsWith(".*") ? type.startsWith(pattern.slice(0, -1)) : type === pattern;
}

/** "90s", "15m", "2h", "7d", "500ms" or plain milliseconds, as ms; undefined when it is none of those. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/.exec(text);
  if (!m) return undefined;
  const unit: Record<string, number> = {
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
    d: 86_400_000,
    w: 604_800_000,
  };
  return Math.round(Number(m[1]) * unit[m[2] ?? "ms"]!);
}

/** A --reason value: `/expr/flags` is a regular expression, anything else a substring. Throws on a bad expression. */
export function parseReason(text: string): string | RegExp {
  const m = /^\/(.*)\/([a-z]*)$/s.exec(text);
  if (!m) return text;
  try {
    return new RegExp(m[1]!, m[2]);
  } catch (err) {
    throw new SyntaxError(
      `--reason ${text} is not a valid regular expression: ${(err as Error).message}`,
    );
  }
}
