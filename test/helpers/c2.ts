/**
 * Shared helpers for the black-box suites 04–08 (retain, session, shared subscriptions, will, MQTT 5):
 * MQTT.js clients with an inbox of received messages, shortcuts for RawClient exchanges, unique names,
 * and per-test cleanup of every client a test opened.
 */
import type { TestContext } from 'node:test';
import type { IClientOptions, IConnackPacket, IPublishPacket, MqttClient } from 'mqtt';
import type * as mqttPacket from 'mqtt-packet';
import { startBroker, type RunningBroker, type StartOptions } from './broker.js';
import { RawClient } from './raw.js';
import { assertStrict, strictMqtt } from './strict/tap.js';

/** A protocol level the suites run for: 4 is MQTT 3.1.1, 5 is MQTT 5.0. */
export type Version = 4 | 5;

/** Every suite loops over these (test names start with `[v4]` / `[v5]`). */
export const VERSIONS: readonly Version[] = [4, 5];

/** True when the suites run against Mosquitto (SMQ_TEST_AGAINST=mosquitto), which ignores smq's config. */
export const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';

let counter = 0;

/** A name no other test in this process uses (client ids, topics, share names). */
export function uniq(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid.toString(36)}-${counter.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * A fixed wait. Only for behaviour that is time-based by definition (will delay, session and message
 * expiry): every other wait in these suites is for an event, with a timeout.
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `what` if `p` has not settled within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    p.then(
      (v) => { clearTimeout(t); resolve(v); },
      (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); },
    );
  });
}

/** One application message delivered to an MQTT.js client. */
export interface Received {
  readonly topic: string;
  readonly payload: Buffer;
  readonly packet: IPublishPacket;
}

/**
 * Every message an MQTT.js client receives, in order, from the moment the client is created (so messages
 * sent right after CONNACK, such as a persistent session's queue, are never missed). `next`/`take` consume
 * in order; `all` keeps everything.
 */
export class Inbox {
  readonly all: Received[] = [];
  private cursor = 0;
  private readonly waiters = new Set<() => void>();

  constructor(client: MqttClient) {
    client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
      this.all.push({ topic, payload, packet });
      for (const w of [...this.waiters]) w();
    });
  }

  /** Calls `fn` after every message; returns a function that stops it. */
  onMessage(fn: () => void): () => void {
    this.waiters.add(fn);
    return () => { this.waiters.delete(fn); };
  }

  /** Messages received but not yet taken. */
  get pending(): number {
    return this.all.length - this.cursor;
  }

  /** Resolves once `ready()` holds; re-checked on every message; rejects after `timeoutMs`. */
  private waitFor(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!ready()) return;
        clearTimeout(t);
        this.waiters.delete(check);
        resolve();
      };
      const t = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${what} within ${timeoutMs} ms; got ${this.describe()}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private describe(): string {
    return JSON.stringify(this.all.map((m) => `${m.topic}:${m.payload.toString()}`).slice(-10));
  }

  /** Takes the next message. */
  async next(timeoutMs = 3000): Promise<Received> {
    const [m] = await this.take(1, timeoutMs);
    return m!;
  }

  /** Waits until `n` messages are pending and takes them. */
  async take(n: number, timeoutMs = 3000): Promise<Received[]> {
    await this.waitFor(() => this.pending >= n, timeoutMs, `expected ${n} more message(s)`);
    const out = this.all.slice(this.cursor, this.cursor + n);
    this.cursor += n;
    return out;
  }

  /** Waits until `n` messages in total have arrived since the client was created (takes nothing). */
  waitTotal(n: number, timeoutMs = 5000): Promise<void> {
    return this.waitFor(() => this.all.length >= n, timeoutMs, `expected ${n} message(s) in total`);
  }

  /** Asserts that nothing is pending and nothing arrives for `ms` (used only to prove an absence). */
  async expectSilence(ms = 300): Promise<void> {
    if (this.pending) throw new Error(`unexpected message(s): ${this.describe()}`);
    await delay(ms);
    if (this.pending) throw new Error(`unexpected message(s): ${this.describe()}`);
  }

  /** Takes everything that arrives until `quietMs` pass with nothing new (to count a burst). */
  async drain(quietMs = 500): Promise<Received[]> {
    let seen = -1;
    while (seen !== this.all.length) {
      seen = this.all.length;
      await delay(quietMs);
    }
    const out = this.all.slice(this.cursor);
    this.cursor = this.all.length;
    return out;
  }
}

