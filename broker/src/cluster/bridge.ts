import { type BridgeMapping, type BridgeMappings, makeMapping, type MappingBackend } from '../bridge/mappings.js';
import type { EtcdContext } from './context.js';
import { watchPrefix, type PrefixWatch } from './watch.js';

/**
 * Cluster-wide bridge mappings in `bridge/<id>` = {"topic", "queue"}: a change made through any node's API is
 * written to etcd, and every node (the writer too) applies it from its watch, so all nodes bridge the same set.
 */
export class MappingSync implements MappingBackend {
  private watch: PrefixWatch | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly mappings: BridgeMappings,
  ) {}

  async start(): Promise<void> {
    const prefix = this.ctx.keys.bridge();
    this.watch = await watchPrefix(this.ctx.client, prefix, this.ctx.log, {
      put: (key, value) => {
        try {
          const { topic, queue, key } = JSON.parse(value.toString()) as { topic: unknown; queue: unknown; key?: unknown };
          this.mappings.apply(makeMapping(topic, queue, key));
        } catch (err) {
          this.ctx.log.error({ key, err: (err as Error).message }, 'cluster: damaged bridge mapping ignored');
        }
      },
      delete: (key) => this.mappings.forget(key.slice(prefix.length)),
    });
    this.mappings.use(this);
  }

  async put(mapping: BridgeMapping): Promise<void> {
    await this.ctx.client.put(this.ctx.keys.bridge(mapping.id)).value(JSON.stringify({ topic: mapping.topic, queue: mapping.queue, key: mapping.key })).exec();
  }

  async remove(id: string): Promise<void> {
    await this.ctx.client.delete().key(this.ctx.keys.bridge(id)).exec();
  }

  async stop(): Promise<void> {
    await this.watch?.cancel();
  }
}
