/**
 * The delivery queue of notifications: bounded, sent asynchronously with bounded concurrency, retried with
 * capped exponential backoff, and in order per key (per client: one client's events never overtake each other,
 * so its disconnect never arrives before its connect). Nothing here blocks the caller of push().
 */
import { Ring } from '../session/ring.js';

/** Timers, injectable so tests can drive retries with a fake clock. */
export interface Scheduler {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Node's timers. Not unref'd: while a stopping broker flushes, a retry or the flush deadline may be all that keeps
 * the process alive, and stop() clears every timer it leaves.
 */
export const REAL_SCHEDULER: Scheduler = {
  setTimeout(fn, ms) {
    return setTimeout(fn, ms);
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** The limits of a {@link DeliveryQueue}. */
export interface QueueOptions {
  /** Items queued (waiting, in flight or waiting to retry) at most; push() beyond it drops the new item. */
  readonly capacity: number;
  /** Keys being sent (or waiting to retry) at once. */
  readonly concurrency: number;
  /** Further attempts after a failed one. */
  readonly retries: number;
  /** Milliseconds before the first retry; doubled for each further one. */
  readonly backoff: number;
  /** Longest wait between retries, in milliseconds. */
  readonly backoffMax: number;
}

/** Why an item was dropped: the label of `smq_notifications_dropped_total`. */
export type DropReason = 'queue_full' | 'retries_exhausted' | 'shutdown';

/** What the queue reports, for metrics and logs. */
export interface QueueListener<T> {
  sent(item: T): void;
  /** One failed attempt; `willRetry` false means the item is dropped next (`retries_exhausted`). */
  failed(item: T, err: unknown, willRetry: boolean): void;
  dropped(item: T, reason: DropReason): void;
}

/** The items of one key, sent one at a time. */
class Lane<T> {
  /** Items behind the current one. */
  readonly waiting = new Ring<T>(4);
  /** The item being sent or waiting to retry (it holds a concurrency slot), or null. */
  current: T | null = null;
  /** Failed attempts of the current item. */
  attempts = 0;
  /** The retry timer of the current item, or null while it is in flight. */
  timer: unknown = null;
  /** True while the lane is in the ready list. */
  ready = false;

  constructor(readonly key: string) {}
}

/**
 * Bounded, keyed, retrying delivery. Lanes with work wait in a ready list for one of `concurrency` slots; a lane
 * keeps its slot while its current item is retried, so a failing server sees at most `concurrency` callers.
 */
export class DeliveryQueue<T> {
  private readonly lanes = new Map<string, Lane<T>>();
  private readonly readyLanes = new Ring<Lane<T>>();
  private active = 0;
  private count = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: QueueOptions,
    private readonly send: (item: T) => Promise<void>,
    private readonly listener: QueueListener<T>,
    private readonly scheduler: Scheduler = REAL_SCHEDULER,
  ) {}

  /** Items queued, in flight or waiting to retry. */
  get size(): number {
    return this.count;
  }

  /** Queues an item behind the others of its key; false (and counted as `queue_full`) when the queue is full. */
  push(key: string, item: T): boolean {
    if (this.stopped) {
      this.listener.dropped(item, 'shutdown');
      return false;
    }
    if (this.count >= this.options.capacity) {
      this.listener.dropped(item, 'queue_full'); // drop newest: what is queued keeps its order
      return false;
    }
    let lane = this.lanes.get(key);
    if (lane === undefined) {
      lane = new Lane<T>(key);
      this.lanes.set(key, lane);
    }
    lane.waiting.push(item);
    this.count++;
    if (lane.current === null && !lane.ready) {
      lane.ready = true;
      this.readyLanes.push(lane);
      this.pump();
    }
    return true;
  }

  /** Starts lanes while slots are free. */
  private pump(): void {
    while (!this.stopped && this.active < this.options.concurrency && this.readyLanes.length > 0) {
      const lane = this.readyLanes.shift() as Lane<T>;
      lane.ready = false;
      lane.current = lane.waiting.shift() as T;
      this.active++;
      this.attempt(lane, lane.current);
    }
  }

  private attempt(lane: Lane<T>, item: T): void {
    let call: Promise<void>;
    try {
      call = this.send(item);
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      () => {
        this.listener.sent(item);
        this.finish(lane);
      },
      (err: unknown) => {
        lane.attempts++;
        const retry = !this.stopped && lane.attempts <= this.options.retries;
        this.listener.failed(item, err, retry);
        if (!retry) {
          this.listener.dropped(item, this.stopped ? 'shutdown' : 'retries_exhausted');
          this.finish(lane);
          return;
        }
        const delay = Math.min(this.options.backoffMax, this.options.backoff * 2 ** (lane.attempts - 1));
        lane.timer = this.scheduler.setTimeout(() => {
          lane.timer = null;
          this.attempt(lane, item);
        }, delay);
      },
    );
  }

  /** The current item of a lane is done (sent or dropped): the lane goes on with its next item or goes away. */
  private finish(lane: Lane<T>): void {
    lane.current = null;
    lane.attempts = 0;
    this.count--;
    this.active--;
    if (lane.waiting.length > 0 && !this.stopped) {
      lane.ready = true;
      this.readyLanes.push(lane);
    } else if (lane.waiting.length === 0) {
      this.lanes.delete(lane.key);
    }
    if (this.count === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    this.pump();
  }

  /**
   * Stops taking items and gives what is queued up to `deadlineMs` to go out (retries included); what is left
   * then is dropped as `shutdown`. A call still in flight settles on its own and counts itself. Resolves with the
   * number dropped here.
   */
  async stop(deadlineMs: number): Promise<number> {
    if (this.count > 0 && deadlineMs > 0) {
      let timer: unknown;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => { timer = this.scheduler.setTimeout(resolve, deadlineMs); }),
      ]);
      this.scheduler.clearTimeout(timer);
    }
    this.stopped = true;
    this.readyLanes.clear();
    let left = 0;
    const drop = (item: T): void => {
      this.listener.dropped(item, 'shutdown');
      this.count--;
      left++;
    };
    for (const lane of [...this.lanes.values()]) {
      lane.ready = false;
      for (const item of lane.waiting) drop(item);
      lane.waiting.clear();
      if (lane.timer !== null) {
        this.scheduler.clearTimeout(lane.timer);
        lane.timer = null;
        drop(lane.current as T);
        lane.current = null;
        this.active--;
      }
      if (lane.current === null) this.lanes.delete(lane.key);
    }
    return left;
  }
}
