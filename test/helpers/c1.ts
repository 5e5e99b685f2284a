/**
 * Shared helpers for the black-box protocol suites 01 connect, 02 subpub, 03 publish-qos and 13 malformed:
 * a broker starter that also translates the few config keys these suites need for Mosquitto, a pool that
 * closes every client after each test, a "bystander" client that proves a protocol error on one connection
 * leaves the others working, and small packet helpers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type mqtt from 'mqtt-packet';
import { freePort, startBroker, type RunningBroker } from './broker.js';
import { RawClient } from './raw.js';
import { assertStrict } from './strict/tap.js';

/** Protocol levels every suite runs for: 4 = MQTT 3.1.1, 5 = MQTT 5.0. */
export const VERSIONS = [4, 5] as const;
/** One protocol level under test. */
export type Version = 3 | 4 | 5;

/**
 * True when the suites run against Debian's Mosquitto 2.0.11 (SMQ_TEST_AGAINST=mosquitto). Used only to gate
 * the few single assertions where Mosquitto is known to depart from the spec (or from a SHOULD that smq
 * follows); each use says why.
 */
export const mosquittoDeviates = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';

/** Options for {@link startTestBroker}. */
export interface TestBrokerOptions {
  /** smq config keys merged over the harness defaults. */
  config?: Record<string, unknown>;
  /** The same settings as Mosquitto config lines (global options), used with SMQ_TEST_AGAINST=mosquitto. */
  mosquitto?: string[];
}

/**
 * Starts smq with `config` or, with SMQ_TEST_AGAINST=mosquitto, Mosquitto with the equivalent `mosquitto`
 * lines (the shared harness starts Mosquitto without options, so limits like max_packet_size could not be
 * checked against it otherwise).
 */
