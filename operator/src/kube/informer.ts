import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.js';

/** `namespace/name`, the key of an object in caches and the work queue. */
export function keyOf(obj: { metadata: { name: string; namespace?: string } }): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

/**
 * A list-then-watch cache of one kind (client-go's informer): lists, then watches from the list's
 * resourceVersion, and lists again whenever the watch ends (a closed stream, an expired resourceVersion), with
 * backoff while the API server is away. Every change, and every object of each new list, is reported to
 * `onChange`; objects that disappeared between two lists are reported deleted.
 */
export class Informer<T extends KubeObject = KubeObject> {
  readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private watch: { abort(): void } | null = null;
  private stopped = false;
  private synced: (() => void) | null = null;
  /** Resolves once the first list is in the cache. */
  readonly ready: Promise<void>;
  private backoff = 250;

  constructor(
    private readonly client: KubeClient,
    private readonly kind: string,
    private readonly namespace: string,
    private readonly log: Logger,
    private readonly onChange: (obj: T, deleted: boolean) => void,
    private readonly labelSelector = '',
  ) {
    this.ready = new Promise((resolve) => (this.synced = resolve));
  }

  start(): void {
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.watch?.abort();
  }

  get(namespace: string, name: string): T | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    try {
      const { items, resourceVersion } = await this.client.list<T>(this.kind, this.namespace, this.labelSelector);
      const seen = new Set<string>();
      for (const item of items) {
        // Items of a list carry no kind; the cache keeps whole objects.
        const obj = { ...item, kind: this.kind } as T;
        const key = keyOf(obj);
        seen.add(key);
        this.cache.set(key, obj);
        this.onChange(obj, false);
      }
      for (const [key, obj] of this.cache) {
        if (seen.has(key)) continue;
        this.cache.delete(key);
        this.onChange(obj, true);
      }
      this.resourceVersion = resourceVersion;
      this.synced?.();
      this.synced = null;
      this.backoff = 250;
      await this.follow();
    } catch (err) {
      if (this.stopped) return;
      this.log.warn({ kind: this.kind, err: (err as Error).message, retryMs: this.backoff }, 'listing failed: retrying');
      setTimeout(() => void this.relist(), this.backoff).unref();
      this.backoff = Math.min(this.backoff * 2, 30_000);
    }
  }

  private async follow(): Promise<void> {
    if (this.stopped) return; // stopped while the list was on its way
    const watch = await this.client.watch(this.kind, this.namespace, this.resourceVersion, this.labelSelector, (type, obj) => {
      if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
      if (type === 'BOOKMARK') return;
      if (type === 'ERROR') return; // an expired resourceVersion: the stream ends, and we list again
      const key = keyOf(obj);
      if (type === 'DELETED') {
        this.cache.delete(key);
        this.onChange(obj as T, true);
      } else {
        this.cache.set(key, obj as T);
        this.onChange(obj as T, false);
      }
    }, (err) => {
      this.watch = null;
      if (this.stopped) return;
      if (err) this.log.debug({ kind: this.kind, err: (err as Error).message }, 'watch ended: listing again');
      setTimeout(() => void this.relist(), err ? this.backoff : 0).unref();
    });
    if (this.stopped) watch.abort();
    else this.watch = watch;
  }
}
