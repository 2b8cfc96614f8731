// The runtime's logger: pino's interface, so that pino itself (or any logger of the same shape) plugs
// in, and a small default that needs no dependency. The default writes warnings and errors to stderr
// as one JSON object per line, so that no failure in a server, consumer or relay goes unseen.
//
// Field names follow pino's: `level`, `time` (epoch ms), `msg`, an Error under `err` as
// {type, message, stack}; trace correlation as `trace_id` and `span_id` (OpenTelemetry's log names).

/** One level method: `(fields, message?)` or `(message)`, as in pino. */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

/** pino's logger shape, reduced to what the runtime calls. A pino instance is one. */
export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger that adds `bindings` to every record. */
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

const LEVELS: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};
const METHODS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

export interface JsonLoggerOptions {
  /** The lowest level written. Default: GRABBIT_LOG_LEVEL, else "warn". */
  level?: LogLevel;
  /** Where each line goes (with its trailing newline). Default: process.stderr. */
  write?: (line: string) => void;
  /** Fields on every record. */
  bindings?: Record<string, unknown>;
}

/** A LogLevel from a string such as GRABBIT_LOG_LEVEL, or undefined when it is not one. */
export function parseLogLevel(value: string | undefined): LogLevel | undefined {
  if (value === undefined) return undefined;
  const level = value.trim().toLowerCase();
  return Object.hasOwn(LEVELS, level) ? (level as LogLevel) : undefined;
}

function writeStderr(line: string): void {
  process.stderr.write(line);
}

function noop(): void {}

/** A logger that writes each record at or above `level` as one JSON line. */
export function createJsonLogger(options: JsonLoggerOptions = {}): Logger {
  const level = options.level ?? parseLogLevel(process.env["GRABBIT_LOG_LEVEL"]) ?? "warn";
  return new JsonLogger(LEVELS[level], options.write ?? writeStderr, options.bindings ?? {});
}

class JsonLogger implements Logger {
  trace: LogFn = noop;
  debug: LogFn = noop;
  info: LogFn = noop;
  warn: LogFn = noop;
  error: LogFn = noop;
  fatal: LogFn = noop;

  constructor(
    private readonly threshold: number,
    private readonly write: (line: string) => void,
    private readonly bindings: Record<string, unknown>,
  ) {
    // Levels below the threshold stay no-ops: a disabled debug() costs a call, nothing more.
    for (const name of METHODS) {
      if (LEVELS[name] >= threshold)
        this[name] = (obj: object | string, msg?: string) => this.emit(name, obj, msg);
    }
  }

  child(bindings: Record<string, unknown>): Logger {
    return new JsonLogger(this.threshold, this.write, { ...this.bindings, ...bindings });
  }

  private emit(level: LogLevel, obj: object | string, msg: string | undefined): void {
    const record: Record<string, unknown> = { level, time: Date.now() };
    let fields: object | undefined;
    if (typeof obj === "string") msg = obj;
    else if (obj instanceof Error) {
      // pino's convention: logger.error(err) logs it under `err`, its message as msg.
      fields = { err: obj };
      msg ??= obj.message;
    } else fields = obj;
    if (msg !== undefined) record["msg"] = msg;
    Object.assign(record, this.bindings, fields);
    // A field may not replace what makes the record a record.
    record["level"] = level;
    if (msg !== undefined) record["msg"] = msg;
    this.write(`${stringify(record)}\n`);
  }
}

/** JSON that never throws: Errors as {type, message, stack}, bigints as strings, cycles cut. */
function stringify(record: Record<string, unknown>): string {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(record, (_key, value: unknown) => {
      if (typeof value === "bigint") return value.toString();
      if (value instanceof Error) return serializeError(value);
      if (typeof value === "object" && value !== null) {
        if (seen.has(value)) return "[Circular]";
        seen.add(value);
      }
      return value;
    });
  } catch (err) {
    // A toJSON that throws, say: still write one line that says what happened.
    return JSON.stringify({
      level: record["level"],
      time: record["time"],
      msg: record["msg"],
      logError: `record not serializable: ${String(err)}`,
    });
  }
}

function serializeError(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  // Own scalar fields such as `code` (StatusError, Node errors), and the cause chain. Objects (a
  // StatusError's metadata and details) stay out: they may carry what a log must not.
  for (const key of Object.keys(err)) {
    const value = (err as unknown as Record<string, unknown>)[key];
    if (
      !(key in out) &&
      (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
    )
      out[key] = value;
  }
  if (err.cause !== undefined)
    out["cause"] = err.cause instanceof Error ? serializeError(err.cause) : err.cause;
  return out;
}

const SILENT: Logger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  fatal: noop,
  child: () => SILENT,
};

/** A logger that drops everything (for tests, or code that reports through onError alone). */
export function silentLogger(): Logger {
  return SILENT;
}

let fallback: Logger | undefined;

/**
 * The logger used where none is given: JSON lines on stderr from GRABBIT_LOG_LEVEL (default warn),
 * made on first use so that the variable may be set after the runtime is imported.
 */
export function defaultLogger(): Logger {
  return (fallback ??= createJsonLogger());
}
