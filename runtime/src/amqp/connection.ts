// One logical RabbitMQ connection that survives broker restarts and network cuts.
//
// amqplib gives one physical connection (a ChannelModel) at a time. AmqpConnection wraps a sequence
// of them: each live one is an AmqpSession, and after a loss it reconnects with exponential backoff
// and jitter, trying the configured URLs in turn (failover). Everything that owns broker state
// (topology, channels, consumers) registers an `onSession` setup that is run again on every new
// session, so recovery is explicit and ordered instead of hidden inside channels.

import { EventEmitter } from "node:events";
import { createConnection, type Socket } from "node:net";
import amqp from "amqplib";
import type { Channel, ChannelModel, ConfirmChannel } from "amqplib";
import { asError, Code, StatusError } from "../status.js";
import { recordReconnect } from "../telemetry/metrics.js";
import { defaultLogger, type Logger } from "../telemetry/logger.js";
import { nodeOf, watchConnectionState } from "./telemetry.js";

export interface AmqpReconnectOptions {
  /** First delay after a connection is lost, before jitter. Default 100 ms. */
  initialDelayMs?: number;
  /** Ceiling of the backoff. Default 10 000 ms. */
  maxDelayMs?: number;
  /** Rounds over all URLs before giving up for good. Default: never give up. */
  maxAttempts?: number;
}

export interface AmqpTlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
  rejectUnauthorized?: boolean;
}

export interface AmqpConnectionOptions {
  /**
   * Broker URL(s), one per node of a cluster. Default `process.env.AMQP_URL ?? "amqp://127.0.0.1"`.
   * Several = failover: after a loss the next node is tried, then the others in turn.
   */
  urls?: string | string[];
  /**
   * Which node a process tries first. "shuffle" (default): the list is shuffled once per connection,
   * so processes given the same list spread over the nodes and one node's death does not take every
   * connection at once. "given": the order as listed (a preferred node first).
   */
  urlOrder?: "shuffle" | "given";
  /** Sent as the `connection_name` client property (shows in the management UI). */
  name?: string;
  /**
   * TCP_NODELAY, default true. Writes made in one tick are still coalesced into one segment
   * (the socket is corked on the first write and uncorked on the next tick), so pipelined
   * confirmed publishing keeps Nagle-like batching while RPC round trips stay short.
   */
  noDelay?: boolean;
  /** Heartbeat the client asks for; default: the broker's (60 s on RabbitMQ). 0 disables. */
  heartbeatSeconds?: number;
  reconnect?: AmqpReconnectOptions;
  /** For amqps:// URLs. */
  tls?: AmqpTlsOptions;
  /**
   * How to log in. "plain" (default): the user and password in the URL (guest/guest when absent).
   * "external": as the identity in the client certificate (`tls.cert`), with no password (SASL
   * EXTERNAL; the broker needs the rabbitmq_auth_mechanism_ssl plugin, see docs/security.md).
   * Only over amqps:// with `tls.cert` and `tls.key`.
   */
  auth?: "plain" | "external";
  /** How long `connect()` keeps trying for the first session before rejecting. Default 30 000 ms. */
  connectTimeoutMs?: number;
  /** Errors that have no caller to reject (a failed setup, a lost connection). */
  onError?: (err: Error) => void;
  /**
   * Where lost connections, reconnects and errors nobody awaits are logged (pino's interface; a
   * pino instance plugs in). Publishers, consumers and RPC servers and clients made on this
   * connection log here too unless given their own. Default: defaultLogger(), JSON lines on stderr.
   */
  logger?: Logger;
}

/** One live broker connection. A new session (with a new id) follows every reconnect. */
export interface AmqpSession {
  readonly id: number;
  readonly connection: ChannelModel;
  /** The URL this session is connected to, without credentials. */
  readonly url: string;
  /**
   * A new channel. It comes with an 'error' listener already attached (a channel error then only
   * closes the channel instead of crashing the process); watch its 'close' event.
   */
  createChannel(): Promise<Channel>;
  createConfirmChannel(): Promise<ConfirmChannel>;
  /** Resolves when this session is lost or closed. */
  readonly closed: Promise<void>;
  /** True until the session is lost or closed. */
  readonly open: boolean;
}

