// A private three-node RabbitMQ cluster for the cluster tests, on its own ports, node names, data
// folders, Erlang cookie and epmd port: the shared broker on 5672 is never touched.
//
// Debian's wrappers on PATH switch to the rabbitmq user, so the package's own scripts are called
// directly (as root, which this machine and CI are). Each node gets an empty env file (the system one
// sets the node name), an empty plugins file, and a config that lists the three nodes for classic
// peer discovery, so the cluster forms at boot without stop_app/join_cluster/start_app.
//
// Used by test/cluster/*.test.ts, and from the shell by .ci/run:
//   node --import tsx test/support/cluster.ts start|stop|status
// `start` leaves the cluster running and prints where it is; tests that find GRABBIT_CLUSTER_DIR set
// reuse that cluster instead of starting their own.

import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface ClusterNode {
  index: number;
  name: string;
  port: number;
  distPort: number;
  url: string;
}

export interface ClusterOptions {
  /** Folder for data, logs, config and cookie. Default: $GRABBIT_CLUSTER_DIR or <tmp>/grabbit-cluster. */
  dir?: string;
  /** First AMQP port; the nodes take base, base+1, base+2. Default 47001. */
  basePort?: number;
  size?: number;
  /** Node names are <prefix><n>@localhost. Default "grabbit-c". */
  namePrefix?: string;
  /** A private epmd for these nodes. Default 47369. */
  epmdPort?: number;
}

