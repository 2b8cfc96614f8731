// Looks for work the broker has gone quiet on, for publishers and RPC clients alike: while there is
// work waiting, `check` runs every quarter of the stall timeout (at most every 250 ms), one run at a
// time. What counts as stalled, and what to do about it, is the owner's.

export class StallWatch {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  readonly intervalMs: number;

  constructor(
    readonly stallTimeoutMs: number,
    private readonly check: () => Promise<void>,
    private readonly busy: () => boolean,
  ) {
    this.intervalMs = Math.max(10, Math.min(250, Math.floor(stallTimeoutMs / 4)));
  }

  /** Starts watching, if it is not already. Cheap: call it whenever work is added. */
  arm(): void {
    if (this.timer || this.running || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = true;
      this.check()
        .catch(() => undefined)
        .finally(() => {
          this.running = false;
          if (this.busy()) this.arm();
        });
    }, this.intervalMs);
    // A watch alone must not keep a process alive.
    this.timer.unref();
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
