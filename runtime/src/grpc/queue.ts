// A bounded hand-off from a grpc-js Readable (push-based) to an AsyncIterator (pull-based).
// The producer pauses its stream when `push` says the queue is full and `onLow` resumes it.

/**
 * Messages buffered per call and direction before grpc-js is told to stop reading (flow control):
 * the same on the client (responses) and the server (requests).
 */
export const HIGH_WATER = 32;

export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private closed = false;
  private failure: { error: unknown } | undefined;
  // Usually one, but nothing stops a caller from calling next() again before the last one settled.
  private waiters: (() => void)[] = [];
  private paused = false;

  constructor(
    private readonly highWater: number,
    /** The consumer caught up: resume the paused producer. */
    private readonly onLow: () => void,
    /** The consumer stopped early (break, return): stop the producer. */
    private readonly onReturn: () => void,
  ) {}

  /** Adds an item; true means "pause now". Items pushed after the end are dropped. */
  push(item: T): boolean {
    if (this.closed) return false;
    this.items.push(item);
    this.wake();
    if (this.items.length >= this.highWater) this.paused = true;
    return this.paused;
  }

  /** No more items; the consumer sees `error` (if any) after the items already queued. */
  end(error?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    if (error !== undefined) this.failure = { error };
    this.wake();
  }

  get ended(): boolean {
    return this.closed;
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.items.length > 0) {
        const value = this.items.shift()!;
        if (this.paused && this.items.length <= this.highWater >> 1) {
          this.paused = false;
          this.onLow();
        }
        return { value, done: false };
      }
      if (this.closed) {
        const failure = this.failure;
        if (failure) {
          this.failure = undefined;
          throw failure.error;
        }
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async return(): Promise<IteratorResult<T>> {
    const wasOpen = !this.closed;
    this.closed = true;
    this.items.length = 0;
    this.failure = undefined;
    this.wake(); // a next() still waiting now sees the end
    if (wasOpen) this.onReturn();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}
