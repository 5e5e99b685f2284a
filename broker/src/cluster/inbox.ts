import type { Barrier } from '../store/barrier.js';
import { type BatchEntry, Decoder } from '../store/codec.js';
import { MAX_TXN_OPS } from './etcd.js';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';

/** How long mark() waits for its marker to come back through the watch. */
const MARK_TIMEOUT_MS = 5000;
/** Consumed batches are deleted this long after the first of them, many per transaction. */
const DELETE_DELAY_MS = 5;

/** Where the inbox records the batches it delivered, until etcd has deleted them: the local store. */
export interface InboxLedger {
  /** Batches delivered before this start (read from the store). */
  readonly consumed: ReadonlySet<string>;
  /** Called right after a batch's deliveries were queued in the store, so one commit holds both. */
  put(key: string): void;
  delete(key: string): void;
}

/**
 * This node's inbox: batches other nodes wrote to `inbox/<self>/`. Each is delivered to local subscribers as it
 * arrives (on start, what waited while the node was down comes first, in the order it was written) and deleted
 * once what it delivered is durable here. A batch whose deliveries went into the store is recorded there in the
 * same commit (InboxLedger), so a crash before the delete neither loses it nor delivers it again: exactly once,
 * where a replay would give QoS 2 messages completed since a second time. A batch read twice in one run (the
 * watch read again after etcd compacted its revision) is skipped the same way.
 */
export class Inbox {
  private readonly decoder = new Decoder();
  private consumed: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private watch: PrefixWatch | null = null;
  /** Markers awaited by id (see mark()). */
  private readonly markers = new Map<string, () => void>();
  /** Batches delivered and not yet known deleted from etcd. */
  private readonly delivered: Set<string>;
  /** Those of them recorded in the store. */
  private readonly recorded: Set<string>;
  /** Batches this start skipped, from the store, until the first read of the inbox has shown which remain. */
  private readonly previous: Set<string>;
  /** Batches and messages received, for metrics. */
  batches = 0;
  messages = 0;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly deliver: (entry: BatchEntry) => void,
    private readonly local: Barrier,
    private readonly ledger: InboxLedger,
  ) {
    this.delivered = new Set(ledger.consumed);
    this.recorded = new Set(ledger.consumed);
    this.previous = new Set(ledger.consumed);
  }

  async start(): Promise<void> {
    this.watch = await watchPrefix(this.ctx.client, this.ctx.keys.inbox(this.ctx.self), this.ctx.log, {
      put: (key, value) => this.consume(key, value),
      delete: () => undefined, // our own deletes coming back
    });
    // Recorded batches the first read did not find were deleted from etcd before the store learned it.
    for (const key of this.previous) this.forget(key);
    this.previous.clear();
  }

  /**
   * Resolves once every batch written to this inbox before now has been delivered: a marker key goes into the
   * inbox, and the watch delivers keys in the order etcd wrote them.
   */
  async mark(id: string): Promise<void> {
    const key = this.ctx.keys.inboxMarker(this.ctx.self, id);
    let timer: NodeJS.Timeout | undefined;
    const seen = new Promise<void>((resolve, reject) => {
      this.markers.set(key, resolve);
      timer = setTimeout(() => reject(new Error('the inbox marker did not come back in time')), MARK_TIMEOUT_MS);
    });
    try {
      await this.ctx.client.put(key).value('').exec();
      await seen;
    } finally {
      clearTimeout(timer);
      this.markers.delete(key);
    }
  }

  private consume(key: string, value: Buffer): void {
    if (key.startsWith(this.ctx.keys.inboxMarker(this.ctx.self))) {
      this.markers.get(key)?.();
      void this.ctx.client.delete().key(key).exec().catch(() => undefined);
      return;
    }
    this.previous.delete(key);
    if (this.delivered.has(key)) {
      this.consumed.push(key); // delivered before (a restart, or the watch read again): only deleted now
      this.scheduleDelete();
      return;
    }
    let entries: BatchEntry[];
    try {
      entries = this.decoder.batch(key, value);
    } catch (err) {
      this.ctx.log.error({ key, err: (err as Error).message }, 'cluster: damaged inbox batch dropped');
      this.consumed.push(key);
      this.scheduleDelete();
      return;
    }
    this.batches++;
    this.messages += entries.length;
    for (const e of entries) this.deliver(e);
    this.delivered.add(key);
    // Only a batch that wrote to the store needs the record: one that did not has nothing a replay could double.
    if (this.local.dirty) {
      this.ledger.put(key);
      this.recorded.add(key);
    }
    this.consumed.push(key);
    this.scheduleDelete();
  }

  private scheduleDelete(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.deleteConsumed();
    }, DELETE_DELAY_MS);
  }

  private async deleteConsumed(): Promise<void> {
    const keys = this.consumed;
    this.consumed = [];
    try {
      // What these batches put into persistent sessions must be on disk before the batches go.
      if (this.local.dirty) await this.local.flush();
      for (let i = 0; i < keys.length; i += MAX_TXN_OPS) {
        const ops = keys.slice(i, i + MAX_TXN_OPS).map((k) => this.ctx.client.delete().key(k));
        await this.ctx.client.if(keys[i] as string, 'Version', '>', -1).then(...ops).commit();
      }
      for (const key of keys) this.forget(key);
    } catch (err) {
      // Left in etcd: they are read again (and delivered again) after a restart, never lost.
      this.ctx.log.warn({ err: (err as Error).message, batches: keys.length }, 'cluster: deleting consumed inbox batches failed: retrying');
      this.consumed.push(...keys);
      setTimeout(() => this.scheduleDelete(), 1000).unref();
    }
  }

  private forget(key: string): void {
    this.delivered.delete(key);
    if (this.recorded.delete(key)) this.ledger.delete(key);
  }

  async stop(): Promise<void> {
    await this.watch?.cancel();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.consumed.length > 0) await this.deleteConsumed();
  }
}
