// The runtime's logger: the JSON-lines default (stderr, warn and above unless told otherwise), the
// silent one, and pino itself plugged in through the same interface.
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import { createJsonLogger, defaultLogger, silentLogger, type Logger } from "@grabbit/runtime";
import { parseLogLevel } from "@grabbit/runtime/telemetry";
import { StatusError, Code } from "@grabbit/runtime";

function capture(): {
  lines: string[];
  write: (line: string) => void;
  records: () => Record<string, unknown>[];
} {
  const lines: string[] = [];
  return {
    lines,
    write: (line) => lines.push(line),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Runs `fn` with process.stderr.write recording what is written (and not printing it). */
function withStderr(fn: () => void): string {
  const original = process.stderr.write;
  let out = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = original;
  }
  return out;
}

const savedLevel = process.env["GRABBIT_LOG_LEVEL"];
afterEach(() => {
  if (savedLevel === undefined) delete process.env["GRABBIT_LOG_LEVEL"];
  else process.env["GRABBIT_LOG_LEVEL"] = savedLevel;
});

describe("JSON logger", () => {
  it("writes warn and above by default, one JSON object per line", () => {
    delete process.env["GRABBIT_LOG_LEVEL"];
    const out = capture();
    const log = createJsonLogger({ write: out.write });
    log.debug("not shown");
    log.info({ a: 1 }, "not shown either");
    log.warn({ queue: "orders", attempt: 2 }, "retrying");
    log.error("plain message");
    log.fatal({ node: "rabbit@1" }, "gone");
    expect(out.lines).toHaveLength(3);
    for (const line of out.lines) {
      expect(line.endsWith("\n")).toBe(true);
      expect(line.indexOf("\n")).toBe(line.length - 1);
    }
    const [warn, error, fatal] = out.records();
    expect(warn).toMatchObject({ level: "warn", msg: "retrying", queue: "orders", attempt: 2 });
    expect(typeof warn!["time"]).toBe("number");
    expect(Math.abs((warn!["time"] as number) - Date.now())).toBeLessThan(5000);
    expect(error).toMatchObject({ level: "error", msg: "plain message" });
    expect(fatal).toMatchObject({ level: "fatal", msg: "gone", node: "rabbit@1" });
  });

  it("takes its level from the option, else GRABBIT_LOG_LEVEL", () => {
    const out = capture();
    createJsonLogger({ level: "debug", write: out.write }).debug("shown");
    process.env["GRABBIT_LOG_LEVEL"] = "ERROR";
    const log = createJsonLogger({ write: out.write });
    log.warn("hidden");
    log.error("shown too");
    process.env["GRABBIT_LOG_LEVEL"] = "silent";
    createJsonLogger({ write: out.write }).fatal("hidden as well");
    expect(out.records().map((r) => r["msg"])).toEqual(["shown", "shown too"]);
    expect(parseLogLevel(" Info ")).toBe("info");
    expect(parseLogLevel("loud")).toBeUndefined();
  });

  it("serializes errors under err with type, message, stack, code and cause, without their metadata", () => {
    const out = capture();
    const log = createJsonLogger({ write: out.write });
    const cause = new TypeError("inner");
    const err = new StatusError(Code.INTERNAL, "broken", {
      cause,
      metadata: { authorization: "Bearer secret" },
    });
    log.error({ err, method: "/a.B/C" }, "handler failed");
    log.error(new RangeError("direct"));
    const [first, second] = out.records();
    const e = first!["err"] as Record<string, unknown>;
    expect(e["type"]).toBe("StatusError");
    expect(e["code"]).toBe(Code.INTERNAL);
    expect(String(e["message"])).toContain("broken");
    expect(String(e["stack"])).toContain("logger.test.ts");
    expect((e["cause"] as Record<string, unknown>)["message"]).toBe("inner");
    expect(out.lines[0]).not.toContain("secret");
    expect(second).toMatchObject({
      level: "error",
      msg: "direct",
      err: { type: "RangeError", message: "direct" },
    });
  });

  it("child loggers add their bindings; fields cannot overwrite level or msg; cycles do not throw", () => {
    const out = capture();
    const log = createJsonLogger({ write: out.write, bindings: { service: "processor" } }).child({
      component: "consumer",
    });
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic["self"] = cyclic;
    log.warn({ level: "trace", msg: "fake", data: cyclic, big: 10n }, "real");
    const [record] = out.records();
    expect(record).toMatchObject({
      level: "warn",
      msg: "real",
      service: "processor",
      component: "consumer",
      big: "10",
    });
    expect((record!["data"] as Record<string, unknown>)["self"]).toBe("[Circular]");
  });

  it("the default logger writes to stderr", () => {
    delete process.env["GRABBIT_LOG_LEVEL"];
    const written = withStderr(() => {
      createJsonLogger().warn({ queue: "q" }, "to stderr");
      defaultLogger().error({ method: "/x.Y/Z" }, "default one");
      defaultLogger().info("below the default level");
    });
    const records = written
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toEqual([
      expect.objectContaining({ level: "warn", msg: "to stderr", queue: "q" }),
      expect.objectContaining({ level: "error", msg: "default one", method: "/x.Y/Z" }),
    ]);
    expect(defaultLogger()).toBe(defaultLogger());
  });

  it("the silent logger writes nothing", () => {
    const written = withStderr(() => {
      const log = silentLogger();
      log.fatal("nothing");
      log.child({ a: 1 }).error({ b: 2 }, "nothing either");
    });
    expect(written).toBe("");
  });
});

describe("pino as the logger", () => {
  it("a pino instance is a Logger and keeps its own format", () => {
    const chunks: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString("utf8"));
        done();
      },
    });
    const logger: Logger = pino({ level: "info" }, sink);
    logger
      .child({ component: "grpc-server" })
      .error({ method: "/a.B/C", err: new Error("boom") }, "handler failed");
    logger.debug("below pino's level");
    const records = chunks
      .join("")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      level: 50,
      msg: "handler failed",
      component: "grpc-server",
      method: "/a.B/C",
      err: { type: "Error", message: "boom" },
    });
  });
});
