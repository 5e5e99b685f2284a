/**
 * A work queue of object keys (`namespace/name`), as client-go's: a key waits at most once however often it is
 * added; one key is never worked on twice at once (added again while it is being worked on, it is worked on
 * again afterwards); failures come back after a per-key exponential backoff, successes reset it.
 */
export class WorkQueue {
  private readonly waiting = new Set<string>();
  private readonly active = new Set<string>();
  /** Keys added while active: run again when their current run ends. */
  private readonly again = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly work: (key: string) => Promise<void>,
    private readonly onError: (key: string, err: unknown, retryInMs: number) => void,
    private readonly concurrency = 4,
    private readonly baseDelayMs = 200,
    private readonly maxDelayMs = 60_000,
  ) {}

  /** Queues a key now (or, with `delayMs`, later; an earlier add wins). */
  add(key: string, delayMs = 0): void {
    if (this.stopped) return;
    if (delayMs > 0) {
      if (this.timers.has(key)) return;
      this.timers.set(key, setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, delayMs));
      return;
    }
    if (this.active.has(key)) {
      this.again.add(key);
      return;
    }
    this.waiting.add(key);
    this.pump();
  }

  /** Keys waiting or being worked on. */
  get length(): number {
    return this.waiting.size + this.active.size;
  }

  /** Resolves once nothing waits and nothing runs (tests, shutdown). */
  idle(): Promise<void> {
    if (this.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.waiting.clear();
  }

  private pump(): void {
    while (this.running < this.concurrency && this.waiting.size > 0 && !this.stopped) {
      const key = this.waiting.values().next().value as string;
      this.waiting.delete(key);
      this.active.add(key);
      this.running++;
      this.work(key).then(
        () => this.failures.delete(key),
        (err: unknown) => {
          const n = (this.failures.get(key) ?? 0) + 1;
          this.failures.set(key, n);
          const delay = Math.min(this.baseDelayMs * 2 ** (n - 1), this.maxDelayMs);
          this.onError(key, err, delay);
          this.add(key, delay);
        },
      ).finally(() => {
        this.active.delete(key);
        this.running--;
        if (this.again.delete(key)) this.add(key);
        this.pump();
        if (this.length === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    }
  }
}
