/**
 * A growable FIFO ring buffer: O(1) push and shift without the array re-indexing `Array#shift` costs on long
 * session queues.
 */
export class Ring<T> {
  private buf: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(capacity = 16) {
    this.buf = new Array<T | undefined>(capacity);
  }

  /** Number of items queued. */
  get length(): number {
    return this.count;
  }

  /** Appends an item at the tail. */
  push(item: T): void {
    if (this.count === this.buf.length) this.grow();
    this.buf[(this.head + this.count) % this.buf.length] = item;
    this.count++;
  }

  /** Removes and returns the item at the head. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.buf.length;
    this.count--;
    return item;
  }

  /** Keeps only the items for which `keep` returns true, preserving order; returns the removed ones. */
  filter(keep: (item: T) => boolean): T[] {
    const removed: T[] = [];
    const n = this.count;
    for (let i = 0; i < n; i++) {
      const item = this.shift() as T;
      if (keep(item)) this.push(item);
      else removed.push(item);
    }
    return removed;
  }

  /** Items from head to tail (not on the hot path). */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) yield this.buf[(this.head + i) % this.buf.length] as T;
  }

  /** Drops every item. */
  clear(): void {
    this.buf = new Array<T | undefined>(16);
    this.head = 0;
    this.count = 0;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.buf.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.buf[(this.head + i) % this.buf.length];
    this.buf = next;
    this.head = 0;
  }
}
