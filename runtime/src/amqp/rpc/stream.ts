// One end of a streaming call over RabbitMQ, the same on the client and the server: numbered
// `message` frames out, as many as the peer's credit allows; messages in, as many as our window
// allows, with credit given back as the reader takes them; a `ping` when we have been quiet for a
// keepalive; and the stream taken for broken when the peer has been silent for KEEPALIVE_MISSES of
// them. The client and the server own the frames that differ between them (open, ready, headers,
// half-close, end, cancel) and hand the shared ones to `receive`.

import type { Channel, Options } from "amqplib";
import type { MessageType } from "../../codec.js";
import { CONTENT_TYPE_PROTOBUF } from "../headers.js";
import { Code, StatusError, messageOf } from "../../status.js";
import { Deque } from "../deque.js";
import {
  FRAME,
  HEADER_CREDIT,
  HEADER_FRAME,
  HEADER_SEQ,
  INITIAL_STREAM_CREDIT,
  KEEPALIVE_MISSES,
  readCount,
  type FrameKind,
} from "./wire.js";

/** Where this end's frames go: the peer's inbox, through one channel. */
export interface StreamRoute {
  /** Publishes a frame; false when the channel's buffer is full (wait for `drained`). Throws when the channel is gone. */
  publish(headers: Record<string, unknown>, body: Buffer, props?: Options.Publish): boolean;
  /** Resolves when the channel's buffer has room again (or the channel closed). */
  drained(): Promise<void>;
}

/**
 * Frames of call `id` to the peer's inbox `inbox` on `channel`: mandatory (a gone inbox comes back
 * as a return), the call's correlation id, protobuf content; `drained` is how the channel says it
 * has room again.
 */
export function inboxRoute(
  channel: Channel,
  inbox: string,
  id: string,
  drained: () => Promise<void>,
): StreamRoute {
  return {
    publish: (headers, body, props) =>
      channel.publish("", inbox, body, {
        correlationId: id,
        contentType: CONTENT_TYPE_PROTOBUF,
        headers,
        mandatory: true,
        ...props,
      }),
    drained,
  };
}

export interface StreamEndOptions {
  /** The method's path, for messages. */
  readonly path: string;
  /** "client" or "server": whose end this is, for messages ("the server went silent"). */
  readonly side: "client" | "server";
  readonly keepaliveMs: number;
  /** At most this many messages given credit for and not yet read (0: this end receives no messages). */
  readonly window: number;
  /** About this many bytes of them, once sizes are known. */
  readonly windowBytes: number;
  readonly maxMessageBytes: number;
  /** The message type we receive. */
  readonly receives: MessageType<unknown>;
  /** The message type we send (its full name goes in the `type` property). */
  readonly sends: MessageType<unknown>;
  /** Status code for a message from the peer we cannot decode (the server: INVALID_ARGUMENT; the client: INTERNAL). */
  readonly decodeCode: Code;
  /** The stream broke on this side (silence, a protocol breach, a lost channel): the owner ends the call. */
  onBroken(err: StatusError): void;
}

const EMPTY = Buffer.alloc(0);

export class StreamEnd {
  /** Set once the peer's inbox is known (the server knows it from the open; the client from `ready`). */
  private route: StreamRoute | undefined;
  /** Messages we may still send. */
  private credit = 0;
  private creditWaiter: { resolve: () => void; reject: (err: StatusError) => void } | undefined;
  private sentSeq = 0;
  private receivedSeq = 0;
  /** Messages the peer may still send us under the credit we gave. */
  private granted: number;
  /** Running mean of the sizes of the messages received (0 before the first). */
  private meanSize = 0;
  private lastSent = Date.now();
  private lastHeard = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private failure: StatusError | undefined;
  /** What the peer sent us, for the reader. */
  readonly inbound: Inbound;

  constructor(private readonly options: StreamEndOptions) {
    this.granted = Math.min(options.window, INITIAL_STREAM_CREDIT);
    this.inbound = new Inbound(() => this.took());
  }

  /** The credit this end gives in its open or ready frame. */
  get window(): number {
    return Math.min(this.options.window, INITIAL_STREAM_CREDIT);
  }

  get closed(): boolean {
    return this.failure !== undefined;
  }