/** Resolves once the inboxes together have received `n` messages in total; rejects after `timeoutMs`. */
export function waitForTotal(inboxes: readonly Inbox[], n: number, timeoutMs = 5000): Promise<void> {
  const total = (): number => inboxes.reduce((sum, i) => sum + i.all.length, 0);
  if (total() >= n) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const stops: (() => void)[] = [];
    const stop = (): void => { clearTimeout(t); for (const s of stops) s(); };
    const t = setTimeout(() => { stop(); reject(new Error(`expected ${n} messages in total within ${timeoutMs} ms, got ${total()}`)); }, timeoutMs);
    for (const i of inboxes) {
      stops.push(i.onMessage(() => {
        if (total() >= n) { stop(); resolve(); }
      }));
    }
  });
}

/** An MQTT.js client connected to the broker under test. */
export interface MqttConn {
  readonly client: MqttClient;
  readonly connack: IConnackPacket;
  readonly inbox: Inbox;
}

/** Closes an MQTT.js client with DISCONNECT when it is connected, or drops it otherwise; never hangs. */
export async function closeMqtt(client: MqttClient, disconnect: Partial<mqttPacket.IDisconnectPacket> = {}): Promise<void> {
  if (client.connected) {
    try {
      await withTimeout(client.endAsync(false, disconnect), 2000, 'MQTT.js end');
      return;
    } catch {
      // Fall through to a forced close: cleanup must not fail a test that already finished.
    }
  }
  client.end(true);
}

/**
 * Closes a raw client with DISCONNECT (fields from `disconnect`, e.g. a reason code or a new session expiry)
 * unless it is already closed, and waits until the broker has closed its side too — so the broker has
 * processed the DISCONNECT before anything the test does next.
 */
export async function closeRaw(client: RawClient, disconnect: Partial<mqttPacket.IDisconnectPacket> = {}): Promise<void> {
  if (!client.isOpen) return;
  client.send({ ...disconnect, cmd: 'disconnect' });
  client.socket.end();
  await withTimeout(client.closed, 2000, 'raw close').catch(() => client.destroy());
}

/**
 * The clients one test opens, all closed when the test ends (pass or fail). Create one per test with
 * {@link clientsFor}.
 */
export class Clients {
  private readonly mqtts: MqttClient[] = [];
  private readonly raws: RawClient[] = [];

  constructor(readonly port: number) {}

