// A private RabbitMQ node for tests that must configure the broker (TLS listeners): its own node
// name, ports, data, logs and Erlang cookie in a temp dir, so the shared broker is never touched.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SBIN = "/usr/lib/rabbitmq/bin";

export interface PrivateBroker {
  node: string;
  dir: string;
  amqpPort: number;
  tlsPort: number;
  /** rabbitmqctl against this node, e.g. ctl("add_user", ...). */
  ctl(...args: string[]): Promise<{ ok: boolean; out: string }>;
  stop(): Promise<void>;
}

/** A port nobody listens on now (the kernel picks it; a race with another process is unlikely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ ok: !err, out: `${stdout}${stderr}` }),
    );
  });
}

export interface TlsFiles {
  cacertfile: string;
  certfile: string;
  keyfile: string;
  /** verify_peer + fail_if_no_peer_cert: clients must present a certificate the CA signed. */
  requireClientCert: boolean;
  /** Also offer SASL EXTERNAL: a client may log in as its certificate's common name. */
  certificateLogin?: boolean;
}

/**
 * Starts a node with a plain listener and a TLS listener on free loopback ports. Rejects with the
 * node's own output when it cannot start (missing rabbitmq-server, no epmd, port clash...).
 */
export async function startPrivateBroker(tls: TlsFiles): Promise<PrivateBroker> {
  if (!existsSync(join(SBIN, "rabbitmq-server")))
    throw new Error(
      `cannot start a private RabbitMQ node: ${SBIN}/rabbitmq-server is not installed`,
    );
  const dir = mkdtempSync(join(tmpdir(), "grabbit-rmq-"));
  const node = `grabbit-tls-${randomBytes(4).toString("hex")}@localhost`;
  const [amqpPort, tlsPort, distPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(
    join(dir, "rabbitmq.conf"),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
      `ssl_options.cacertfile = ${tls.cacertfile}`,
      `ssl_options.certfile = ${tls.certfile}`,
      `ssl_options.keyfile = ${tls.keyfile}`,
      `ssl_options.verify = ${tls.requireClientCert ? "verify_peer" : "verify_none"}`,
      `ssl_options.fail_if_no_peer_cert = ${tls.requireClientCert}`,
      // guest may only log in over loopback, which is where this node listens.
      "loopback_users.guest = true",
      ...(tls.certificateLogin
        ? [
            "auth_mechanisms.1 = PLAIN",
            "auth_mechanisms.2 = AMQPLAIN",
            "auth_mechanisms.3 = EXTERNAL",
            "ssl_cert_login_from = common_name",
          ]
        : []),
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "enabled_plugins"),
    tls.certificateLogin ? "[rabbitmq_auth_mechanism_ssl].\n" : "[].\n",
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The Erlang cookie lives in $HOME: a private one, so neither root's nor the shared node's is touched.
    HOME: dir,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, "advanced.config"),
    RABBITMQ_CONF_ENV_FILE: join(dir, "rabbitmq-env.conf"),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_PID_FILE: join(dir, "node.pid"),
  };
  const logFile = join(dir, "log", `${node}.log`);
  const child: ChildProcess = spawn(join(SBIN, "rabbitmq-server"), [], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const ctl = (...args: string[]) => run(join(SBIN, "rabbitmqctl"), ["-n", node, ...args], env);

  const stop = async () => {
    await ctl("stop");
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // `wait` returns once the node runs, or fails when the OS process dies first.
  const waited = await Promise.race([
    ctl("wait", "--timeout", "110", join(dir, "node.pid")),
    exited.then((code) => ({ ok: false, out: `rabbitmq-server exited with ${code}` })),
  ]);
  if (!waited.ok) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    await stop().catch(() => {});
    throw new Error(
      `the private RabbitMQ node ${node} did not start: ${waited.out.trim()}\n${output.slice(-3000)}${log.slice(-2000)}`,
    );
  }
  return { node, dir, amqpPort, tlsPort, ctl, stop };
}
