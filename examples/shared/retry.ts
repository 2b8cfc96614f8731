// Retries with backoff for the example's background work (the processor's publish and callback),
// which has no caller to hand an error to. Errors that retrying cannot fix are not retried.

import { Code, StatusError } from "@grabbit/runtime";

const PERMANENT = new Set<number>([
  Code.INVALID_ARGUMENT,
  Code.NOT_FOUND,
  Code.UNAUTHENTICATED,
  Code.PERMISSION_DENIED,
  Code.FAILED_PRECONDITION,
  Code.UNIMPLEMENTED,
]);

export async function retrying<T>(
  what: string,
  log: (line: string) => void,
  f: () => Promise<T>,
  attempts = 8,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f();
    } catch (err) {
      const code = err instanceof StatusError ? err.code : undefined;
      if (attempt >= attempts || (code !== undefined && PERMANENT.has(code))) throw err;
      // Unroutable (no Reporter queue bound yet) and unavailable peers are worth waiting for.
      const delay = Math.min(100 * 2 ** (attempt - 1), 5000);
      log(
        `retrying in ${delay} ms to ${what}: ${err instanceof Error ? err.message : String(err)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
