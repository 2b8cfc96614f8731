// From event findings to grabbit's report: each finding becomes a Change (the SPEC's fields, unchanged)
// with fields added for events: the event, the directions it breaks, the safe rollout order, the wire
// (binary or JSON), the mode it was judged by and, in transitive runs, the version it was compared with.
// Whether it fails is the event's mode (grabbit.yaml, --events) and `grabbit:accept` comments in the
// proto (the mechanism `grabbit breaking` has); the text formats get the same message with the verdict.
import { acceptances, where, type Change, type Report } from "../diff.js";
import { maxBump } from "../semver.js";
import { DIRECTION_TEXT, type Direction, type EventFinding } from "./compat.js";
import { modeOf, type EventsConfig, type Mode } from "./config.js";

export type Rollout = "any" | "consumers-first" | "producers-first" | "neither";

export interface EventChange extends Change {
  event: string;
  directions: Direction[];
  rollout: Rollout;
  wire: "binary" | "json";
  mode: Mode;
  /** The version compared with (a tag, a package version, or the --against input). */
  against: string;
}

/** Per event, over every version compared: the oldest one it is still compatible with. */
export interface EventSummary {
  event: string;
  mode: Mode;
  /** Versions compared, oldest first, that held the event. */
  versions: string[];
  incompatible: string[];
  /** The oldest version from which on every version is compatible (null: not even the newest). */
  oldestCompatible: string | null;
}

export interface EventsReport extends Report {
  changes: EventChange[];
  failures: EventChange[];
  events: EventSummary[];
  /** Versions that could not be compared (a package without its contract image), with the reason. */
  skipped: { version: string; reason: string }[];
}

export function rollout(directions: Direction[]): Rollout {
  const b = directions.includes("BACKWARD");
  const f = directions.includes("FORWARD");
  return b && f ? "neither" : b ? "producers-first" : f ? "consumers-first" : "any";
}

export const ROLLOUT_TEXT: Record<Rollout, string> = {
  any: "any rollout order is safe",
  "consumers-first": "safe rollout: consumers first, then producers",
  "producers-first":
    "safe rollout: producers first, and consumers only once the old data is drained from queues, dead-letter queues and replays",
  neither: "no rollout order is safe: publish it as a new event type, or accept it",
};

const MODE_DIRECTIONS: Record<Mode, Direction[]> = {
  backward: ["BACKWARD"],
  forward: ["FORWARD"],
  full: ["BACKWARD", "FORWARD"],
  none: [],
};

export function toChange(
  f: EventFinding,
  cfg: EventsConfig,
  against: string,
  cliMode?: Mode,
  prefix = false,
): EventChange {
  const mode = modeOf(cliMode ? { ...cfg, mode: cliMode } : cfg, f.event, f.at.file.pkg);
  const judged = f.directions.filter((d) => MODE_DIRECTIONS[mode].includes(d));
  const counts = f.breaking && judged.length > 0 && (f.wire === "binary" || cfg.json);
  const accepted = counts
    ? acceptances({ at: f.at }).find((a) => a.rules.includes(f.rule) || a.rules.includes("EVENTS"))
    : undefined;
  const r = rollout(f.breaking ? f.directions : []);
  let verdict: string;
  if (!f.breaking) verdict = "(a note: nothing breaks yet)";
  else {
    const dirs = f.directions.map((d) => `${d} (${DIRECTION_TEXT[d]})`).join(" and ");
    const scope = f.wire === "json" ? "JSON readers only" : "";
    const why = !judged.length
      ? `not checked by mode ${mode}`
      : f.wire === "json" && !cfg.json
        ? "JSON findings do not fail without events.json"
        : "";
    verdict = `Breaks ${dirs}${scope ? ` for ${scope}` : ""}; ${ROLLOUT_TEXT[r]}${why ? ` (${why})` : ""}.`;
  }
  let message = `${prefix ? `against ${against}: ` : ""}${f.message} ${verdict}`;
  if (accepted) message = `Accepted (${accepted.reason}): ${message}`;
  return {
    rule: f.rule,
    breaking: counts && !accepted,
    bump: f.breaking && f.wire === "binary" ? "major" : "patch",
    categories: ["EVENTS"],
    ...where(f),
    message,
    event: f.event,
    directions: f.directions,
    rollout: r,
    wire: f.wire,
    mode,
    against,
  };
}

export interface Compared {
  /** The version's label (tag, package version, or the --against input). */
  version: string;
  findings: EventFinding[];
  /** Events the version holds. */
  events: Set<string>;
}

/** The report over one or more compared versions (oldest first), and each current event's summary. */
export function buildReport(
  compared: Compared[],
  currentEvents: Map<string, string>,
  cfg: EventsConfig,
  cliMode: Mode | undefined,
  skipped: EventsReport["skipped"] = [],
): EventsReport {
  const changes: EventChange[] = [];
  for (const c of compared)
    for (const f of c.findings)
      changes.push(toChange(f, cfg, c.version, cliMode, compared.length > 1 || skipped.length > 0));
  changes.sort((a, b) =>
    a.path < b.path
      ? -1
      : a.path > b.path
        ? 1
        : a.line - b.line ||
          a.column - b.column ||
          (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0),
  );
  const events: EventSummary[] = [];
  for (const [event, pkg] of [...currentEvents].sort()) {
    const mode = modeOf(cliMode ? { ...cfg, mode: cliMode } : cfg, event, pkg);
    const versions = compared.filter((c) => c.events.has(event)).map((c) => c.version);
    const bad = new Set(
      changes.filter((ch) => ch.event === event && ch.breaking).map((ch) => ch.against),
    );
    let oldest: string | null = null;
    for (let i = versions.length - 1; i >= 0 && !bad.has(versions[i]!); i--) oldest = versions[i]!;
    events.push({
      event,
      mode,
      versions,
      incompatible: versions.filter((v) => bad.has(v)),
      oldestCompatible: oldest,
    });
  }
  const failures = changes.filter((c) => c.breaking);
  return { bump: maxBump(changes.map((c) => c.bump)), changes, failures, events, skipped };
}

/** The transitive summary as text lines, after the findings. */
export function summaryText(r: EventsReport): string {
  const lines = r.events.map((e) => {
    if (!e.versions.length) return `${e.event} (${e.mode}): new, no released version holds it`;
    const head =
      e.oldestCompatible === null
        ? `compatible with none of ${e.versions.length} versions`
        : e.oldestCompatible === e.versions[0]
          ? `compatible with every version back to ${e.oldestCompatible}`
          : `compatible back to ${e.oldestCompatible}`;
    return `${e.event} (${e.mode}): ${head}${e.incompatible.length ? `; breaks with ${e.incompatible.join(", ")}` : ""}`;
  });
  for (const s of r.skipped) lines.push(`skipped ${s.version}: ${s.reason}`);
  return lines.map((l) => `# ${l}\n`).join("");
}
