// A real npm registry on loopback for the release tests: verdaccio in a temporary folder, nothing
// proxied (no uplinks: it serves only what a test publishes), with one user made the way `npm adduser`
// makes one. Its token goes into an npmrc that npm children of the test read (npm_config_userconfig).
// `stop()` puts that variable back, stops verdaccio and removes the folder.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "./buf.js";

export interface LoopbackRegistry {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The registry's temporary folder; tests may keep their own scratch files in it. */
  home: string;
  stop(): Promise<void>;
}

/** Runs a command, its output as text; a failure throws with the command, stdout and stderr. */
export function sh(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(" ")} failed:\n${e.stdout ?? ""}\n${e.stderr ?? e.message}`,
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts verdaccio and makes a publishing user; `prefix` names the temporary folder. */
export async function startRegistry(prefix: string): Promise<LoopbackRegistry> {
  const home = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  writeFileSync(
    join(home, "config.yaml"),
    `storage: ${join(home, "storage")}
auth:
  htpasswd:
    file: ${join(home, "htpasswd")}
    max_users: 10
uplinks: {}
packages:
  "@*/*":
    access: $all
    publish: $authenticated
  "**":
    access: $all
    publish: $authenticated
max_body_size: 200mb
log: { type: stdout, format: pretty, level: warn }
`,
  );
  const verdaccio = spawn(
    process.execPath,
    [
      join(REPO, "node_modules/verdaccio/bin/verdaccio"),
      "--config",
      join(home, "config.yaml"),
      "--listen",
      `127.0.0.1:${port}`,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let log = "";
  verdaccio.stdout!.on("data", (d) => (log += d));
  verdaccio.stderr!.on("data", (d) => (log += d));
  const savedUserconfig = process.env.npm_config_userconfig;
  const stop = async () => {
    if (savedUserconfig === undefined) delete process.env.npm_config_userconfig;
    else process.env.npm_config_userconfig = savedUserconfig;
    if (verdaccio.exitCode === null) {
      const exited = new Promise((r) => verdaccio.once("exit", r));
      verdaccio.kill("SIGTERM");
      await exited;
    }
    rmSync(home, { recursive: true, force: true });
  };
  try {
    // Readiness, not a timing assertion: poll until verdaccio answers or has clearly failed to start.
    for (let i = 0; ; i++) {
      if (verdaccio.exitCode !== null) throw new Error(`verdaccio exited:\n${log}`);
      if (i >= 300) throw new Error(`verdaccio did not answer on ${url}:\n${log}`);
      try {
        if ((await fetch(`${url}/-/ping`)).ok) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const res = await fetch(`${url}/-/user/org.couchdb.user:releaser`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name: "releaser",
        password: "release-test-pw",
        type: "user",
        roles: [],
      }),
    });
    const { token } = (await res.json()) as { token?: string };
    if (!token) throw new Error(`adduser answered ${res.status} without a token:\n${log}`);
    const npmrc = join(home, "npmrc");
    writeFileSync(npmrc, `//127.0.0.1:${port}/:_authToken=${token}\n`);
    process.env.npm_config_userconfig = npmrc;
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, home, stop };
}
