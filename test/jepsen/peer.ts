/**
 * One client of the checker's workload: an MQTT.js client (through strictConnect, so the strict checker sees
 * every byte) that records what it does and sees in the history, reconnects by itself to a node drawn at random
 * (as a load balancer in front of the nodes would send it), and can hop to another node (DISCONNECT, connect
 * there) or be taken over there (a second connection with its id). Its stores outlive its connections and its
 * takeovers, so in-flight QoS 1/2 state is resumed as a device would resume it.
 */
import { Store as MqttStore, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { strictConnect } from '../helpers/strict/tap.js';
import { idOfPayload, type History } from './history.js';
import type { Prng } from './prng.js';

/** What a peer needs of the run: where nodes are, the history, randomness for reconnects. */
export interface PeerContext {
  readonly history: History;
  readonly nodes: readonly string[];
  /** The client port (proxy) of a node. */
  port(node: string): number;
  readonly rnd: Prng;
}

/** How a peer connects. */
export interface PeerOptions {
  readonly version: 4 | 5;
  /** Filters to subscribe (QoS 2) at the first connect and whenever the session was not present. */
  readonly filters: readonly string[];
}

/** Milliseconds between reconnect attempts. */
const RECONNECT_MS = 300;

/** A workload client; see the module comment. */
export class Peer {
  /** Connections accepted so far (CONNACKs). */
  conn = 0;
  /** The node the current (or next) connection goes to. */
  node: string;
  client: MqttClient;
  private readonly incoming = new MqttStore({ clean: false });
  private readonly outgoing = new MqttStore({ clean: false });
  private stopped = false;

  constructor(readonly id: string, first: string, private readonly o: PeerOptions, private readonly ctx: PeerContext) {
    this.node = first;
    this.client = this.open(first);
  }

  /** Whether a connection is up now. */
  get connected(): boolean {
    return this.client.connected;
  }

  private open(node: string): MqttClient {
    const options: IClientOptions = {
      protocol: 'mqtt', host: '127.0.0.1', hostname: '127.0.0.1', port: this.ctx.port(node),
      clientId: this.id, clean: false, protocolVersion: this.o.version,
      ...(this.o.version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
      reconnectPeriod: RECONNECT_MS, connectTimeout: 4000, keepalive: 5, resubscribe: false,
      incomingStore: this.incoming, outgoingStore: this.outgoing,
    };
    const c = strictConnect(options);
    let up = false;
    const h = this.ctx.history;
    c.on('connect', (connack) => {
      if (c !== this.client) return;
      up = true;
      this.conn++;
      h.add({ type: 'connect', client: this.id, node: this.node, sessionPresent: connack.sessionPresent, conn: this.conn });
      if (this.conn === 1 || !connack.sessionPresent) this.subscribe();
    });
    c.on('message', (topic, payload, packet: IPublishPacket) => {
      h.add({ type: 'deliver', client: this.id, id: idOfPayload(payload.toString()), topic, qos: packet.qos, dup: packet.dup, retain: packet.retain, conn: this.conn, node: this.node, pid: packet.messageId ?? 0 });
    });
    c.on('disconnect', (packet) => {
      h.add({ type: 'disconnect', client: this.id, node: this.node, reason: `DISCONNECT 0x${(packet.reasonCode ?? 0).toString(16)}`, conn: this.conn });
    });
    c.on('error', (err) => {
      h.add({ type: 'disconnect', client: this.id, node: this.node, reason: `error: ${err.message}`, conn: this.conn });
    });
    c.on('close', () => {
      if (c !== this.client || this.stopped) return;
      if (up) h.add({ type: 'disconnect', client: this.id, node: this.node, reason: 'closed', conn: this.conn });
      up = false;
      // The next automatic reconnect goes wherever a load balancer would send it.
      this.target(this.ctx.rnd.pick(this.ctx.nodes));
    });
    return c;
  }

  /** Points the client's next connection at `node` (MQTT.js reads host and port at each connect). */
  private target(node: string): void {
    this.node = node;
    this.client.options.port = this.ctx.port(node);
  }

  private subscribe(): void {
    const c = this.client;
    for (const filter of this.o.filters) {
      c.subscribe(filter, { qos: 2 }, (err, granted) => {
        if (err || granted === undefined) return; // the connection went: the next one subscribes again
        for (const g of granted) this.ctx.history.add({ type: 'subscribed', client: this.id, filter: g.topic, granted: g.qos, conn: this.conn });
      });
    }
  }

  /** Leaves its node cleanly (DISCONNECT) and connects to `node`; one not connected now just goes there next. */
  async hop(node: string): Promise<void> {
    const from = this.node;
    this.ctx.history.add({ type: 'move', client: this.id, kind: 'hop', from, to: node });
    const c = this.client;
    if (!c.connected) {
      this.target(node);
      return;
    }
    this.stopped = true; // the close that follows is ours
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { c.end(true); resolve(); }, 3000);
      c.end(false, {}, () => { clearTimeout(timer); resolve(); });
    });
    this.stopped = false;
    this.target(node);
    c.reconnect({ incomingStore: this.incoming, outgoingStore: this.outgoing });
  }

  /** A second connection with this client id on `node`; the first is dropped once the second is accepted (or 10 s). */
  async takeover(node: string): Promise<void> {
    this.ctx.history.add({ type: 'move', client: this.id, kind: 'takeover', from: this.node, to: node });
    const old = this.client;
    old.options.reconnectPeriod = 0; // the old one must not take the id back
    this.node = node;
    this.client = this.open(node);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      this.client.once('connect', () => { clearTimeout(timer); resolve(); });
    });
    old.end(true);
  }

  /** Publishes `payload` (QoS 1/2) and calls back with an error or null once acknowledged. */
  publish(topic: string, payload: string, qos: 1 | 2, retain: boolean, done: (err: Error | null) => void): void {
    this.client.publish(topic, payload, { qos, retain }, (err) => done(err ?? null));
  }

  /** Ends the client for good (no DISCONNECT: the run is over). */
  close(): void {
    this.stopped = true;
    const c = this.client;
    // A hop's end() may still be under way with a reconnect deferred behind it: that one must not stay open.
    c.options.reconnectPeriod = 0;
    c.on('connect', () => c.end(true));
    c.end(true);
  }
}
