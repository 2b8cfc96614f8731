// The publisher's per-message record and what works on it alone: the batch a publishMany() message
// belongs to, its rarely used fields (kept apart so that the thousands of entries awaiting a confirm
// stay small), and the deadline buckets that time entries out with one timer per timeout value.
// Nothing here throws; the Publisher (publisher.ts) decides what a deadline or a failure means.

import type { ConfirmChannel, Options } from "amqplib";

/** One message of a publishMany() batch. */
export interface OutgoingMessage {
  exchange: string;
  routingKey: string;
  content: Uint8Array;
  /** Kept for a re-send until confirmed: not to be changed after the call. */
  properties?: Options.Publish;
  /** Told once when this message settles, as RawPublishOptions.settled (a trace ending, say). */
  settled?: { end(err?: unknown): void } | undefined;
}

/**
 * publishMany()'s rejection: the batch settled and not every message was confirmed. `errors[i]` is
 * why message i failed, undefined for the confirmed ones.
 */
export class PublishManyError extends Error {
  readonly errors: (Error | undefined)[];
  readonly failed: number;
  constructor(errors: (Error | undefined)[], failed: number) {
    const first = errors.find((e) => e !== undefined);
    super(
      `${failed} of ${errors.length} messages were not confirmed${first ? `; the first: ${first.message}` : ""}`,
      { cause: first },
    );
    this.name = "PublishManyError";
    this.errors = errors;
    this.failed = failed;
  }
}

/** Entries sharing one timeout, in deadline order, under one timer at the oldest. */
export interface DeadlineBucket {
  head: Entry | undefined;
  tail: Entry | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** A publishMany() batch: one promise for all its entries. */
export interface Batch {
  size: number;
  remaining: number;
  errors: (Error | undefined)[] | undefined;
  failed: number;
  resolve(): void;
  reject(err: Error): void;
}

export interface Entry {
  exchange: string;
  routingKey: string;
  /** The caller's bytes as given: a Buffer view is made only to write them (and dies young). */
  content: Uint8Array;
  props: Options.Publish;
  /** The caller's promise (publish) or undefined when the entry belongs to a batch. */
  resolve: (() => void) | undefined;
  reject: ((err: Error) => void) | undefined;
  batch: Batch | undefined;
  /** The entry's index in its batch. */
  index: number;
  settled: boolean;
  /** The channel the current copy was sent on, if it is in flight. */
  channel: ConfirmChannel | undefined;
  /** Epoch ms after which the message is rejected; Infinity for none. */
  deadline: number;
  timeoutMs: number;
  admitted: boolean;
  /** Neighbours in its deadline bucket (oldest first): a list through the entries, nothing allocated. */
  prevDue: Entry | undefined;
  nextDue: Entry | undefined;
  /** What few messages need (a caller's deadline or signal, a return, nacks): allocated on first use. */
  more: EntryMore | undefined;
}

/**
 * The rarely used part of an entry, apart so that the entries kept for a re-send (thousands in
 * flight, surviving young-generation collections) stay small.
 */
export interface EntryMore {
  onSettled: { end(err?: unknown): void } | undefined;
  /** True when `deadline` is the caller's (RawPublishOptions.deadline), not this publish's own timeout. */
  callDeadline: boolean;
  /** The signal whose abort settles this entry (it is in `watched` under it), if any. */
  signal: AbortSignal | undefined;
  returned: string | undefined;
  /** Channel errors (not connection losses) seen while this message was in flight. */
  channelErrors: number;
  /** Times the broker nacked a copy; the last reason. */
  nacks: number;
  lastNack: string | undefined;
}

export function moreOf(entry: Entry): EntryMore {
  return (entry.more ??= {
    onSettled: undefined,
    callDeadline: false,
    signal: undefined,
    returned: undefined,
    channelErrors: 0,
    nacks: 0,
    lastNack: undefined,
  });
}

/** A rejected promise for a message refused before it was queued, telling `settled` first. */
export function refuse(
  options: { settled?: { end(err?: unknown): void } | undefined },
  err: Error,
): Promise<void> {
  options.settled?.end(err);
  return Promise.reject(err);
}

/** amqplib wants a Buffer: a view on the same bytes (no copy) when the caller gave a plain Uint8Array. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Deadlines, one bucket per timeout value. Within a bucket insertion order is deadline order, so one
 * timer per bucket (at its oldest entry) replaces a timer per message, and the bucket is a list
 * through the entries themselves: arming and settling allocate nothing.
 */
export class DeadlineBuckets {
  private readonly buckets = new Map<number, DeadlineBucket>();

  constructor(private readonly expire: (entry: Entry, timeoutMs: number) => void) {}

  arm(entry: Entry): void {
    let bucket = this.buckets.get(entry.timeoutMs);
    if (!bucket) {
      bucket = { head: undefined, tail: undefined, timer: undefined };
      this.buckets.set(entry.timeoutMs, bucket);
    }
    entry.prevDue = bucket.tail;
    if (bucket.tail) bucket.tail.nextDue = entry;
    else bucket.head = entry;
    bucket.tail = entry;
    if (!bucket.timer) this.schedule(entry.timeoutMs, bucket, entry.deadline);
  }

  /** Takes a settled entry out of its deadline bucket, and drops the bucket (and its timer) when it empties. */
  unlink(entry: Entry): void {
    const bucket = this.buckets.get(entry.timeoutMs);
    if (!bucket || (entry.prevDue === undefined && bucket.head !== entry)) return;
    if (entry.prevDue) entry.prevDue.nextDue = entry.nextDue;
    else bucket.head = entry.nextDue;
    if (entry.nextDue) entry.nextDue.prevDue = entry.prevDue;
    else bucket.tail = entry.prevDue;
    entry.prevDue = entry.nextDue = undefined;
    if (bucket.head === undefined) {
      clearTimeout(bucket.timer);
      this.buckets.delete(entry.timeoutMs);
    }
  }

  private schedule(timeoutMs: number, bucket: DeadlineBucket, at: number): void {
    bucket.timer = setTimeout(
      () => {
        bucket.timer = undefined;
        const now = Date.now();
        for (let entry = bucket.head; entry; entry = bucket.head) {
          if (entry.deadline > now) {
            this.schedule(timeoutMs, bucket, entry.deadline);
            return;
          }
          this.expire(entry, timeoutMs); // the publisher settles it, which unlinks it
          if (bucket.head === entry) this.unlink(entry);
        }
      },
      Math.max(0, at - Date.now()),
    );
    // A deadline alone must not keep a process alive: the socket does while there is work in flight.
    bucket.timer.unref();
  }
}
