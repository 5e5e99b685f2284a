// One load-generator process (child_process.fork), publishers or subscribers, driven over IPC by
// bench/load/driver.mjs. Messages in, each answered with { type, seq, ... } (seq echoed):
//   { type: 'setup', role: 'pub'|'sub', host, port, qos, clients: [{ id, localAddress?, topic?, subscribe? }],
//     batch?, window?, rate?, timestamps?, ackLatency?, payloadSize?, concurrency? }  connect (and subscribe:
//                        every SUBACK); ackLatency: paced QoS 1/2 publishers record publish -> PUBACK/PUBCOMP
//                        in the histogram their report returns
//   { type: 'start' }    publishers start sending
//   { type: 'measure' }  start the window: counters, CPU use and the latency histogram start from here
//   { type: 'report' }   counts and CPU share over the window (and latency percentiles)
//   { type: 'burst', count }  every publisher sends `count` more messages flat out (QoS 1/2: within its window)
//                        and stops; answered once all went out (QoS 1/2: all acknowledged) with
//                        { startedAt, finishedAt } (process.hrtime.bigint() as decimal strings)
//   { type: 'stop', expect? }  publishers stop and wait for their in-flight messages; subscribers wait until
//                        `expect` messages arrived (or 2 s of silence), without `expect` until nothing came
//                        for 500 ms; at most 10 s either way; both answer with totals
//   { type: 'exit' }     close every connection and exit (not answered: the process ends)
// The measured path touches no MQTT library: publishers write pre-encoded batches, subscribers count with
// CountingParser and answer QoS 1/2 deliveries with one write of acks per read.
import net from 'node:net';
import {
  CONNACK, PUBACK, PUBCOMP, PUBREC, PUBREL, SUBACK,
  CountingParser, Handler, PUBLISH, ackBatch, connectPacket, publishRun, subscribePacket,
} from './codec.mjs';
import { Histogram } from './histogram.mjs';

const READ_BUFFER = Buffer.allocUnsafe(65536);
let cfg;
let clients = [];
let hist;
let windowStart;
let measuring = false;
const errors = [];

