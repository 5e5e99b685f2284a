/**
 * A raw MQTT client for black-box tests: sends exact bytes or packets, and reads every packet the broker
 * sends back, so tests can check exact replies and reason codes. Both directions of its socket also go through
 * the strict checker (helpers/strict/tap.ts), which fails the test when the broker's output breaks the spec.
 */
import { connect, type Socket } from 'node:net';
import mqtt, { type Packet } from 'mqtt-packet';
import type { StrictChecker } from './strict/checker.js';
import { strictChecker, tapStream } from './strict/tap.js';

/** The packets a test may ask for by command name. */
export type Cmd = Packet['cmd'];

/** A TCP connection speaking MQTT at the byte level. */
export class RawClient {
  readonly socket: Socket;
  protocolVersion: 3 | 4 | 5;
  private readonly queue: Packet[] = [];
  private waiter: ((p: Packet | null) => void) | null = null;
  private readonly parser: ReturnType<typeof mqtt.parser>;
  /** Resolves when the broker closes the connection. */
  readonly closed: Promise<void>;
  private isClosed = false;
  /** Parse errors seen on what the broker sent (should stay empty). */
  readonly parseErrors: Error[] = [];
  /** Judges what the broker sends on this connection against the specification. */
  readonly checker: StrictChecker;

  private constructor(socket: Socket, protocolVersion: 3 | 4 | 5) {
    this.socket = socket;
    this.protocolVersion = protocolVersion;
    this.checker = strictChecker(protocolVersion);
    tapStream(socket, this.checker);
    this.parser = mqtt.parser({ protocolVersion });
    this.parser.on('packet', (p: Packet) => this.push(p));
    this.parser.on('error', (e: Error) => this.parseErrors.push(e));
    socket.on('data', (d: Buffer) => this.parser.parse(d));
    this.closed = new Promise((res) => socket.once('close', () => {
      this.isClosed = true;
      const w = this.waiter;
      this.waiter = null;
      if (w) w(null);
      res();
    }));
    socket.on('error', () => { /* seen as close */ });
  }

  /** Opens a TCP connection to the broker. */
  static open(port: number, protocolVersion: 3 | 4 | 5 = 4, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, localAddress }, () => {
        s.off('error', reject);
        resolve(new RawClient(s, protocolVersion));
      });
      s.once('error', reject);
    });
  }

  /**
   * Opens a connection and completes CONNECT/CONNACK. Returns the client and the CONNACK.
   * `connect` fields override the defaults (clean session, keepalive 60).
   */
  static async connected(
    port: number,
    protocolVersion: 3 | 4 | 5,
    connect: Partial<mqtt.IConnectPacket> = {},
    localAddress?: string,
  ): Promise<{ client: RawClient; connack: mqtt.IConnackPacket }> {
    const client = await RawClient.open(port, protocolVersion, '127.0.0.1', localAddress);
    client.send({
      cmd: 'connect',
      protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion,
      clientId: `raw-${Math.random().toString(16).slice(2, 10)}`,
      clean: true,
      keepalive: 60,
      ...connect,
    } as mqtt.IConnectPacket);
    const connack = (await client.next('connack')) as mqtt.IConnackPacket;
    return { client, connack };
  }

  private push(p: Packet): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w(p);
    } else {
      this.queue.push(p);
    }
  }

  /** Sends a packet object (encoded for this client's protocol version) or raw bytes. */
  send(packet: Packet | Buffer): void {
    const bytes = Buffer.isBuffer(packet) ? packet : mqtt.generate(packet, { protocolVersion: this.protocolVersion });
    this.socket.write(bytes);
  }

  /**
   * The next packet from the broker. With `cmd`, fails if the next packet is of another type.
   * Rejects when nothing arrives within `timeoutMs` or the connection closes first.
   */
  async next(cmd?: Cmd, timeoutMs = 3000): Promise<Packet> {
    const p = this.queue.shift() ?? (await this.wait(timeoutMs));
    if (!p) throw new Error(`connection closed while waiting for ${cmd ?? 'a packet'}`);
    if (cmd && p.cmd !== cmd) throw new Error(`expected ${cmd}, got ${JSON.stringify(p)}`);
    return p;
  }

  /** Resolves with the next packet, or null if the connection closed; rejects on timeout. */
  private wait(timeoutMs: number): Promise<Packet | null> {
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no packet within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (p) => {
        clearTimeout(t);
        resolve(p);
      };
    });
  }

  /** Asserts that nothing arrives for `ms` milliseconds (used only to prove an absence). */
  async expectSilence(ms = 300): Promise<void> {
    if (this.queue.length) throw new Error(`unexpected packet ${JSON.stringify(this.queue[0])}`);
    const p = await this.wait(ms).catch(() => undefined);
    if (p) throw new Error(`unexpected packet ${JSON.stringify(p)}`);
  }

  /** Waits for the broker to close the connection; returns every packet received before the close. */
  async expectClosed(timeoutMs = 3000): Promise<Packet[]> {
    // A reset (ECONNRESET) also counts as closed: brokers reset sockets that still hold unread input.
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      this.socket.destroy();
    }, timeoutMs);
    await this.closed;
    clearTimeout(t);
    if (timedOut) throw new Error(`connection not closed within ${timeoutMs} ms`);
    return this.queue.splice(0);
  }

  /** True once the connection is closed. */
  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Closes the socket without DISCONNECT (an abnormal close). */
  destroy(): void {
    this.socket.destroy();
  }
}