  /** The peer is reachable at `route` and gave us `credit`: start the keepalive and the silence watch. */
  connect(route: StreamRoute, credit: number): void {
    this.route = route;
    this.addCredit(credit);
    this.lastHeard = Date.now();
    if (this.timer === undefined && !this.closed) {
      this.timer = setInterval(
        () => this.tick(),
        Math.max(10, Math.floor(this.options.keepaliveMs / 2)),
      );
      this.timer.unref?.();
    }
  }

  get connected(): boolean {
    return this.route !== undefined;
  }

  /** Sends a frame of the owner's (headers, end, half-close...); false when the channel is full. */
  sendFrame(
    kind: FrameKind,
    headers: Record<string, unknown> = {},
    body: Buffer = EMPTY,
    props?: Options.Publish,
  ): boolean {
    const route = this.route;
    if (route === undefined)
      throw new StatusError(
        Code.INTERNAL,
        `${this.options.path}: a ${kind} frame before the peer's inbox is known`,
      );
    headers[HEADER_FRAME] = kind;
    this.lastSent = Date.now();
    try {
      return route.publish(headers, body, props);
    } catch (err) {
      const broken = new StatusError(
        Code.UNAVAILABLE,
        `${this.options.path}: the stream's channel to RabbitMQ is gone: ${messageOf(err)}`,
        { cause: err },
      );
      this.break(broken);
      throw broken;
    }
  }

  /** Sends one message, waiting for credit and for the channel's buffer; rejects once the stream is over. */
  async send(message: unknown): Promise<void> {
    while (this.credit === 0) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve, reject) => (this.creditWaiter = { resolve, reject }));
    }
    if (this.failure) throw this.failure;
    let body: Buffer;
    try {
      const bytes = this.options.sends.encode(message);
      body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw new StatusError(
        Code.INTERNAL,
        `could not encode a ${this.options.sends.typeName} message of ${this.options.path}: ${messageOf(err)}`,
        { cause: err },
      );
    }
    if (body.length > this.options.maxMessageBytes) {
      throw new StatusError(
        Code.RESOURCE_EXHAUSTED,
        `${this.options.path}: a stream message of ${body.length} bytes is over the limit of ${this.options.maxMessageBytes}`,
      );
    }
    this.credit--;
    const flushed = this.sendFrame(FRAME.message, { [HEADER_SEQ]: ++this.sentSeq }, body, {
      type: this.options.sends.typeName,
    });
    if (!flushed) await this.route!.drained();
  }

  /**
   * A frame from the peer. Handles message, credit and ping; returns false for the owner's kinds.
   * Anything heard counts as the peer being alive.
   */
  receive(kind: FrameKind, headers: Record<string, unknown> | undefined, body: Buffer): boolean {
    this.lastHeard = Date.now();
    if (this.failure) return kind === FRAME.message || kind === FRAME.credit || kind === FRAME.ping;
    switch (kind) {
      case FRAME.ping:
        return true;
      case FRAME.credit: {
        const n = readCount(headers, HEADER_CREDIT);
        if (n === undefined)
          this.break(
            new StatusError(
              Code.INTERNAL,
              `${this.options.path}: a credit frame without a valid ${HEADER_CREDIT}`,
            ),
          );
        else this.addCredit(n);
        return true;
      }
      case FRAME.message:
        this.receiveMessage(headers, body);
        return true;
      default:
        return false;
    }
  }

  private receiveMessage(headers: Record<string, unknown> | undefined, body: Buffer): void {
    const seq = readCount(headers, HEADER_SEQ);
    if (seq !== this.receivedSeq + 1) {
      this.break(
        new StatusError(
          Code.INTERNAL,
          `${this.options.path}: stream message ${seq ?? "without a number"} arrived after message ${this.receivedSeq} (lost or reordered)`,
        ),
      );
      return;
    }
    this.receivedSeq = seq;
    if (this.granted === 0) {
      this.break(
        new StatusError(
          Code.RESOURCE_EXHAUSTED,
          `${this.options.path}: the ${peerOf(this.options.side)} sent message ${seq} beyond the credit it was given`,
        ),
      );
      return;
    }
    this.granted--;
    this.meanSize =
      this.meanSize === 0 ? body.length + 1 : this.meanSize * 0.9 + (body.length + 1) * 0.1;
    if (body.length > this.options.maxMessageBytes) {
      this.break(
        new StatusError(
          Code.RESOURCE_EXHAUSTED,
          `${this.options.path}: a stream message of ${body.length} bytes is over the limit of ${this.options.maxMessageBytes}`,
        ),
      );
      return;
    }
    let message: unknown;
    try {
      message = this.options.receives.decode(body);
    } catch (err) {
      this.break(
        new StatusError(
          this.options.decodeCode,
          `${this.options.path}: could not decode stream message ${seq}: ${messageOf(err)}`,
          { cause: err },
        ),
      );
      return;
    }
    this.inbound.push(message);
  }

  /**
   * The reader took a message. What the peer may still send plus what waits unread is topped up to
   * the target once it falls to half of it: the window in messages, or fewer when the messages are
   * big (windowBytes over their mean size), at least one.
   */
  private took(): void {
    if (this.failure || this.route === undefined || this.options.window === 0) return;
    const bySize =
      this.meanSize === 0
        ? INITIAL_STREAM_CREDIT
        : Math.floor(this.options.windowBytes / this.meanSize);
    const target = Math.max(1, Math.min(this.options.window, bySize));
    const outstanding = this.granted + this.inbound.length;
    if (outstanding > target >> 1) return;
    const n = target - outstanding;
    if (n <= 0) return;
    this.granted += n;
    try {
      this.sendFrame(FRAME.credit, { [HEADER_CREDIT]: n });
    } catch {
      // broken: the owner has been told
    }
  }

  private addCredit(n: number): void {
    this.credit += n;
    if (this.credit > 0 && this.creditWaiter) {
      const waiter = this.creditWaiter;
      this.creditWaiter = undefined;
      waiter.resolve();
    }
  }

  private tick(): void {
    if (this.failure || this.route === undefined) return;
    const now = Date.now();
    const silent = now - this.lastHeard;
    if (silent >= this.options.keepaliveMs * KEEPALIVE_MISSES) {
      this.break(
        new StatusError(
          Code.UNAVAILABLE,
          `${this.options.path}: the ${peerOf(this.options.side)} went silent for ${silent} ms (keepalive ${this.options.keepaliveMs} ms): it or its connection to RabbitMQ is gone`,
        ),
      );
      return;
    }
    if (now - this.lastSent >= this.options.keepaliveMs) {
      try {
        this.sendFrame(FRAME.ping);
      } catch {
        // broken: the owner has been told
      }
    }
  }

  /** The stream broke here: tell the owner once. */
  break(err: StatusError): void {
    if (this.failure) return;
    this.close(err);
    this.options.onBroken(err);
  }

  /**
   * This end is done (the call ended, either way): timers stop, a sender waiting for credit gets
   * `err`, and the reader gets `err` after what it has not read yet (none: a clean end).
   */
  close(err?: StatusError): void {
    if (this.failure) return;
    this.failure =
      err ?? new StatusError(Code.CANCELLED, `${this.options.path}: the stream is over`);
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    const waiter = this.creditWaiter;
    this.creditWaiter = undefined;
    waiter?.reject(this.failure);
    this.inbound.end(err);
  }
}