export async function startTestBroker(options: TestBrokerOptions = {}): Promise<RunningBroker> {
  if (!mosquittoDeviates || !options.mosquitto?.length) {
    return startBroker(options.config ? { config: options.config } : {});
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'smq-mosq-c1-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [...options.mosquitto, `listener ${port} 127.0.0.1`, 'allow_anonymous true', ''].join('\n'));
  const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => { stderr += c; });
  proc.stdout.resume();
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  let up = false;
  for (let i = 0; i < 100 && !up; i++) {
    up = await new Promise<boolean>((res) => {
      const s = netConnect({ port, host: '127.0.0.1' }, () => { s.destroy(); res(true); });
      s.once('error', () => res(false));
    });
    if (!up) await new Promise((r) => setTimeout(r, 50));
  }
  if (!up) throw new Error(`mosquitto did not start: ${stderr}`);
  return {
    proc, port, wsPort: undefined, logs: [], configFile: conf,
    waitForLog: () => Promise.reject(new Error('logs are not available from mosquitto')),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

let seq = 0;
/** A name unique within this test process, for client ids and topics. */
export function uid(prefix = 'c1'): string {
  seq += 1;
  return `${prefix}-${process.pid}-${seq}-${Math.random().toString(16).slice(2, 8)}`;
}

let nextId = 0;
/** A fresh non-zero packet identifier. */
export function pid(): number {
  nextId = (nextId % 60000) + 1;
  return nextId;
}

/** CONNACK return code (v3.1.x) or reason code (v5). */
export function connackCode(p: mqtt.IConnackPacket): number {
  return p.reasonCode ?? p.returnCode ?? -1;
}

/**
 * Tracks the clients a test opens so `closeAll` (run from `afterEach`) can close them, and checks that
 * everything the broker sent could be parsed, by mqtt-packet and by the strict checker.
 */
export class ClientPool {
  private readonly clients: RawClient[] = [];

  /** Registers a client opened elsewhere. */
  add(c: RawClient): RawClient {
    this.clients.push(c);
    return c;
  }

  /** Opens a bare TCP connection (no CONNECT sent). */
  async open(port: number, version: Version): Promise<RawClient> {
    return this.add(await RawClient.open(port, version));
  }

  /** Connects and asserts a successful CONNACK. */
  async connect(port: number, version: Version, fields: Partial<mqtt.IConnectPacket> = {}): Promise<{ client: RawClient; connack: mqtt.IConnackPacket }> {
    const client = await RawClient.open(port, version);
    this.add(client);
    client.send({
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clientId: uid('raw'),
      clean: true,
      keepalive: 60,
      ...fields,
    } as mqtt.IConnectPacket);
    const connack = (await client.next('connack')) as mqtt.IConnackPacket;
    assert.equal(connackCode(connack), 0, `CONNACK refused: ${JSON.stringify(connack)}`);
    return { client, connack };
  }

  /** Destroys every client and fails if the broker sent anything unparsable or against the specification. */
  closeAll(): void {
    const errors = this.clients.flatMap((c) => c.parseErrors.map((e) => e.message));
    for (const c of this.clients.splice(0)) c.destroy();
    assert.deepEqual(errors, [], 'the broker sent bytes the MQTT parser rejected');
    assertStrict('in this test');
  }
}

/** Subscribes and returns the SUBACK, checking its packet identifier. */
export async function subscribe(
  c: RawClient,
  subs: mqtt.ISubscription[],
  properties?: mqtt.ISubscribePacket['properties'],
): Promise<mqtt.ISubackPacket> {
  const messageId = pid();
  c.send({ cmd: 'subscribe', messageId, subscriptions: subs, ...(properties ? { properties } : {}) });
  const suback = (await c.next('suback')) as mqtt.ISubackPacket;
  assert.equal(suback.messageId, messageId, 'SUBACK carries the SUBSCRIBE packet identifier [MQTT-3.8.4-2]');
  return suback;
}

/** The next PUBLISH, acknowledged (PUBACK, or PUBREC then PUBREL/PUBCOMP) so the flow is complete. */
export async function receive(c: RawClient, timeoutMs = 3000): Promise<mqtt.IPublishPacket> {
  const p = (await c.next('publish', timeoutMs)) as mqtt.IPublishPacket;
  await ack(c, p);
  return p;
}

/** Acknowledges an incoming PUBLISH according to its QoS. */
export async function ack(c: RawClient, p: mqtt.IPublishPacket): Promise<void> {
  if (p.qos === 1) {
    c.send({ cmd: 'puback', messageId: p.messageId });
  } else if (p.qos === 2) {
    c.send({ cmd: 'pubrec', messageId: p.messageId });
    const rel = await c.next('pubrel');
    assert.equal(rel.messageId, p.messageId);
    c.send({ cmd: 'pubcomp', messageId: p.messageId });
  }
}

/**
 * Reads packets for `ms` milliseconds, acknowledging PUBLISHes, and returns what arrived. A fixed wait, used
 * only to prove that something did NOT arrive among other traffic (e.g. `$SYS` updates).
 */
export async function collect(c: RawClient, ms: number): Promise<mqtt.Packet[]> {
  const out: mqtt.Packet[] = [];
  const end = Date.now() + ms;
  for (;;) {
    const left = end - Date.now();
    if (left <= 0) return out;
    let p: mqtt.Packet;
    try {
      p = await c.next(undefined, left);
    } catch {
      return out;
    }
    out.push(p);
    if (p.cmd === 'publish') await ack(c, p);
  }
}

/** Payload as a UTF-8 string. */
export function text(p: mqtt.IPublishPacket): string {
  return Buffer.isBuffer(p.payload) ? p.payload.toString('utf8') : p.payload;
}

/**
 * Waits until the broker closes `c` and returns every packet received before the close. Unlike
 * `RawClient.expectClosed`, a reset (ECONNRESET, which Mosquitto causes when it closes a socket with unread
 * input) counts as closed rather than as a timeout.
 */
export async function closedAfter(c: RawClient, timeoutMs = 3000): Promise<mqtt.Packet[]> {
  const out: mqtt.Packet[] = [];
  const end = Date.now() + timeoutMs;
  for (;;) {
    const left = end - Date.now();
    if (left <= 0) throw new Error(`connection not closed within ${timeoutMs} ms; received ${JSON.stringify(out)}`);
    try {
      out.push(await c.next(undefined, left));
    } catch (e) {
      if (!c.isOpen) return out;
      throw new Error(`connection not closed within ${timeoutMs} ms; received ${JSON.stringify(out)} (${String(e)})`);
    }
  }
}

/**
 * Waits for the broker to close `c` and checks what it sent first. For v3.1.x nothing may precede the close
 * (there is no DISCONNECT from the server). For v5, `reasons` lists the DISCONNECT reason codes allowed;
 * `optional` lets the broker close without sending one (a server MAY close without DISCONNECT, MQTT 5 §4.13).
 */
export async function expectClosedWith(
  c: RawClient,
  version: Version,
  reasons: readonly number[],
  opts: { optional?: boolean; timeoutMs?: number } = {},
): Promise<void> {
  const packets = await closedAfter(c, opts.timeoutMs ?? 3000);
  if (version !== 5 || reasons.length === 0) {
    assert.deepEqual(packets, [], 'nothing is sent before the connection is closed');
    return;
  }
  if (opts.optional && packets.length === 0) return;
  assert.equal(packets.length, 1, `exactly one DISCONNECT before the close, got ${JSON.stringify(packets)}`);
  const d = packets[0] as mqtt.IDisconnectPacket;
  assert.equal(d.cmd, 'disconnect');
  assert.ok(reasons.includes(d.reasonCode ?? 0),
    `DISCONNECT reason 0x${(d.reasonCode ?? 0).toString(16)} not in [${reasons.map((r) => `0x${r.toString(16)}`).join(', ')}]`);
}

/**
 * A second, already-connected client that must keep working while another connection misbehaves: it is
 * subscribed to its own topic and `assertWorks` publishes there at QoS 1 and expects the PUBACK and the
 * message back.
 */
export class Bystander {
  private constructor(readonly client: RawClient, readonly topic: string) {}

  /** Connects and subscribes (QoS 1) to a private topic. */
  static async start(pool: ClientPool, port: number, version: Version): Promise<Bystander> {
    const { client } = await pool.connect(port, version);
    const topic = uid('bystander');
    const suback = await subscribe(client, [{ topic, qos: 1 }]);
    assert.deepEqual(suback.granted, [1]);
    return new Bystander(client, topic);
  }

  /** Publishes at QoS 1 to its own topic and expects both the PUBACK and the delivery. */
  async assertWorks(): Promise<void> {
    assert.ok(this.client.isOpen, 'the bystander connection is still open');
    const messageId = pid();
    const payload = uid('still-alive');
    this.client.send({ cmd: 'publish', topic: this.topic, qos: 1, messageId, dup: false, retain: false, payload });
    // The PUBACK and the delivered copy may come in either order.
    const a = await this.client.next();
    const b = await this.client.next();
    const puback = [a, b].find((p) => p.cmd === 'puback');
    const pub = [a, b].find((p) => p.cmd === 'publish') as mqtt.IPublishPacket | undefined;
    assert.ok(puback && pub, `bystander expected PUBACK and PUBLISH, got ${JSON.stringify([a, b])}`);
    assert.equal(puback.messageId, messageId);
    assert.equal(pub.topic, this.topic);
    assert.equal(text(pub), payload);
    await ack(this.client, pub);
  }
}

/**
 * Bytes from hex written with spaces and `#` comments, one field per line, mochi-mqtt style, e.g.
 * `hex('82 # SUBSCRIBE, flags 0010\n 02 # remaining length')`.
 */
export function hex(src: string): Buffer {
  const digits = src.split('\n').map((l) => l.replace(/#.*$/, '')).join('').replace(/\s+/g, '');
  assert.ok(/^([0-9a-fA-F]{2})*$/.test(digits), `bad hex: ${digits}`);
  return Buffer.from(digits, 'hex');
}

/** Collects every byte the broker sends on `c`, for tests that check exact bytes. */
export function recordBytes(c: RawClient): () => Buffer {
  const chunks: Buffer[] = [];
  c.socket.on('data', (d: Buffer) => chunks.push(d));
  return () => Buffer.concat(chunks);
}
