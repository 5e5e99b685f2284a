/**
 * The steady load of the soak test (test/99-soak.test.ts), run as a forked child so its CPU is apart from the
 * test's sampling and the broker's. Over IPC: `{ cmd: 'start', port, load }` connects every long-lived client
 * and starts the load ('started'); `{ cmd: 'stats' }` answers with running totals ('stats'); `{ cmd: 'stop' }`
 * stops publishing, lets every acknowledged QoS 1 message arrive, removes every session the load made and
 * answers with the totals ('stopped'). Errors answer `{ type: 'error', message }`.
 *
 * What runs (counts and rates from {@link SoakLoad}):
 * - fan-out: one QoS 0 publisher on `soak/fan/<k>` (every 10th message retained on `soak/ret/<k>`), many clean
 *   subscribers of `soak/fan/+`;
 * - persistent QoS 1 streams: a QoS 1 publisher per stream on `soak/q1/<i>`, each read by its own persistent
 *   subscriber (v3.1.1 clean=false or v5 with a session expiry) that keeps going away (half with DISCONNECT,
 *   half by dropping the socket) and coming back, so the broker queues in its store meanwhile;
 * - shared: QoS 1 publishers on `soak/sh/<i>`, one `$share/soak/soak/sh/+` group of persistent members;
 * - churn: short-lived clients at a fixed rate, each connects, subscribes to its own topic and a retained one,
 *   publishes one QoS 1 message to itself and leaves, by turns with DISCONNECT, by dropping the socket (v5,
 *   with a will), and as a v5 persistent session with a 2 s expiry that the broker must expire;
 * - idle: connections that only ping.
 * Every QoS 1 payload carries its stream and sequence number; a message acknowledged to its publisher and never
 * received by the stream's subscriber (or group) is lost.
 */
import { LiteClient } from './mqtt-lite.js';

/** Sizes and rates of the load. */
export interface SoakLoad {
  fanoutSubscribers: number;
  /** QoS 0 messages per second of the fan-out publisher. */
  fanoutRate: number;
  /** Persistent QoS 1 streams (a publisher and a persistent subscriber each). */
  streams: number;
  /** QoS 1 messages per second per stream. */
  streamRate: number;
  /** Shared-group publishers and members. */
  sharedPublishers: number;
  sharedMembers: number;
  /** QoS 1 messages per second per shared publisher. */
  sharedRate: number;
  /** Short-lived client cycles per second. */
  churnRate: number;
  idle: number;
  /** Seconds a persistent subscriber stays online (uniform between the two) and away. */
  online: [number, number];
  away: [number, number];
}

/** Running totals, as the 'stats' and 'stopped' answers carry them. */
export interface SoakTotals {
  q0Sent: number;
  q0Received: number;
  q1Sent: number;
  q1Acked: number;
  q1Refused: number;
  /** Distinct QoS 1 messages received (a redelivery counts once). */
  q1Received: number;
  q1Duplicates: number;
  /** QoS 1 publishes not sent because the publisher's window (100 in flight) was full. */
  q1Behind: number;
  churnCycles: number;
  churnFailures: number;
  persistentReconnects: number;
  /** A persistent subscriber came back and the broker had no session for it. */
  sessionsLost: number;
  unexpectedCloses: number;
  connected: number;
  errors: string[];
  /** This process's CPU seconds so far. */
  cpuSeconds: number;
}

