/**
 * Bounds how many asynchronous jobs run at once (the seed's `worker` pool): a login storm against a slow
 * authentication backend queues here instead of opening thousands of requests at once.
 */
export class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Runs `job` when a slot is free; the slot is returned when its promise settles. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }
}
