import type { Lease } from 'etcd3';
import { Decoder, Encoder } from '../store/codec.js';
import type { Snapshot, StoredDelivery, StoredSession } from '../store/types.js';
import { watchPrefix, type PrefixWatch } from './watch.js';
import type { EtcdContext } from './context.js';

/** How long a connecting client waits for its session from another node before it starts a new one. */
const HANDOFF_TIMEOUT_MS = 5000;

/** A persistent session as it moves: its record, deliveries (in flight and queued) and incoming QoS 2 ids. */
export interface MovingSession {
  readonly session: StoredSession;
  readonly deliveries: StoredDelivery[];
  readonly incoming: number[];
}

/** What moving sessions needs from the broker. */
export interface SessionHost {
  /** Takes a persistent session out of this node (its client disconnected with 0x8E), or null if none. */
  surrender(clientId: string, by: string): MovingSession | null;
  /** Installs a session that came from another node. */
  adopt(moving: MovingSession): void;
}

/**
 * Persistent sessions move to the node their client connects to. `sessions/<id>` names the node that holds a
 * persistent session; a node where the client connects without one asks that node through
 * `handoff/<holder>/<id>`, and the holder disconnects the client (0x8E), writes the session (subscriptions,
 * queued and in-flight messages, incoming QoS 2 ids, a waiting will) to `sessions-moving/<id>` and forgets it.
 * The new node installs it and answers CONNACK with session present.
 */
export class SessionMover {
  private readonly encoder = new Encoder();
  private readonly decoder = new Decoder();
  private watch: PrefixWatch | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly lease: () => Lease | null,
    private readonly host: SessionHost,
    private readonly alive: (node: string) => boolean,
  ) {}

  async start(): Promise<void> {
    const prefix = this.ctx.keys.handoff(this.ctx.self);
    this.watch = await watchPrefix(this.ctx.client, prefix, this.ctx.log, {
      put: (key, value) => void this.give(key.slice(prefix.length), value.toString(), key),
      delete: () => undefined,
    });
  }

  /** Another node asked for a session held here. */
  private async give(clientId: string, to: string, requestKey: string): Promise<void> {
    const lease = this.lease();
    try {
      const moving = this.host.surrender(clientId, to);
      const value = moving === null ? Buffer.alloc(0) : this.encode(moving);
      if (lease !== null) await lease.put(this.ctx.keys.moving(clientId)).value(value).exec();
      else await this.ctx.client.put(this.ctx.keys.moving(clientId)).value(value).exec();
      if (moving !== null) this.ctx.log.info({ clientId, to, deliveries: moving.deliveries.length }, 'cluster: persistent session moved to another node');
    } catch (err) {
      this.ctx.log.warn({ clientId, to, err: (err as Error).message }, 'cluster: handing a session over failed');
    } finally {
      await this.ctx.client.delete().key(requestKey).exec().catch(() => undefined);
    }
  }

  /**
   * Fetches the persistent session of `clientId` from the node holding it, if another live node does. Resolves
   * once it is installed here, or when there is none (or it did not come in time: the client starts anew).
   */
  async fetch(clientId: string): Promise<void> {
    const holder = await this.ctx.client.get(this.ctx.keys.session(clientId)).string();
    if (holder === null || holder === this.ctx.self || !this.alive(holder)) return;
    const movingKey = this.ctx.keys.moving(clientId);
    await this.ctx.client.delete().key(movingKey).exec();
    const w = await this.ctx.client.watch().key(movingKey).create();
    try {
      const arrived = new Promise<Buffer>((resolve) => w.on('put', (kv) => resolve(kv.value)));
      const lease = this.lease();
      const askKey = this.ctx.keys.handoff(holder, clientId);
      await (lease !== null ? lease.put(askKey) : this.ctx.client.put(askKey)).value(this.ctx.self).exec();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((r) => { timer = setTimeout(() => r(null), HANDOFF_TIMEOUT_MS); });
      const value = await Promise.race([arrived, late]);
      clearTimeout(timer);
      if (value === null) {
        this.ctx.log.warn({ clientId, holder }, 'cluster: the session did not arrive in time: starting a new one');
        return;
      }
      if (value.length > 0) this.host.adopt(this.decode(clientId, value));
    } finally {
      await w.cancel().catch(() => undefined);
      await this.ctx.client.delete().key(movingKey).exec().catch(() => undefined);
    }
  }

  /** A persistent session is held here now. */
  claim(clientId: string): void {
    this.ctx.client.put(this.ctx.keys.session(clientId)).value(this.ctx.self).exec()
      .catch((err: unknown) => this.ctx.log.warn({ clientId, err: (err as Error).message }, 'cluster: recording a session failed'));
  }

  /** A persistent session ended here (expired, or replaced by a clean one). */
  release(clientId: string): void {
    const key = this.ctx.keys.session(clientId);
    this.ctx.client.if(key, 'Value', '==', this.ctx.self).then(this.ctx.client.delete().key(key)).commit().catch(() => undefined);
  }

  /**
   * The session, each delivery and each incoming id in the store's encoding (CRC-checked), each part as
   * [u32 length][f64 number][bytes]: the number (a delivery's seq, an incoming packet id) is part of what the
   * store's CRC covers but not of the bytes, so it travels in front.
   */
  private encode(m: MovingSession): Buffer {
    const key = `m/${m.session.clientId}`;
    const out: Buffer[] = [];
    const part = (n: number, bytes: Buffer): void => {
      const head = Buffer.alloc(12);
      head.writeUInt32BE(bytes.length, 0);
      head.writeDoubleBE(n, 4);
      out.push(head, Buffer.from(bytes));
    };
    part(m.deliveries.length, this.encoder.session(key, true, m.session));
    for (const d of m.deliveries) part(d.seq, this.encoder.delivery(key, true, d));
    for (const id of m.incoming) part(id, this.encoder.incoming(key, true, m.session.clientId, id));
    return Buffer.concat(out);
  }

  private decode(clientId: string, value: Buffer): MovingSession {
    const key = `m/${clientId}`;
    let pos = 0;
    const next = (): { n: number; bytes: Buffer } => {
      const len = value.readUInt32BE(pos);
      const n = value.readDoubleBE(pos + 4);
      const bytes = value.subarray(pos + 12, pos + 12 + len);
      pos += 12 + len;
      return { n, bytes };
    };
    const head = next();
    const session = this.decoder.session(key, undefined, head.bytes);
    const deliveries: StoredDelivery[] = [];
    for (let i = 0; i < head.n; i++) {
      const { n, bytes } = next();
      deliveries.push(this.decoder.delivery(key, undefined, n, bytes));
    }
    const incoming: number[] = [];
    while (pos < value.length) {
      const { n, bytes } = next();
      this.decoder.incoming(key, undefined, n, bytes);
      incoming.push(n);
    }
    return { session, deliveries, incoming };
  }

  async stop(): Promise<void> {
    await this.watch?.cancel();
  }
}

/** For tests and callers that build a snapshot of one moving session. */
export function snapshotOf(m: MovingSession): Snapshot {
  return { retained: [], sessions: [m.session], deliveries: m.deliveries, incoming: new Map([[m.session.clientId, m.incoming]]) };
}
