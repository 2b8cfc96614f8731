// Confirmed publishing that survives reconnects.
//
// Every message accepted by publish() stays in this publisher's memory until the broker confirms it
// (resolve), returns it as unroutable (UnroutableError), refuses it, or its timeout passes (reject).
// Messages still unconfirmed when a channel or connection is lost are sent again on the next
// channel with the same message_id: at-least-once, never silently dropped.
//
// In a cluster a channel can go bad without closing: RabbitMQ 3.10's quorum-queue client may keep
// sending to a dead leader, so every publish on that channel is nacked (or never confirmed) until the
// node returns. A nack is therefore not final: the channel is replaced and the message re-sent, within
// its timeout. Confirms that stop coming are checked against the cluster: with a majority of the
// nodes up the channel is replaced; with the quorum lost the waiting messages fail fast (UNAVAILABLE).
//
// Confirms are matched by delivery tag (confirm-ledger.ts) from the channel's 'ack' and 'nack' events,
// with no callback per message; the body kept for a re-send is the caller's bytes, not a copy.
// publishMany() sends a batch under one promise, which settles once every message in it has.

import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { ConfirmChannel, Message, Options } from "amqplib";
import { Code, StatusError, UnroutableError, messageOf } from "../status.js";
import { ChannelKeeper } from "./channel-keeper.js";
import { ConfirmLedger } from "./confirm-ledger.js";
import {
  DeadlineBuckets,
  PublishManyError,
  asBuffer,
  moreOf,
  refuse,
  type Batch,
  type Entry,
  type OutgoingMessage,
} from "./publish-entry.js";
import { StallWatch } from "./stall-watch.js";
import { quorumLostMessage, type AmqpConnection } from "./connection.js";
import { Deque } from "./deque.js";
import type { Logger } from "../telemetry/logger.js";
import {
  errorType,
  recordPublishRefused,
  recordPublishResent,
  recordPublishUnroutable,
} from "../telemetry/metrics.js";
import { watchConfirms } from "./telemetry.js";

export interface PublisherOptions {
  /**
   * Messages accepted but not yet confirmed; publish() waits while the window is full. Default 4096:
   * the broker confirms persistent messages in batches, and a deep window keeps it busy.
   */
  maxInFlight?: number;
  /** Bytes of message bodies in the window at most (one larger message may go alone). Default 32 MiB. */
  maxInFlightBytes?: number;
  /** Default per-publish timeout, waiting for the window, a session and the confirm included. Default 30 000 ms. */
  timeoutMs?: number;
  /** Register with the connection so its close() waits for this publisher. Default true. */
  track?: boolean;
  /** Bodies larger than this are refused (RESOURCE_EXHAUSTED) before they are queued. Default: no limit. */
  maxMessageBytes?: number;
  /**
   * A message unconfirmed this long makes the publisher look at the cluster: with a majority of the
   * nodes up the channel is replaced and the message re-sent; with the quorum lost the waiting messages
   * are rejected with UNAVAILABLE at once instead of at their timeout. Default 3 000 ms.
   */
  stallTimeoutMs?: number;
  /** Where re-sends and replaced channels are logged (warn). Default: the connection's logger. */
  logger?: Logger;
}

/** What a publisher reports as it goes (also counted in `stats`). */
export interface PublisherEvents {
  /** Messages sent again on a new channel: the old one closed, nacked or stopped confirming. */
  resent: [{ count: number; reason: string }];
  /** A message rejected to its caller (refused, unroutable, timed out...). */
  refused: [{ messageId: string | undefined; exchange: string; routingKey: string; error: Error }];
  /** A channel replaced because it nacked or stopped confirming. */
  replaced: [{ reason: string }];
}

export { PublishManyError, type OutgoingMessage };

