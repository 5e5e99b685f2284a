import type { Duplex } from 'node:stream';
import mqtt, { type Packet } from 'mqtt-packet';
import type { Broker } from '../broker.js';
import { duplexPair } from './duplex-pair.js';

/** A client on an in-memory stream to an in-process broker: sends packets, reads replies in order. */
export class TestClient {
  readonly stream: Duplex;
  readonly received: Packet[] = [];
  private waiters: (() => void)[] = [];
  private readonly version: 4 | 5;
  closed = false;

  constructor(broker: Broker, version: 4 | 5) {
    const [client, server] = duplexPair();
    this.stream = client;
    this.version = version;
    const parser = mqtt.parser({ protocolVersion: version });
    parser.on('packet', (p: Packet) => {
      this.received.push(p);
      this.wake();
    });
    client.on('data', (d: Buffer) => parser.parse(d));
    client.on('close', () => {
      this.closed = true;
      this.wake();
    });
    client.on('end', () => client.end());
    broker.attach(server, { transport: 'test', remoteAddress: 'in-process' });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Encodes and sends a packet. */
  send(p: Packet): void {
    this.stream.write(mqtt.generate(p, { protocolVersion: this.version }));
  }

  /** Waits until `pred` holds for the received packets (or the connection closed), at most `ms`. */
  async until(pred: (received: Packet[]) => boolean, ms = 2000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.received)) {
      if (this.closed) throw new Error(`closed; received ${JSON.stringify(this.received.map((p) => p.cmd))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`condition not met; received ${JSON.stringify(this.received.map((p) => p.cmd))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Connects and waits for CONNACK. */
  async connect(clientId: string, extra: Partial<mqtt.IConnectPacket> = {}): Promise<mqtt.IConnackPacket> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: this.version, clientId, clean: true, keepalive: 0, ...extra } as mqtt.IConnectPacket);
    await this.until((r) => r.some((p) => p.cmd === 'connack'));
    return this.received.find((p) => p.cmd === 'connack') as mqtt.IConnackPacket;
  }

  /** Packets of one type received so far. */
  all<C extends Packet['cmd']>(cmd: C): Extract<Packet, { cmd: C }>[] {
    return this.received.filter((p): p is Extract<Packet, { cmd: C }> => p.cmd === cmd);
  }
}
