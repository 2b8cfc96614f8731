// A streaming call's responses as the caller gets them from a transport: an async iterable that
// starts the call on its first next() (so a stream nobody reads is never opened), and whose
// return() before that opens nothing. Failures of the call come out of next(), as the call's.

import type { CallResponse } from "./interceptor.js";
import { Code, StatusError } from "./status.js";

/** A server or bidi stream's responses as an iterable; the call opens (`open`) on the first next(). */
export function lazyResponses(open: () => Promise<CallResponse>): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]: () => {
      let iterator: AsyncIterator<unknown> | undefined;
      let opening: Promise<AsyncIterator<unknown>> | undefined;
      const start = () =>
        (opening ??= open().then((response) => {
          if (!response.stream)
            throw new StatusError(
              Code.INTERNAL,
              "an interceptor returned one response message for a call that answers with a stream",
            );
          iterator = response.messages[Symbol.asyncIterator]();
          return iterator;
        }));
      return {
        next: async () => (iterator ?? (await start())).next(),
        return: async () => {
          if (iterator === undefined && opening === undefined)
            return { value: undefined, done: true };
          const it = iterator ?? (await start().catch(() => undefined));
          return (await it?.return?.()) ?? { value: undefined, done: true };
        },
      };
    },
  };
}
