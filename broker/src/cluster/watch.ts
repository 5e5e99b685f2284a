import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from 'pino';

/** Handlers of a prefix watch; `value` is the key's whole value. */
export interface PrefixHandlers {
  put(key: string, value: Buffer): void;
  delete(key: string): void;
  /**
   * The watch broke (false: changes may be happening that this node does not see) or is back (true: it resumes
   * from where it was, and replays what it missed).
   */
  health?(ok: boolean): void;
}

export interface PrefixWatch {
  cancel(): Promise<void>;
}

/**
 * Reads every key under `prefix`, then follows changes from the revision that read saw, so nothing falls between
 * the two. The etcd client resumes a broken watch from its last revision; when etcd has compacted that revision
 * away, the prefix is read again and keys that disappeared meanwhile are reported deleted.
 */
export async function watchPrefix(client: Etcd3, prefix: string, log: Logger, on: PrefixHandlers): Promise<PrefixWatch> {
  const known = new Set<string>();
  let watcher: Watcher | null = null;
  let cancelled = false;

  const sync = async (): Promise<void> => {
    const res = await client.getAll().prefix(prefix).exec();
    const seen = new Set<string>();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      seen.add(key);
      known.add(key);
      on.put(key, kv.value);
    }
    for (const key of known) {
      if (!seen.has(key)) {
        known.delete(key);
        on.delete(key);
      }
    }
    const revision = Number(res.header.revision);
    const w = await client.watch().prefix(prefix).startRevision(String(revision + 1)).create();
    if (cancelled) {
      await w.cancel();
      return;
    }
    watcher = w;
    on.health?.(true);
    // The client reconnects a broken watch by itself, from the last revision it delivered.
    w.on('disconnected', () => on.health?.(false));
    w.on('connected', () => on.health?.(true));
    w.on('put', (kv) => {
      const key = kv.key.toString();
      known.add(key);
      on.put(key, kv.value);
    });
    w.on('delete', (kv) => {
      const key = kv.key.toString();
      known.delete(key);
      on.delete(key);
    });
    w.on('error', (err) => {
      if (cancelled || watcher !== w) return;
      on.health?.(false);
      log.warn({ prefix, err: err.message }, 'etcd watch failed: reading the prefix again');
      watcher = null;
      void w.cancel().catch(() => undefined);
      void retry();
    });
  };

  const retry = async (): Promise<void> => {
    for (let delay = 200; !cancelled; delay = Math.min(delay * 2, 5000)) {
      try {
        await sync();
        return;
      } catch (err) {
        log.warn({ prefix, err: (err as Error).message }, 'etcd read failed: retrying');
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  };

  await sync();
  return {
    async cancel(): Promise<void> {
      cancelled = true;
      await watcher?.cancel().catch(() => undefined);
    },
  };
}