/**
 * The messages a peer sent, for one reader. Bounded by the credit we give (never more than the
 * window is held here); `onTake` is how the end learns a message was read.
 */
export class Inbound implements AsyncIterableIterator<unknown> {
  private readonly items = new Deque<unknown>();
  private done = false;
  private failure: StatusError | undefined;
  private waiter: (() => void) | undefined;
  /** Called when the reader stops early (break, return()). */
  onReturn: (() => void) | undefined;

  constructor(private readonly onTake: () => void) {}

  push(message: unknown): void {
    if (this.done) return;
    this.items.push(message);
    this.wake();
  }

  /** No more messages; the reader sees `err` (if any) after the ones queued. */
  end(err?: StatusError): void {
    if (this.done) return;
    this.done = true;
    this.failure = err;
    this.wake();
  }

  get ended(): boolean {
    return this.done;
  }

  /** Messages received and not yet read. */
  get length(): number {
    return this.items.length;
  }

  async next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      if (this.items.length > 0) {
        const value = this.items.shift();
        if (!this.done) this.onTake();
        return { value, done: false };
      }
      if (this.done) {
        const failure = this.failure;
        if (failure) {
          this.failure = undefined;
          throw failure;
        }
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  async return(): Promise<IteratorResult<unknown>> {
    const wasOpen = !this.done;
    this.done = true;
    this.failure = undefined;
    while (this.items.length > 0) this.items.shift();
    this.wake();
    if (wasOpen) this.onReturn?.();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

function peerOf(side: "client" | "server"): string {
  return side === "client" ? "server" : "client";
}
