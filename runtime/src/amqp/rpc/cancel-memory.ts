// Cancellations that reach a server before their request (still queued, or taken by another
// server first): remembered for a while, bounded in time and number, so that the request is
// refused CANCELLED when it arrives instead of run for nobody. Nothing here fails; past its bound
// the oldest entries are forgotten first (their requests then run, as if never cancelled).

/** How long a cancellation of a call not seen yet is remembered (its request may still be queued). */
export const CANCEL_MEMORY_MS = 10 * 60_000;
export const CANCEL_MEMORY_MAX = 10_000;

export class CancelMemory {
  /** Call id -> when it is forgotten, in insertion order. */
  private readonly ids = new Map<string, number>();

  constructor(
    private readonly ttlMs = CANCEL_MEMORY_MS,
    private readonly max = CANCEL_MEMORY_MAX,
  ) {}

  get size(): number {
    return this.ids.size;
  }

  /** Remembers that call `id` was cancelled; the expired (or, when full, the oldest) go first. */
  remember(id: string, now = Date.now()): void {
    if (this.ids.size >= this.max) {
      for (const [key, until] of this.ids) {
        if (until <= now || this.ids.size >= this.max) this.ids.delete(key);
        else break;
      }
    }
    this.ids.set(id, now + this.ttlMs);
  }

  /** True (once) when call `id` was cancelled before its request arrived. */
  take(id: unknown, now = Date.now()): boolean {
    if (this.ids.size === 0 || typeof id !== "string") return false;
    const until = this.ids.get(id);
    if (until === undefined) return false;
    this.ids.delete(id);
    return until > now;
  }
}