  /**
   * Connects an MQTT.js client (no auto-reconnect, clean session unless `opts.clean` is false) and waits
   * for its CONNACK; messages are recorded from the start.
   */
  async mqtt(version: Version, opts: IClientOptions = {}): Promise<MqttConn> {
    const client = strictMqtt(this.port, {
      protocolVersion: version,
      clientId: uniq('js'),
      reconnectPeriod: 0,
      connectTimeout: 5000,
      keepalive: 60,
      ...opts,
    });
    this.mqtts.push(client);
    const inbox = new Inbox(client);
    // An MQTT.js 'error' without a listener would throw from the emitter; tests see errors as rejections.
    client.on('error', () => undefined);
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      const onConnect = (p: IConnackPacket): void => { done(); resolve(p); };
      const onError = (e: Error): void => { done(); reject(e); };
      const onClose = (): void => { done(); reject(new Error('connection closed before CONNACK')); };
      const t = setTimeout(() => { done(); reject(new Error('no CONNACK within 5000 ms')); }, 5000);
      const done = (): void => {
        clearTimeout(t);
        client.off('connect', onConnect);
        client.off('error', onError);
        client.off('close', onClose);
      };
      client.on('connect', onConnect);
      client.on('error', onError);
      client.on('close', onClose);
    });
    return { client, connack, inbox };
  }

  /** Opens a RawClient and completes CONNECT/CONNACK (see {@link RawClient.connected}). */
  async raw(version: Version, connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<{ client: RawClient; connack: mqttPacket.IConnackPacket }> {
    const r = await RawClient.connected(this.port, version, connect);
    this.raws.push(r.client);
    return r;
  }

  /** Registers a RawClient opened elsewhere so it is closed with the others. */
  track(client: RawClient): RawClient {
    this.raws.push(client);
    return client;
  }

  /** Closes every client this test opened, then fails if the broker sent anything the strict checker rejects. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.mqtts.map((c) => closeMqtt(c)), ...this.raws.map((c) => closeRaw(c))]);
    assertStrict('while the test\'s clients closed');
  }
}

/** A {@link Clients} for the test `t`, closed in `t.after`. */
export function clientsFor(t: TestContext, port: number): Clients {
  const c = new Clients(port);
  t.after(() => c.closeAll());
  return c;
}

/**
 * Stops a broker (SIGTERM) once its clients are gone. If it has not exited within `graceMs` it is killed and
 * the call fails, so a broker that does not drain shows up as a failed hook instead of a hung suite.
 */
export async function stopBroker(broker: RunningBroker, graceMs = 10000): Promise<void> {
  try {
    await withTimeout(broker.stop(), graceMs, 'broker exit after SIGTERM');
  } catch (e) {
    await broker.stop('SIGKILL');
    throw e;
  }
}

/**
 * A broker of the test's own (for a test that needs a special configuration) and a {@link Clients} for it;
 * when the test ends the clients are closed first, then the broker is stopped.
 */
export async function brokerFor(t: TestContext, options: StartOptions): Promise<{ broker: RunningBroker; clients: Clients }> {
  const broker = await startBroker(options);
  const clients = new Clients(broker.port);
  t.after(async () => {
    await clients.closeAll();
    await stopBroker(broker);
  });
  return { broker, clients };
}

const packetIds = new WeakMap<RawClient, number>();

/** The next packet identifier for a raw client (1, 2, …). */
export function nextId(client: RawClient): number {
  const id = (packetIds.get(client) ?? 0) + 1;
  packetIds.set(client, id);
  return id;
}

/** Sends SUBSCRIBE and returns the SUBACK. */
export async function rawSubscribe(
  client: RawClient,
  subscriptions: mqttPacket.ISubscription[],
  properties?: mqttPacket.ISubscribePacket['properties'],
): Promise<mqttPacket.ISubackPacket> {
  const messageId = nextId(client);
  const packet: mqttPacket.ISubscribePacket = { cmd: 'subscribe', messageId, subscriptions };
  if (properties) packet.properties = properties;
  client.send(packet);
  const ack = (await client.next('suback')) as mqttPacket.ISubackPacket;
  if (ack.messageId !== messageId) throw new Error(`SUBACK for ${ack.messageId}, expected ${messageId}`);
  return ack;
}

/** Options of {@link rawPublish}. */
export interface RawPublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
  properties?: mqttPacket.IPublishPacket['properties'];
}

/**
 * Sends PUBLISH and completes its QoS flow: returns the PUBACK (QoS 1), the PUBREC (QoS 2, after sending
 * PUBREL and receiving PUBCOMP) or nothing (QoS 0).
 */
export async function rawPublish(client: RawClient, topic: string, payload: string | Buffer, opts: RawPublishOptions = {}): Promise<mqttPacket.Packet | undefined> {
  const qos = opts.qos ?? 0;
  const packet: mqttPacket.IPublishPacket = { cmd: 'publish', topic, payload, qos, retain: opts.retain ?? false, dup: false };
  if (opts.properties) packet.properties = opts.properties;
  if (qos === 0) {
    client.send(packet);
    return undefined;
  }
  const messageId = nextId(client);
  packet.messageId = messageId;
  client.send(packet);
  if (qos === 1) return client.next('puback');
  const rec = await client.next('pubrec');
  client.send({ cmd: 'pubrel', messageId });
  await client.next('pubcomp');
  return rec;
}

/**
 * The next PUBLISH the broker sends to a raw client. With `ack` (default) it is acknowledged (PUBACK for
 * QoS 1, PUBREC for QoS 2); a PUBREL met on the way is answered with PUBCOMP and skipped.
 */
export async function rawNextPublish(client: RawClient, timeoutMs = 3000, ack = true): Promise<mqttPacket.IPublishPacket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const p = await client.next(undefined, Math.max(1, end - Date.now()));
    if (p.cmd === 'pubrel') {
      client.send({ cmd: 'pubcomp', messageId: p.messageId! });
      continue;
    }
    if (p.cmd !== 'publish') throw new Error(`expected publish, got ${JSON.stringify(p)}`);
    if (ack && p.qos === 1) client.send({ cmd: 'puback', messageId: p.messageId! });
    if (ack && p.qos === 2) client.send({ cmd: 'pubrec', messageId: p.messageId! });
    return p;
  }
}

/** The payload of a received packet as text. */
export function text(payload: string | Buffer): string {
  return typeof payload === 'string' ? payload : payload.toString('utf8');
}
