// Backlog scenarios: a persistent session resuming 100,000 queued QoS 1 messages, and a `#` subscription over
// 100,000 retained messages. The clients live in this process: it is otherwise idle, and in the measured
// phase only one client (the receiver) runs. They frame bytes and count (bench/load/frames.mjs); each
// payload carries its message number so duplicates and gaps are seen without decoding anything else.
import mqtt from 'mqtt-packet';
import { connectTemplate, mqttClient, pubacks, PUBACK, PUBLISH, SUBACK } from '../load/frames.mjs';

const PAYLOAD_BYTES = 64;
const WINDOW = 100; // unacknowledged QoS 1 publishes per publisher
const DEADLINE_MS = 120000;

const now = () => Number(process.hrtime.bigint()) / 1e9;

// All `count` QoS 1 PUBLISH packets back to back in one buffer (topic(i) names each one's topic), so the
// publisher writes a slice per batch. Packet ids cycle through 1..65535; with at most WINDOW in flight none
// is reused while still unacknowledged.
function encodePublishes(count, topic, retain) {
  const parts = [];
  const offsets = new Uint32Array(count + 1);
  let size = 0;
  for (let i = 0; i < count; i++) {
    const payload = Buffer.alloc(PAYLOAD_BYTES);
    payload.writeUInt32BE(i, 0);
    const p = mqtt.generate({ cmd: 'publish', topic: topic(i), payload, qos: 1, retain, dup: false, messageId: (i % 65535) + 1 });
    parts.push(p);
    size += p.length;
    offsets[i + 1] = size;
  }
  return { bytes: Buffer.concat(parts, size), offsets };
}

// Publishes every packet with at most WINDOW unacknowledged; resolves when all are PUBACKed.
async function publishAll(broker, clientId, { bytes, offsets }) {
  const count = offsets.length - 1;
  let sent = 0;
  let acked = 0;
  let finished;
  const allAcked = new Promise((resolve) => { finished = resolve; });
  const sendUpTo = (socket, n) => {
    const upTo = Math.min(count, n);
    if (upTo > sent) socket.write(bytes.subarray(offsets[sent], offsets[upTo]));
    sent = Math.max(sent, upTo);
  };
  const client = await mqttClient({
    host: broker.host,
    port: broker.port,
    connect: connectTemplate(clientId, 0).packet,
    onPacket: (type) => { if (type === PUBACK) acked++; },
    afterRead: (socket) => {
      sendUpTo(socket, acked + WINDOW);
      if (acked >= count) finished();
    },
  });
  const timer = setTimeout(() => finished(), DEADLINE_MS);
  try {
    sendUpTo(client.socket, WINDOW);
    await allAcked;
    if (acked < count) throw new Error(`${broker.name}: only ${acked} of ${count} publishes acknowledged in ${DEADLINE_MS / 1000} s`);
  } finally {
    clearTimeout(timer);
    await client.close();
  }
}

// A receiver that acknowledges every QoS 1 PUBLISH (once per read) and counts distinct message numbers.
// done() resolves when `expected` distinct messages have arrived (or the deadline passed).
function receiver(expected) {
  const seen = new Uint8Array(expected);
  const ids = new Uint16Array(65536);
  const r = { unique: 0, duplicates: 0, dupFlag: 0, retainFlag: 0, other: 0, suback: null, lastAt: 0 };
  let pendingAcks = 0;
  let finished;
  r.done = new Promise((resolve) => { finished = resolve; });
  r.onPacket = (type, flags, buf, start, end) => {
    if (type === SUBACK) { r.suback = buf[end - 1]; return; }
    if (type !== PUBLISH) return;
    const qos = (flags >> 1) & 3;
    let p = start + 2 + buf.readUInt16BE(start);
    if (qos > 0) {
      ids[pendingAcks++] = buf.readUInt16BE(p);
      p += 2;
    }
    if (flags & 8) r.dupFlag++;
    if (flags & 1) r.retainFlag++;
    const n = end - p === PAYLOAD_BYTES ? buf.readUInt32BE(p) : expected;
    if (n >= expected) { r.other++; return; }
    if (seen[n]) { r.duplicates++; return; }
    seen[n] = 1;
    r.unique++;
    if (r.unique === expected) {
      r.lastAt = now();
      finished();
    }
  };
  r.afterRead = (socket) => {
    if (pendingAcks === 0) return;
    // QoS 2 is never used here, so every id collected is a PUBACK to send.
    socket.write(pubacks(ids, pendingAcks));
    pendingAcks = 0;
  };
  return r;
}

