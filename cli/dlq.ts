// `grabbit dlq list|show|replay|purge <queue>`: dead-letter queue operations from the command line, on
// @grabbit/runtime/dlq. Bodies are decoded through the contract: a buf image (--image), a proto folder
// built with the real buf (--proto, through governance/images.ts), or the buf module in the current
// folder when there is one. Exit status: 0 done, 1 bad usage or input, an unknown queue, a broker that
// cannot be reached, or a replay that left selected messages behind, always with a sentence on stderr.
// `--format json` prints one JSON object on stdout.
import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import type { Registry } from "@bufbuild/protobuf";
import { AmqpConnection, redactUrl } from "@grabbit/runtime/amqp";
import {
  DeadLetterQueue,
  parseDuration,
  parseReason,
  registryFromImage,
  type ReplayProgress,
  type Selection,
} from "@grabbit/runtime/dlq";
import { silentLogger, StatusError } from "@grabbit/runtime";
import { parseCommand, type CommandSpec, type FlagSpec } from "../governance/args.js";
import { InputError, runBufBuild } from "../governance/images.js";
import { formatList, formatPurge, formatReplay, formatShow } from "./dlq-format.js";

export interface DlqIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  cwd: string;
  /** stderr is a terminal: progress is drawn there. */
  isTTY: boolean;
  /** Asks a question on the terminal and returns the answer; absent when stdin is not a terminal. */
  prompt?: (question: string) => Promise<string>;
  env?: Record<string, string | undefined>;
}

const USAGE = `Usage: grabbit dlq <list|show|replay|purge> <queue> [options]

Looks into a dead-letter queue and drains it. Messages are read with manual acks and given back
unless they are replayed (confirmed first) or purged; see docs/operations.md.

  list <queue>                 the first messages: reason, attempts, origin, failure times, type, id
  show <queue> <message-id>    one message in full, its body in the protobuf JSON mapping
                               (or #N: the N-th message, as list numbers them)
  replay <queue> <selection>   publish messages back to their original exchange and routing key
                               (or --to-queue), acking each dead-lettered copy after its confirm
  purge <queue>                delete every message (asks for the queue name, or --yes)

Options:
  --url <amqp-url>         the broker (default: AMQP_URL, else amqp://127.0.0.1)
  --image <file>           the contract as a buf image (.binpb; other image formats go through buf)
  --proto <dir>            the contract as .proto files, built with buf
                           (default: the buf module in the current folder, if any)
  --format text|json       json prints one object (default text)
Selection (list, replay):
  --id <message-id>        this message (repeatable)
  --type <full name>       messages of this type; pkg.v1.* for a package (repeatable)
  --reason <text|/re/>     the reason contains the text, or matches the expression
  --older-than <age>       dead-lettered at least this long ago (90s, 15m, 2h, 7d)
  --newer-than <age>       dead-lettered less than this long ago
  --header <name=value>    a header with this value (repeatable)
  --all                    replay: every message (needed when no other selection is given)
list:    --limit <n> messages shown (default 100), --scan <n> messages examined (default 10000)
replay:  --to-queue <queue>, --dry-run (show what would go), --window <n> unacked at most (default 1000)
purge:   --yes (no question asked)
Exit status: 0 done, 1 bad usage or input, unknown queue, or messages left behind by a replay.
`;

