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

import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { ConfirmChannel, Message, Options } from "amqplib";
import { Code, StatusError, UnroutableError, messageOf } from "../status.js";
import { ChannelKeeper } from "./channel-keeper.js";
import { StallWatch } from "./stall-watch.js";
import { quorumLostMessage, type AmqpConnection } from "./connection.js";
import { Deque } from "./deque.js";
import type { Logger } from "../telemetry/logger.js";
import { errorType, recordPublishRefused, recordPublishResent, recordPublishUnroutable } from "../telemetry/metrics.js";
import { nodeOf, watchConfirms } from "./telemetry.js";

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

interface Entry {
  exchange: string;
  routingKey: string;
  content: Buffer;
  props: Options.Publish;
  resolve(): void;
  reject(err: Error): void;
  settled: boolean;
  onSettled: { end(err?: unknown): void } | undefined;
  /** The channel the current copy was sent on, if it is in flight. */
  channel: ConfirmChannel | undefined;
  returned: string | undefined;
  /** Epoch ms after which the message is rejected; Infinity for none. */
  deadline: number;
  timeoutMs: number;
  /** True when `deadline` is the caller's (RawPublishOptions.deadline), not this publish's own timeout. */
  callDeadline: boolean;
  /** The signal whose abort settles this entry (it is in `watched` under it), if any. */
  signal: AbortSignal | undefined;
  admitted: boolean;
  /** Channel errors (not connection losses) seen while this message was in flight. */
  channelErrors: number;
  /** Times the broker nacked a copy; the last reason. */
  nacks: number;
  lastNack: string | undefined;
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
  /** Written to `channel`, awaiting confirm, in publish order. */
  private readonly inFlight = new Set<Entry>();
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
  private readonly deadlines = new Map<number, { entries: Set<Entry>; timer: NodeJS.Timeout | undefined }>();
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
    this.stalls = new StallWatch(this.stallTimeoutMs, () => this.checkStall(), () => this.unsettled > 0);
    this.keeper = new ChannelKeeper<ConfirmChannel>(connection, {
      owner: "publisher",
      confirm: true,
      setup: (ch) => {
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
  publish(exchange: string, routingKey: string, content: Uint8Array, properties: Options.Publish = {}, options: RawPublishOptions = {}): Promise<void> {
    const refuse = (err: Error): Promise<void> => {
      options.settled?.end(err);
      return Promise.reject(err);
    };
    if (this.closed) return refuse(new StatusError(Code.UNAVAILABLE, "the publisher is closed"));
    const signal = options.signal;
    if (signal?.aborted) return refuse(StatusError.from(signal.reason, Code.CANCELLED));
    // Refused here, not buffered: an oversized message would sit in memory until the broker refused it.
    if (content.byteLength > this.maxMessageBytes) {
      return refuse(new StatusError(Code.RESOURCE_EXHAUSTED, `the message body is ${content.byteLength} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes)`));
    }
    let timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let callDeadline = false;
    if (options.deadline !== undefined) {
      const left = options.deadline - Date.now();
      // Sent now, a message the caller has stopped waiting for could still be delivered: refuse it.
      if (left <= 0) return refuse(new StatusError(Code.DEADLINE_EXCEEDED, "the deadline passed before the message was published; it was not sent"));
      if (!(timeoutMs > 0 && Number.isFinite(timeoutMs)) || left < timeoutMs) {
        timeoutMs = left;
        callDeadline = true;
      }
    }
    const buffer = Buffer.isBuffer(content) ? content : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
    // The properties are kept (for a re-send) until confirmed, so callers must not change them after
    // the call. They are copied only when something has to be filled in.
    const mandatory = options.mandatory ?? true;
    let props = properties;
    if (props.mandatory !== mandatory || props.messageId === undefined) {
      props = { ...properties, mandatory };
      if (props.messageId === undefined) props.messageId = randomUUID();
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Entry = {
        exchange,
        routingKey,
        content: buffer,
        props,
        resolve,
        reject,
        settled: false,
        onSettled: options.settled,
        channel: undefined,
        returned: undefined,
        deadline: Infinity,
        timeoutMs,
        callDeadline,
        signal: undefined,
        admitted: false,
        channelErrors: 0,
        nacks: 0,
        lastNack: undefined,
      };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        entry.deadline = Date.now() + timeoutMs;
        this.armDeadline(entry);
      }
      if (signal) this.watch(entry, signal);
      if (this.unsettled++ === 0) this.busySince = Date.now();
      this.stalls.arm();
      if (this.windowWaiters.length === 0 && this.hasRoom(entry)) this.admit(entry);
      else this.windowWaiters.push(entry);
    });
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
    this.stalls.stop();
    await this.keeper.close();
  }

  private hasRoom(entry: Entry): boolean {
    return this.active < this.maxInFlight && (this.active === 0 || this.activeBytes + entry.content.byteLength <= this.maxInFlightBytes);
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
    while (this.queue.length > 0) {
      const entry = this.queue.shift()!;
      if (entry.settled) continue;
      let ok: boolean;
      try {
        ok = ch.publish(entry.exchange, entry.routingKey, entry.content, entry.props, (err) => this.onConfirm(entry, ch, err));
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
      this.inFlight.add(entry);
      this.stats.published++;
      if (!ok) {
        this.stats.drainWaits++;
        this.waitingForDrain = true;
        return;
      }
    }
  }

  private onConfirm(entry: Entry, ch: ConfirmChannel, err: Error | null): void {
    if (entry.channel !== ch) return;
    if (err && err.message === "channel closed") return; // onChannelClosed puts it back in the queue
    entry.channel = undefined;
    this.inFlight.delete(entry);
    if (!err) this.progressAt = Date.now();
    if (err) this.onNack(entry, ch, err);
    else if (entry.returned !== undefined) this.settle(entry, new UnroutableError(entry.exchange, entry.routingKey, entry.returned));
    else this.settle(entry, undefined);
  }

  // RabbitMQ sends basic.return before the basic.ack of the same message, so marking the oldest
  // matching in-flight entry is enough; its ack then rejects it.
  private onReturn(ch: ConfirmChannel, msg: Message): void {
    const id = msg.properties.messageId;
    for (const entry of this.inFlight) {
      if (
        entry.channel === ch &&
        entry.returned === undefined &&
        entry.props.messageId === id &&
        entry.exchange === msg.fields.exchange &&
        entry.routingKey === msg.fields.routingKey
      ) {
        entry.returned = (msg.fields as { replyText?: string }).replyText ?? "NO_ROUTE";
        return;
      }
    }
  }

  // A nack says this copy was not taken. Not final: a channel that nacks may go on nacking (a quorum
  // queue client stuck on a dead leader), so it is replaced and the message sent again on the new one.
  private onNack(entry: Entry, ch: ConfirmChannel, err: Error): void {
    this.stats.nacked++;
    entry.nacks++;
    entry.lastNack = err.message;
    entry.returned = undefined;
    if (entry.deadline <= Date.now()) {
      this.settle(entry, new StatusError(Code.UNAVAILABLE, `the broker refused the message ${entry.nacks} times within its timeout (${err.message})`, { cause: err }));
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
    const refused = lastError ? REFUSED_EXCHANGE.exec(lastError.message)?.[1]?.replace(/^amq\.default$/, "") : undefined;
    const again: Entry[] = [];
    for (const entry of this.inFlight) {
      if (entry.channel !== ch) continue;
      this.inFlight.delete(entry);
      entry.channel = undefined;
      entry.returned = undefined;
      if (entry.settled) continue;
      // Channel errors name their cause only in text: reject the messages that caused them rather
      // than re-sending them into the same error forever.
      if (missing !== undefined && entry.exchange === missing) {
        this.settle(entry, new StatusError(Code.NOT_FOUND, `exchange "${missing}" does not exist`, { cause: lastError }));
      } else if ((wrongUser !== undefined && entry.props.userId === wrongUser) || (refused !== undefined && entry.exchange === refused)) {
        this.settle(entry, new StatusError(Code.PERMISSION_DENIED, lastError!.message, { cause: lastError }));
      } else if (lastError && ++entry.channelErrors >= MAX_CHANNEL_ERRORS) {
        this.settle(entry, new StatusError(Code.FAILED_PRECONDITION, `the broker closed the channel ${entry.channelErrors} times while this message was in flight: ${lastError.message}`, { cause: lastError }));
      } else {
        this.stats.resent++;
        recordPublishResent({ exchange: entry.exchange, reason: lastError ? "channel_error" : "channel_closed" });
        again.push(entry);
      }
    }
    this.queue.unshiftAll(again);
    this.waitingForDrain = false;
    if (again.length > 0) {
      const reason = lastError?.message ?? "the channel closed";
      try {
        this.logger.warn({ count: again.length, reason, node: this.node }, `re-sending ${again.length} unconfirmed message(s) on a new channel: ${reason}`);
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
      const err = new StatusError(Code.UNAVAILABLE, `no publisher confirm for ${waited} ms: ${quorumLostMessage(probe)}; the message may still be delivered once it is back`);
      // Waiters first: settling them admits nothing, so nothing new slips into the window.
      for (const entry of this.windowWaiters.clear()) this.settle(entry, err);
      for (const entry of this.queue.clear()) this.settle(entry, err);
      for (const entry of [...this.inFlight]) {
        this.inFlight.delete(entry);
        entry.channel = undefined;
        this.settle(entry, err);
      }
    } else {
      const ch = this.keeper.current;
      if (ch && this.inFlight.size > 0) {
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
    entry.signal = signal;
    let group = this.watched.get(signal);
    if (group === undefined) {
      const entries = new Set<Entry>();
      const onAbort = (): void => {
        this.watched.delete(signal);
        for (const waiting of entries) this.settle(waiting, StatusError.from(signal.reason, Code.CANCELLED));
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

  private armDeadline(entry: Entry): void {
    let bucket = this.deadlines.get(entry.timeoutMs);
    if (!bucket) {
      bucket = { entries: new Set(), timer: undefined };
      this.deadlines.set(entry.timeoutMs, bucket);
    }
    bucket.entries.add(entry);
    if (!bucket.timer) this.scheduleBucket(entry.timeoutMs, bucket, entry.deadline);
  }

  private scheduleBucket(timeoutMs: number, bucket: { entries: Set<Entry>; timer: NodeJS.Timeout | undefined }, at: number): void {
    bucket.timer = setTimeout(() => {
      bucket.timer = undefined;
      const now = Date.now();
      for (const entry of bucket.entries) {
        if (entry.deadline > now) {
          this.scheduleBucket(timeoutMs, bucket, entry.deadline);
          return;
        }
        this.expire(entry, timeoutMs); // settle() removes it from the bucket
      }
      if (bucket.entries.size === 0) this.deadlines.delete(timeoutMs);
    }, Math.max(0, at - Date.now()));
    // A deadline alone must not keep a process alive: the socket does while there is work in flight.
    bucket.timer.unref();
  }

  private expire(entry: Entry, timeoutMs: number): void {
    if (entry.settled) return;
    let err: StatusError;
    if (entry.callDeadline) {
      err = new StatusError(Code.DEADLINE_EXCEEDED, `the deadline passed before the broker confirmed the message (${this.connection.connected ? "it may still be delivered" : "no connection to RabbitMQ"})`);
    } else if (entry.nacks > 0) {
      err = new StatusError(Code.UNAVAILABLE, `the broker refused the message ${entry.nacks} times within ${timeoutMs} ms (${entry.lastNack}); it was sent again on a new channel each time`);
    } else if (!this.connection.connected) {
      err = new StatusError(Code.UNAVAILABLE, `no connection to RabbitMQ within ${timeoutMs} ms; the message was not published`);
    } else {
      err = new StatusError(Code.DEADLINE_EXCEEDED, `no publisher confirm within ${timeoutMs} ms`);
    }
    this.settle(entry, err);
  }

  private settle(entry: Entry, err: Error | undefined): void {
    if (entry.settled) return;
    entry.settled = true;
    if (entry.deadline !== Infinity) {
      const bucket = this.deadlines.get(entry.timeoutMs);
      bucket?.entries.delete(entry);
      if (bucket && bucket.entries.size === 0) {
        clearTimeout(bucket.timer);
        this.deadlines.delete(entry.timeoutMs);
      }
    }
    if (entry.signal) this.unwatch(entry, entry.signal);
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
      if (this.listenerCount("refused") > 0) this.emit("refused", { messageId: entry.props.messageId, exchange: entry.exchange, routingKey: entry.routingKey, error: err });
      entry.onSettled?.end(err);
      entry.reject(err);
    } else {
      entry.onSettled?.end();
      entry.resolve();
    }
    if (this.unsettled === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
