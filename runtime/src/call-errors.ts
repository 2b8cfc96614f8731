// The statuses a client call ends with on its own side, the same on every transport: its deadline
// passed, its signal aborted, or it was called as another kind than its method is. Pure.

import type { MethodDesc } from "./descriptors.js";
import { Code, StatusError } from "./status.js";

/** The client's status when the call's deadline passed before its reply. */
export function deadlineError(method: MethodDesc): StatusError {
  return new StatusError(
    Code.DEADLINE_EXCEEDED,
    `${method.path}: the deadline passed before the reply arrived`,
  );
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
    return new StatusError(
      Code.DEADLINE_EXCEEDED,
      `the call's signal timed out: ${reason.message}`,
      { cause: reason },
    );
  }
  return new StatusError(
    Code.CANCELLED,
    reason instanceof Error && reason.message
      ? `the call was cancelled: ${reason.message}`
      : "the call was cancelled",
    {
      cause: reason,
    },
  );
}

/** A generated client called a method through the wrong Transport method (a hand-built descriptor, a mismatch). */
export function kindError(method: MethodDesc, called: string): StatusError {
  return new StatusError(
    Code.INTERNAL,
    `${method.path} is a ${method.kind} method, called as ${called}`,
  );
}

/** A stream whose first next() fails with `err`. */
export function failing(err: StatusError): AsyncIterable<never> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(err) }) };
}