export interface RawPublishOptions {
  /** Ask the broker to return the message when no queue is bound for it. Default true. */
  mandatory?: boolean;
  timeoutMs?: number;
  /**
   * Absolute deadline, epoch ms: the earlier of this and `timeoutMs` ends the wait with
   * DEADLINE_EXCEEDED, and one already past refuses the message before it is queued. Typed
   * publishers pass the deadline of the call they were made in (call-context.ts).
   */
  deadline?: number;
  /** Aborting fails the publish with the signal's reason (CANCELLED unless it says otherwise). */
  signal?: AbortSignal;
  /**
   * Told once when the message settles (undefined when confirmed, else the error the promise rejects
   * with), before the promise does: lets a caller's telemetry end without another promise per message.
   */
  settled?: { end(err?: unknown): void } | undefined;
}

const NOT_FOUND_EXCHANGE = /no exchange '([^']*)'/;
const WRONG_USER_ID = /user_id property set to '([^']*)'/;
const REFUSED_EXCHANGE = /ACCESS_REFUSED - access to exchange '([^']*)'/;
/** A message in flight at this many channel errors is taken for their cause and rejected, not re-sent again. */
const MAX_CHANNEL_ERRORS = 3;

export class Publisher extends EventEmitter<PublisherEvents> {
  private readonly connection: AmqpConnection;
  private readonly maxInFlight: number;
  private readonly maxInFlightBytes: number;
  private activeBytes = 0;
  private readonly timeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly keeper: ChannelKeeper<ConfirmChannel>;
  private readonly stallTimeoutMs: number;
  private readonly stalls: StallWatch;
  /** Time of the last confirm, and when the publisher last went from idle to busy. */
  private progressAt = 0;
  private busySince = 0;
  /** Accepted, not yet written to a channel (or to be written again after a loss), in order. */
  private readonly queue = new Deque<Entry>();
  /** Written and awaiting confirm, by channel, in publish (delivery tag) order. */
  private readonly ledgers = new Map<ConfirmChannel, ConfirmLedger<Entry>>();
  /** Accepted and not yet settled, waiting for the window included. */
  private unsettled = 0;
  /** Admitted into the window and not yet settled. */
  private active = 0;
  /** Accepted while the window was full, in order. */
  private readonly windowWaiters = new Deque<Entry>();
  private readonly idleWaiters: (() => void)[] = [];
  private waitingForDrain = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /**
   * Deadlines, one bucket per timeout value. Within a bucket insertion order is deadline order, so
   * one timer per bucket (at its oldest entry) replaces a timer per message.
   */
  private readonly deadlines = new DeadlineBuckets((entry, timeoutMs) =>
    this.expire(entry, timeoutMs),
  );
  /**
   * Unsettled entries by the signal that cancels them, with one abort listener per signal: many
   * publishes share one (those a handler makes share its call's, a consumer channel's deliveries
   * theirs), and a listener each would make every add and remove walk the signal's whole list.
   */
  private readonly watched = new Map<AbortSignal, { entries: Set<Entry>; onAbort: () => void }>();
  private readonly untrack: () => void;
  private readonly unwatchConfirms: () => void;
  private readonly logger: Logger;

