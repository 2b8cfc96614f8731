// `grabbit breaking --events backward|forward|full` (and --events-transitive, --against-tags,
// --against-registry): event compatibility by direction, reported in grabbit's report model and
// formats. governance/breaking.ts hands the parsed flags over when any event flag is given. Exit status as
// for `grabbit breaking`: 0 compatible, 100 a finding fails, 1 bad usage or input (one sentence).
import { resolve } from "node:path";
import { InputError } from "../errors.js";
import { buildImage, localDir, type Image } from "../images.js";
import { render, FORMATS, type Format } from "../report/index.js";
import { compareEventImages, eventsOf, wholeSide } from "./compat.js";
import { MODES, loadEventsConfig, type Mode } from "./config.js";
import { buildReport, summaryText, type Compared, type EventsReport } from "./report.js";
import { registryVersions, tagVersions, type Version } from "./sources.js";

export const EVENT_FLAGS = [
  "events",
  "events-transitive",
  "events-config",
  "events-json",
  "against-tags",
  "against-registry",
  "registry",
] as const;

export interface EventsIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
}

export interface EventsOptions {
  input: string;
  cwd: string;
  against?: string;
  mode?: Mode;
  transitive?: boolean;
  json?: boolean;
  eventsConfig?: string;
  againstTags?: string;
  againstRegistry?: string;
  registry?: string;
}

/** The check as a function: the report over every version compared (throws InputError on bad input). */
export async function checkEvents(o: EventsOptions): Promise<EventsReport> {
  const dir = localDir(o.input, o.cwd) ?? o.cwd;
  const cfg = loadEventsConfig(dir, o.eventsConfig && resolve(o.cwd, o.eventsConfig));
  if (o.json) cfg.json = true;
  const transitive = o.transitive ?? cfg.transitive;
  const tags =
    o.againstTags ??
    (o.against === undefined && o.againstRegistry === undefined ? cfg.againstTags : undefined);
  const sources = [o.against, tags, o.againstRegistry].filter((x) => x !== undefined).length;
  if (sources === 0)
    throw new InputError(
      "give what to compare with: --against <input>, --against-tags <pattern> or --against-registry <package>.",
    );
  if (sources > 1)
    throw new InputError("give one of --against, --against-tags and --against-registry.");
  if (transitive && o.against !== undefined)
    throw new InputError(
      "--events-transitive compares with every released version: give --against-tags or --against-registry instead of --against.",
    );
  if (o.registry !== undefined && o.againstRegistry === undefined)
    throw new InputError("--registry goes with --against-registry.");

  let versions: Version[];
  let skipped: EventsReport["skipped"] = [];
  if (o.against !== undefined) {
    const against = o.against;
    versions = [{ label: against, load: () => buildImage(against, o.cwd) }];
  } else if (tags !== undefined) {
    versions = tagVersions(tags, dir, o.cwd);
  } else {
    const r = await registryVersions(o.againstRegistry!, o.registry, o.cwd);
    versions = r.versions;
    skipped = r.skipped;
    if (!versions.length)
      throw new InputError(
        `--against-registry ${o.againstRegistry}: no published version carries its contract image (${skipped.map((s) => s.version).join(", ")}).`,
      );
  }
  // Non-transitive: the newest version only, as a schema registry's BACKWARD (not _TRANSITIVE) does.
  if (!transitive) versions = versions.slice(-1);

  const wrap = (side: string) => (e: unknown) => {
    throw e instanceof InputError ? new InputError(`${side}: ${e.message}`, { cause: e }) : e;
  };
  const current = wholeSide(await buildImage(o.input, o.cwd).catch(wrap("input")));
  const compared: Compared[] = [];
  // Two builds at a time: buf is the cost, and the machine is shared.
  const images: Image[] = [];
  for (let i = 0; i < versions.length; i += 2) {
    images.push(
      ...(await Promise.all(
        versions
          .slice(i, i + 2)
          .map((v) => v.load().catch(wrap(o.against !== undefined ? "--against" : v.label))),
      )),
    );
  }
  versions.forEach((v, i) => {
    const old = wholeSide(images[i]!);
    compared.push({
      version: v.label,
      findings: compareEventImages(old, current),
      events: new Set(eventsOf(old).keys()),
    });
  });
  const currentEvents = new Map([...eventsOf(current)].map(([name, m]) => [name, m.file.pkg]));
  return buildReport(compared, currentEvents, cfg, o.mode, skipped);
}

