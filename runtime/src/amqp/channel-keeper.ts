// One kept channel: the channel lifecycle that publishers, consumers, RPC clients and RPC servers
// share, written once.
//
// A keeper opens its channel on every new session (through the connection's onSession), runs the
// owner's setup on it (prefetch, declarations, consume), and after the channel closes while its
// session lives (a channel error, a broker-side cancel, a replace()) opens a new one on the same
// session, with backoff and jitter. After a lost session the connection's next session opens it.
// close() stops all of that and closes the channel once.
//
//   open on session -> setup -> current ... closed -> onLost -> (session alive) backoff -> open again
//
// The owner keeps its own per-message state (in flight, pending calls); it learns of every channel
// through `onOpen` and of its end through `onLost`, so a message never outlives its channel unseen.

import type { Channel, ConfirmChannel } from "amqplib";
import { asError, Code, StatusError } from "../status.js";
import type { AmqpConnection, AmqpSession } from "./connection.js";

export interface ChannelKeeperOptions<C extends Channel> {
  /** Who owns the channel, for error messages: `publisher`, `consumer of queue "orders"`. */
  owner: string;
  /** A confirm channel (publisher confirms) or a plain one. */
  confirm: C extends ConfirmChannel ? true : false;
  /** Prepares a new channel before it becomes current. Throwing closes it; see `start()`. */
  setup?: (channel: C, session: AmqpSession) => Promise<void> | void;
  /** The new channel is current (after setup). */
  onOpen?: (channel: C, session: AmqpSession) => void;
  /**
   * A channel this keeper opened has closed: `error` is the broker's reason when the broker closed it
   * (a channel error), undefined for a lost connection or a close of our own (replace, close).
   */
  onLost?: (channel: C, error: Error | undefined, session: AmqpSession) => void;
  /** A setup failed on a live session after the first start; it is retried with backoff. */
  onError?: (err: Error) => void;
  /** First delay before reopening on a live session. Default 50 ms; doubles to `maxDelayMs` (1 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /**
   * A setup the broker does not finish in this time fails UNAVAILABLE and is tried again (a consume
   * on a quorum queue without a majority gets no answer at all). Default 10 000 ms.
   */
  setupTimeoutMs?: number;
}

/**
 * How long a new session waits for this keeper's setup before the connection goes on with the next
 * one: a setup stuck on the broker must not keep a publisher on the same connection from working.
 */
const SESSION_SETUP_WAIT_MS = 2_000;

/** A channel that lived this long resets the backoff. */
const HEALTHY_AFTER_MS = 5_000;

