// `grabbit breaking [input] --against <input>`: the flags, the help text, a progress line on a terminal,
// and the report in the asked format. The check itself is check.ts's `checkBreaking`; any event flag
// (--events, --against-tags, ...) hands over to the event compatibility check (events/cli.ts).
// Exit status as buf's: 0 nothing breaking, 100 breaking changes, 1 bad usage or input (a sentence on
// stderr; an InputError thrown by the check reaches the dispatcher, cli/main.ts, which prints it).
import { parseCommand, type CommandSpec } from "./args.js";
import { checkBreaking, type BreakingOptions } from "./check.js";
import { EXIT } from "./errors.js";
import { EVENT_FLAGS, EVENTS_USAGE, runEvents } from "./events/cli.js";
import { FORMATS, render, type Format } from "./report/index.js";
import { MESSAGE_LIBRARIES, type MessageLibrary } from "./rules/ts-names.js";

/** What `grabbit breaking` needs of its surroundings. */
export interface BreakingIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
  /** Whether stderr is a terminal: the progress line is drawn only there. */
  isTTY: boolean;
}

export const BREAKING_USAGE = `Usage: grabbit breaking [input] --against <input> [options]

Reports the changes of <input> (default .) against <input> and fails on breaking ones. Inputs are
anything buf takes: a directory, an image (.binpb, .json), .git#branch=main, path/.git#ref=...

  --against <input>         what to compare with (required)
  --against-config <file|data>
                            the buf.yaml to build the against input with
  --config <file|dir|data>  the buf.yaml to build the input with and read the breaking section from
  --use RULE|CATEGORY       rules to run instead of the configured ones (repeatable, or comma list)
  --except RULE|CATEGORY    rules not to run (repeatable, or comma list)
  --path <path>             only these files or directories, on both sides, as buf takes them
                            (relative to the current directory; repeatable)
  --exclude-path <path>     leave these files or directories out, on both sides (repeatable)
  --format <format>         ${FORMATS.join(", ")} (default text)
                            text, msvs, junit, github-actions and gitlab-code-quality print what buf
                            prints; json prints grabbit's report (every change and its semver bump)
  --error-format <format>   buf's flag: the same formats, but json is buf's (one object per line)
  --exclude-imports         leave out findings in imports (dependencies, and files outside --path);
                            without it they are compared as in buf
  --limit-to-input-files    compare only the files the input has: what only the against input
                            has (a deleted file) is not checked, as in buf
  --messages <library>      ts-proto (default) or protobuf-es: the TYPESCRIPT_* rules name enum
                            members as that library does (protobuf-es strips the enum's prefix)
  -h, --help                this help
Exit status: 0 no breaking change, 100 breaking changes, 1 bad usage or input.
`;

const BREAKING: CommandSpec = {
  name: "breaking",
  positionals: { max: 1, what: "only one input is compared" },
  flags: {
    against: { type: "string" },
    "against-config": { type: "string" },
    config: { type: "string" },
    use: { type: "string", multiple: true, commas: true },
    except: { type: "string", multiple: true, commas: true },
    path: { type: "string", multiple: true },
    "exclude-path": { type: "string", multiple: true },
    format: { type: "string" },
    "error-format": { type: "string" },
    "exclude-imports": { type: "boolean" },
    "limit-to-input-files": { type: "boolean" },
    messages: { type: "string" },
    // Event compatibility (events/cli.ts).
    events: { type: "string" },
    "events-transitive": { type: "boolean" },
    "events-config": { type: "string" },
    "events-json": { type: "boolean" },
    "against-tags": { type: "string" },
    "against-registry": { type: "string" },
    registry: { type: "string" },
  },
};

interface Args extends BreakingOptions {
  format: Format;
  flavour: "grabbit" | "buf";
}

function toArgs(argv: string[], cwd: string): Args | "help" | string {
  const p = parseCommand(BREAKING, argv);
  if (typeof p === "string") return p;
  if (p.help) return "help";
  const v = p.values as Record<string, string | string[] | boolean | undefined>;
  if (v.format !== undefined && v["error-format"] !== undefined)
    return "give --format or --error-format, not both.";
  const format = (v.format ?? v["error-format"] ?? "text") as string;
  if (!(FORMATS as readonly string[]).includes(format))
    return `unknown format "${format}"; use one of ${FORMATS.join(", ")}.`;
  if (v.against === undefined)
    return "--against is required (for example --against .git#branch=main).";
  const list = (k: string) => (v[k] as string[] | undefined) ?? [];
  const messages = (v.messages ?? "ts-proto") as MessageLibrary;
  if (!MESSAGE_LIBRARIES.includes(messages))
    return `--messages takes ${MESSAGE_LIBRARIES.join(" or ")}, not "${messages}".`;
  return {
    input: p.positionals[0] ?? ".",
    against: v.against as string,
    cwd,
    ...(v.config !== undefined ? { config: v.config as string } : {}),
    ...(v["against-config"] !== undefined ? { againstConfig: v["against-config"] as string } : {}),
    use: list("use"),
    except: list("except"),
    paths: list("path"),
    excludePaths: list("exclude-path"),
    limitToInputFiles: v["limit-to-input-files"] === true,
    excludeImports: v["exclude-imports"] === true,
    messages,
    format: format as Format,
    flavour: v["error-format"] !== undefined ? "buf" : "grabbit",
  };
}

/** A progress line on a terminal, shown only once a run has taken a while. */
function progress(io: BreakingIo): { phase(s: string): void; done(): void } {
  if (!io.isTTY) return { phase() {}, done() {} };
  const start = Date.now();
  let current = "";
  let shown = false;
  const draw = () => {
    shown = true;
    io.stderr(
      `\r\x1b[2Kgrabbit breaking: ${current} (${((Date.now() - start) / 1000).toFixed(1)} s)`,
    );
  };
  const timer = setInterval(() => Date.now() - start > 1000 && draw(), 250);
  timer.unref();
  return {
    phase(s) {
      current = s;
      if (shown) draw();
    },
    done() {
      clearInterval(timer);
      if (shown) io.stderr("\r\x1b[2K");
    },
  };
}

export async function runBreaking(argv: string[], io: BreakingIo): Promise<number> {
  const parsed = parseCommand(BREAKING, argv);
  if (
    typeof parsed !== "string" &&
    !parsed.help &&
    EVENT_FLAGS.some((k) => parsed.values[k] !== undefined)
  ) {
    return runEvents(parsed.values, parsed.positionals, io);
  }
  const args = toArgs(argv, io.cwd);
  if (args === "help") {
    io.stdout(BREAKING_USAGE + EVENTS_USAGE);
    return EXIT.OK;
  }
  if (typeof args === "string") {
    io.stderr(`grabbit breaking: ${args}\n`);
    return EXIT.USAGE;
  }
  const p = progress(io);
  try {
    const report = await checkBreaking({
      ...args,
      onProgress: (s) => p.phase(s),
      onWarning: (w) => io.stderr(`grabbit breaking: warning: ${w}\n`),
    });
    p.done();
    io.stdout(render(report, args.format, args.flavour));
    return report.changes.some((c) => c.breaking) ? EXIT.BREAKING : EXIT.OK;
  } finally {
    p.done();
  }
}
