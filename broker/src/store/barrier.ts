/**
 * Something an acknowledgement must wait for before it is sent: the store's commit, the cluster's etcd writes.
 * `dirty` says that writes were made that no flush covers yet; `flush()` starts covering them and resolves once
 * they are durable (it rejects when they could not be made so).
 */
export interface Barrier {
  readonly dirty: boolean;
  flush(): Promise<void>;
}

/** Several barriers as one: dirty while any is, flushed together. */
export class Barriers implements Barrier {
  private parts: Barrier[] = [];

  add(part: Barrier): void {
    this.parts = [...this.parts, part];
  }

  remove(part: Barrier): void {
    this.parts = this.parts.filter((p) => p !== part);
  }

  get dirty(): boolean {
    for (const p of this.parts) if (p.dirty) return true;
    return false;
  }

  flush(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const p of this.parts) if (p.dirty) pending.push(p.flush());
    if (pending.length === 1) return pending[0] as Promise<void>;
    return Promise.all(pending).then(() => undefined);
  }
}