class Client extends Handler {
  constructor(spec) {
    super();
    this.spec = spec;
    this.parser = new CountingParser(this, { timestamps: Boolean(cfg.timestamps) && cfg.role === 'sub' });
    this.acks = [];
    this.ackCount = 0;
    this.ackType = 0;
    this.pending = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.spec.id}: no CONNACK/SUBACK in 30 s`)), 30000);
      this.pending = {
        resolve: () => { clearTimeout(timer); this.pending = null; resolve(); },
        reject: (e) => { clearTimeout(timer); this.pending = null; reject(e); },
      };
      // No Nagle on our side: batches are written whole anyway, and latency must not wait for ACKs.
      // onread: the socket reads straight into one buffer shared by every connection of this process and
      // calls us, skipping the stream machinery ('data' events, a new Buffer per read). Safe because each
      // read is handled before the next one and the parser copies what it keeps. Returning false pauses.
      const s = net.connect({
        host: cfg.host,
        port: cfg.port,
        localAddress: this.spec.localAddress,
        noDelay: true,
        onread: { buffer: READ_BUFFER, callback: (n, buf) => this.onData(buf, n) },
      });
      this.sock = s;
      s.on('error', (e) => {
        if (errors.length < 10) errors.push(`${this.spec.id}: ${e.message}`);
        this.pending?.reject(e);
      });
      s.on('close', () => { this.closed = true; this.pending?.reject(new Error(`${this.spec.id}: closed`)); });
      s.write(connectPacket(this.spec.id, { clean: this.spec.clean ?? true }));
    });
  }

  onControl(type, buf, off, len) {
    if (!this.pending) return;
    if (type === CONNACK) {
      if (buf[off + 1] !== 0) this.pending.reject(new Error(`${this.spec.id}: CONNACK return code ${buf[off + 1]}`));
      else if (this.spec.subscribe) this.sock.write(subscribePacket(1, this.spec.subscribe));
      else this.pending.resolve();
    } else if (type === SUBACK) {
      for (let i = off + 2; i < off + len; i++) {
        if (buf[i] === 0x80) return this.pending.reject(new Error(`${this.spec.id}: subscription refused`));
      }
      this.pending.resolve();
    }
  }

  /** Queues an ack of `type` for packet `id`; sent by flushAcks() after the whole chunk is parsed. */
  ack(type, id) {
    if (this.ackCount > 0 && type !== this.ackType) this.flushAcks();
    this.ackType = type;
    this.acks[this.ackCount++] = id;
  }

  flushAcks() {
    if (this.ackCount === 0) return;
    this.sock.write(ackBatch(this.ackType, this.acks, this.ackCount));
    this.ackCount = 0;
  }
}

// Read coalescing for QoS 0 throughput subscribers. On loopback a reader that takes every few bytes as they
// arrive ping-pongs with a broker that writes one packet per syscall (Mosquitto, Aedes): every write goes
// out as its own segment and wakes the reader, which reads ~1 packet and sends the ACK. That costs the
// broker CPU per message and the reader most of a core in the kernel (Mosquitto fan-in QoS 0: 210k msgs/s,
// subscriber at 0.8 of a core; with coalescing 310k, subscriber at 0.07; Mosquitto at a full core in both).
// So a socket whose read brought less than 16 KB rests until the next tick and the kernel gathers the next
// packets into one read: 1 ms; 25 ms when the process holds over 100 subscribers, each getting a trickle
// (fan-out to 1,000 on Mosquitto: 10 ms rests 165k deliveries/s with the reader at 0.83 of a core, 25 ms
// 230k at 0.42). A broker that batches its writes (smq) fills 16 KB reads and never rests. Not for QoS 1/2
// (acks would wait, and the broker's in-flight window would throttle it) nor for latency.
const SMALL_READ = 16384;
const resting = [];
let restTimer = null;
let restMs = 1;

function wakeResting() {
  restTimer = null;
  for (const c of resting) { c.resting = false; if (!c.closed) c.sock.resume(); }
  resting.length = 0;
}

class Subscriber extends Client {
  constructor(spec) {
    super(spec);
    this.coalesce = (cfg.qos ?? 0) === 0 && !cfg.timestamps && !process.env.BENCH_EAGER_READS;
    this.reads = 0;
    this.bytes = 0;
  }

  onData(buf, n) {
    if (this.parser.timestamps) this.now = process.hrtime.bigint();
    this.reads++;
    this.bytes += n;
    this.parser.push(buf, n);
    this.flushAcks();
    if (this.coalesce && n < SMALL_READ && !this.stopped) {
      this.resting = true;
      resting.push(this);
      restTimer ??= setTimeout(wakeResting, restMs);
      return false; // pauses the socket until wakeResting() resumes it
    }
    return true;
  }

  onPublish(qos, id, buf, payloadOff) {
    if (qos === 1) this.ack(PUBACK, id);
    else if (qos === 2) this.ack(PUBREC, id);
    if (this.parser.timestamps && measuring) {
      hist.record(Number(this.now - buf.readBigUInt64BE(payloadOff)) / 1000);
    }
  }

  onAck(type, id) {
    if (type === PUBREL) this.ack(PUBCOMP, id);
  }

  get received() { return this.parser.counts[PUBLISH]; }
}

class Publisher extends Client {
  constructor(spec) {
    super(spec);
    this.qos = cfg.qos ?? 0;
    this.batch = cfg.batch ?? 64;
    this.window = cfg.window ?? 100;
    // QoS 1/2: a ring of 1,024 packets with ids 1..1024, so no id is reused while it can be in flight.
    this.run = publishRun(spec.topic, this.qos, this.qos ? 1024 : this.batch, cfg.payloadSize ?? 64);
    this.pos = 0;
    this.inflight = 0;
    this.sent = 0;
    this.acked = 0;
    this.stopped = true;
    // Bursts ('burst'): stop sending once `sent` reaches `limit`; finishedAt is when the last message went
    // out (QoS 0) or was acknowledged (QoS 1/2).
    this.limit = Infinity;
    this.ackTarget = Infinity;
    this.finishedAt = null;
    // Paced QoS 1/2 with cfg.ackLatency: send time per ring slot, for the publish -> PUBACK latency.
    this.sendTimes = this.qos && cfg.ackLatency ? new Array(this.run.count) : null;
    this.waitingDrain = false;
    this.scheduled = false;
    this.pumpNow = () => { this.scheduled = false; this.pump(); };
    this.onDrain = () => { this.waitingDrain = false; this.pump(); };
  }

  onData(buf, n) {
    if (this.sendTimes) this.now = process.hrtime.bigint();
    this.parser.push(buf, n);
    this.flushAcks();
    if (this.qos && !this.stopped && !this.timer) this.pump();
  }

  onAck(type, id) {
    if (type === PUBREC) {
      this.ack(PUBREL, id);
    } else if ((type === PUBACK && this.qos === 1) || (type === PUBCOMP && this.qos === 2)) {
      this.inflight--;
      this.acked++;
      if (this.acked === this.ackTarget) this.finishedAt = process.hrtime.bigint();
      if (this.sendTimes && measuring) hist.record(Number(this.now - this.sendTimes[id - 1]) / 1000);
    }
  }

  /** Writes batches until the socket pushes back, the in-flight window is full, or 16 batches went out. */
  pump() {
    if (this.stopped || this.waitingDrain || this.closed) return;
    const { buf, size, count } = this.run;
    for (let round = 0; round < 16; round++) {
      let k = this.batch;
      if (this.qos) k = Math.min(k, this.window - this.inflight);
      if (k <= 0) return; // acks call pump() again
      if (this.sent + k >= this.limit) {
        k = this.limit - this.sent;
        if (k <= 0) return;
      }
      k = Math.min(k, count - this.pos);
      const ok = this.sock.write(buf.subarray(this.pos * size, (this.pos + k) * size));
      this.pos = (this.pos + k) % count;
      this.sent += k;
      if (this.qos) this.inflight += k;
      else if (this.sent === this.limit) this.finishedAt = process.hrtime.bigint();
      if (!ok) {
        this.waitingDrain = true;
        this.sock.once('drain', this.onDrain);
        return;
      }
    }
    // Give the other connections and IPC a turn before writing more.
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.pumpNow);
    }
  }

  /**
   * Latency mode: every 1 ms, send the messages the schedule says are due, each stamped with the time. QoS 0
   * sends the run's one packet again and again; QoS 1/2 walks the ring (a fresh packet id each) and, should
   * the whole ring be unacknowledged, holds back until acks free ids (the schedule catches up afterwards).
   */
  startPaced(rate) {
    const { buf, size, payloadOffset, count } = this.run;
    const start = process.hrtime.bigint();
    const perNs = BigInt(rate);
    this.timer = setInterval(() => {
      const now = process.hrtime.bigint();
      let due = Number(((now - start) * perNs) / 1_000_000_000n) - this.sent;
      if (this.qos) due = Math.min(due, count - 1 - this.inflight);
      if (due <= 0 || this.closed) return;
      const out = Buffer.allocUnsafe(due * size);
      for (let i = 0; i < due; i++) {
        const p = this.qos ? this.pos : 0;
        buf.copy(out, i * size, p * size, (p + 1) * size);
        out.writeBigUInt64BE(now, i * size + payloadOffset);
        if (this.qos) {
          if (this.sendTimes) this.sendTimes[p] = now;
          this.pos = (p + 1) % count;
        }
      }
      this.sock.write(out);
      this.sent += due;
      if (this.qos) this.inflight += due;
    }, 1);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Connects every client, at most `limit` handshakes at a time (a burst of thousands overflows the backlog). */
async function connectAll(limit) {
  let next = 0;
  const lane = async () => {
    while (next < clients.length) await clients[next++].connect();
  };
  await Promise.all(Array.from({ length: Math.min(limit, clients.length) }, lane));
}

function snapshot() {
  return clients.map((c) => (cfg.role === 'sub' ? c.received : c.sent));
}

const handlers = {
  async setup(msg) {
    cfg = msg;
    const Kind = cfg.role === 'pub' ? Publisher : Subscriber;
    restMs = cfg.clients.length > 100 ? 25 : 1;
    clients = cfg.clients.map((spec) => new Kind(spec));
    if (cfg.timestamps || cfg.ackLatency) hist = new Histogram();
    await connectAll(cfg.concurrency ?? 50);
    return { clients: clients.length };
  },

  async start() {
    for (const c of clients) {
      c.stopped = false;
      if (cfg.rate) c.startPaced(cfg.rate / clients.length);
      else c.pump();
    }
    return {};
  },

  async measure() {
    windowStart = {
      t: process.hrtime.bigint(),
      cpu: process.cpuUsage(),
      counts: snapshot(),
      acked: clients.map((c) => c.acked ?? 0),
      reads: clients.reduce((a, c) => a + (c.reads ?? 0), 0),
      bytes: clients.reduce((a, c) => a + (c.bytes ?? 0), 0),
    };
    hist?.reset();
    measuring = true;
    return {};
  },

  async report() {
    measuring = false;
    const elapsedUs = Number(process.hrtime.bigint() - windowStart.t) / 1000;
    const cpu = process.cpuUsage(windowStart.cpu);
    const now = snapshot();
    const perClient = now.map((n, i) => n - windowStart.counts[i]);
    const acked = clients.reduce((s, c, i) => s + (c.acked ?? 0) - windowStart.acked[i], 0);
    const reads = clients.reduce((a, c) => a + (c.reads ?? 0), 0) - windowStart.reads;
    const bytes = clients.reduce((a, c) => a + (c.bytes ?? 0), 0) - windowStart.bytes;
    return {
      elapsed: elapsedUs / 1e6,
      readsPerSec: Math.round(reads / (elapsedUs / 1e6)),
      bytesPerRead: reads ? Math.round(bytes / reads) : 0,
      cpu: (cpu.user + cpu.system) / elapsedUs,
      // Kernel time is most of a subscriber's cost on loopback (each read also sends the ACK, and the
      // sending side's TCP work is charged to whoever triggers it).
      cpuSystem: cpu.system / elapsedUs,
      count: perClient.reduce((a, b) => a + b, 0),
      acked,
      perClient: clients.length <= 100 ? perClient : undefined,
      perClientMin: Math.min(...perClient),
      perClientMax: Math.max(...perClient),
      latency: hist?.summary(),
      closed: clients.filter((c) => c.closed).length,
      errors,
    };
  },

  async burst(msg) {
    const startedAt = process.hrtime.bigint();
    for (const c of clients) {
      c.limit = c.sent + msg.count;
      c.ackTarget = c.qos ? c.acked + c.inflight + msg.count : Infinity;
      c.finishedAt = null;
      c.stopped = false;
      c.pump();
    }
    while (clients.some((c) => c.finishedAt === null && !c.closed)) await sleep(2);
    for (const c of clients) c.stopped = true;
    if (clients.some((c) => c.closed)) throw new Error('a publisher was disconnected during the burst');
    const finishedAt = clients.reduce((m, c) => (c.finishedAt > m ? c.finishedAt : m), 0n);
    return { startedAt: String(startedAt), finishedAt: String(finishedAt), sent: clients.reduce((s, c) => s + c.sent, 0) };
  },

  async stop(msg) {
    const deadline = Date.now() + 10000;
    if (cfg.role === 'pub') {
      for (const c of clients) { c.stopped = true; clearInterval(c.timer); }
      while (Date.now() < deadline && clients.some((c) => c.inflight > 0 && !c.closed)) await sleep(20);
    } else {
      for (const c of clients) c.stopped = true;
      let last = -1;
      let quietSince = Date.now();
      for (;;) {
        const total = snapshot().reduce((a, b) => a + b, 0);
        if (msg.expect !== undefined && total >= msg.expect) break;
        if (total !== last) { last = total; quietSince = Date.now(); }
        // Knowing what to expect, only a long silence ends the wait early (a broker may pause to retry).
        const quietEnough = msg.expect !== undefined ? 2000 : 500;
        if (Date.now() - quietSince >= quietEnough || Date.now() > deadline) break;
        await sleep(50);
      }
    }
    const totals = snapshot();
    return {
      total: totals.reduce((a, b) => a + b, 0),
      acked: clients.reduce((s, c) => s + (c.acked ?? 0), 0),
      inflight: clients.reduce((s, c) => s + (c.inflight ?? 0), 0),
      perClient: clients.length <= 100 ? totals : undefined,
    };
  },

};

process.on('message', async (msg) => {
  if (msg.type === 'exit') {
    // No answer: the driver waits for this process to end.
    for (const c of clients) c.sock?.destroy();
    process.exit(0);
  }
  try {
    const out = await handlers[msg.type](msg);
    process.send({ ...out, type: msg.type, seq: msg.seq });
  } catch (err) {
    process.send({ type: 'error', seq: msg.seq, message: err.message, errors });
  }
});
// The parent is gone (killed, crashed): nothing left to drive us.
process.on('disconnect', () => process.exit(0));