  constructor(connection: AmqpConnection, options: PublisherOptions = {}) {
    super();
    this.connection = connection;
    this.logger = options.logger ?? connection.logger;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 4096);
    this.maxInFlightBytes = Math.max(1, options.maxInFlightBytes ?? 32 * 1024 * 1024);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxMessageBytes = options.maxMessageBytes ?? Infinity;
    this.stallTimeoutMs = Math.max(100, options.stallTimeoutMs ?? 3_000);
    this.stalls = new StallWatch(
      this.stallTimeoutMs,
      () => this.checkStall(),
      () => this.unsettled > 0,
    );
    this.keeper = new ChannelKeeper<ConfirmChannel>(connection, {
      owner: "publisher",
      confirm: true,
      setup: (ch) => {
        const ledger = new ConfirmLedger<Entry>();
        this.ledgers.set(ch, ledger);
        const confirmed = (err: Error | null) => (entry: Entry) => this.onConfirm(entry, ch, err);
        const acked = confirmed(null);
        const nacked = confirmed(new Error("message nacked"));
        ch.on("ack", (f: { deliveryTag: number; multiple: boolean }) =>
          ledger.confirm(f.deliveryTag, f.multiple, acked),
        );
        ch.on("nack", (f: { deliveryTag: number; multiple: boolean }) =>
          ledger.confirm(f.deliveryTag, f.multiple, nacked),
        );
        ch.on("return", (msg: Message) => this.onReturn(ch, msg));
        ch.on("drain", () => {
          if (this.keeper.current !== ch) return;
          this.waitingForDrain = false;
          this.pump();
        });
      },
      onOpen: () => {
        this.waitingForDrain = false;
        this.pump();
      },
      onLost: (ch, err) => this.onChannelClosed(ch, err),
      onError: (err) => connection.reportError(err),
    });
    this.keeper.start();
    this.untrack = options.track === false ? () => {} : connection.track(this);
    this.unwatchConfirms = watchConfirms(this);
  }

  /** The node this publisher's connection is on, "host:port" (for metrics). */
  get node(): string {
    return this.connection.metricNode;
  }

  /**
   * Counters for monitoring: copies written, copies sent again (after a lost, nacking or stalled
   * channel), nacks from the broker, messages rejected to callers, channels replaced, waits for the
   * socket to drain.
   */
  readonly stats = { published: 0, resent: 0, nacked: 0, refused: 0, replaced: 0, drainWaits: 0 };

  /** Messages accepted and not yet settled (waiting for the window included). */
  get pending(): number {
    return this.unsettled;
  }

  /** Messages inside the in-flight window (at most maxInFlight). */
  get inWindow(): number {
    return this.active;
  }

  /**
   * Publishes and resolves when the broker confirms. Rejects with UnroutableError when a mandatory
   * message is returned, NOT_FOUND when the exchange does not exist, DEADLINE_EXCEEDED when the
   * confirm does not come in time, UNAVAILABLE when no connection came back in time, CANCELLED on abort.
   * A message_id is generated when the properties carry none (it identifies re-sent copies).
   *
   * This raw publish does not look at the call context (call-context.ts): the runtime moves retries
   * and dead letters and relays the outbox through it, work that must not end with a handler's call.
   * EventPublisher is where a publish inherits the served call's deadline, signal and headers.
   */
  publish(
    exchange: string,
    routingKey: string,
    content: Uint8Array,
    properties: Options.Publish = {},
    options: RawPublishOptions = {},
  ): Promise<void> {
    if (this.closed)
      return refuse(options, new StatusError(Code.UNAVAILABLE, "the publisher is closed"));
    const signal = options.signal;
    if (signal?.aborted) return refuse(options, StatusError.from(signal.reason, Code.CANCELLED));
    // Refused here, not buffered: an oversized message would sit in memory until the broker refused it.
    if (content.byteLength > this.maxMessageBytes) {
      return refuse(
        options,
        new StatusError(
          Code.RESOURCE_EXHAUSTED,
          `the message body is ${content.byteLength} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes)`,
        ),
      );
    }
    let timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let callDeadline = false;
    if (options.deadline !== undefined) {
      const left = options.deadline - Date.now();
      // Sent now, a message the caller has stopped waiting for could still be delivered: refuse it.
      if (left <= 0)
        return refuse(
          options,
          new StatusError(
            Code.DEADLINE_EXCEEDED,
            "the deadline passed before the message was published; it was not sent",
          ),
        );
      if (!(timeoutMs > 0 && Number.isFinite(timeoutMs)) || left < timeoutMs) {
        timeoutMs = left;
        callDeadline = true;
      }
    }
    const mandatory = options.mandatory ?? true;
    return new Promise<void>((resolve, reject) => {
      this.accept(
        this.entry(
          exchange,
          routingKey,
          content,
          properties,
          mandatory,
          timeoutMs,
          callDeadline,
          options.settled,
          resolve,
          reject,
          undefined,
          0,
        ),
        signal,
      );
    });
  }

  /**
   * Publishes a batch under one promise: it resolves when the broker has confirmed every message,
   * and otherwise rejects with a PublishManyError (saying which failed and why) once each has
   * settled, so that the caller knows the outcome of every one. Each message gets the guarantees of
   * publish(): its own message_id (generated when missing), a re-send on a new channel when its
   * channel is lost or nacks, the same window; `options` apply to each (`settled` goes per message).
   */
  publishMany(
    messages: readonly OutgoingMessage[],
    options: Omit<RawPublishOptions, "settled"> = {},
  ): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    if (this.closed)
      return Promise.reject(new StatusError(Code.UNAVAILABLE, "the publisher is closed"));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(StatusError.from(signal.reason, Code.CANCELLED));
    for (const m of messages) {
      if (m.content.byteLength > this.maxMessageBytes) {
        return Promise.reject(
          new StatusError(
            Code.RESOURCE_EXHAUSTED,
            `a message body is ${m.content.byteLength} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes); no message of the batch was sent`,
          ),
        );
      }
    }
    let timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let callDeadline = false;
    if (options.deadline !== undefined) {
      const left = options.deadline - Date.now();
      if (left <= 0)
        return Promise.reject(
          new StatusError(
            Code.DEADLINE_EXCEEDED,
            "the deadline passed before the messages were published; none was sent",
          ),
        );
      if (!(timeoutMs > 0 && Number.isFinite(timeoutMs)) || left < timeoutMs) {
        timeoutMs = left;
        callDeadline = true;
      }
    }
    const mandatory = options.mandatory ?? true;
    return new Promise<void>((resolve, reject) => {
      const batch: Batch = {
        size: messages.length,
        remaining: messages.length,
        errors: undefined,
        failed: 0,
        resolve,
        reject,
      };
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        this.accept(
          this.entry(
            m.exchange,
            m.routingKey,
            m.content,
            m.properties ?? {},
            mandatory,
            timeoutMs,
            callDeadline,
            m.settled,
            undefined,
            undefined,
            batch,
            i,
          ),
          signal,
        );
      }
    });
  }

  private entry(
    exchange: string,
    routingKey: string,
    content: Uint8Array,
    properties: Options.Publish,
    mandatory: boolean,
    timeoutMs: number,
    callDeadline: boolean,
    onSettled: RawPublishOptions["settled"],
    resolve: (() => void) | undefined,
    reject: ((err: Error) => void) | undefined,
    batch: Batch | undefined,
    index: number,
  ): Entry {
    // The properties are kept (for a re-send) until confirmed, so callers must not change them after
    // the call. They are copied only when something has to be filled in.
    let props = properties;
    if (props.mandatory !== mandatory || props.messageId === undefined) {
      props = { ...properties, mandatory };
      if (props.messageId === undefined) props.messageId = randomUUID();
    }
    return {
      exchange,
      routingKey,
      content,
      props,
      resolve,
      reject,
      batch,
      index,
      settled: false,
      channel: undefined,
      deadline: Infinity,
      timeoutMs,
      admitted: false,
      prevDue: undefined,
      nextDue: undefined,
      more:
        callDeadline || onSettled
          ? {
              onSettled,
              callDeadline,
              signal: undefined,
              returned: undefined,
              channelErrors: 0,
              nacks: 0,
              lastNack: undefined,
            }
          : undefined,
    };
  }

  private accept(entry: Entry, signal: AbortSignal | undefined): void {
    if (entry.timeoutMs > 0 && Number.isFinite(entry.timeoutMs)) {
      entry.deadline = Date.now() + entry.timeoutMs;
      this.deadlines.arm(entry);
    }
    if (signal) this.watch(entry, signal);
    if (this.unsettled++ === 0) this.busySince = Date.now();
    this.stalls.arm();
    if (this.windowWaiters.length === 0 && this.hasRoom(entry)) this.admit(entry);
    else this.windowWaiters.push(entry);
  }

  /** Stops accepting messages and waits until every accepted one is settled, then closes the channel. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    if (this.unsettled > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.untrack();
    this.unwatchConfirms();
    this.stalls.close();
    await this.keeper.close();
  }

  private hasRoom(entry: Entry): boolean {
    return (
      this.active < this.maxInFlight &&
      (this.active === 0 || this.activeBytes + entry.content.byteLength <= this.maxInFlightBytes)
    );
  }

  private admit(entry: Entry): void {
    entry.admitted = true;
    this.active++;
    this.activeBytes += entry.content.byteLength;
    this.queue.push(entry);
    this.pump();
  }

  // Writes queued messages until the channel's buffer says stop (back-pressure) or the queue is empty.
  private pump(): void {
    const ch = this.keeper.current;
    if (!ch || this.waitingForDrain) return;
    const ledger = this.ledgers.get(ch);
    if (!ledger) return;
    while (this.queue.length > 0) {
      const entry = this.queue.shift()!;
      if (entry.settled) continue;
      let ok: boolean;
      try {
        // No callback: the ledger matches the confirm by delivery tag.
        ok = ch.publish(entry.exchange, entry.routingKey, asBuffer(entry.content), entry.props);
      } catch (err) {
        if (err instanceof Error && err.name === "IllegalOperationError") {
          // The channel is going away: keep the message for the next one.
          this.queue.unshiftAll([entry]);
          return;
        }
        // Bad properties (e.g. headers too large to encode): this message can never be sent.
        this.settle(entry, new StatusError(Code.INVALID_ARGUMENT, messageOf(err), { cause: err }));
        continue;
      }
      entry.channel = ch;
      ledger.add(entry);
      this.stats.published++;
      if (!ok) {
        this.stats.drainWaits++;
        this.waitingForDrain = true;
        return;
      }
    }
  }

  // Called by the channel's ledger; a copy confirmed on a channel the entry has left (re-sent since) is ignored.
  private onConfirm(entry: Entry, ch: ConfirmChannel, err: Error | null): void {
    if (entry.channel !== ch) return;
    entry.channel = undefined;
    if (!err) this.progressAt = Date.now();
    if (err) this.onNack(entry, ch, err);
    else if (entry.more?.returned !== undefined)
      this.settle(
        entry,
        new UnroutableError(entry.exchange, entry.routingKey, entry.more.returned),
      );
    else this.settle(entry, undefined);
  }

  // RabbitMQ sends basic.return before the basic.ack of the same message, so marking the oldest
  // matching in-flight entry is enough; its ack then rejects it.
  private onReturn(ch: ConfirmChannel, msg: Message): void {
    const id = msg.properties.messageId;
    const ledger = this.ledgers.get(ch);
    if (!ledger) return;
    for (const entry of ledger) {
      if (
        entry.channel === ch &&
        entry.more?.returned === undefined &&
        entry.props.messageId === id &&
        entry.exchange === msg.fields.exchange &&
        entry.routingKey === msg.fields.routingKey
      ) {
        moreOf(entry).returned = (msg.fields as { replyText?: string }).replyText ?? "NO_ROUTE";
        return;
      }
    }
  }

  // A nack says this copy was not taken. Not final: a channel that nacks may go on nacking (a quorum
  // queue client stuck on a dead leader), so it is replaced and the message sent again on the new one.
  private onNack(entry: Entry, ch: ConfirmChannel, err: Error): void {
    this.stats.nacked++;
    const more = moreOf(entry);
    more.nacks++;
    more.lastNack = err.message;
    more.returned = undefined;
    if (entry.deadline <= Date.now()) {
      this.settle(
        entry,
        new StatusError(
          Code.UNAVAILABLE,
          `the broker refused the message ${more.nacks} times within its timeout (${err.message})`,
          { cause: err },
        ),
      );
      return;
    }
    this.stats.resent++;
    recordPublishResent({ exchange: entry.exchange, reason: "nacked" });
    this.queue.unshiftAll([entry]);
    if (this.keeper.current === ch) {
      this.stats.replaced++;
      this.logReplaced(`the broker nacked a message (${err.message})`);
      this.emit("replaced", { reason: `the broker nacked a message (${err.message})` });
      this.keeper.replace(ch, new Error(`the broker nacked a message (${err.message})`));
    } else {
      this.pump();
    }
  }

  private onChannelClosed(ch: ConfirmChannel, lastError: Error | undefined): void {
    const missing = lastError ? NOT_FOUND_EXCHANGE.exec(lastError.message)?.[1] : undefined;
    const wrongUser = lastError ? WRONG_USER_ID.exec(lastError.message)?.[1] : undefined;
    // The broker calls the default exchange amq.default; publishers name it "".
    const refused = lastError
      ? REFUSED_EXCHANGE.exec(lastError.message)?.[1]?.replace(/^amq\.default$/, "")
      : undefined;
    const again: Entry[] = [];
    const ledger = this.ledgers.get(ch);
    this.ledgers.delete(ch);
    for (const entry of ledger?.drain() ?? []) {
      if (entry.channel !== ch) continue;
      entry.channel = undefined;
      if (entry.more) entry.more.returned = undefined;
      if (entry.settled) continue;
      // Channel errors name their cause only in text: reject the messages that caused them rather
      // than re-sending them into the same error forever.
      if (missing !== undefined && entry.exchange === missing) {
        this.settle(
          entry,
          new StatusError(Code.NOT_FOUND, `exchange "${missing}" does not exist`, {
            cause: lastError,
          }),
        );
      } else if (
        (wrongUser !== undefined && entry.props.userId === wrongUser) ||
        (refused !== undefined && entry.exchange === refused)
      ) {
        this.settle(
          entry,
          new StatusError(Code.PERMISSION_DENIED, lastError!.message, { cause: lastError }),
        );
      } else if (lastError && ++moreOf(entry).channelErrors >= MAX_CHANNEL_ERRORS) {
        this.settle(
          entry,
          new StatusError(
            Code.FAILED_PRECONDITION,
            `the broker closed the channel ${entry.more!.channelErrors} times while this message was in flight: ${lastError.message}`,
            { cause: lastError },
          ),
        );
      } else {
        this.stats.resent++;
        recordPublishResent({
          exchange: entry.exchange,
          reason: lastError ? "channel_error" : "channel_closed",
        });
        again.push(entry);
      }
    }
    this.queue.unshiftAll(again);
    this.waitingForDrain = false;
    if (again.length > 0) {
      const reason = lastError?.message ?? "the channel closed";
      try {
        this.logger.warn(
          { count: again.length, reason, node: this.node },
          `re-sending ${again.length} unconfirmed message(s) on a new channel: ${reason}`,
        );
      } catch {
        // A logger that throws must not lose messages.
      }
      this.emit("resent", { count: again.length, reason });
    }
  }

  // ---- stalls: confirms that stop coming ------------------------------------------------------

  // The publisher is stalled when it has had messages waiting and no confirm for stallTimeoutMs,
  // whatever happened meanwhile (nacks, replaced channels, no channel at all).
  private async checkStall(): Promise<void> {
    if (this.unsettled === 0) return;
    const waited = Date.now() - Math.max(this.progressAt, this.busySince);
    if (waited < this.stallTimeoutMs) return;
    const probe = await this.connection.probeNodes();
    if (probe.quorumLost) {
      // Everything waiting now would wait for the majority to come back: tell the callers now.
      const err = new StatusError(
        Code.UNAVAILABLE,
        `no publisher confirm for ${waited} ms: ${quorumLostMessage(probe)}; the message may still be delivered once it is back`,
      );
      // Waiters first: settling them admits nothing, so nothing new slips into the window.
      for (const entry of this.windowWaiters.clear()) this.settle(entry, err);
      for (const entry of this.queue.clear()) this.settle(entry, err);
      for (const [ch, ledger] of this.ledgers) {
        for (const entry of ledger.drain()) {
          if (entry.channel !== ch) continue;
          entry.channel = undefined;
          this.settle(entry, err);
        }
      }
    } else {
      const ch = this.keeper.current;
      if (ch && (this.ledgers.get(ch)?.size ?? 0) > 0) {
        this.stats.replaced++;
        const reason = `the broker did not confirm a message for ${waited} ms`;
        this.logReplaced(reason);
        this.emit("replaced", { reason });
        this.keeper.replace(ch, new Error(reason));
      }
    }
    // The next verdict needs another stallTimeoutMs of silence.
    this.busySince = Date.now();
  }

  private logReplaced(reason: string): void {
    try {
      this.logger.warn({ reason, node: this.node }, `replacing the publisher's channel: ${reason}`);
    } catch {
      // A logger that throws must not lose messages.
    }
  }

  private watch(entry: Entry, signal: AbortSignal): void {
    moreOf(entry).signal = signal;
    let group = this.watched.get(signal);
    if (group === undefined) {
      const entries = new Set<Entry>();
      const onAbort = (): void => {
        this.watched.delete(signal);
        for (const waiting of entries)
          this.settle(waiting, StatusError.from(signal.reason, Code.CANCELLED));
      };
      group = { entries, onAbort };
      this.watched.set(signal, group);
      signal.addEventListener("abort", onAbort, { once: true });
    }
    group.entries.add(entry);
  }

  private unwatch(entry: Entry, signal: AbortSignal): void {
    const group = this.watched.get(signal);
    // Gone when the signal aborted: its listener is settling the entries.
    if (group === undefined) return;
    group.entries.delete(entry);
    if (group.entries.size === 0) {
      signal.removeEventListener("abort", group.onAbort);
      this.watched.delete(signal);
    }
  }

  private expire(entry: Entry, timeoutMs: number): void {
    if (entry.settled) return;
    let err: StatusError;
    if (entry.more?.callDeadline) {
      err = new StatusError(
        Code.DEADLINE_EXCEEDED,
        `the deadline passed before the broker confirmed the message (${this.connection.connected ? "it may still be delivered" : "no connection to RabbitMQ"})`,
      );
    } else if (entry.more !== undefined && entry.more.nacks > 0) {
      err = new StatusError(
        Code.UNAVAILABLE,
        `the broker refused the message ${entry.more.nacks} times within ${timeoutMs} ms (${entry.more.lastNack}); it was sent again on a new channel each time`,
      );
    } else if (!this.connection.connected) {
      err = new StatusError(
        Code.UNAVAILABLE,
        `no connection to RabbitMQ within ${timeoutMs} ms; the message was not published`,
      );
    } else {
      err = new StatusError(Code.DEADLINE_EXCEEDED, `no publisher confirm within ${timeoutMs} ms`);
    }
    this.settle(entry, err);
  }

  private settleInBatch(batch: Batch, index: number, err: Error | undefined): void {
    if (err) {
      (batch.errors ??= new Array<Error | undefined>(batch.size).fill(undefined))[index] = err;
      batch.failed++;
    }
    if (--batch.remaining > 0) return;
    if (batch.failed === 0) batch.resolve();
    else batch.reject(new PublishManyError(batch.errors!, batch.failed));
  }

  private settle(entry: Entry, err: Error | undefined): void {
    if (entry.settled) return;
    entry.settled = true;
    if (entry.deadline !== Infinity) this.deadlines.unlink(entry);
    const signal = entry.more?.signal;
    if (signal) this.unwatch(entry, signal);
    // The slot frees now even if a late confirm may still arrive for an in-flight copy.
    this.unsettled--;
    if (entry.admitted) {
      this.active--;
      this.activeBytes -= entry.content.byteLength;
      for (let next = this.windowWaiters.peek(); next; next = this.windowWaiters.peek()) {
        if (!next.settled && !this.hasRoom(next)) break;
        this.windowWaiters.shift();
        if (!next.settled) this.admit(next);
      }
    }
    if (err) {
      this.stats.refused++;
      if (err instanceof UnroutableError) recordPublishUnroutable({ exchange: entry.exchange });
      else recordPublishRefused({ exchange: entry.exchange, reason: errorType(err) });
      if (this.listenerCount("refused") > 0)
        this.emit("refused", {
          messageId: entry.props.messageId,
          exchange: entry.exchange,
          routingKey: entry.routingKey,
          error: err,
        });
      entry.more?.onSettled?.end(err);
      if (entry.batch) this.settleInBatch(entry.batch, entry.index, err);
      else entry.reject!(err);
    } else {
      entry.more?.onSettled?.end();
      if (entry.batch) this.settleInBatch(entry.batch, entry.index, undefined);
      else entry.resolve!();
    }
    if (this.unsettled === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
