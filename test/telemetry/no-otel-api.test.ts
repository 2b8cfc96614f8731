// The runtime without its optional peer @opentelemetry/api: it loads, calls work, nothing is
// traced, and failure logs still name the caller's trace.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

describe("without @opentelemetry/api installed", () => {
  it("gRPC calls work and the telemetry helpers are no-ops", async () => {
    const { stdout } = await run(
      process.execPath,
      [
        "--require",
        here("./fixtures/hide-otel-api.cjs"),
        "--import",
        "tsx",
        here("./fixtures/no-otel-api.ts"),
      ],
      {
        cwd: here("../.."),
        timeout: 30_000,
      },
    );
    const out = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(out).toMatchObject({
      api: false,
      tracer: false,
      meter: false,
      extracted: false,
      injected: {},
      echoedTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      failCode: out["unknown"],
      ids: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" },
    });
    expect(out["logs"]).toEqual([
      expect.objectContaining({
        level: "error",
        method: "/t.v1.S/Fail",
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
      }),
    ]);
  });

  it("the hook really hides the API (the check above is not vacuous)", async () => {
    const script =
      "try { require('@opentelemetry/api'); console.log('found') } catch { console.log('hidden') }";
    const hidden = await run(process.execPath, [
      "--require",
      here("./fixtures/hide-otel-api.cjs"),
      "-e",
      script,
    ]);
    const visible = await run(process.execPath, ["-e", script], { cwd: here("../..") });
    expect(hidden.stdout.trim()).toBe("hidden");
    expect(visible.stdout.trim()).toBe("found");
  });
});
