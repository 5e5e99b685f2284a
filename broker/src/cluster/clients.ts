import type { Lease } from 'etcd3';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';

/**
 * Client ids are unique cluster-wide. A node records `clients/<id> = <node>` under its lease when a client
 * connects; when that key named another node, it asks that node (through `takeover/<node>/<id>`) to disconnect
 * the client there, as MQTT's session takeover does within one node (v5 reason 0x8E).
 */
export class ClientRegistry {
  private watch: PrefixWatch | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly lease: () => Lease | null,
    private readonly kick: (clientId: string, by: string) => void,
  ) {}

  async start(): Promise<void> {
    const prefix = this.ctx.keys.takeover(this.ctx.self);
    this.watch = await watchPrefix(this.ctx.client, prefix, this.ctx.log, {
      put: (key, value) => {
        this.kick(key.slice(prefix.length), value.toString());
        void this.ctx.client.delete().key(key).exec().catch(() => undefined);
      },
      delete: () => undefined,
    });
  }

  /** A client connected here: claim its id, and have the node it was on let go of it. */
  connected(clientId: string): void {
    const lease = this.lease();
    if (lease === null) return;
    lease.put(this.ctx.keys.client(clientId)).value(this.ctx.self).getPrevious().then(
      (prev) => {
        const was = prev?.value?.toString();
        if (was === undefined || was === '' || was === this.ctx.self) return;
        this.ctx.log.info({ clientId, node: was }, 'cluster: client id was connected to another node: taking it over');
        return lease.put(this.ctx.keys.takeover(was, clientId)).value(this.ctx.self).exec().then(() => undefined);
      },
    ).catch((err: unknown) => this.ctx.log.warn({ clientId, err: (err as Error).message }, 'cluster: recording a client failed'));
  }

  /** A client left this node: its claim goes, unless another node has claimed the id since. */
  disconnected(clientId: string): void {
    const key = this.ctx.keys.client(clientId);
    this.ctx.client.if(key, 'Value', '==', this.ctx.self).then(this.ctx.client.delete().key(key)).commit()
      .catch((err: unknown) => this.ctx.log.debug({ clientId, err: (err as Error).message }, 'cluster: releasing a client failed'));
  }

  async stop(): Promise<void> {
    await this.watch?.cancel();
  }
}
