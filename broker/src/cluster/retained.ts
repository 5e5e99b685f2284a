import { Message } from '../message/message.js';
import type { Barrier } from '../store/barrier.js';
import { Decoder, Encoder } from '../store/codec.js';
import { MAX_TXN_OPS } from './etcd.js';
import type { EtcdContext } from './context.js';
import { watchPrefix, type PrefixWatch } from './watch.js';

/** What the cluster's retained messages are applied to (the router's retained tree). */
export interface RetainedTarget {
  set(topic: string, message: Message): void;
  delete(topic: string): void;
}

/**
 * Cluster-wide retained messages, kept in `retained/<topic>`. A retained publish on this node is written there
 * (the latest per topic, many per transaction); every node applies every change from a watch in etcd's order,
 * its own included, so all nodes end with what etcd holds. As a Barrier it holds the acknowledgement of a
 * retained QoS 1/2 publish until etcd has it.
 */
export class RetainedSync implements Barrier {
  private readonly encoder = new Encoder();
  private readonly decoder = new Decoder();
  /** Writes not yet made: topic -> message, or null to delete. */
  private pending = new Map<string, Message | null>();
  private writing: Promise<void> | null = null;
  private durable = false;
  private watch: PrefixWatch | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly target: RetainedTarget,
  ) {}

  async start(): Promise<void> {
    const prefix = this.ctx.keys.retainedPrefix;
    this.watch = await watchPrefix(this.ctx.client, prefix, this.ctx.log, {
      put: (key, value) => {
        const topic = key.slice(prefix.length);
        try {
          this.target.set(topic, Message.restore(this.decoder.retained(key, value)));
        } catch (err) {
          this.ctx.log.error({ topic, err: (err as Error).message }, 'cluster: damaged retained message ignored');
        }
      },
      delete: (key) => this.target.delete(key.slice(prefix.length)),
    });
  }

  /** A retained publish on this node (an empty payload deletes). */
  set(message: Message): void {
    this.pending.set(message.topic, message.payload.length === 0 ? null : message);
    if (message.qos > 0) this.durable = true;
    if (this.writing === null) this.writing = this.writeAll();
  }

  get dirty(): boolean {
    return this.durable;
  }

  async flush(): Promise<void> {
    this.durable = false;
    while (this.writing !== null) await this.writing;
  }

  private async writeAll(): Promise<void> {
    await Promise.resolve(); // let the rest of this turn's retained publishes join
    for (let delay = 100; this.pending.size > 0; ) {
      const batch = [...this.pending].slice(0, MAX_TXN_OPS);
      try {
        const ops = batch.map(([topic, m]) => {
          const key = this.ctx.keys.retained(topic);
          return m === null ? this.ctx.client.delete().key(key) : this.ctx.client.put(key).value(Buffer.from(this.encoder.retained(key, m)));
        });
        await this.ctx.client.if(this.ctx.keys.retained(batch[0]?.[0] ?? ''), 'Version', '>', -1).then(...ops).commit();
        // Only what was not replaced meanwhile is done.
        for (const [topic, m] of batch) if (this.pending.get(topic) === m) this.pending.delete(topic);
        delay = 100;
      } catch (err) {
        this.ctx.log.warn({ err: (err as Error).message, topics: batch.length }, 'cluster: writing retained messages failed: retrying');
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, 2000);
      }
    }
    this.writing = null;
  }

  async stop(): Promise<void> {
    await this.watch?.cancel();
  }
}
