import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Store } from './types.js';

/**
 * The store the configuration asks for: none (memory only) when `store.dir` is empty, else the embedded
 * engine in that directory.
 */
export async function openStore(config: Config, log: Logger): Promise<Store | null> {
  if (config.store.dir === '') return null;
  const { LmdbStore } = await import('./lmdb.js');
  return new LmdbStore({ dir: config.store.dir, durability: config.store.durability, recover: config.store.recover, log });
}
