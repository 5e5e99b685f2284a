/**
 * Group commit: calls for the same key that arrive while a run for that key is under way wait, and the next run
 * takes all of them at once (up to `max` weight, the rest go to the run after). So the cost of a run (a fence:
 * a request, an answer from every node, an inbox marker) is paid once per group, not once per call, and a call
 * never waits for more than the run in progress plus its own.
 *
 * A call resolves when the run that carried it succeeded and rejects with that run's error; a failed run does not
 * stop the next one.
 */
export class GroupRuns<T> {
  private readonly queues = new Map<string, { item: T; resolve: () => void; reject: (err: unknown) => void }[]>();

  constructor(
    private readonly run: (key: string, items: T[]) => Promise<void>,
    /** How much of a run an item takes (say, its routes); a run carries at least one item. */
    private readonly weight: (item: T) => number,
    private readonly max: number,
  ) {}

  add(key: string, item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const queue = this.queues.get(key);
      if (queue !== undefined) {
        queue.push({ item, resolve, reject }); // a run is under way: this call joins the next one
        return;
      }
      const fresh = [{ item, resolve, reject }];
      this.queues.set(key, fresh);
      void this.drain(key, fresh);
    });
  }

  /** Runs groups for `key` until no call waits; the queue's presence in `queues` marks a run under way. */
  private async drain(key: string, queue: { item: T; resolve: () => void; reject: (err: unknown) => void }[]): Promise<void> {
    while (queue.length > 0) {
      let taken = 1;
      let load = this.weight((queue[0] as { item: T }).item);
      while (taken < queue.length && load + this.weight((queue[taken] as { item: T }).item) <= this.max) {
        load += this.weight((queue[taken] as { item: T }).item);
        taken++;
      }
      const group = queue.splice(0, taken);
      try {
        await this.run(key, group.map((g) => g.item));
        for (const g of group) g.resolve();
      } catch (err) {
        for (const g of group) g.reject(err);
      }
    }
    this.queues.delete(key);
  }
}
