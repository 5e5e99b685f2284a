/**
 * Bounds how many asynchronous jobs run at once (the seed's `worker` pool): a login storm against a slow
 * authentication backend queues here instead of opening thousands of requests at once. A job whose client went
 * away while it waited leaves the queue at once, so abandoned logins never hold a place or a slot.
 */
export class Semaphore {
  private free: number;
  /** Waiting jobs in arrival order (a Set keeps insertion order and removes in O(1)). */
  private readonly waiting = new Set<() => void>();

  constructor(size: number) {
    this.free = size;
  }

  /**
   * Runs `job` when a slot is free; the slot is returned when its promise settles. With `signal` (asked for only
   * when the job must wait, so the common case allocates nothing), an abort while waiting rejects with the
   * signal's reason and frees the place in the queue.
   */
  async run<T>(job: () => Promise<T>, signal?: () => AbortSignal): Promise<T> {
    if (this.free > 0) this.free--;
    else await this.wait(signal?.());
    try {
      return await job();
    } finally {
      this.release();
    }
  }

  private wait(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const start = (): void => {
        signal?.removeEventListener('abort', abandon);
        resolve();
      };
      const abandon = (): void => {
        this.waiting.delete(start);
        reject(signal?.reason);
      };
      this.waiting.add(start);
      signal?.addEventListener('abort', abandon, { once: true });
    });
  }

  /** Hands the slot to the oldest waiter, or frees it. */
  private release(): void {
    const next = this.waiting.values().next();
    if (next.done) {
      this.free++;
      return;
    }
    this.waiting.delete(next.value);
    next.value();
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.waiting.size;
  }
}
