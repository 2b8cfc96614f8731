// `grabbit <command>`: the one place that knows every command. COMMANDS is the table (name, synopsis,
// summary, run); `grabbit --help` prints it, an unknown command gets a sentence and the list (exit 1).
// Commands are imported statically, except dlq (see `dlq` below). A GrabbitError that a command lets
// through is printed as `grabbit <command>: <message>` and exits with its exitCode (governance/errors.ts);
// anything else is a bug and keeps its stack trace. Exit codes follow buf: 0 nothing breaking,
// 100 breaking changes, 1 bad usage or input (always with a sentence saying why).
import { runBreaking } from "../governance/breaking.js";
import { EXIT, GrabbitError } from "../governance/errors.js";
import { runRelease } from "../governance/release/cli.js";
import { runInitCommand } from "./init.js";

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
  isTTY: boolean;
  /** Asks on the terminal (grabbit dlq purge); default: stdin when it is a terminal. */
  prompt?: (question: string) => Promise<string>;
}

export interface Command {
  name: string;
  /** The command with its main arguments, as the help lists it. */
  synopsis: string;
  summary: string;
  run: (argv: string[], io: Io) => Promise<number>;
}

export const COMMANDS: readonly Command[] = [
  {
    name: "init",
    synopsis: "init",
    summary: "write buf.yaml, buf.gen.yaml and proto/ for grabbit",
    run: runInitCommand,
  },
  {
    name: "breaking",
    synopsis: "breaking [input] --against <ref>",
    summary: "report changes against <ref> and fail on breaking ones",
    run: runBreaking,
  },
  {
    name: "release",
    synopsis: "release [input] --package <dir|name>",
    summary: "next SDK version, changelog, build, pack and publish",
    run: runRelease,
  },
  {
    name: "dlq",
    synopsis: "dlq list|show|replay|purge <queue>",
    summary: "look into a dead-letter queue, replay or purge it",
    run: dlq,
  },
];

export function usage(): string {
  const rows = COMMANDS.map((c) => `  ${c.synopsis.padEnd(37)}${c.summary}`);
  return `Usage: grabbit <command> [options]\n\nCommands:\n${rows.join("\n")}\n\nRun grabbit <command> --help for a command's options.\n`;
}

const defaultIo = (): Io => ({
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  cwd: process.cwd(),
  isTTY: Boolean(process.stderr.isTTY),
});

export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--help" || name === "-h" || name === "help") {
    io.stdout(usage());
    return EXIT.OK;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(
      name === undefined
        ? `grabbit: a command is required.\n\n${usage()}`
        : `grabbit: unknown command "${name}".\n\n${usage()}`,
    );
    return EXIT.USAGE;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (!(err instanceof GrabbitError)) throw err;
    io.stderr(`grabbit ${command.name}: ${err.message}\n`);
    return err.exitCode;
  }
}

/**
 * `grabbit dlq` (cli/dlq.ts) is the one lazy import: it needs @grabbit/runtime (and amqplib), which a
 * repo that only gates merges on `grabbit breaking` need not install. Without it, a sentence, exit 1.
 */
async function dlq(argv: string[], io: Io): Promise<number> {
  let mod: typeof import("./dlq.js");
  try {
    mod = await import("./dlq.js");
  } catch (err) {
    if ((err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
    io.stderr("grabbit dlq: needs @grabbit/runtime; install it (npm install @grabbit/runtime).\n");
    return EXIT.USAGE;
  }
  return mod.runDlq(argv, { ...io, ...(io.prompt ? {} : { prompt: mod.terminalPrompt() }) });
}
