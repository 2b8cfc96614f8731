// Shared pieces of the outbox, crash and load tests: the test PostgreSQL, table names that cannot
// clash between files, child processes run from TypeScript source, and a small polling helper.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll } from "vitest";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { openDatabase, type Database } from "@grabbit/runtime/outbox";
import { Janitor } from "../amqp/fixtures.js";

/** The test database: PostgreSQL 15 with trust auth on this machine and in CI. */
export const PG_URL = process.env.GRABBIT_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export function pgDatabase(poolSize = 10): Promise<Database> {
  return openDatabase(PG_URL, { poolSize });
}

/** A SQL-safe table name unique to this run, such as "outbox_3f9a1c2e". */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString("hex")}`;
}

export const REPO = fileURLToPath(new URL("../..", import.meta.url));

export interface Child {
  readonly proc: ChildProcess;
  /** Resolves with the exit code, or the signal name when killed. */
  readonly exited: Promise<number | string>;
  /** Lines the child printed, as they came. */
  readonly lines: string[];
  kill9(): void;
}

/**
 * Runs a TypeScript file under tsx in its own process; stdout lines are collected, stderr passed
 * through. The child calls exitWithParent() (child-support.ts) so that no child outlives a killed test run.
 */
export function runChild(script: string, env: Record<string, string>): Child {
  const proc = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: REPO,
    env: { ...process.env, ...env },
    // stdin stays open for the child's life: when this process dies, it closes and the child exits.
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines: string[] = [];
  let buffered = "";
  proc.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    lines.push(...parts.filter((l) => l.length > 0));
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => resolve(signal ?? code ?? -1)),
  );
  return { proc, exited, lines, kill9: () => void proc.kill("SIGKILL") };
}

/** Waits until `check` holds; the limit only bounds a broken run, nothing is asserted on time. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 120_000,
): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * What each outbox test file sets up and tears down: the test database, a broker connection named
 * `name`, and after every test its closers (newest first), declared queues and tables dropped.
 * Call once at the top of a file; `db` and `conn` are there from the first test on.
 */
export function outboxTestContext(name: string, beforeCleanup: () => void = () => {}) {
  const ctx = {
    db: undefined as unknown as Database,
    conn: undefined as unknown as AmqpConnection,
    janitor: new Janitor(),
    closers: [] as (() => Promise<unknown>)[],
    tables: [] as string[],
  };
  beforeAll(async () => {
    ctx.db = await pgDatabase();
    ctx.conn = await AmqpConnection.connect({ name });
  });
  afterEach(async () => {
    beforeCleanup();
    for (const c of ctx.closers.splice(0).reverse()) await c().catch(() => {});
    await ctx.janitor.cleanup();
    for (const t of ctx.tables.splice(0)) await ctx.db.query(`DROP TABLE IF EXISTS ${t}`);
  });
  afterAll(async () => {
    await ctx.conn.close();
    await ctx.db.close();
  });
  return ctx;
}
