// grabbit's errors: one base class for every failure the CLI reports as a sentence rather than a stack
// trace. Each subclass has a `name` (it shows in stack traces and logs), an `exitCode` (what the CLI
// exits with, per the SPEC: 1 for bad usage or input and failed steps; 100 is not an error, it is a
// report with breaking changes) and, where it wraps another failure, the standard `cause`.
// The dispatcher (cli/main.ts) prints `grabbit <command>: <message>` and exits with `exitCode` for any
// GrabbitError that a command lets through; anything else is a bug and keeps its stack trace.

/** The CLI's exit statuses (SPEC "Governance CLI"): 0 nothing breaking, 100 breaking, 1 bad usage or input. */
export const EXIT = { OK: 0, USAGE: 1, BREAKING: 100 } as const;

export class GrabbitError extends Error {
  /** What the CLI exits with when this error reaches it. */
  readonly exitCode: number = EXIT.USAGE;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Bad usage or input (a flag, an input buf cannot build, a file that is not there): exit 1. */
export class InputError extends GrabbitError {}

/** A configuration file (buf.yaml, buf.work.yaml, grabbit.yaml) that cannot be used: exit 1. Input too. */
export class ConfigError extends InputError {}

/** A failed step of `grabbit release` (generate, compile, pack, publish): exit 1. */
export class ReleaseError extends GrabbitError {}

// Set on the prototypes (not as fields) so the name is there before the constructor captures the stack.
const NAMES: Array<[typeof GrabbitError, string]> = [
  [GrabbitError, "GrabbitError"],
  [InputError, "InputError"],
  [ConfigError, "ConfigError"],
  [ReleaseError, "ReleaseError"],
];
for (const [cls, name] of NAMES)
  Object.defineProperty(cls.prototype, "name", { value: name, writable: true, configurable: true });
