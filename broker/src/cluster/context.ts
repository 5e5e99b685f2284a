import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Keys } from './keys.js';

/** What every part of the cluster works with: the etcd client, the key layout, this node's id and the log. */
export interface EtcdContext {
  readonly client: Etcd3;
  readonly keys: Keys;
  /** This node's id. */
  readonly self: string;
  readonly log: Logger;
}
