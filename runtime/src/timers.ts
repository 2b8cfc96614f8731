// Deadlines as Node timers: one cap and two conversions shared by both transports. Pure arithmetic
// on the clock; nothing here fails, a deadline past what a timer can take is capped (or, where the
// caller says so, treated as none).

/**
 * Longest delay Node's timers take (2^31 - 1 ms, about 24.8 days); a longer one fires at once.
 * Deadlines further away are sent and timed as this (RabbitMQ's `expiration` is bounded too).
 */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** The whole milliseconds left until `deadline` (0 or less once it passed), capped at MAX_TIMEOUT_MS. */
export function remainingMs(deadline: number, now = Date.now()): number {
  return Math.min(MAX_TIMEOUT_MS, Math.ceil(deadline - now));
}

/** A timer's delay for `deadline`: never negative, never past what Node's timers take. */
export function delayUntil(deadline: number, now = Date.now()): number {
  return Math.min(MAX_TIMEOUT_MS, Math.max(0, deadline - now));
}

/** True when `deadline` is further away than a timer can wait (the gRPC side treats it as none). */
export function beyondTimers(deadline: number, now = Date.now()): boolean {
  return deadline - now > MAX_TIMEOUT_MS;
}
