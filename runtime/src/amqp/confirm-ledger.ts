// What a publisher has written on one confirm channel, by delivery tag, until the broker confirms it.
//
// On a channel in confirm mode the broker numbers basic.publish frames 1, 2, 3... and its basic.ack /
// basic.nack name a tag (or every tag up to it, `multiple`). Keeping the items in publish order with
// the tag of the first one therefore finds each confirmed item without a callback per message: the
// publisher listens to the channel's 'ack' and 'nack' events once. A tag it does not hold (already
// confirmed, or never written by this ledger's owner) is ignored; nothing here throws.

export class ConfirmLedger<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  /** The delivery tag of items[head]. */
  private headTag = 1;
  private live = 0;

  /** Items written and not yet confirmed. */
  get size(): number {
    return this.live;
  }

  /** Records the next publish on the channel (it gets the next delivery tag). */
  add(item: T): void {
    this.items.push(item);
    this.live++;
  }

  /** Takes the item confirmed by `tag` (all up to it when `multiple`), handing each to `each` in publish order. */
  confirm(tag: number, multiple: boolean, each: (item: T) => void): void {
    const items = this.items;
    if (multiple) {
      const end = Math.min(items.length, this.head + (tag - this.headTag) + 1);
      while (this.head < end) {
        const item = items[this.head];
        items[this.head++] = undefined;
        this.headTag++;
        if (item !== undefined) {
          this.live--;
          each(item);
        }
      }
    } else {
      const i = this.head + (tag - this.headTag);
      if (i < this.head || i >= items.length) return;
      const item = items[i];
      if (item === undefined) return;
      items[i] = undefined;
      this.live--;
      // Confirmed slots at the front are dropped; one in the middle waits for those before it.
      while (this.head < items.length && items[this.head] === undefined) {
        this.head++;
        this.headTag++;
      }
      each(item);
    }
    if (this.head === items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
  }

  /** Unconfirmed items in publish order. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i];
      if (item !== undefined) yield item;
    }
  }

  /** Takes every unconfirmed item, in publish order (the channel is gone: no confirm will come). */
  drain(): T[] {
    const out: T[] = [];
    for (const item of this) out.push(item);
    this.items = [];
    this.head = 0;
    this.live = 0;
    return out;
  }
}
