import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StoreError } from '../store/errors.js';
import { type BridgeMapping, type BridgeMappings, makeMapping, MappingError, type MappingBackend } from './mappings.js';

/** The file, in `store.dir`, that holds a standalone broker's bridge mappings. */
export const MAPPINGS_FILE = 'bridge-mappings.json';

/**
 * Bridge mappings of a standalone broker, in `store.dir/bridge-mappings.json`: the whole list is written to a
 * temporary file, fsync'd and renamed over the old one (then the directory fsync'd), so a crash leaves either
 * the old list or the new one. Mappings change rarely; a rewrite per change is the simple, safe way.
 */
export class FileMappings implements MappingBackend {
  private readonly path: string;
  /** What the file should hold: changes land here first, so concurrent changes never undo one another. */
  private readonly kept = new Map<string, BridgeMapping>();
  /** Writes go one after another, each with the list as it is when its turn comes. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly mappings: BridgeMappings,
  ) {
    this.path = join(dir, MAPPINGS_FILE);
  }

  /** Reads the file into the mapping set; a missing file is an empty list, a damaged one a StoreError. */
  load(): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StoreError(this.dir, `cannot read ${MAPPINGS_FILE}: ${(err as Error).message}`, { cause: err });
    }
    let list: { topic: unknown; queue: unknown; key?: unknown }[];
    try {
      const doc = JSON.parse(text) as { mappings?: unknown };
      if (!Array.isArray(doc.mappings)) throw new Error('no "mappings" list');
      list = doc.mappings as { topic: unknown; queue: unknown; key?: unknown }[];
    } catch (err) {
      throw new StoreError(this.dir, `${MAPPINGS_FILE} is damaged (${(err as Error).message}); expected {"mappings": [{"topic": ..., "queue": ...}]}`);
    }
    for (const [i, m] of list.entries()) {
      try {
        const mapping = makeMapping(m?.topic, m?.queue, m?.key);
        this.kept.set(mapping.id, mapping);
        this.mappings.apply(mapping);
      } catch (err) {
        if (!(err instanceof MappingError)) throw err;
        throw new StoreError(this.dir, `${MAPPINGS_FILE}: mapping ${i}: ${err.message}`);
      }
    }
  }

  put(mapping: BridgeMapping): Promise<void> {
    this.kept.set(mapping.id, mapping);
    return this.write();
  }

  remove(id: string): Promise<void> {
    this.kept.delete(id);
    return this.write();
  }

  private write(): Promise<void> {
    this.chain = this.chain.catch(() => undefined).then(() => {
      const list = [...this.kept.values()].map(({ topic, queue, key }) => (key === undefined ? { topic, queue } : { topic, queue, key }));
      const text = JSON.stringify({ mappings: list }, null, 2) + '\n';
      const tmp = `${this.path}.tmp`;
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      const dirFd = openSync(this.dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    });
    return this.chain;
  }
}