export class ChannelKeeper<C extends Channel = Channel> {
  private channel: C | undefined;
  private channelSession: AmqpSession | undefined;
  private unregister: (() => void) | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The open attempt running now, per session: onSession and a reopen never race on one session. */
  private opening: { session: AmqpSession; promise: Promise<void> } | undefined;
  private failures = 0;
  private openedAt = 0;
  private reopenTimer: NodeJS.Timeout | undefined;
  /** Channels retired by replace(), and the last reason given. */
  replacements = 0;
  lastReplaceReason: string | undefined;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly options: ChannelKeeperOptions<C>,
  ) {}

  /** The current channel, set up and open; undefined between channels. */
  get current(): C | undefined {
    return this.channel;
  }

  /**
   * Opens the channel on every session from now on, and on the current one now. Failed setups are
   * reported (onError) and retried with backoff: for channels that must come back whatever happens
   * (a publisher's, an RPC client's).
   */
  start(): void {
    this.register();
    const session = this.connection.currentSession;
    if (session && this.connection.connected) this.open(session).catch(() => undefined);
  }

  /**
   * As start(), but waits for a session and resolves with the outcome of the first setup: it rejects
   * with the setup's error when the session is still alive (a refusal from the broker, such as a
   * queue of another type, is the caller's to see), and the keeper then stays stopped. A session lost
   * meanwhile is not an error: the next one tries again.
   */
  async startOrFail(): Promise<void> {
    this.register();
    for (;;) {
      if (this.closed) return;
      const session = await this.connection.waitForSession();
      try {
        await this.open(session, { first: true });
        return;
      } catch (err) {
        if (session.open) {
          await this.close();
          throw err;
        }
      }
    }
  }

  private register(): void {
    // Failures on later sessions are reported and retried here, not by the connection.
    this.unregister ??= this.connection.onSession(
      (session) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, SESSION_SETUP_WAIT_MS);
          this.open(session)
            .catch(() => undefined)
            .finally(() => {
              clearTimeout(timer);
              resolve();
            });
        }),
      { now: false },
    );
  }

  /**
   * Retires `channel` if it is still the current one: closes it, and a new one opens on the same
   * session (its in-flight work is reported through onLost, as for any close). For a channel that
   * misbehaves without closing: nacks everything, or the broker cancelled its consumer. With
   * `drained`, the old channel stays open (but is no longer current) until that promise settles.
   */
  replace(channel: C, reason: Error, drained?: Promise<void>): void {
    if (this.channel !== channel) return;
    this.replacements++;
    this.lastReplaceReason = reason.message;
    if (drained === undefined) {
      channel.close().catch(() => undefined);
      return;
    }
    // Retired, not closed: a new channel takes new work now, and the old one closes once the work
    // already on it is done (replies still arrive there).
    const session = this.channelSession!;
    this.channel = undefined;
    this.scheduleReopen(session, 0);
    const close = () => channel.close().catch(() => undefined);
    drained.then(close, close);
  }

  /** Stops reopening and closes the channel (once). */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    this.unregister?.();
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    const ch = this.channel;
    this.channel = undefined;
    if (ch) await ch.close().catch(() => undefined);
  }

  /** Opens a channel on `session` unless one is open or opening there. */
  private open(session: AmqpSession, how: { first?: boolean } = {}): Promise<void> {
    if (this.closed || !session.open) return Promise.resolve();
    if (this.channel && this.channelSession === session) return Promise.resolve();
    if (this.opening?.session === session) return this.opening.promise;
    const promise = this.doOpen(session, how.first ?? false).finally(() => {
      if (this.opening?.promise === promise) this.opening = undefined;
    });
    this.opening = { session, promise };
    return promise;
  }

  private async doOpen(session: AmqpSession, first: boolean): Promise<void> {
    const ch = (
      this.options.confirm ? await session.createConfirmChannel() : await session.createChannel()
    ) as C;
    let lastError: Error | undefined;
    ch.on("error", (err: Error) => (lastError = err));
    let adopted = false;
    let closedEarly = false;
    ch.once("close", () => {
      if (adopted) this.lost(ch, lastError, session);
      else closedEarly = true;
    });
    try {
      await this.withinSetupTimeout(this.options.setup?.(ch, session));
    } catch (err) {
      await ch.close().catch(() => undefined);
      if (!first && session.open && !this.closed) {
        this.options.onError?.(asError(err));
        this.scheduleReopen(session);
      }
      throw err;
    }
    if (this.closed || !session.open) {
      await ch.close().catch(() => undefined);
      return;
    }
    // Closed during setup (a consume refused after the listener was attached): try again later.
    if (closedEarly) {
      this.scheduleReopen(session);
      return;
    }
    adopted = true;
    this.channel = ch;
    this.channelSession = session;
    this.openedAt = Date.now();
    this.options.onOpen?.(ch, session);
  }

  private withinSetupTimeout(setup: Promise<void> | void): Promise<void> | void {
    if (!(setup instanceof Promise)) return setup;
    const ms = this.options.setupTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new StatusError(
              Code.UNAVAILABLE,
              `the broker did not finish setting up the ${this.options.owner} within ${ms} ms (a quorum queue without a majority of its nodes does not answer)`,
            ),
          ),
        ms,
      );
    });
    return Promise.race([setup, late]).finally(() => clearTimeout(timer));
  }

  private lost(ch: C, error: Error | undefined, session: AmqpSession): void {
    if (this.channel === ch) this.channel = undefined;
    if (Date.now() - this.openedAt > HEALTHY_AFTER_MS) this.failures = 0;
    this.options.onLost?.(ch, error, session);
    // amqplib closes channels just before it reports the connection lost: look again after that.
    queueMicrotask(() => this.scheduleReopen(session));
  }

  private scheduleReopen(session: AmqpSession, delayMs?: number): void {
    if (this.closed || !session.open || this.channel || this.reopenTimer) return;
    const initial = Math.max(1, this.options.initialDelayMs ?? 50);
    const max = Math.max(initial, this.options.maxDelayMs ?? 1_000);
    const base = Math.min(max, initial * 2 ** this.failures);
    this.failures++;
    const delay = delayMs ?? Math.round(base * (0.8 + Math.random() * 0.4));
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      if (
        this.closed ||
        !session.open ||
        this.channel ||
        this.connection.currentSession !== session
      )
        return;
      this.open(session).catch(() => undefined);
    }, delay);
    this.reopenTimer.unref();
  }
}