const COMMON: Record<string, FlagSpec> = {
  url: { type: "string" },
  image: { type: "string" },
  proto: { type: "string" },
  format: { type: "string" },
};
const FILTERS: Record<string, FlagSpec> = {
  id: { type: "string", multiple: true, commas: true },
  type: { type: "string", multiple: true, commas: true },
  reason: { type: "string" },
  "older-than": { type: "string" },
  "newer-than": { type: "string" },
  header: { type: "string", multiple: true },
};
const SPECS: Record<string, CommandSpec> = {
  list: {
    name: "dlq list",
    positionals: { max: 1, what: "list takes one queue" },
    flags: { ...COMMON, ...FILTERS, limit: { type: "string" }, scan: { type: "string" } },
  },
  show: {
    name: "dlq show",
    positionals: { max: 2, what: "show takes a queue and a message id" },
    flags: { ...COMMON, scan: { type: "string" } },
  },
  replay: {
    name: "dlq replay",
    positionals: {
      max: 1,
      what: "replay takes one queue; select messages with --id or the filters",
    },
    flags: {
      ...COMMON,
      ...FILTERS,
      all: { type: "boolean" },
      "to-queue": { type: "string" },
      "dry-run": { type: "boolean" },
      window: { type: "string" },
    },
  },
  purge: {
    name: "dlq purge",
    positionals: { max: 1, what: "purge takes one queue" },
    flags: { url: { type: "string" }, format: { type: "string" }, yes: { type: "boolean" } },
  },
};

/** A bad command line or input: printed as one sentence, exit 1. */
class UsageError extends Error {}

type Values = Record<string, string | boolean | string[] | undefined>;

