/**
 * A small MQTT client for load processes (test/load/): one socket, mqtt-packet for encoding and parsing, QoS 0
 * and 1 in both directions, v3.1.1 and v5. Lighter than MQTT.js (no store, no timers per client, no reconnect
 * logic), so one process can hold hundreds of them and still count every message exactly.
 */
import { connect as netConnect, type Socket } from 'node:net';
import mqtt, { type IConnackPacket, type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet';

/** How a {@link LiteClient} connects. */
export interface LiteOptions {
  id: string;
  version: 4 | 5;
  /** Clean session (v3.1.1) or clean start (v5). */
  clean: boolean;
  /** v5 session expiry interval in seconds (v3.1.1: the broker's `mqtt.session_expiry_interval` applies). */
  sessionExpiry?: number;
  keepalive?: number;
  will?: { topic: string; payload: Buffer; qos: 0 | 1 };
  localAddress?: string;
}

/** Called for every PUBLISH the broker sends (QoS 1 ones are acknowledged right after). */
export type OnMessage = (topic: string, payload: Buffer, qos: number, dup: boolean) => void;

const PINGREQ = mqtt.generate({ cmd: 'pingreq' });

/** One MQTT connection; `connect()` may be called again after a close to resume the session. */
export class LiteClient {
  readonly options: LiteOptions;
  socket: Socket | null = null;
  /** Resolves once the current socket has closed. */
  closed: Promise<void> = Promise.resolve();
  onMessage: OnMessage | null = null;
  /** Called when the broker closes a connection we did not close ourselves. */
  onUnexpectedClose: ((client: LiteClient, why: string) => void) | null = null;
  /** Last time anything was written, for keep-alive pings. */
  lastWrite = 0;
  private parser: mqtt.Parser | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private waiter: { cmd: string; resolve: (p: Packet) => void; reject: (e: Error) => void } | null = null;
  private closing = false;
  private lastError = '';

  constructor(options: LiteOptions) {
    this.options = options;
  }

  /** True while a socket is open and connected (CONNACK 0 seen). */
  connected = false;

  /** QoS 1 publishes sent and not yet acknowledged. */
  get inflight(): number {
    return this.pending.size;
  }

  /** Opens a socket, sends CONNECT and resolves at a successful CONNACK with its session-present flag. */
  async connect(port: number, host = '127.0.0.1'): Promise<{ sessionPresent: boolean }> {
    const o = this.options;
    this.closing = false;
    this.lastError = '';
    const socket = netConnect({ port, host, localAddress: o.localAddress, noDelay: true });
    this.socket = socket;
    const parser = mqtt.parser({ protocolVersion: o.version });
    this.parser = parser;
    parser.on('packet', (p: Packet) => this.onPacket(p));
    parser.on('error', (e: Error) => { this.lastError = `parse: ${e.message}`; socket.destroy(); });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.on('error', (e: NodeJS.ErrnoException) => { this.lastError = e.code ?? e.message; });
    this.closed = new Promise((resolve) => socket.once('close', () => {
      const wasConnected = this.connected;
      this.connected = false;
      // Unacknowledged publishes of this connection are never acknowledged now: they do not count as acked.
      for (const done of this.pending.values()) done(false);
      this.pending.clear();
      const w = this.waiter;
      this.waiter = null;
      if (w) w.reject(new Error(`${o.id}: closed while waiting for ${w.cmd} (${this.lastError || 'no error'})`));
      if (wasConnected && !this.closing) this.onUnexpectedClose?.(this, this.lastError || 'closed by the broker');
      resolve();
    }));
    const packet: IConnectPacket = {
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: o.version, clientId: o.id, clean: o.clean,
      keepalive: o.keepalive ?? 60,
    };
    if (o.version === 5 && o.sessionExpiry !== undefined) packet.properties = { sessionExpiryInterval: o.sessionExpiry };
    if (o.will) packet.will = { topic: o.will.topic, payload: o.will.payload, qos: o.will.qos, retain: false };
    const connack = this.expect('connack', 10000);
    this.write(mqtt.generate(packet, { protocolVersion: o.version }));
    const ack = (await connack) as IConnackPacket;
    const code = o.version === 5 ? ack.reasonCode : ack.returnCode;
    if (code !== 0) {
      socket.destroy();
      throw new Error(`${o.id}: CONNACK code ${code}`);
    }
    this.connected = true;
    return { sessionPresent: ack.sessionPresent };
  }

  /** Subscribes and resolves with the granted QoS (or reason codes) of each filter. */
  async subscribe(filters: { topic: string; qos: 0 | 1 }[]): Promise<number[]> {
    const messageId = this.allocateId();
    const suback = this.expect('suback', 10000);
    this.write(mqtt.generate({ cmd: 'subscribe', messageId, subscriptions: filters }, { protocolVersion: this.options.version }));
    const p = (await suback) as mqtt.ISubackPacket;
    return p.granted.map((g) => (typeof g === 'number' ? g : (g as { qos: number }).qos));
  }

  /**
   * Publishes; for QoS 1, `done(true)` runs at a successful PUBACK and `done(false)` when the connection closes
   * first or the PUBACK carries a failure reason code. Returns false when not connected (nothing was sent).
   */
  publish(topic: string, payload: Buffer, qos: 0 | 1, retain = false, done?: (ok: boolean) => void): boolean {
    if (!this.connected) return false;
    const packet: IPublishPacket = { cmd: 'publish', topic, payload, qos, retain, dup: false };
    if (qos === 1) {
      const id = this.allocateId();
      packet.messageId = id;
      this.pending.set(id, done ?? (() => {}));
    }
    this.write(mqtt.generate(packet, { protocolVersion: this.options.version }));
    return true;
  }

  /** Sends PINGREQ when nothing was written for `idleMs`. */
  ping(now: number, idleMs: number): void {
    if (this.connected && now - this.lastWrite >= idleMs) this.write(PINGREQ);
  }

  /** Ends the connection: DISCONNECT then FIN when `graceful`, else a bare close. Resolves once closed. */
  async close(graceful: boolean): Promise<void> {
    const s = this.socket;
    if (s === null || s.destroyed) return;
    this.closing = true;
    if (graceful && this.connected) s.end(mqtt.generate({ cmd: 'disconnect' }, { protocolVersion: this.options.version }));
    else s.destroy();
    const t = setTimeout(() => s.destroy(), 3000);
    await this.closed;
    clearTimeout(t);
  }

  private write(bytes: Buffer): void {
    this.lastWrite = Date.now();
    this.socket?.write(bytes);
  }

  private allocateId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
    throw new Error(`${this.options.id}: no free packet id`);
  }

  private expect(cmd: string, timeoutMs: number): Promise<Packet> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`${this.options.id}: no ${cmd} within ${timeoutMs} ms`));
        this.socket?.destroy();
      }, timeoutMs);
      this.waiter = {
        cmd,
        resolve: (p) => { clearTimeout(t); resolve(p); },
        reject: (e) => { clearTimeout(t); reject(e); },
      };
    });
  }

  private onPacket(p: Packet): void {
    switch (p.cmd) {
      case 'publish': {
        if (p.qos === 1 && p.messageId !== undefined) {
          this.write(mqtt.generate({ cmd: 'puback', messageId: p.messageId }, { protocolVersion: this.options.version }));
        }
        this.onMessage?.(p.topic, p.payload as Buffer, p.qos, p.dup);
        return;
      }
      case 'puback': {
        const id = p.messageId;
        if (id === undefined) return;
        const done = this.pending.get(id);
        if (!done) return;
        this.pending.delete(id);
        done(p.reasonCode === undefined || p.reasonCode < 0x80);
        return;
      }
      case 'pingresp':
        return;
      default: {
        const w = this.waiter;
        if (w && w.cmd === p.cmd) {
          this.waiter = null;
          w.resolve(p);
        }
      }
    }
  }
}