export type SessionSetup = (session: AmqpSession) => Promise<void> | void;

const DEFAULT_URL = "amqp://127.0.0.1";

/** The URL without user and password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "<invalid url>";
  }
}

function parseVersion(version: unknown): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(typeof version === "string" ? version : String(version ?? ""));
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** Fisher-Yates, in place. */
function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/** What a probe of the configured nodes found: how many accept TCP connections, and which do not. */
export interface NodeProbe {
  total: number;
  reachable: number;
  /** The unreachable nodes' URLs, without credentials. */
  down: string[];
  /** True when the configured nodes are a cluster (3 or more) and no majority of them answers. */
  quorumLost: boolean;
}

function reachable(url: string, timeoutMs: number): Promise<boolean> {
  let host = "127.0.0.1";
  let port = 5672;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, "") || host;
    port = u.port ? Number(u.port) : u.protocol === "amqps:" ? 5671 : 5672;
  } catch {
    return Promise.resolve(false);
  }
  return new Promise<boolean>((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The sentence callers get when the cluster has no majority. */
export function quorumLostMessage(probe: NodeProbe): string {
  return (
    `the RabbitMQ cluster has lost its quorum: ${probe.reachable} of ${probe.total} nodes answer (down: ${probe.down.join(", ")}); ` +
    `quorum queues take no messages until a majority of the nodes is back`
  );
}

class Session implements AmqpSession {
  open = true;
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  constructor(
    readonly id: number,
    readonly connection: ChannelModel,
    readonly url: string,
  ) {
    this.closed = new Promise<void>((resolve) => (this.markClosed = resolve));
  }

  lost(): void {
    if (!this.open) return;
    this.open = false;
    this.markClosed();
  }

  async createChannel(): Promise<Channel> {
    return this.adopt(await this.whileOpen(this.connection.createChannel()));
  }

  async createConfirmChannel(): Promise<ConfirmChannel> {
    return this.adopt(await this.whileOpen(this.connection.createConfirmChannel()));
  }

  // A channel opened while the connection is being torn down (from another channel's 'close'
  // handler, when this session still looks open) may never get its reply: fail it when the session goes.
  private whileOpen<C>(opening: Promise<C>): Promise<C> {
    if (!this.open) {
      opening.catch(() => {});
      return Promise.reject(
        new StatusError(Code.UNAVAILABLE, "the connection to RabbitMQ was lost"),
      );
    }
    const lost = this.closed.then(() => {
      throw new StatusError(
        Code.UNAVAILABLE,
        "the connection to RabbitMQ was lost while opening a channel",
      );
    });
    lost.catch(() => {});
    opening.catch(() => {});
    return Promise.race([opening, lost]);
  }

  // amqplib settles channel.close() only on the broker's CloseOk: when the connection drops in
  // between, the promise never settles, and a setup or close() awaiting it would hang for good.
  // Settle it once the channel or the session is gone, whichever comes first.
  private adopt<C extends Channel>(ch: C): C {
    ch.on("error", () => {});
    const close = ch.close.bind(ch);
    let closed = false;
    ch.once("close", () => (closed = true));
    ch.close = () => {
      if (closed) return close();
      return new Promise<void>((resolve, reject) => {
        const gone = () => resolve();
        ch.once("close", gone);
        void this.closed.then(gone);
        close().then(
          () => {
            ch.off("close", gone);
            resolve();
          },
          (err: unknown) => {
            ch.off("close", gone);
            reject(err);
          },
        );
      });
    };
    return ch;
  }
}

/**
 * Corks the socket on the first write of a tick and uncorks on the next one, so every frame
 * written in one turn of the event loop leaves in one write (one segment) even with TCP_NODELAY.
 */
function coalesceWrites(socket: Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  socket.write = function (this: Socket, ...args: any[]): boolean {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return (write as (...a: any[]) => boolean).apply(this, args);
  } as Socket["write"];
}

/** The events of an AmqpConnection and their arguments, so that `on(...)` listeners are typed. */
export interface AmqpConnectionEvents {
  /** A session is up and every setup ran on it: the node's URL and how many times this connection reconnected. */
  connected: [session: AmqpSession, info: { node: string; reconnects: number }];
  /** The session was lost (the error, when there was one); reconnecting follows unless closing. */
  disconnected: [error: Error | undefined, info: { node: string }];
  /** The next connection attempt, after `delayMs`. */
  reconnecting: [info: { attempt: number; delayMs: number }];
  /** The broker blocked publishing (a resource alarm), with its reason. */
  blocked: [reason: string];
  unblocked: [];
  /** Emitted only when someone listens; otherwise errors go to `onError` alone. */
  error: [error: Error];
}

/**
 * A RabbitMQ connection with recovery. Its events (AmqpConnectionEvents): "connected",
 * "disconnected", "reconnecting", "blocked", "unblocked", and "error" (only emitted when someone
 * listens, otherwise passed to `onError`).
 */
export class AmqpConnection extends EventEmitter<AmqpConnectionEvents> {
  private readonly urls: string[];
  private readonly options: AmqpConnectionOptions;
  private session: Session | undefined;
  /** True once every setup has run for the current session. */
  private ready = false;
  private sessionCount = 0;
  private urlIndex = 0;
  private closing = false;
  private failed: Error | undefined;
  private readonly setups: SessionSetup[] = [];
  private readonly tracked = new Set<{ close(): Promise<void> }>();
  private readonly waiters = new Set<{
    resolve: (s: AmqpSession) => void;
    reject: (e: Error) => void;
  }>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private wakeReconnect: (() => void) | undefined;
  private serverVersion: [number, number] = [0, 0];
  private closePromise: Promise<void> | undefined;
  /** Why the latest connection attempt failed, until one succeeds: the cause a timeout reports. */
  private lastConnectError: Error | undefined;
  private probe: { at: number; result: Promise<NodeProbe> } | undefined;
  /** Sessions opened after a loss: the reconnect count reported with "connected". */
  private reconnects = 0;
  /** Where this connection and what is made on it log (see AmqpConnectionOptions.logger). */
  readonly logger: Logger;
  private readonly unwatch: () => void;

  private constructor(options: AmqpConnectionOptions) {
    super();
    const urls = options.urls ?? process.env.AMQP_URL ?? DEFAULT_URL;
    this.urls = (Array.isArray(urls) ? urls : [urls]).filter((u) => u.length > 0);
    if (this.urls.length === 0) throw new TypeError("AmqpConnection needs at least one broker URL");
    if (
      options.urlOrder !== undefined &&
      options.urlOrder !== "shuffle" &&
      options.urlOrder !== "given"
    ) {
      throw new TypeError(
        `urlOrder must be "shuffle" or "given", not ${JSON.stringify(options.urlOrder)}`,
      );
    }
    if ((options.urlOrder ?? "shuffle") === "shuffle") shuffle(this.urls);
    if (options.auth === "external") {
      // A certificate login without a certificate, or over plain TCP, could only fail at the broker.
      const plain = this.urls.filter((u) => !u.startsWith("amqps:"));
      if (plain.length > 0)
        throw new TypeError(
          `auth "external" logs in with the client certificate, so it needs amqps:// URLs, not ${plain.map(redactUrl).join(", ")}`,
        );
      if (options.tls?.cert === undefined || options.tls.key === undefined)
        throw new TypeError(
          `auth "external" logs in with the client certificate: set tls.cert and tls.key`,
        );
    } else if (options.auth !== undefined && options.auth !== "plain") {
      throw new TypeError(
        `auth must be "plain" or "external", not ${JSON.stringify(options.auth)}`,
      );
    }
    this.options = options;
    this.logger = options.logger ?? defaultLogger();
    this.unwatch = watchConnectionState(this);
  }

  /** The broker node for metrics, "host:port": the current one, else the one tried next. */
  get metricNode(): string {
    return nodeOf(this.session?.open ? this.session.url : this.urls[this.urlIndex]!);
  }

  /** The state for metrics: "connected" (every setup has run), "connecting", or "closed" (closed or given up). */
  get metricState(): "connected" | "connecting" | "closed" {
    if (this.connected) return "connected";
    return this.closing || this.failed ? "closed" : "connecting";
  }

  /** Connects (retrying per the reconnect policy for up to `connectTimeoutMs`) and starts recovery. */
  static async connect(options: string | AmqpConnectionOptions = {}): Promise<AmqpConnection> {
    const opts = typeof options === "string" ? { urls: options } : options;
    const conn = new AmqpConnection(opts);
    void conn.run();
    try {
      await conn.waitForSession({ timeoutMs: opts.connectTimeoutMs ?? 30_000 });
    } catch (err) {
      await conn.close();
      throw err;
    }
    return conn;
  }

  /** True while a session is up and every setup has run on it. */
  get connected(): boolean {
    return this.ready && this.session?.open === true;
  }

  /** The current session, if one is up (setups may still be running on it). */
  get currentSession(): AmqpSession | undefined {
    return this.session?.open ? this.session : undefined;
  }

  /**
   * Registers a setup run on every new session, in registration order, before "connected" is
   * emitted; if a session is up now it also runs now (unless `now: false`). Returns a function
   * that unregisters it. A setup must use the session it is given: waitForSession() inside a setup
   * would wait for the setups themselves. A setup that throws is reported ("error"/onError) and
   * the others still run.
   */
  onSession(setup: SessionSetup, options: { now?: boolean } = {}): () => void {
    this.setups.push(setup);
    const session = this.session;
    if ((options.now ?? true) && session?.open && this.ready) {
      void this.runSetup(setup, session);
    }
    return () => {
      const i = this.setups.indexOf(setup);
      if (i >= 0) this.setups.splice(i, 1);
    };
  }

  /** Resolves with a ready session; rejects UNAVAILABLE on timeout, close or when recovery gave up. */
  waitForSession(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<AmqpSession> {
    if (this.connected) return Promise.resolve(this.session!);
    if (this.closing)
      return Promise.reject(new StatusError(Code.UNAVAILABLE, "the AMQP connection is closed"));
    if (this.failed)
      return Promise.reject(
        new StatusError(Code.UNAVAILABLE, this.failed.message, { cause: this.failed }),
      );
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(StatusError.from(signal.reason, Code.CANCELLED));
    return new Promise<AmqpSession>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => finish(() => reject(StatusError.from(signal!.reason, Code.CANCELLED)));
      const waiter = {
        resolve: (s: AmqpSession) => finish(() => resolve(s)),
        reject: (e: Error) => finish(() => reject(e)),
      };
      const finish = (f: () => void) => {
        if (!this.waiters.delete(waiter)) return;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        f();
      };
      this.waiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        timer = setTimeout(
          () => {
            const cause = this.lastConnectError;
            waiter.reject(
              new StatusError(
                Code.UNAVAILABLE,
                `no connection to RabbitMQ within ${timeoutMs} ms${cause ? ` (last attempt: ${cause.message})` : ""}`,
                cause ? { cause } : {},
              ),
            );
          },
          Math.max(0, timeoutMs),
        );
      }
    });
  }

  /** The node the current session is connected to (its URL without credentials), if connected. */
  get node(): string | undefined {
    return this.session?.open ? this.session.url : undefined;
  }

  /** The configured broker URLs, without credentials, in the order this connection tries them. */
  get nodes(): string[] {
    return this.urls.map(redactUrl);
  }

  /**
   * Which configured nodes accept TCP connections now (each tried for at most 1 s; the answer is
   * reused for 1 s). Publishers and RPC clients ask when the broker stops confirming, to tell a leader
   * election (wait) from a lost quorum (fail fast with UNAVAILABLE).
   */
  probeNodes(): Promise<NodeProbe> {
    const now = Date.now();
    if (this.probe && now - this.probe.at < 1_000) return this.probe.result;
    const result = Promise.all(this.urls.map((u) => reachable(u, 1_000))).then((ok) => {
      const down = this.urls.filter((_, i) => !ok[i]).map(redactUrl);
      const total = this.urls.length;
      const up = total - down.length;
      return { total, reachable: up, down, quorumLost: total >= 3 && up * 2 <= total };
    });
    this.probe = { at: now, result };
    return result;
  }

  /** Quorum queues need RabbitMQ 3.8 or later; read from the last session's server properties. */
  supportsQuorumQueues(): boolean {
    const [major, minor] = this.serverVersion;
    return major > 3 || (major === 3 && minor >= 8);
  }

  /** The broker's version from the last session, such as "3.10.8". */
  get serverVersionText(): string {
    return this.serverVersion.join(".");
  }

  /** Registers something `close()` must close (and wait for) before the connection goes. */
  track(closable: { close(): Promise<void> }): () => void {
    this.tracked.add(closable);
    return () => {
      this.tracked.delete(closable);
    };
  }

  /** Clean shutdown: closes tracked publishers/consumers (they finish in-flight work), then the connection. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    // Tracked resources drain first, while the session can still carry their acks and confirms.
    const closables = [...this.tracked];
    this.tracked.clear();
    await Promise.allSettled(closables.map((c) => c.close()));
    this.closing = true;
    this.unwatch();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.wakeReconnect?.();
    const err = new StatusError(Code.UNAVAILABLE, "the AMQP connection is closed");
    for (const w of [...this.waiters]) w.reject(err);
    const session = this.session;
    this.session = undefined;
    this.ready = false;
    if (session?.open) {
      try {
        // amqplib settles close() only on the broker's CloseOk: a connection lost in between would
        // leave it pending forever, so the session's end counts as closed too.
        await Promise.race([session.connection.close(), session.closed]);
      } catch {
        // Already gone: nothing left to close.
      }
      session.lost();
    }
  }

  /**
   * Reports an error that has no caller to reject: to `onError`, and as "error" when someone
   * listens (never as an unhandled "error" event). Publishers and consumers without an error hook
   * of their own report here.
   */
  reportError(err: Error): void {
    try {
      this.logger.error(
        { err, ...(this.node !== undefined ? { node: nodeOf(this.node) } : {}) },
        err.message,
      );
    } catch {
      // A logger that throws must not take the connection down.
    }
    this.notifyError(err);
  }

  /** reportError without the log line, for owners that logged the error themselves. */
  notifyError(err: Error): void {
    this.options.onError?.(err);
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }

  // The connect / lose / reconnect loop. One round tries every URL once, starting from the one
  // that worked last; a failed round waits with backoff before the next.
  private async run(): Promise<void> {
    const policy = this.options.reconnect ?? {};
    const initial = Math.max(1, policy.initialDelayMs ?? 100);
    const max = Math.max(initial, policy.maxDelayMs ?? 10_000);
    let round = 0;
    let lastError: Error | undefined;
    while (!this.closing) {
      let session: Session | undefined;
      for (let i = 0; i < this.urls.length && !this.closing && !session; i++) {
        const index = (this.urlIndex + i) % this.urls.length;
        try {
          session = await this.open(this.urls[index]!);
          this.urlIndex = index;
          this.lastConnectError = undefined;
        } catch (err) {
          lastError = asError(err);
          this.lastConnectError = lastError;
        }
      }
      if (this.closing) {
        if (session)
          await Promise.race([session.connection.close().catch(() => {}), session.closed]);
        return;
      }
      if (!session) {
        round++;
        if (policy.maxAttempts !== undefined && round >= policy.maxAttempts) {
          this.giveUp(lastError);
          return;
        }
        const base = Math.min(max, initial * 2 ** (round - 1));
        const delayMs = Math.round(Math.min(max, base * (0.8 + Math.random() * 0.4)));
        this.emit("reconnecting", { attempt: round, delayMs });
        await this.sleep(delayMs);
        continue;
      }
      round = 0;
      await this.activate(session);
      await session.closed;
      if (this.closing) return;
      // Try the next URL first after a loss when there are several: the node that dropped us may be going away.
      if (this.urls.length > 1) this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      this.reconnects++;
      // A short pause so a broker that accepts and instantly drops does not make us spin.
      round = 1;
      const delayMs = Math.round(initial * (0.8 + Math.random() * 0.4));
      this.emit("reconnecting", { attempt: round, delayMs });
      await this.sleep(delayMs);
    }
  }

  private log(level: "info" | "warn", fields: object, msg: string): void {
    try {
      this.logger[level](fields, msg);
    } catch {
      // A logger that throws must not take the connection down.
    }
  }

  private giveUp(lastError: Error | undefined): void {
    const err = new StatusError(
      Code.UNAVAILABLE,
      `could not connect to RabbitMQ (${this.urls.map(redactUrl).join(", ")}): ${lastError?.message ?? "unknown error"}`,
      { cause: lastError },
    );
    this.failed = err;
    for (const w of [...this.waiters]) w.reject(err);
    this.reportError(err);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wakeReconnect = () => {
        if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
        this.reconnectTimer = undefined;
        this.wakeReconnect = undefined;
        resolve();
      };
      this.reconnectTimer = setTimeout(this.wakeReconnect, ms);
    });
  }

  private async open(url: string): Promise<Session> {
    const tls = this.options.tls ?? {};
    let target = url;
    if (this.options.heartbeatSeconds !== undefined) {
      const u = new URL(url);
      u.searchParams.set("heartbeat", String(this.options.heartbeatSeconds));
      target = u.toString();
    }
    const noDelay = this.options.noDelay ?? true;
    const model = await amqp.connect(target, {
      noDelay,
      timeout: 10_000,
      clientProperties: this.options.name ? { connection_name: this.options.name } : {},
      ...(this.options.auth === "external" ? { credentials: amqp.credentials.external() } : {}),
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
      ...(tls.key !== undefined ? { key: tls.key } : {}),
      ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
      ...(tls.rejectUnauthorized !== undefined
        ? { rejectUnauthorized: tls.rejectUnauthorized }
        : {}),
    });
    const socket = (model.connection as unknown as { stream?: Socket }).stream;
    if (noDelay && socket && typeof socket.cork === "function") coalesceWrites(socket);
    const session = new Session(++this.sessionCount, model, redactUrl(url));
    // Without an 'error' listener an emitted error would throw; the 'close' that follows is what matters.
    model.on("error", () => {});
    model.on("close", (err?: Error) => this.lose(session, err));
    model.on("blocked", (reason: string) => this.emit("blocked", reason));
    model.on("unblocked", () => this.emit("unblocked"));
    this.serverVersion = parseVersion(model.connection.serverProperties?.version);
    return session;
  }

  private async activate(session: Session): Promise<void> {
    this.session = session;
    this.ready = false;
    const ran = new Set<SessionSetup>();
    // Index-free loop: setups registered while others run are picked up, unregistered ones skipped.
    for (;;) {
      if (!session.open || this.closing) return;
      const next = this.setups.find((s) => !ran.has(s));
      if (!next) break;
      ran.add(next);
      await this.runSetup(next, session);
    }
    if (!session.open || this.closing) return;
    this.ready = true;
    for (const w of [...this.waiters]) w.resolve(session);
    if (this.reconnects > 0) {
      const node = nodeOf(session.url);
      recordReconnect({ node });
      this.log(
        "info",
        { node, reconnects: this.reconnects },
        `reconnected to RabbitMQ node ${node} (reconnect ${this.reconnects})`,
      );
    }
    this.emit("connected", session, { node: session.url, reconnects: this.reconnects });
  }

  private async runSetup(setup: SessionSetup, session: Session): Promise<void> {
    try {
      await setup(session);
    } catch (err) {
      // A setup that fails because the session died is not news; anything else is.
      if (session.open) this.reportError(asError(err));
    }
  }

  private lose(session: Session, err: Error | undefined): void {
    if (!session.open) return;
    session.lost();
    if (this.session === session) {
      this.session = undefined;
      this.ready = false;
    }
    if (!this.closing) {
      const node = nodeOf(session.url);
      this.log(
        "warn",
        { node, ...(err ? { err } : {}) },
        `lost the connection to RabbitMQ node ${node}${err ? ` (${err.message})` : ""}; reconnecting`,
      );
      this.emit("disconnected", err, { node: session.url });
      if (err) this.options.onError?.(err);
    }
  }
}
