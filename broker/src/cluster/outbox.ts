import { type BatchEntry, Encoder } from '../store/codec.js';
import type { Barrier } from '../store/barrier.js';
import type { EtcdContext } from './context.js';

/** A batch is written this long after its first message, unless it fills up first. */
const LINGER_MS = 2;
/** Messages per etcd write at most. */
const BATCH_MAX = 1000;
/** Payload bytes per etcd write at most: etcd refuses requests over 1.5 MiB. */
const BATCH_BYTES = 512 * 1024;
/** A message this large cannot cross etcd at all; it is dropped for remote subscribers (and counted). */
const MESSAGE_MAX = 1024 * 1024;
/** Messages waiting for all targets together; past it QoS 0 messages are dropped (and counted). */
const QUEUE_MAX = 200_000;
/** Past this many waiting messages, publishing connections pause (congestion()) until LOW is reached. */
const QUEUE_HIGH = 20_000;
const QUEUE_LOW = 5_000;

/** A batch for one target. */
class Batch {
  readonly entries: BatchEntry[] = [];
  bytes = 0;
  /** undefined while unwritten, null once written, the error if it was given up on. */
  private result: Error | null | undefined = undefined;
  private settle: { resolve: () => void; reject: (err: Error) => void } | null = null;
  private promise: Promise<void> | null = null;

  /** Resolves when this batch is in etcd (made on demand: most QoS 0 batches are never waited for). */
  get written(): Promise<void> {
    if (this.result === null) return Promise.resolve();
    if (this.result !== undefined) return Promise.reject(this.result);
    this.promise ??= new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    return this.promise;
  }

  done(err: Error | null): void {
    this.result = err;
    if (this.settle === null) return;
    if (err === null) this.settle.resolve();
    else this.settle.reject(err);
  }
}

/** The messages for one target node: the batch being filled, full ones waiting, and the one being written. */
class Target {
  open: Batch = new Batch();
  readonly full: Batch[] = [];
  writing: Batch | null = null;
  seq: number;
  timer: NodeJS.Timeout | null = null;

  constructor(seq: number) {
    this.seq = seq;
  }
}

/**
 * Messages for other nodes, batched per target: a batch goes to `inbox/<target>/<self>/<seq>` in one etcd put,
 * LINGER_MS after its first message or when it holds BATCH_MAX, with one put per target in flight (so batches
 * land in order) while the next one fills. As a Barrier it holds back the acknowledgement of a QoS 1/2 publish
 * until the batches holding it are written. A failed put is tried again until etcd takes it: meanwhile the node
 * serves its own clients and messages wait here, QoS 0 ones up to QUEUE_MAX.
 */
