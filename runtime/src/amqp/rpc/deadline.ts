// Deadlines and cancellation on the RPC wire (docs/wire-contract.md): how a request says how long
// its caller waits (`rpc-timeout-ms`, else its `expiration`), and the statuses a call ends with when
// its deadline passes or its signal aborts. Pure; the clock comes in as an argument where it counts.

import { abortStatus, deadlineError } from "../../call-errors.js";
import { NEVER_ABORTED } from "../../context.js";
import type { CallRequest } from "../../interceptor.js";
import { Code, StatusError } from "../../status.js";
import { delayUntil } from "../../timers.js";

export { abortStatus, deadlineError } from "../../call-errors.js";
import { HEADER_TIMEOUT, readMillis } from "./wire.js";

/**
 * The milliseconds a request's caller still waits, as it said on arrival: `rpc-timeout-ms`, else
 * (unary only) the `expiration` property; undefined when it set none. A stream's deadline is its
 * `rpc-timeout-ms` only: an open's `expiration` may just bound its wait in the queue.
 */
export function requestTimeoutMs(
  headers: Record<string, unknown> | undefined,
  expiration: unknown,
  streaming: boolean,
): number | undefined {
  return readMillis(headers?.[HEADER_TIMEOUT]) ?? (streaming ? undefined : readMillis(expiration));
}

/** The absolute deadline of a request that arrived at `arrival` with `timeoutMs` left (the caller's clock is never read). */
export function requestDeadline(
  timeoutMs: number | undefined,
  arrival: number,
): number | undefined {
  return timeoutMs === undefined ? undefined : arrival + timeoutMs;
}

/**
 * Waits for `event` on behalf of call `req`: rejects with the call's deadline or cancellation status
 * if either comes first, and with UNAVAILABLE (or the event's own status) if the event fails.
 */
export function untilReady(
  event: Promise<void>,
  req: Pick<CallRequest, "method" | "deadline" | "signal">,
): Promise<void> {
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
      timer = setTimeout(
        () => done(() => reject(deadlineError(req.method))),
        delayUntil(req.deadline),
      );
    }
    if (watch) req.signal.addEventListener("abort", onAbort, { once: true });
    event.then(
      () => done(resolve),
      (err: unknown) => done(() => reject(StatusError.from(err, Code.UNAVAILABLE))),
    );
  });
}
