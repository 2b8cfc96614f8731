// One command-line parser for every grabbit command (node:util parseArgs): each command declares its
// flags once; unknown flags, missing values and extra arguments come back as one sentence, and
// repeatable flags also take comma lists where buf's do (--use A,B).
import { parseArgs, type ParseArgsConfig } from "node:util";

export interface FlagSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  short?: string;
  /** Split each value on commas (repeatable flags only). */
  commas?: boolean;
}

export interface CommandSpec {
  name: string;
  flags: Record<string, FlagSpec>;
  /** How many positional arguments the command takes at most, and what they are called. */
  positionals: { max: number; what: string };
}

export type Parsed =
  | { help: true }
  | {
      help: false;
      values: Record<string, string | boolean | string[] | undefined>;
      positionals: string[];
    };

/** Parses argv for a command; a string is the sentence saying what is wrong. `--help`/`-h` always works. */
export function parseCommand(spec: CommandSpec, argv: string[]): Parsed | string {
  const options: NonNullable<ParseArgsConfig["options"]> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, f] of Object.entries(spec.flags))
    options[name] = {
      type: f.type,
      ...(f.multiple ? { multiple: true } : {}),
      ...(f.short ? { short: f.short } : {}),
    };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    if (argv.includes("--help") || argv.includes("-h")) return { help: true };
    return sentence(err as Error & { code?: string }, spec);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (values.help) return { help: true };
  for (const [name, f] of Object.entries(spec.flags)) {
    const v = values[name];
    if (f.type !== "string" || v === undefined) continue;
    const list = (Array.isArray(v) ? v : [v]) as string[];
    if (list.some((x) => x === "")) return `--${name} needs a value.`;
    if (f.commas)
      values[name] = list
        .flatMap((x) => x.split(","))
        .map((x) => x.trim())
        .filter(Boolean);
  }
  if (parsed.positionals.length > spec.positionals.max) {
    const extra = parsed.positionals[spec.positionals.max]!;
    return spec.positionals.max === 0
      ? `unexpected argument "${extra}" (${spec.name} takes flags only).`
      : `unexpected argument "${extra}" (${spec.positionals.what}).`;
  }
  return { help: false, values, positionals: parsed.positionals };
}

function sentence(err: Error & { code?: string }, spec: CommandSpec): string {
  const flag = /'(-{1,2}[^' <]+)/.exec(err.message)?.[1];
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag "${flag ?? err.message}".`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return flag && spec.flags[flag.replace(/^-+/, "")]?.type === "boolean"
        ? `${flag} takes no value.`
        : `${flag ?? "a flag"} needs a value.`;
    default:
      return err.message.split(". ")[0]!.replace(/\.$/, "") + ".";
  }
}