export async function runDlq(argv: string[], io: DlqIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    (sub === undefined ? io.stderr : io.stdout)(
      sub === undefined ? `grabbit dlq: a subcommand is required.\n\n${USAGE}` : USAGE,
    );
    return sub === undefined ? 1 : 0;
  }
  const spec = SPECS[sub];
  if (!spec) {
    io.stderr(
      `grabbit dlq: unknown subcommand "${sub}" (list, show, replay or purge).\n\n${USAGE}`,
    );
    return 1;
  }
  const parsed = parseCommand(spec, rest);
  if (typeof parsed === "string") {
    io.stderr(`grabbit dlq ${sub}: ${parsed}\n`);
    return 1;
  }
  if (parsed.help) {
    io.stdout(USAGE);
    return 0;
  }
  let connection: AmqpConnection | undefined;
  try {
    const v = parsed.values;
    const format = (v.format as string | undefined) ?? "text";
    if (format !== "text" && format !== "json")
      throw new UsageError(`unknown format "${format}"; use text or json.`);
    const queue = parsed.positionals[0];
    if (queue === undefined)
      throw new UsageError(`a queue is required (grabbit dlq ${sub} <queue>).`);
    const json = format === "json";
    const run = { queue, values: v, json, io };
    // Checked before connecting: a replay without a selection, a purge without a confirmation.
    const selection = sub === "list" || sub === "replay" ? toSelection(v) : {};
    if (sub === "replay" && v.all !== true && isEmpty(selection)) {
      throw new UsageError(
        "say which messages to replay: --id, a filter (--type, --reason, --older-than, --newer-than, --header) or --all.",
      );
    }
    if (sub === "show" && parsed.positionals[1] === undefined)
      throw new UsageError(
        "a message id is required (grabbit dlq show <queue> <message-id>; list shows the ids).",
      );
    const registry = sub === "purge" ? undefined : await loadRegistry(v, io);
    const url =
      (v.url as string | undefined) ??
      io.env?.AMQP_URL ??
      process.env.AMQP_URL ??
      "amqp://127.0.0.1";
    connection = await connect(url);
    const dlq = new DeadLetterQueue(connection, queue, registry ? { registry } : {});
    switch (sub) {
      case "list":
        return await list(dlq, run, selection);
      case "show":
        return await show(dlq, run, parsed.positionals[1]!);
      case "replay":
        return await replay(dlq, run, selection);
      default:
        return await purge(dlq, run);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof InputError || err instanceof StatusError) {
      io.stderr(`grabbit dlq ${sub}: ${sentence(err)}\n`);
      return 1;
    }
    throw err;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

interface Run {
  queue: string;
  values: Values;
  json: boolean;
  io: DlqIo;
}

async function list(dlq: DeadLetterQueue, run: Run, selection: Selection): Promise<number> {
  const limit = count(run.values.limit, "--limit");
  const scan = count(run.values.scan, "--scan");
  const result = await dlq.list({
    selection,
    ...(limit !== undefined ? { limit } : {}),
    ...(scan !== undefined ? { scan } : {}),
  });
  run.io.stdout(run.json ? `${JSON.stringify(result)}\n` : formatList(result, !isEmpty(selection)));
  return 0;
}

async function show(dlq: DeadLetterQueue, run: Run, id: string): Promise<number> {
  const scan = count(run.values.scan, "--scan");
  // "#3" is the third message, as list numbers them (for messages without an id).
  const position = /^#(\d+)$/.exec(id)?.[1];
  const { info, examined, message } = await dlq.show(
    position !== undefined ? { position: Number(position) } : id,
    scan !== undefined ? { scan } : {},
  );
  if (!message) {
    throw new UsageError(
      position !== undefined
        ? `queue "${run.queue}" has no message ${id} (${info.messages} ready).`
        : `no message with id "${id}" among the ${examined} message(s) examined in queue "${run.queue}" (${info.messages} ready).`,
    );
  }
  run.io.stdout(
    run.json
      ? `${JSON.stringify({ queue: run.queue, message })}\n`
      : formatShow(run.queue, message),
  );
  return 0;
}

async function replay(dlq: DeadLetterQueue, run: Run, selection: Selection): Promise<number> {
  const window = count(run.values.window, "--window");
  const toQueue = run.values["to-queue"] as string | undefined;
  const bar = progressBar(run.io);
  let result: Awaited<ReturnType<DeadLetterQueue["replay"]>>;
  try {
    result = await dlq.replay({
      selection,
      dryRun: run.values["dry-run"] === true,
      ...(toQueue !== undefined ? { toQueue } : {}),
      ...(window !== undefined ? { window } : {}),
      onProgress: (p) => bar.update(p),
    });
  } finally {
    bar.done();
  }
  run.io.stdout(run.json ? `${JSON.stringify(result)}\n` : formatReplay(result, toQueue));
  const wanted = selection.ids ?? [];
  const missing = wanted.filter((id) => !result.items.some((d) => d.messageId === id));
  if (missing.length > 0) {
    run.io.stderr(
      `grabbit dlq replay: no message with id ${missing.map((m) => `"${m}"`).join(", ")} among the ${result.examined} message(s) examined in queue "${run.queue}".\n`,
    );
    return 1;
  }
  if (result.failed.length > 0) {
    run.io.stderr(
      `grabbit dlq replay: ${result.failed.length} message(s) could not be replayed and stay in "${run.queue}" (first: ${result.failed[0]!.error}).\n`,
    );
    return 1;
  }
  if (result.notExamined > 0) {
    run.io.stderr(
      `grabbit dlq replay: ${result.notExamined} message(s) were not examined because ${result.examined - result.replayed} not replayed filled the window; run again with a larger --window.\n`,
    );
    return 1;
  }
  return 0;
}

async function purge(dlq: DeadLetterQueue, run: Run): Promise<number> {
  if (run.values.yes !== true) {
    const info = await dlq.info();
    if (!run.io.prompt)
      throw new UsageError(
        `purge deletes all ${info.messages} message(s) of "${run.queue}": add --yes, or run it on a terminal and type the queue name.`,
      );
    const answer = (
      await run.io.prompt(
        `This deletes all ${info.messages} message(s) of dead-letter queue "${run.queue}"; nothing can bring them back.\nType the queue name to confirm: `,
      )
    ).trim();
    if (answer !== run.queue)
      throw new UsageError(`nothing was purged: "${answer}" is not the queue name.`);
  }
  const { purged } = await dlq.purge();
  run.io.stdout(
    run.json ? `${JSON.stringify({ queue: run.queue, purged })}\n` : formatPurge(run.queue, purged),
  );
  return 0;
}

function toSelection(v: Values): Selection {
  const s: Selection = {};
  const list = (k: string) => (v[k] as string[] | undefined) ?? [];
  if (list("id").length) s.ids = list("id");
  if (list("type").length) s.types = list("type");
  if (typeof v.reason === "string") {
    try {
      s.reason = parseReason(v.reason);
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/\.?$/, "."));
    }
  }
  for (const [flag, key] of [
    ["older-than", "olderThanMs"],
    ["newer-than", "newerThanMs"],
  ] as const) {
    if (typeof v[flag] !== "string") continue;
    const ms = parseDuration(v[flag] as string);
    if (ms === undefined)
      throw new UsageError(`--${flag} ${v[flag]} is not a duration (such as 90s, 15m, 2h or 7d).`);
    s[key] = ms;
  }
  for (const h of list("header")) {
    const eq = h.indexOf("=");
    if (eq <= 0) throw new UsageError(`--header ${h} is not name=value.`);
    (s.headers ??= {})[h.slice(0, eq)] = h.slice(eq + 1);
  }
  return s;
}

