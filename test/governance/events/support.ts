// Test support for `grabbit breaking --events`: old and new trees of an event contract (grabbit's
// options.proto beside them), compared in-process with the real buf; the report parsed from --format json.
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { EventChange, EventSummary } from "../../../governance/events/report.js";
import { ROOT, grabbit, tempDir } from "../helpers.js";

export type Files = Record<string, string>;

export interface EventsRun {
  code: number;
  stdout: string;
  stderr: string;
  changes: EventChange[];
  events: EventSummary[];
  skipped: { version: string; reason: string }[];
  dir: string;
}

/** A module folder with grabbit's options and the given files. */
export function writeModule(dir: string, files: Files): void {
  cpSync(join(ROOT, "proto/grabbit"), join(dir, "grabbit"), { recursive: true });
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

/** A demo.v1 file (proto3 unless `syntax` says otherwise) importing grabbit's options. */
export function contract(body: string, syntax = `syntax = "proto3";`): Files {
  return {
    "demo/v1/orders.proto": `${syntax}\n\npackage demo.v1;\n\nimport "grabbit/v1/options.proto";\n\n${body.trim()}\n`,
  };
}

/** An event message OrderPlaced with the given fields (and anything after it). */
export function event(
  fields: string,
  rest = "",
  option = `exchange: "shop" routing_key: "order.{region}.placed"`,
): string {
  return `message OrderPlaced {\n  option (grabbit.v1.event) = { ${option} };\n  string region = 1;\n${fields}\n}\n${rest}`;
}

export function parse(
  run: { code: number; stdout: string; stderr: string },
  dir: string,
): EventsRun {
  let body: { changes?: EventChange[]; events?: EventSummary[]; skipped?: EventsRun["skipped"] } =
    {};
  try {
    body = JSON.parse(run.stdout);
  } catch {
    // not JSON (an error): the fields stay empty and the test looks at stderr
  }
  return {
    ...run,
    changes: body.changes ?? [],
    events: body.events ?? [],
    skipped: body.skipped ?? [],
    dir,
  };
}

/** Compares new/ against old/ with --events (default full) and --format json (unless args give a format). */
export async function compareEvents(
  oldFiles: Files,
  newFiles: Files,
  args: string[] = ["--events", "full"],
  extra: Files = {},
): Promise<EventsRun> {
  const dir = tempDir("grabbit-events-");
  writeModule(join(dir, "old"), oldFiles);
  writeModule(join(dir, "new"), newFiles);
  for (const [p, t] of Object.entries(extra)) writeFileSync(join(dir, p), t);
  const format = args.includes("--format") ? [] : ["--format", "json"];
  const run = await grabbit(dir, ["breaking", "new", "--against", "old", ...format, ...args]);
  return parse(run, dir);
}

/** `rule:DIRECTIONS` of every finding that fails, for compact assertions. */
export const failing = (r: EventsRun) =>
  r.changes.filter((c) => c.breaking).map((c) => `${c.rule}:${c.directions.join("+")}`);
/** `rule:DIRECTIONS:wire` of every finding, failing or not. */
export const all = (r: EventsRun) =>
  r.changes.map((c) => `${c.rule}:${c.directions.join("+")}:${c.wire}`);