export class Outbox implements Barrier {
  private readonly targets = new Map<string, Target>();
  private readonly encoder = new Encoder();
  private queued = 0;
  /** Durable entries were added since the last flush(). */
  private durable = false;
  private stopped = false;
  /** Resolves once the queue is back under QUEUE_LOW; null while it is not congested. */
  private relief: { promise: Promise<void>; resolve: () => void } | null = null;
  /** The last write failed: etcd is away. */
  private failing = false;
  /** QoS 0 messages dropped because the queue was full. */
  dropped = 0;
  /** etcd writes made and messages carried, for metrics and the benchmark. */
  writes = 0;
  carried = 0;
  /** Told the seconds each successful etcd write took (set by the metrics, which keep the histogram). */
  observeWrite: ((seconds: number) => void) | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    /** Whether a node reads message identities (its member record announces `message-id`). */
    private readonly readsIds: (node: string) => boolean = () => false,
  ) {}

  /** Messages waiting to be written to etcd, all targets together. */
  get backlog(): number {
    return this.queued;
  }

  /** Queues a message for a target node. */
  add(target: string, entry: BatchEntry): void {
    const durable = entry.message.qos > 0;
    const size = entry.message.payload.length + entry.message.topic.length;
    if ((!durable && this.queued >= QUEUE_MAX) || size > MESSAGE_MAX) {
      if (size > MESSAGE_MAX) this.ctx.log.warn({ target, topic: entry.message.topic, bytes: size }, 'cluster: message too large for etcd: not sent to the other node');
      this.dropped++;
      return;
    }
    let t = this.targets.get(target);
    if (t === undefined) {
      // Sequence numbers start from the clock, so a restarted node's keys sort after those it wrote before.
      t = new Target(Date.now() * 1000);
      this.targets.set(target, t);
    }
    if (t.open.bytes + size > BATCH_BYTES && t.open.entries.length > 0) this.close(t);
    t.open.entries.push(entry);
    t.open.bytes += size;
    this.queued++;
    if (durable) this.durable = true;
    if (t.open.entries.length >= BATCH_MAX) {
      this.close(t);
      this.send(target, t);
    } else if (t.timer === null && t.writing === null) t.timer = setTimeout(() => this.send(target, t), LINGER_MS);
  }

  /**
   * While more than QUEUE_HIGH messages wait, a promise that resolves once fewer than QUEUE_LOW do: the
   * publishing connection stops reading until then, so a flood of QoS 0 publishes slows to what etcd carries
   * (TCP pushes back on the publisher) instead of being read and dropped.
   */
  congestion(): Promise<void> | null {
    if (this.relief !== null) return this.relief.promise;
    // While etcd is away, local clients are not held up for it: QoS 0 for other nodes is dropped past QUEUE_MAX.
    if (this.queued < QUEUE_HIGH || this.failing) return null;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.relief = { promise, resolve };
    return promise;
  }

  get dirty(): boolean {
    return this.durable;
  }

  /** Resolves once everything queued so far is in etcd. */
  flush(): Promise<void> {
    this.durable = false;
    return this.settled();
  }

  /** Like flush(), without touching the barrier's state: for a fence, which acknowledges no publish. */
  settled(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const [target, t] of this.targets) {
      for (const b of t.full) waits.push(b.written);
      if (t.open.entries.length > 0) waits.push(t.open.written);
      if (t.writing !== null) waits.push(t.writing.written);
      else this.send(target, t);
    }
    return Promise.all(waits).then(() => undefined);
  }

  /** The open batch is full: it waits for its turn, and a new one opens. */
  private close(t: Target): void {
    t.full.push(t.open);
    t.open = new Batch();
  }

  /** Writes the next batch (a full one first) unless a write to this target is under way. */
  private send(target: string, t: Target): void {
    if (t.timer !== null) {
      clearTimeout(t.timer);
      t.timer = null;
    }
    if (t.writing !== null || this.stopped) return;
    let batch = t.full.shift();
    if (batch === undefined) {
      if (t.open.entries.length === 0) return;
      batch = t.open;
      t.open = new Batch();
    }
    t.writing = batch;
    this.write(target, t, batch, 0);
  }

  private write(target: string, t: Target, batch: Batch, attempt: number): void {
    t.seq = Math.max(t.seq + 1, Date.now() * 1000);
    const key = this.ctx.keys.inboxKey(target, this.ctx.self, t.seq);
    const value = this.encoder.batch(key, batch.entries, this.readsIds(target));
    const started = performance.now();
    this.ctx.client.put(key).value(value).exec().then(
      () => {
        this.observeWrite?.((performance.now() - started) / 1000);
        this.writes++;
        this.carried += batch.entries.length;
        this.queued -= batch.entries.length;
        this.failing = false;
        if (this.relief !== null && this.queued < QUEUE_LOW) {
          this.relief.resolve();
          this.relief = null;
        }
        t.writing = null;
        batch.done(null);
        if (t.full.length > 0 || t.open.entries.length > 0) this.send(target, t);
      },
      (err: unknown) => {
        if (this.stopped) {
          batch.done(err as Error);
          return;
        }
        this.failing = true;
        this.relief?.resolve();
        this.relief = null;
        if (attempt === 0) this.ctx.log.warn({ target, messages: batch.entries.length, err: (err as Error).message }, 'cluster: inbox write failed: retrying');
        const delay = Math.min(100 * 2 ** attempt, 2000);
        setTimeout(() => this.write(target, t, batch, attempt + 1), delay).unref();
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.relief?.resolve();
    this.relief = null;
    for (const t of this.targets.values()) if (t.timer !== null) clearTimeout(t.timer);
  }
}