/** Runs the event check for `grabbit breaking` with its parsed flags. */
export async function runEvents(
  values: Record<string, string | string[] | boolean | undefined>,
  positionals: string[],
  io: EventsIo,
): Promise<number> {
  const s = (k: string) => values[k] as string | undefined;
  const mode = s("events");
  if (mode !== undefined && !(MODES as readonly string[]).includes(mode)) {
    io.stderr(`grabbit breaking: --events takes ${MODES.join(", ")} (not "${mode}").\n`);
    return 1;
  }
  const format = (s("format") ?? "text") as Format;
  if (!(FORMATS as readonly string[]).includes(format) || s("error-format") !== undefined) {
    io.stderr(
      `grabbit breaking: with --events, give --format ${FORMATS.join("|")}${s("error-format") !== undefined ? " (not --error-format)" : ""}.\n`,
    );
    return 1;
  }
  for (const k of [
    "use",
    "except",
    "path",
    "exclude-path",
    "config",
    "against-config",
    "limit-to-input-files",
    "exclude-imports",
  ]) {
    const v = values[k];
    if (v !== undefined && v !== false && !(Array.isArray(v) && !v.length)) {
      io.stderr(
        `grabbit breaking: --${k} does not apply to --events (modes are set per event in grabbit.yaml).\n`,
      );
      return 1;
    }
  }
  let report: EventsReport;
  try {
    report = await checkEvents({
      input: positionals[0] ?? ".",
      cwd: io.cwd,
      ...(s("against") !== undefined ? { against: s("against")! } : {}),
      ...(mode !== undefined ? { mode: mode as Mode } : {}),
      ...(values["events-transitive"] === true ? { transitive: true } : {}),
      ...(values["events-json"] === true ? { json: true } : {}),
      ...(s("events-config") !== undefined ? { eventsConfig: s("events-config")! } : {}),
      ...(s("against-tags") !== undefined ? { againstTags: s("against-tags")! } : {}),
      ...(s("against-registry") !== undefined ? { againstRegistry: s("against-registry")! } : {}),
      ...(s("registry") !== undefined ? { registry: s("registry")! } : {}),
    });
  } catch (err) {
    if (err instanceof InputError) {
      io.stderr(`grabbit breaking: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const out =
    format === "json"
      ? JSON.stringify({
          bump: report.bump,
          changes: report.changes,
          events: report.events,
          skipped: report.skipped,
        }) + "\n"
      : render(report, format);
  io.stdout(out);
  if (
    format === "text" &&
    (report.events.some((e) => e.versions.length > 1) || report.skipped.length)
  )
    io.stdout(summaryText(report));
  return report.changes.some((c) => c.breaking) ? 100 : 0;
}

export const EVENTS_USAGE = `
Event compatibility (instead of the rules above; see docs/governance.md):
  --events backward|forward|full|none
                            judge every event message (and the messages it uses) by direction:
                            BACKWARD new consumers read old data, FORWARD old consumers read new
                            data; modes per event or package come from grabbit.yaml
  --events-transitive       compare with every released version, not only the newest
  --against-tags <pattern>  released versions are the git tags matching it ('sdk-v*')
  --against-registry <pkg>  released versions are the published versions of the SDK package
  --registry <url>          the npm registry for --against-registry (default: npm's configuration)
  --events-config <file>    grabbit.yaml (default: the input directory's)
  --events-json             JSON findings fail too (events travel as binary protobuf)
`;
