/** What a {@link HeldQueue} tells its connection. */
export interface HeldOwner {
  /** Writes bytes whose turn has come. */
  emitHeld(buf: Buffer): void;
  /** A wait failed: nothing after it may be sent (the connection closes unacknowledged). */
  heldFailed(err: unknown): void;
  /** Everything held has been written. */
  heldDrained(): void;
}

/** Bytes that go out once `wait` has resolved and everything before them has gone out. */
class Segment {
  done = false;
  readonly bufs: Buffer[];

  constructor(readonly wait: Promise<void>, first: Buffer) {
    this.bufs = [first];
  }
}

/**
 * A connection's outgoing packets that wait: acknowledgements of what must first be durable (a store commit)
 * or in Kafka (the bridge), and everything written after them, which keeps its place so acknowledgements and
 * PUBLISH packets go out in order [MQTT-4.6.0-2..4]. Each wait heads a segment; a segment goes out as soon as
 * its wait and every earlier one have resolved, so a steady stream of publishers' waits releases
 * acknowledgements as Kafka takes their messages, not only when the stream pauses.
 */
export class HeldQueue {
  private readonly segments: Segment[] = [];

  constructor(private readonly owner: HeldOwner) {}

  /** The wait of the newest segment (a store commit already awaited covers what joins it). */
  get lastWait(): Promise<void> | null {
    return this.segments.length === 0 ? null : (this.segments[this.segments.length - 1] as Segment).wait;
  }

  /** Bytes with nothing of their own to wait for: behind everything held. */
  push(buf: Buffer): void {
    const last = this.segments[this.segments.length - 1];
    if (last === undefined) this.owner.emitHeld(buf);
    else last.bufs.push(buf);
  }

  /** Bytes that wait for `wait` (and for everything before them). */
  hold(wait: Promise<void>, buf: Buffer): void {
    const seg = new Segment(wait, buf);
    this.segments.push(seg);
    wait.then(() => {
      seg.done = true;
      this.release();
    }, (err: unknown) => this.owner.heldFailed(err));
  }

  private release(): void {
    while (this.segments.length > 0 && (this.segments[0] as Segment).done) {
      for (const buf of (this.segments.shift() as Segment).bufs) this.owner.emitHeld(buf);
    }
    if (this.segments.length === 0) this.owner.heldDrained();
  }
}
