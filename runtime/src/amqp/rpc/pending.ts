// The client's bookkeeping for unary calls over RabbitMQ: the channel a request went out on (a
// Link, current or retired until its replies are in) and each call waiting for its reply (Pending).
// Plain state; the transport decides what to do with it. Nothing here publishes or fails.

import type { ConfirmChannel, Options } from "amqplib";
import type { AmqpSession } from "../connection.js";
import type { MethodDesc } from "../../descriptors.js";
import type { CallResponse } from "../../interceptor.js";
import type { StatusError } from "../../status.js";

/** The request-and-reply channel: current, or retired and waiting for its calls' replies. */
export interface Link {
  readonly session: AmqpSession;
  readonly channel: ConfirmChannel;
  alive: boolean;
  /** Set while the channel's write buffer is full; publishing waits for it. */
  drain: Promise<void> | undefined;
  /** Calls whose request went out on this channel (their replies come back on it). */
  readonly calls: Set<Pending>;
  /** Resolved when a retired link has no calls left. */
  drained: (() => void) | undefined;
  /** This channel's inbox for stream frames, declared with the first stream. */
  inbox: Promise<string> | undefined;
  /** The cancel exchange is declared (true), or could not be (false). */
  cancelExchange: Promise<boolean> | undefined;
}

/** One call waiting for its reply. */
export class Pending {
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** The link its current copy went out on; undefined while waiting to be sent again. */
  link: Link | undefined;
  /** The broker took the current copy (publisher confirm). */
  confirmed = false;
  /** When the first copy went out (re-sends keep it). */
  firstSentAt = 0;
  /** When the current copy went out. */
  sentAt = 0;

  constructor(
    readonly id: string,
    readonly method: MethodDesc,
    readonly signal: AbortSignal,
    readonly queue: string,
    readonly body: Buffer,
    readonly props: Options.Publish,
    readonly resolve: (response: CallResponse) => void,
    readonly reject: (err: StatusError) => void,
  ) {}

  /** Detaches timers and listeners; the caller has already removed it from the map. */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort) this.signal.removeEventListener("abort", this.onAbort);
  }
}

/**
 * The calls stalled at `now`: sent `stallTimeoutMs` ago or more and either not confirmed by the
 * broker, or confirmed while nothing at all (no confirm, no reply) came back since `lastHeardAt`.
 * A request the broker has not confirmed for the stall time is stalled whatever else it confirms
 * meanwhile (a channel whose queue client hangs on a dead leader goes on confirming nothing, while
 * a new channel works); one confirmed but unanswered only when all is quiet (else it is just a slow
 * handler).
 */
export function stalledCalls(
  calls: Iterable<Pending>,
  now: number,
  stallTimeoutMs: number,
  lastHeardAt: number,
): Pending[] {
  const quiet = now - lastHeardAt >= stallTimeoutMs;
  const stalled: Pending[] = [];
  for (const c of calls)
    if (c.firstSentAt > 0 && now - c.firstSentAt >= stallTimeoutMs && (!c.confirmed || quiet))
      stalled.push(c);
  return stalled;
}