const PAYLOAD_SIZE = 64;
const WINDOW = 100;
const rand = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${2 + i}`);

/** A growable bit set of sequence numbers. */
class Bits {
  private bits = new Uint8Array(1024);
  count = 0;

  /** Sets bit n; returns false if it was already set. */
  set(n: number): boolean {
    if (n >> 3 >= this.bits.length) {
      const next = new Uint8Array(Math.max(this.bits.length * 2, (n >> 3) + 1));
      next.set(this.bits);
      this.bits = next;
    }
    const mask = 1 << (n & 7);
    const byte = this.bits[n >> 3] ?? 0;
    if (byte & mask) return false;
    this.bits[n >> 3] = byte | mask;
    this.count++;
    return true;
  }

  has(n: number): boolean {
    return n >> 3 < this.bits.length && ((this.bits[n >> 3] ?? 0) & (1 << (n & 7))) !== 0;
  }
}

/** One numbered QoS 1 stream: what its publisher had acknowledged and what its reader(s) received. */
class Stream {
  readonly acked = new Bits();
  readonly received = new Bits();
  next = 0;
  duplicates = 0;

  /** Acknowledged and not (yet) received. */
  missing(): number[] {
    const out: number[] = [];
    for (let n = 0; n < this.next; n++) if (this.acked.has(n) && !this.received.has(n)) out.push(n);
    return out;
  }
}

function payload(stream: number, seq: number): Buffer {
  const b = Buffer.alloc(PAYLOAD_SIZE, 0x61);
  b.writeUInt32BE(stream, 0);
  b.writeUInt32BE(seq, 4);
  return b;
}

class Soak {
  private readonly port: number;
  private readonly load: SoakLoad;
  private readonly totals: SoakTotals = {
    q0Sent: 0, q0Received: 0, q1Sent: 0, q1Acked: 0, q1Refused: 0, q1Received: 0, q1Duplicates: 0, q1Behind: 0,
    churnCycles: 0, churnFailures: 0, persistentReconnects: 0, sessionsLost: 0, unexpectedCloses: 0, connected: 0,
    errors: [], cpuSeconds: 0,
  };
  private readonly streams: Stream[] = [];
  /** Every long-lived client (publishers, subscribers, idle). */
  private readonly longLived: LiteClient[] = [];
  private readonly persistent: LiteClient[] = [];
  private fanPub: LiteClient | null = null;
  private readonly q1Pubs: { client: LiteClient; stream: number; topic: string; rate: number; credit: number }[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private tick: NodeJS.Timeout | null = null;
  private pinger: NodeJS.Timeout | null = null;
  private running = false;
  private churnSerial = 0;
  private churnLive = 0;
  private churnCredit = 0;
  private fanCredit = 0;
  private fanSeq = 0;
  private lastTick = 0;
  private stopping = false;
  private readonly churnDone = new Set<Promise<void>>();
  /** Persistent subscribers in the middle of leaving or coming back. */
  private readonly busy = new Set<LiteClient>();

  constructor(port: number, load: SoakLoad) {
    this.port = port;
    this.load = load;
  }

  private error(msg: string): void {
    if (this.totals.errors.length < 20) this.totals.errors.push(msg);
  }

  private client(id: string, version: 4 | 5, clean: boolean, i: number): LiteClient {
    const c = new LiteClient({
      id, version, clean, keepalive: 60, localAddress: SOURCES[i % SOURCES.length],
      ...(clean || version === 4 ? {} : { sessionExpiry: 600 }),
    });
    c.onUnexpectedClose = (cl, why) => {
      this.totals.unexpectedCloses++;
      this.error(`${cl.options.id} closed by the broker: ${why}`);
    };
    return c;
  }

  private onQos1(topic: string, body: Buffer): void {
    if (body.length < 8) return this.error(`short QoS 1 payload on ${topic}`);
    const s = this.streams[body.readUInt32BE(0)];
    if (!s) return this.error(`unknown stream on ${topic}`);
    if (s.received.set(body.readUInt32BE(4))) this.totals.q1Received++;
    else {
      s.duplicates++;
      this.totals.q1Duplicates++;
    }
  }

  /** Connects in batches of `parallel`. */
  private async connectAll(clients: LiteClient[], after: (c: LiteClient) => Promise<void>, parallel = 20): Promise<void> {
    for (let i = 0; i < clients.length; i += parallel) {
      await Promise.all(clients.slice(i, i + parallel).map(async (c) => {
        await c.connect(this.port);
        await after(c);
      }));
    }
  }

  async start(): Promise<void> {
    const L = this.load;
    let n = 0;
    // Readers first, so that every message published from the start has somewhere to go.
    const fanSubs: LiteClient[] = [];
    for (let i = 0; i < L.fanoutSubscribers; i++) {
      const c = this.client(`soak-fan-${i}`, i % 2 ? 5 : 4, true, n++);
      c.onMessage = () => { this.totals.q0Received++; };
      fanSubs.push(c);
    }
    await this.connectAll(fanSubs, async (c) => { await c.subscribe([{ topic: 'soak/fan/+', qos: 0 }]); });
    this.longLived.push(...fanSubs);

    for (let i = 0; i < L.streams + L.sharedPublishers; i++) this.streams.push(new Stream());
    const streamSubs: LiteClient[] = [];
    for (let i = 0; i < L.streams; i++) {
      const c = this.client(`soak-ps-${i}`, i % 2 ? 5 : 4, false, n++);
      c.onMessage = (topic, body) => this.onQos1(topic, body);
      streamSubs.push(c);
    }
    await this.connectAll(streamSubs, async (c) => {
      const i = streamSubs.indexOf(c);
      await c.subscribe([{ topic: `soak/q1/${i}`, qos: 1 }]);
    });
    const members: LiteClient[] = [];
    for (let i = 0; i < L.sharedMembers; i++) {
      const c = this.client(`soak-sh-${i}`, i % 2 ? 5 : 4, false, n++);
      c.onMessage = (topic, body) => this.onQos1(topic, body);
      members.push(c);
    }
    await this.connectAll(members, async (c) => { await c.subscribe([{ topic: '$share/soak/soak/sh/+', qos: 1 }]); });
    this.persistent.push(...streamSubs, ...members);
    this.longLived.push(...members);

    this.fanPub = this.client('soak-fanpub', 4, true, n++);
    const pubs: LiteClient[] = [this.fanPub];
    for (let i = 0; i < L.streams; i++) {
      const c = this.client(`soak-q1pub-${i}`, i % 2 ? 4 : 5, true, n++);
      this.q1Pubs.push({ client: c, stream: i, topic: `soak/q1/${i}`, rate: L.streamRate, credit: 0 });
      pubs.push(c);
    }
    for (let i = 0; i < L.sharedPublishers; i++) {
      const c = this.client(`soak-shpub-${i}`, i % 2 ? 4 : 5, true, n++);
      this.q1Pubs.push({ client: c, stream: L.streams + i, topic: `soak/sh/${i}`, rate: L.sharedRate, credit: 0 });
      pubs.push(c);
    }
    await this.connectAll(pubs, async () => {});
    this.longLived.push(...pubs);

    const idle: LiteClient[] = [];
    for (let i = 0; i < L.idle; i++) idle.push(this.client(`soak-idle-${i}`, i % 2 ? 5 : 4, true, n++));
    await this.connectAll(idle, async () => {});
    this.longLived.push(...idle);

    this.running = true;
    this.lastTick = performance.now();
    this.tick = setInterval(() => this.onTick(), 20);
    this.pinger = setInterval(() => {
      const now = Date.now();
      for (const c of this.longLived) c.ping(now, 20000);
      for (const c of this.persistent) c.ping(now, 20000);
    }, 5000);
    // Staggered: each persistent stream subscriber goes away after its first online period.
    streamSubs.forEach((c) => this.later(() => void this.cycleAway(c), rand(...L.online) * 1000));
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** A persistent subscriber leaves (DISCONNECT or a dropped socket), stays away, and resumes its session. */
  private async cycleAway(c: LiteClient): Promise<void> {
    if (!this.running) return;
    this.busy.add(c);
    await c.close(Math.random() < 0.5);
    this.busy.delete(c);
    if (this.running) this.later(() => void this.resume(c), rand(...this.load.away) * 1000);
  }

  private async resume(c: LiteClient): Promise<void> {
    if (c.connected || this.busy.has(c) || !(this.running || this.stopping)) return;
    this.busy.add(c);
    try {
      const { sessionPresent } = await c.connect(this.port);
      this.totals.persistentReconnects++;
      if (!sessionPresent) {
        this.totals.sessionsLost++;
        this.error(`${c.options.id}: no session on reconnect`);
      }
    } catch (e) {
      this.error(`${c.options.id}: reconnect failed: ${(e as Error).message}`);
      if (this.running) this.later(() => void this.resume(c), 500);
      return;
    } finally {
      this.busy.delete(c);
    }
    if (this.running) this.later(() => void this.cycleAway(c), rand(...this.load.online) * 1000);
  }

  private onTick(): void {
    const now = performance.now();
    const dt = Math.min(0.2, (now - this.lastTick) / 1000);
    this.lastTick = now;
    const L = this.load;
    // Fan-out QoS 0, every 10th retained (on a fixed set of topics, so the retained store stays the same size).
    this.fanCredit += L.fanoutRate * dt;
    const fan = this.fanPub;
    while (this.fanCredit >= 1 && fan) {
      this.fanCredit--;
      const k = this.fanSeq++;
      if (fan.publish(`soak/fan/${k % 10}`, payload(0xffffffff, k), 0)) this.totals.q0Sent++;
      if (k % 10 === 0) fan.publish(`soak/ret/${(k / 10) % 50}`, payload(0xffffffff, k), 0, true);
    }
    for (const p of this.q1Pubs) {
      p.credit += p.rate * dt;
      while (p.credit >= 1) {
        p.credit--;
        if (p.client.inflight >= WINDOW) {
          this.totals.q1Behind++;
          continue;
        }
        const s = this.streams[p.stream]!;
        const seq = s.next++;
        const sent = p.client.publish(p.topic, payload(p.stream, seq), 1, false, (ok) => {
          if (ok) {
            s.acked.set(seq);
            this.totals.q1Acked++;
          } else if (p.client.connected) {
            this.totals.q1Refused++;
          }
        });
        if (sent) this.totals.q1Sent++;
      }
    }
    this.churnCredit += L.churnRate * dt;
    while (this.churnCredit >= 1) {
      this.churnCredit--;
      if (this.churnLive >= 50) continue;
      const p = this.churnOnce(this.churnSerial++);
      this.churnDone.add(p);
      void p.finally(() => this.churnDone.delete(p));
    }
  }

  /** One short-lived client: connect, subscribe, publish to itself, leave in one of three ways. */
  private async churnOnce(n: number): Promise<void> {
    this.churnLive++;
    const way = n % 3; // 0 DISCONNECT, 1 dropped socket with a will, 2 persistent session expiring after 2 s
    const version = way === 0 ? (n % 2 ? 5 : 4) : 5;
    const c = new LiteClient({
      id: `soak-churn-${n}`, version, clean: way !== 2, keepalive: 30, localAddress: SOURCES[n % SOURCES.length],
      ...(way === 2 ? { sessionExpiry: 2 } : {}),
      ...(way === 1 ? { will: { topic: `soak/will/${n % 10}`, payload: Buffer.from('gone'), qos: 1 as const } } : {}),
    });
    try {
      await c.connect(this.port);
      await c.subscribe([{ topic: `soak/churn/${n}/#`, qos: 1 }, { topic: `soak/ret/${n % 50}`, qos: 0 }]);
      await new Promise<void>((resolve, reject) => {
        if (!c.publish(`soak/churn/${n}/x`, Buffer.from('hello'), 1, false, (ok) => (ok ? resolve() : reject(new Error('publish not acknowledged'))))) {
          reject(new Error('not connected'));
        }
      });
      await c.close(way !== 1);
      this.totals.churnCycles++;
    } catch (e) {
      this.totals.churnFailures++;
      this.error(`churn ${n}: ${(e as Error).message}`);
      await c.close(false);
    } finally {
      this.churnLive--;
    }
  }

  stats(): SoakTotals {
    let connected = 0;
    for (const c of this.longLived) if (c.connected) connected++;
    for (const c of this.persistent) if (c.connected && !this.longLived.includes(c)) connected++;
    const cpu = process.cpuUsage();
    return { ...this.totals, errors: [...this.totals.errors], connected: connected + this.churnLive, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  }

  /**
   * Stops publishing and churn; waits for acknowledgements, brings every persistent subscriber back and waits
   * until every acknowledged message arrived (at most `drainMs`); then removes every session it made.
   */
  async stop(drainMs: number): Promise<SoakTotals & { lost: number; lostSample: string[]; drainSeconds: number }> {
    this.running = false;
    this.stopping = true;
    if (this.tick) clearInterval(this.tick);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const t0 = performance.now();
    await Promise.race([Promise.allSettled([...this.churnDone]), sleep(10000)]);
    for (let i = 0; i < 200 && this.q1Pubs.some((p) => p.client.inflight > 0); i++) await sleep(50);
    // Every persistent subscriber back online (one still leaving is brought back once it has left).
    const missing = (): number => this.streams.reduce((sum, s) => sum + s.missing().length, 0);
    do {
      await Promise.all(this.persistent.filter((c) => !c.connected).map((c) => this.resume(c)));
      await sleep(100);
    } while ((missing() > 0 || this.persistent.some((c) => !c.connected)) && performance.now() - t0 < drainMs);
    const drainSeconds = (performance.now() - t0) / 1000;
    const lostSample: string[] = [];
    let lost = 0;
    this.streams.forEach((s, i) => {
      const m = s.missing();
      lost += m.length;
      if (m.length && lostSample.length < 10) lostSample.push(`stream ${i}: ${m.length} missing, first ${m.slice(0, 5).join(',')}`);
    });
    const final = this.stats();
    if (this.pinger) clearInterval(this.pinger);
    this.stopping = false;
    // Remove every session: persistent clients come back once with a clean session and leave.
    const all = [...new Set([...this.longLived, ...this.persistent])];
    await Promise.all(all.map((c) => c.close(true)));
    const persistentIds = this.persistent.map((c) => c.options);
    for (let i = 0; i < persistentIds.length; i += 20) {
      await Promise.all(persistentIds.slice(i, i + 20).map(async (o) => {
        const c = new LiteClient({ id: o.id, version: o.version, clean: true, keepalive: 60 });
        await c.connect(this.port);
        await c.close(true);
      }));
    }
    return { ...final, lost, lostSample, drainSeconds };
  }
}

let soak: Soak | null = null;

process.on('message', (msg: { cmd: string; port?: number; load?: SoakLoad; drainMs?: number }) => {
  const answer = async (): Promise<Record<string, unknown>> => {
    switch (msg.cmd) {
      case 'start':
        soak = new Soak(msg.port!, msg.load!);
        await soak.start();
        return { type: 'started' };
      case 'stats':
        return { type: 'stats', ...soak!.stats() };
      case 'stop':
        return { type: 'stopped', ...(await soak!.stop(msg.drainMs ?? 30000)) };
      default:
        throw new Error(`unknown command ${msg.cmd}`);
    }
  };
  answer().then((reply) => process.send!(reply), (e: Error) => process.send!({ type: 'error', message: e.stack ?? String(e) }));
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready' });
