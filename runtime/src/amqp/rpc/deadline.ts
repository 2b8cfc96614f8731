// Deadlines and cancellation on the RPC wire (docs/wire-contract.md): how a request says how long
// its caller waits (`rpc-timeout-ms`, else its `expiration`), and the statuses a call ends with when
// its deadline passes or its signal aborts. Pure; the clock comes in as an argument where it counts.

import { NEVER_ABORTED } from "../../context.js";
import type { MethodDesc } from "../../descriptors.js";
import type { CallRequest } from "../../interceptor.js";
import { Code, StatusError } from "../../status.js";
import { delayUntil } from "../../timers.js";
import { HEADER_TIMEOUT, readMillis } from "./wire.js";

/**
 * The milliseconds a request's caller still waits, as it said on arrival: `rpc-timeout-ms`, else
 * (unary only) the `expiration` property; undefined when it set none. A stream's deadline is its
 * `rpc-timeout-ms` only: an open's `expiration` may just bound its wait in the queue.
 */
export function requestTimeoutMs(headers: Record<string, unknown> | undefined, expiration: unknown, streaming: boolean): number | undefined {
  return readMillis(headers?.[HEADER_TIMEOUT]) ?? (streaming ? undefined : readMillis(expiration));
}

/** The absolute deadline of a request that arrived at `arrival` with `timeoutMs` left (the caller's clock is never read). */
export function requestDeadline(timeoutMs: number | undefined, arrival: number): number | undefined {
  return timeoutMs === undefined ? undefined : arrival + timeoutMs;
}

/** The client's status when the call's deadline passed before its reply. */
export function deadlineError(method: MethodDesc): StatusError {
  return new StatusError(Code.DEADLINE_EXCEEDED, `${method.path}: the deadline passed before the reply arrived`);
}

/**
 * The status of a call whose signal aborted: the reason itself when it is a StatusError,
 * DEADLINE_EXCEEDED for AbortSignal.timeout()'s TimeoutError, else CANCELLED with the reason's text.
 */
export function abortStatus(signal: AbortSignal): StatusError {
  const reason: unknown = signal.reason;
  if (reason instanceof StatusError) return reason;
  // AbortSignal.timeout() is a deadline by another name.
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new StatusError(Code.DEADLINE_EXCEEDED, `the call's signal timed out: ${reason.message}`, { cause: reason });
  }
  return new StatusError(Code.CANCELLED, reason instanceof Error && reason.message ? `the call was cancelled: ${reason.message}` : "the call was cancelled", {
    cause: reason,
  });
}

/**
 * Waits for `event` on behalf of call `req`: rejects with the call's deadline or cancellation status
 * if either comes first, and with UNAVAILABLE (or the event's own status) if the event fails.
 */
export function untilReady(event: Promise<void>, req: Pick<CallRequest, "method" | "deadline" | "signal">): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => done(() => reject(abortStatus(req.signal)));
    const watch = req.signal !== NEVER_ABORTED;
    const done = (f: () => void) => {
      if (timer !== undefined) clearTimeout(timer);
      if (watch) req.signal.removeEventListener("abort", onAbort);
      f();
    };
    if (req.deadline !== undefined) {
      timer = setTimeout(() => done(() => reject(deadlineError(req.method))), delayUntil(req.deadline));
    }
    if (watch) req.signal.addEventListener("abort", onAbort, { once: true });
    event.then(
      () => done(resolve),
      (err: unknown) => done(() => reject(StatusError.from(err, Code.UNAVAILABLE))),
    );
  });
}