// Waits for the receiver to finish or the deadline; a short linger afterwards catches late duplicates.
async function awaitAll(r, expected, what) {
  let timer;
  const deadline = new Promise((resolve) => { timer = setTimeout(resolve, DEADLINE_MS); });
  await Promise.race([r.done, deadline]);
  clearTimeout(timer);
  if (r.unique < expected) {
    throw new Error(`${what}: only ${r.unique} of ${expected} messages arrived within ${DEADLINE_MS / 1000} s ` +
      `(duplicates ${r.duplicates}, other ${r.other})`);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
}

const subscribePacket = (topic) => mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });

async function subscribeAndWait(client, topic, r) {
  const deadline = Date.now() + 10000;
  const granted = new Promise((resolve, reject) => {
    const check = setInterval(() => {
      if (r.suback === null && Date.now() < deadline) return;
      clearInterval(check);
      if (r.suback === null) reject(new Error(`no SUBACK for ${topic} within 10 s`));
      else resolve(r.suback);
    }, 5);
  });
  client.send(subscribePacket(topic));
  const code = await granted;
  if (code !== 1) throw new Error(`SUBACK granted ${code} for ${topic}, wanted QoS 1`);
}

const resume = {
  id: 'resume-100k',
  title: 'persistent session resuming 100k queued QoS 1',
  unit: 'msg/s',
  better: 'higher',
  async run(broker, ctx) {
    const count = ctx.quick ? 10000 : 100000;
    const connect = connectTemplate('bench-resume', 0, { clean: false }).packet;
    const packets = encodePublishes(count, () => 'bench/resume/1', false);
    // 1. The session and its subscription, then a clean DISCONNECT so the broker keeps queueing for it.
    const first = receiver(count);
    const sub = await mqttClient({ host: broker.host, port: broker.port, connect, onPacket: first.onPacket, afterRead: first.afterRead });
    try {
      await subscribeAndWait(sub, 'bench/resume/#', first);
    } finally {
      await sub.close();
    }
    // 2. The backlog, every message acknowledged by the broker.
    const t0fill = now();
    await publishAll(broker, 'bench-resume-pub', packets);
    const fillSeconds = now() - t0fill;
    ctx.log(`${broker.name}: ${count} messages queued in ${fillSeconds.toFixed(1)} s`);
    // 3. Measured: from the reconnecting CONNECT to the last queued message.
    const r = receiver(count);
    const cpu0 = process.cpuUsage();
    const t0 = now();
    const back = await mqttClient({ host: broker.host, port: broker.port, connect, onPacket: r.onPacket, afterRead: r.afterRead });
    try {
      await awaitAll(r, count, `${broker.name} resume`);
      const seconds = r.lastAt - t0;
      const cpu = process.cpuUsage(cpu0);
      return {
        value: count / seconds,
        generatorCpu: [(cpu.user + cpu.system) / 1e6 / seconds],
        extra: {
          messages: count, received: r.unique, seconds, duplicates: r.duplicates, dupFlag: r.dupFlag,
          sessionPresent: back.sessionPresent, fillSeconds,
        },
      };
    } finally {
      await back.close();
    }
  },
};

const retained = {
  id: 'retained-100k',
  title: 'subscribe # over 100k retained messages',
  unit: 'msg/s',
  better: 'higher',
  async run(broker, ctx) {
    const count = ctx.quick ? 10000 : 100000;
    const t0fill = now();
    await publishAll(broker, 'bench-ret-pub', encodePublishes(count, (i) => `bench/ret/${i}`, true));
    const fillSeconds = now() - t0fill;
    ctx.log(`${broker.name}: ${count} retained messages stored in ${fillSeconds.toFixed(1)} s`);
    // Measured: from SUBSCRIBE to the last retained message. QoS 1, so a broker paces delivery by its
    // in-flight window and queue instead of being allowed to drop what a slow reader cannot take.
    const r = receiver(count);
    const sub = await mqttClient({
      host: broker.host, port: broker.port, connect: connectTemplate('bench-ret-sub', 0).packet,
      onPacket: r.onPacket, afterRead: r.afterRead,
    });
    try {
      const cpu0 = process.cpuUsage();
      const t0 = now();
      sub.send(subscribePacket('#'));
      await awaitAll(r, count, `${broker.name} retained`);
      const seconds = r.lastAt - t0;
      const cpu = process.cpuUsage(cpu0);
      if (r.suback !== 1) throw new Error(`SUBACK granted ${r.suback} for #, wanted QoS 1`);
      return {
        value: count / seconds,
        generatorCpu: [(cpu.user + cpu.system) / 1e6 / seconds],
        extra: {
          messages: count, received: r.unique, seconds, duplicates: r.duplicates, retainFlag: r.retainFlag,
          fillSeconds,
        },
      };
    } finally {
      await sub.close();
    }
  },
};

export const scenarios = [resume, retained];