/** The folder of the rabbitmq-server package's own scripts (not the PATH wrappers). */
export function rabbitmqScripts(): string {
  const roots = ["/usr/lib/rabbitmq/lib"];
  for (const root of roots) {
    if (!existsSync(root)) continue;
    const server = readdirSync(root)
      .filter((d) => d.startsWith("rabbitmq_server-"))
      .sort()
      .pop();
    if (server && existsSync(join(root, server, "sbin", "rabbitmq-server")))
      return join(root, server, "sbin");
  }
  throw new Error(
    "the private RabbitMQ cluster needs Debian's rabbitmq-server package (its scripts under /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin were not found): apt-get install rabbitmq-server",
  );
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export class Cluster {
  readonly dir: string;
  readonly nodes: ClusterNode[];
  private readonly sbin: string;
  private readonly epmdPort: number;

  constructor(options: ClusterOptions = {}) {
    this.dir = options.dir ?? process.env.GRABBIT_CLUSTER_DIR ?? join(tmpdir(), "grabbit-cluster");
    const base = options.basePort ?? 47001;
    const size = options.size ?? 3;
    this.sbin = rabbitmqScripts();
    this.epmdPort = options.epmdPort ?? 47369;
    const prefix = options.namePrefix ?? "grabbit-c";
    this.nodes = Array.from({ length: size }, (_, i) => ({
      index: i,
      name: `${prefix}${i + 1}@localhost`,
      port: base + i,
      distPort: base + 100 + i,
      url: `amqp://guest:guest@127.0.0.1:${base + i}`,
    }));
  }

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  private env(node?: ClusterNode): NodeJS.ProcessEnv {
    const d = this.dir;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: join(d, "home"),
      ERL_EPMD_PORT: String(this.epmdPort),
      RABBITMQ_CONF_ENV_FILE: join(d, "empty.env"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(d, "enabled_plugins"),
    };
    delete env.RABBITMQ_NODENAME;
    if (node) {
      const nd = join(d, `n${node.index + 1}`);
      Object.assign(env, {
        RABBITMQ_NODENAME: node.name,
        RABBITMQ_NODE_PORT: String(node.port),
        RABBITMQ_DIST_PORT: String(node.distPort),
        RABBITMQ_MNESIA_BASE: join(nd, "mnesia"),
        RABBITMQ_LOG_BASE: join(nd, "log"),
        RABBITMQ_CONFIG_FILE: join(d, "rabbitmq.conf"),
        RABBITMQ_PID_FILE: join(nd, "pid"),
      });
    }
    return env;
  }

  private prepare(fresh: boolean): void {
    const d = this.dir;
    if (fresh) rmSync(d, { recursive: true, force: true });
    mkdirSync(join(d, "home"), { recursive: true });
    const cookie = join(d, "home", ".erlang.cookie");
    if (!existsSync(cookie))
      writeFileSync(cookie, `GRABBITCLUSTER${process.pid}X${Date.now()}`, { mode: 0o400 });
    writeFileSync(join(d, "empty.env"), "");
    writeFileSync(join(d, "enabled_plugins"), "[].\n");
    const conf = [
      "loopback_users = none",
      "cluster_formation.peer_discovery_backend = classic_config",
      ...this.nodes.map((n, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${n.name}`),
      // A lost node is noticed within a few seconds instead of a minute.
      "net_ticktime = 10",
      "log.file.level = warning",
      "log.console = false",
      "",
    ].join("\n");
    writeFileSync(join(d, "rabbitmq.conf"), conf);
    for (const n of this.nodes) mkdirSync(join(d, `n${n.index + 1}`, "log"), { recursive: true });
  }

  /** The OS pid of a node, or undefined when it does not run. */
  pid(node: ClusterNode): number | undefined {
    const file = join(this.dir, `n${node.index + 1}`, "pid");
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  }

  /** Starts every node not running (fresh: wipes the data first) and waits until all are clustered. */
  async start(options: { fresh?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const fresh = options.fresh ?? false;
    if (fresh) await this.stop();
    this.prepare(fresh);
    await Promise.all(this.nodes.map((n) => this.startNode(n.index, { wait: false })));
    await this.awaitReady(options.timeoutMs ?? 90_000);
  }

  /** Starts one node's Erlang VM in the background. */
  async startNode(
    index: number,
    options: { wait?: boolean; timeoutMs?: number } = {},
  ): Promise<void> {
    const node = this.nodes[index]!;
    if (this.pid(node) === undefined) {
      const child = spawn(join(this.sbin, "rabbitmq-server"), [], {
        env: this.env(node),
        detached: true,
        stdio: "ignore",
      });
      child.unref();
    }
    if (options.wait ?? true) await this.awaitNode(node, options.timeoutMs ?? 60_000);
  }

  /** kill -9 of one node's VM: no goodbye to clients or peers. */
  kill(index: number): void {
    const node = this.nodes[index]!;
    const pid = this.pid(node);
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  }

  async ctl(node: ClusterNode, ...args: string[]): Promise<string> {
    const { stdout } = await run(join(this.sbin, "rabbitmqctl"), ["-n", node.name, ...args], {
      env: this.env(),
      timeout: 30_000,
    });
    return stdout;
  }

  private async awaitNode(node: ClusterNode, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (await portOpen(node.port)) {
        try {
          await this.ctl(node, "await_startup", "--timeout", "30");
          return;
        } catch {
          // not yet
        }
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new Error(
      `RabbitMQ node ${node.name} did not start on port ${node.port} within ${timeoutMs} ms; see ${join(this.dir, `n${node.index + 1}`, "log")}`,
    );
  }

  /** Every node up and every node seeing all the others as running. */
  async awaitReady(timeoutMs = 90_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    await Promise.all(this.nodes.map((n) => this.awaitNode(n, timeoutMs)));
    let last = "";
    while (Date.now() < until) {
      try {
        last = await this.ctl(this.nodes[0]!, "cluster_status", "--formatter", "json");
        const status = JSON.parse(last) as { running_nodes?: string[] };
        if (this.nodes.every((n) => status.running_nodes?.includes(n.name))) return;
      } catch (err) {
        last = String(err);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(
      `the private RabbitMQ cluster did not form within ${timeoutMs} ms (last status: ${last.slice(0, 300)})`,
    );
  }

  /** The node that leads a quorum queue (its index), from the queue's leader as the broker reports it. */
  async leaderOf(queue: string, vhost = "/"): Promise<number> {
    for (const n of this.nodes) {
      if (this.pid(n) === undefined) continue;
      try {
        const out = await this.ctl(
          n,
          "list_queues",
          "-p",
          vhost,
          "name",
          "leader",
          "--formatter",
          "json",
        );
        const rows = JSON.parse(out) as { name: string; leader: string }[];
        const row = rows.find((r) => r.name === queue);
        if (!row) throw new Error(`queue ${queue} not found`);
        const i = this.nodes.findIndex((x) => x.name === row.leader);
        if (i >= 0) return i;
      } catch {
        // try the next node
      }
    }
    throw new Error(`no running node knows the leader of queue ${queue}`);
  }

  /** Stops every node this harness started (by pid: kill -9, the data is disposable). */
  async stop(): Promise<void> {
    for (const n of this.nodes) this.kill(n.index);
    for (const n of this.nodes) {
      const until = Date.now() + 10_000;
      while (this.pid(n) !== undefined && Date.now() < until)
        await new Promise((r) => setTimeout(r, 100));
    }
    // epmd on the private port was started by the first node; it holds no state worth keeping.
    try {
      await run("epmd", ["-port", String(this.epmdPort), "-kill"], { timeout: 5_000 });
    } catch {
      // not running, or not on PATH
    }
  }
}

// The shell entry: .ci/run starts the cluster once for the whole test run.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const cmd = process.argv[2];
  const cluster = new Cluster();
  const main = async () => {
    if (cmd === "start") {
      await cluster.start({ fresh: true });
      console.log(
        `cluster: ${cluster.nodes.map((n) => `${n.name} on ${n.port}`).join(", ")} (dir ${cluster.dir})`,
      );
    } else if (cmd === "stop") {
      await cluster.stop();
    } else if (cmd === "status") {
      for (const n of cluster.nodes)
        console.log(
          `${n.name} port ${n.port}: ${cluster.pid(n) ? `running (pid ${cluster.pid(n)})` : "down"}`,
        );
    } else {
      console.error("usage: cluster.ts start|stop|status");
      process.exit(2);
    }
  };
  main().catch((err: unknown) => {
    console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