function isEmpty(s: Selection): boolean {
  return Object.keys(s).length === 0;
}

function count(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} takes a whole number of 1 or more, not "${String(value)}".`);
  return n;
}

/** The contract: --image (read, or converted by buf when not binary), --proto (built by buf), or the buf module here. */
async function loadRegistry(v: Values, io: DlqIo): Promise<Registry | undefined> {
  const image = v.image as string | undefined;
  const proto = v.proto as string | undefined;
  if (image !== undefined && proto !== undefined)
    throw new UsageError("give --image or --proto, not both.");
  let bytes: Uint8Array;
  if (image !== undefined) {
    const path = resolve(io.cwd, image);
    if (!existsSync(path) || statSync(path).isDirectory())
      throw new UsageError(
        `--image ${image}: no such file (build one with buf build -o image.binpb).`,
      );
    bytes = /\.(binpb|bin|pb)$/.test(path) ? readFileSync(path) : await runBufBuild(path, io.cwd);
  } else if (proto !== undefined) {
    const path = resolve(io.cwd, proto);
    if (!existsSync(path) || !statSync(path).isDirectory())
      throw new UsageError(`--proto ${proto}: no such folder.`);
    bytes = await runBufBuild(path, io.cwd);
  } else if (
    existsSync(resolve(io.cwd, "buf.yaml")) ||
    existsSync(resolve(io.cwd, "buf.work.yaml"))
  ) {
    bytes = await runBufBuild(".", io.cwd);
  } else {
    return undefined;
  }
  return registryFromImage(bytes);
}

async function connect(url: string): Promise<AmqpConnection> {
  try {
    return await AmqpConnection.connect({
      urls: url,
      name: "grabbit dlq",
      connectTimeoutMs: 10_000,
      reconnect: { maxAttempts: 2 },
      logger: silentLogger(),
    });
  } catch (err) {
    throw new UsageError(
      `cannot connect to RabbitMQ at ${redactUrl(url)}: ${(err as Error).message}`,
    );
  }
}

function sentence(err: Error): string {
  const text = err instanceof StatusError ? err.rawMessage : err.message;
  return /[.!?)]$/.test(text) ? text : `${text}.`;
}

/** A progress bar on stderr, drawn only on a terminal and only once a replay has taken a moment (half a second). */
export function progressBar(
  io: Pick<DlqIo, "isTTY" | "stderr">,
  clock: () => number = Date.now,
): { update(p: ReplayProgress): void; done(): void } {
  if (!io.isTTY) return { update() {}, done() {} };
  const start = clock();
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = clock();
      if (now - start < 500 || now - last < 100 || p.total === 0) return;
      last = now;
      shown = true;
      const width = 30;
      const filled = Math.min(width, Math.round((p.examined / p.total) * width));
      io.stderr(
        `\r\x1b[2Kreplaying [${"#".repeat(filled)}${".".repeat(width - filled)}] ${p.examined}/${p.total} examined, ${p.replayed} replayed${p.failed ? `, ${p.failed} failed` : ""}`,
      );
    },
    done() {
      if (shown) io.stderr("\r\x1b[2K");
    },
  };
}

/** The terminal prompt used when stdin is a terminal. */
export function terminalPrompt(): DlqIo["prompt"] {
  if (!process.stdin.isTTY) return undefined;
  return async (question) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return await rl.question(question);
    } finally {
      rl.close();
    }
  };
}
