// Work a handler starts and does not wait for. The call context (docs/call-context.md) follows every
// piece of async work a handler starts, so what such work publishes or calls would end with the
// call's deadline: here, the Processor's decision, made after processRequest has answered. Run it
// detached and it keeps the caller's token and trace (the call's metadata) but has a deadline and
// cancellation of its own, as Go's context.WithoutCancel does.

import { Code, currentCallContext, runInCallContext, StatusError, type HandlerContext } from "@grabbit/runtime";

/** Runs `fn` as part of the current call's trail (its metadata), but not of its deadline or cancellation. */
export function detachFromCall<T>(fn: () => T): T {
  const call = currentCallContext();
  if (call === undefined) return fn();
  const detached: HandlerContext = {
    method: call.method,
    transport: call.transport,
    metadata: call.metadata,
    deadline: undefined,
    // Never aborted (the work ends when the service has it end, not with the call), and one per
    // detached piece of work: a shared one would collect a listener from every call in flight.
    signal: new AbortController().signal,
    responseHeaders: {},
    sendHeaders() {
      throw new StatusError(Code.FAILED_PRECONDITION, "work detached from a call cannot send its response headers");
    },
    responseMetadata: {},
    peer: call.peer,
    values: call.values,
  };
  return runInCallContext(detached, fn);
}
