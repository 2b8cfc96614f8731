// `npm run demo -- --chaos` as a user runs it: the three services as processes, the Processor killed
// with SIGKILL mid-batch and started again on the same database; the demo's own exactly-once check
// (one decision and one outbox report per request in the Processor's database, each report counted
// once by the Reporter) must pass. Once with PostgreSQL and gRPC, once with PGlite and RPC over
// RabbitMQ, each on a vhost of its own (no other run's Processor may serve its RabbitMQ calls).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "@grabbit/runtime/outbox";
import { privateVhost } from "../support/broker.js";
import { REPO } from "../support/buf.js";
import { PG_URL } from "../outbox/support.js";
import { generateExamples } from "./generate.js";

const id = randomBytes(4).toString("hex");
const VHOST = `grabbit-example-chaos-${id}`;
const SCHEMA = `example_chaos_${id}`;
const DB_DIR = join(REPO, ".tmp", `chaos-db-${id}`);
let vhost: Awaited<ReturnType<typeof privateVhost>> | undefined;
let vhostUrl: string;

function runDemo(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    TSX_TSCONFIG_PATH: join(REPO, "test/examples/tsconfig.runtime-src.json"),
    ...env,
  };
  for (const name of Object.keys(childEnv)) if (name.startsWith("OTEL_")) delete childEnv[name];
  for (const name of ["REPORTER_QUEUE", "EXAMPLE_PG_URL", "EXAMPLE_DB_DIR", "EXAMPLE_PG_SCHEMA"])
    if (!(name in env)) delete childEnv[name];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "examples/demo.ts", ...args], {
      cwd: REPO,
      env: childEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    // A bound, not a wait: the run normally ends in well under a minute.
    const timer = setTimeout(() => child.kill("SIGKILL"), 170_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  generateExamples();
  vhost = await privateVhost(VHOST);
  vhostUrl = vhost.url;
}, 240_000);

afterAll(async () => {
  await vhost?.remove().catch(() => {});
  rmSync(DB_DIR, { recursive: true, force: true });
  const db = await openDatabase(PG_URL);
  await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
  await db.close();
}, 240_000);

/** The demo's output, checked: the kill happened mid-batch, and every request was decided and reported once. */
function expectExactlyOnce(
  run: { code: number | null; stdout: string; stderr: string },
  count: number,
): void {
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
  const killed =
    /chaos: SIGKILL to the Processor \(pid (\d+)\) after (\d+) of (\d+) requests were accepted/.exec(
      run.stdout,
    );
  expect(killed, run.stdout).not.toBeNull();
  expect(Number(killed![2])).toBeLessThan(count);
  const back = /chaos: the Processor is back \(pid (\d+)\)/.exec(run.stdout);
  expect(back, run.stdout).not.toBeNull();
  expect(back![1]).not.toBe(killed![1]);
  expect(run.stdout).toContain(`${count} requests sent through REST, ${count} decided, 0 failed`);
  const once =
    /exactly once: (\d+) of (\d+) requests decided in the Processor's database, (\d+) with exactly one report in its outbox; \d+ repeated processRequest calls found their decision made; the Reporter counted (\d+) reports once each/.exec(
      run.stdout,
    );
  expect(once, run.stdout).not.toBeNull();
  expect(once!.slice(1, 5).map(Number)).toEqual([count, count, count, count]);
  expect(run.stdout).toMatch(/demo: OK, .* exactly once each, across a SIGKILL of the Processor/);
  // Then the dead-letter story (examples/late-key.ts): listed with its reason, replayed, counted once.
  const listed =
    /grabbit dlq list (\S+) --id (report-late-[\da-f]+)\n {4}dead-letter queue "\1": 1 message ready, 0 consumers\n {4}#1 {2}\2 {2}example\.v1\.RequestReported {2}attempts 1\n {8}reason: {2}\[UNAUTHENTICATED\] report late-[\da-f]+ refused: invalid token: no key in the key set matches the token\n/.exec(
      run.stdout,
    );
  expect(listed, run.stdout).not.toBeNull();
  expect(run.stdout).toMatch(
    new RegExp(
      `grabbit dlq replay \\S+ --id ${listed![2]} --to-queue \\S+\\n {4}replayed 1 of 1 matching message`,
    ),
  );
  expect(run.stdout).toMatch(
    /the Reporter accepted the replayed report and counted it once \(now \d+ reports, \d+ duplicates\); it is no longer in "\S+\.dlq"/,
  );
  expect(run.stdout).toMatch(
    /the report of the late key replayed from the dead-letter queue and counted once$/m,
  );
}

describe("npm run demo -- --chaos", () => {
  it("PostgreSQL, Processor over gRPC: SIGKILL mid-batch, every request decided once and reported once", async () => {
    const count = 30;
    const run = await runDemo(["--chaos", "--count", String(count), "--seed", "5"], {
      AMQP_URL: vhostUrl,
      BRIDGE_AMQP_URL: vhostUrl,
      PROCESSOR_AMQP_URL: vhostUrl,
      REPORTER_AMQP_URL: vhostUrl,
      EXAMPLE_PG_URL: PG_URL,
      EXAMPLE_PG_SCHEMA: SCHEMA,
    });
    expectExactlyOnce(run, count);
    // The decisions are in PostgreSQL, one per request of the run.
    const db = await openDatabase(PG_URL);
    try {
      const { rows } = await db.query(
        `SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS d FROM ${SCHEMA}.decisions`,
      );
      expect(rows[0]).toEqual({ n: count, d: count });
      const sent = await db.query(
        `SELECT count(*)::int AS n FROM ${SCHEMA}.outbox WHERE sent_at IS NOT NULL`,
      );
      expect(sent.rows[0].n).toBe(count);
    } finally {
      await db.close();
    }
  }, 200_000);

  it("PGlite, Processor over RabbitMQ: SIGKILL mid-batch, every request decided once and reported once", async () => {
    const count = 24;
    const run = await runDemo(["--chaos", "--amqp", "--count", String(count), "--seed", "6"], {
      AMQP_URL: vhostUrl,
      BRIDGE_AMQP_URL: vhostUrl,
      PROCESSOR_AMQP_URL: vhostUrl,
      REPORTER_AMQP_URL: vhostUrl,
      EXAMPLE_DB_DIR: DB_DIR,
    });
    expectExactlyOnce(run, count);
  }, 200_000);
});
