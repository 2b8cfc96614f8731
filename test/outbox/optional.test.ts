// pg and PGlite are optional peers: the runtime, its outbox entry included, must install and import
// without them, and opening a database then fails with a message naming the package to install.
// The runtime is built into a folder outside the repo whose node_modules has everything but them.
import { execFileSync } from "node:child_process";
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  mkdirSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO } from "./support.js";

const dir = mkdtempSync(join(tmpdir(), "grabbit-noopt-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const OPTIONAL =
  /^(pg|pg-.*|pgpass|postgres-.*|@electric-sql|@grabbit|\.bin|\.package-lock\.json)$/;

describe("optional database packages", () => {
  it("runtime/package.json declares them as optional peers, not dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "runtime/package.json"), "utf8"));
    for (const name of ["pg", "@electric-sql/pglite"]) {
      expect(pkg.dependencies?.[name]).toBeUndefined();
      expect(pkg.peerDependencies?.[name]).toBeDefined();
      expect(pkg.peerDependenciesMeta?.[name]?.optional).toBe(true);
    }
    expect(pkg.exports["./outbox"]).toEqual({
      types: "./dist/outbox/index.d.ts",
      default: "./dist/outbox/index.js",
    });
  });

  it("the built runtime imports without pg and PGlite, and says which package a database needs", {
    timeout: 120_000,
  }, () => {
    const runtime = join(dir, "node_modules/@grabbit/runtime");
    mkdirSync(runtime, { recursive: true });
    execFileSync(
      join(REPO, "node_modules/.bin/tsc"),
      ["-p", join(REPO, "runtime"), "--outDir", join(runtime, "dist")],
      { stdio: "pipe" },
    );
    cpSync(join(REPO, "runtime/package.json"), join(runtime, "package.json"));
    for (const name of readdirSync(join(REPO, "node_modules"))) {
      if (!OPTIONAL.test(name))
        symlinkSync(join(REPO, "node_modules", name), join(dir, "node_modules", name));
    }
    writeFileSync(
      join(dir, "probe.mjs"),
      `await import("@grabbit/runtime"); await import("@grabbit/runtime/amqp");
       const ob = await import("@grabbit/runtime/outbox");
       const out = { exports: Object.keys(ob).sort(), errors: [] };
       for (const url of ["postgres://nobody@127.0.0.1/none", "memory:"]) {
         try { await ob.openDatabase(url); out.errors.push("opened"); } catch (e) { out.errors.push(e.message); }
       }
       console.log(JSON.stringify(out));`,
    );
    const out = JSON.parse(
      execFileSync(process.execPath, ["probe.mjs"], { cwd: dir, encoding: "utf8" }),
    );
    expect(out.exports).toContain("Outbox");
    expect(out.exports).toContain("idempotent");
    expect(out.errors).toEqual([
      'PostgreSQL needs the optional package "pg": npm install pg',
      'the embedded database needs the optional package "@electric-sql/pglite": npm install @electric-sql/pglite',
    ]);
  });
});
