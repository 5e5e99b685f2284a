/**
 * 99 connections: as many concurrent MQTT connections on one broker as its file-descriptor limit allows
 * (about 19,000 under this machine's 20,000), opened from two forked client processes (each under its own
 * limit) that send a pre-encoded CONNECT, and in the second round a SUBSCRIBE, per socket and read only the
 * acknowledgements (test/load/connector.ts). For each round, on a fresh broker: all connected (the broker's
 * `smq_connections`), memory per connection (RSS and live heap at N minus idle, over N), a normal client still
 * served (subscribe, QoS 1 publish, delivery) at that load, and after they all close, connections and file
 * descriptors back to the idle baseline. Prints one `RELIABILITY | connections | ...` line per round.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { IPublishPacket, ISubackPacket } from 'mqtt-packet';
import { ROOT, freePort, httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';
import { forkLoad, type LoadChild } from './load/child.js';
import { Inspector } from './load/inspector.js';
import { memory, metric, openFds, scrape, sleep } from './load/proc.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';
const MB = 1024 * 1024;
/** Client processes; each holds half the connections, well under its own descriptor limit. */
const PROCESSES = 2;
/** Connections awaiting their acknowledgement at once, per process. */
const CONCURRENCY = 100;
/** Descriptors the broker keeps for itself at N: listeners, the scrape, the probe client, slack. */
const RESERVE = 300;

/** The soft `Max open files` limit of a process. */
function fdLimit(pid: number): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m ? Number(m[1]) : 1024;
}

/** Resident memory once it stops growing: samples 500 ms apart until it grows by less than 64 KB (at most 5 s). */
async function settledRss(pid: number): Promise<number> {
  let rss = memory(pid).rss;
  for (let i = 0; i < 10; i++) {
    await sleep(500);
    const next = memory(pid).rss;
    const grew = next - rss;
    rss = next;
    if (grew < 65536) break;
  }
  return rss;
}

/** Polls `/metrics` until `check` holds (at most `ms`); returns the last scrape. */
async function until(base: string, check: (m: Map<string, number>) => boolean, ms: number): Promise<Map<string, number>> {
  const t0 = Date.now();
  let m = await scrape(base);
  while (!check(m) && Date.now() - t0 < ms) {
    await sleep(200);
    m = await scrape(base);
  }
  return m;
}

/** A plain client subscribes, publishes QoS 1 to itself and gets both the PUBACK and the message; returns ms. */
async function roundTrip(port: number): Promise<number> {
  const t0 = performance.now();
  const { client, connack } = await RawClient.connected(port, 4, { clientId: `probe-${Date.now()}` });
  try {
    assert.equal(connack.returnCode, 0);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'probe/rt', qos: 1 }] });
    const suback = (await client.next('suback', 10000)) as ISubackPacket;
    assert.deepEqual(suback.granted, [1]);
    client.send({ cmd: 'publish', topic: 'probe/rt', payload: Buffer.from('ping'), qos: 1, messageId: 2, retain: false, dup: false });
    const got = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const p = await client.next(undefined, 10000);
      if (p.cmd === 'publish') {
        assert.equal((p as IPublishPacket).payload.toString(), 'ping');
        client.send({ cmd: 'puback', messageId: (p as IPublishPacket).messageId! });
      }
      got.add(p.cmd);
    }
    assert.deepEqual([...got].sort(), ['puback', 'publish']);
    return performance.now() - t0;
  } finally {
    client.send({ cmd: 'disconnect' });
    client.destroy();
  }
}

for (const subscribe of [false, true]) {
  const what = subscribe ? 'subscribed' : 'idle';
  test(`connections: as many ${what} connections as the broker's descriptor limit allows`, {
    skip: AGAINST_MOSQUITTO && 'measures smq itself',
    timeout: 120000,
  }, async () => {
    let broker: RunningBroker | null = null;
    let inspector: Inspector | null = null;
    const connectors: LoadChild[] = [];
    try {
      const inspectPort = await freePort();
      broker = await startBroker({
        env: { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --inspect=127.0.0.1:${inspectPort}` },
        config: {
          ws: { enable: false },
          http: { enable: true, port: 0 },
          // ~19,000 connections from 64 loopback addresses as fast as the broker takes them: no total cap, no
          // per-address cap or connection rate. Those two are off by default; stated so that a change of
          // defaults cannot turn this into a test of the limits. max_connections (default 100,000) is lifted too.
          limits: { max_connections: 0, max_connections_per_address: 0, connection_rate: 0 },
        },
        timeoutMs: 20000,
      });
      const pid = broker.proc.pid!;
      const base = await httpBase(broker);
      inspector = await Inspector.connect(inspectPort);
      const limit = fdLimit(pid);
      // One round trip first, so that what a first client builds once (codec caches, compiled code) is in the
      // baseline; then the idle broker: RSS as a user sees it, then the live heap (a forced full collection).
      const rttIdle = await roundTrip(broker.port);
      await sleep(1000);
      const fds0 = openFds(pid);
      const rss0 = await settledRss(pid);
      const live0 = await inspector.liveHeap();
      const n = Math.floor(Math.min(19000, limit - fds0 - RESERVE) / PROCESSES) * PROCESSES;
      assert.ok(n >= 1000, `the broker's descriptor limit (${limit}) leaves room for only ${n} connections`);

      for (let p = 0; p < PROCESSES; p++) connectors.push(await forkLoad(join(ROOT, 'dist/test/load/connector.js')));
      const replies = await Promise.all(connectors.map((c, p) => c.request<{
        ok: number; failed: number; errors: Record<string, number>; startedAt: number; lastAt: number; cpu: number;
      }>({ cmd: 'open', port: broker!.port, count: n / PROCESSES, concurrency: CONCURRENCY, prefix: `c${p}-`, subscribe }, 90000)));
      const ok = replies.reduce((s, r) => s + r.ok, 0);
      const failed = replies.reduce((s, r) => s + r.failed, 0);
      const seconds = (Math.max(...replies.map((r) => r.lastAt)) - Math.min(...replies.map((r) => r.startedAt))) / 1000;
      const clientCpu = replies.map((r) => r.cpu.toFixed(1)).join(' + ');
      assert.equal(failed, 0, `connections failed: ${JSON.stringify(replies.map((r) => r.errors))}`);
      assert.equal(ok, n);

      const loaded = await until(base, (m) => metric(m, 'smq_connections') === n, 10000);
      assert.equal(metric(loaded, 'smq_connections'), n, 'the broker counts every connection');
      if (subscribe) assert.equal(metric(loaded, 'smq_subscriptions'), n, 'the broker holds every subscription');
      const fdsN = openFds(pid);
      const rssN = await settledRss(pid);
      const liveN = await inspector.liveHeap();
      const rssGc = memory(pid).rss;
      const rttLoaded = await roundTrip(broker.port);

      const t1 = Date.now();
      const closed = await Promise.all(connectors.map((c) => c.request<{ seconds: number; dropped: number }>({ cmd: 'close' }, 60000)));
      const dropped = closed.reduce((s, r) => s + r.dropped, 0);
      const after = await until(base, (m) => metric(m, 'smq_connections') === 0 && metric(m, 'smq_sessions') === 0, 30000);
      let fdsAfter = openFds(pid);
      for (let i = 0; i < 50 && fdsAfter > fds0; i++) {
        await sleep(200);
        fdsAfter = openFds(pid);
      }
      const closeSeconds = (Date.now() - t1) / 1000;
      // A connection the broker closed stays reachable for up to 2 s (Connection.close's destroy timer for a
      // peer that never reads), so the heap is read after that.
      await sleep(2500);
      const liveAfter = await inspector.liveHeap();
      const rssAfter = memory(pid).rss;
      const rttAfter = await roundTrip(broker.port);

      const kb = (bytes: number): string => (bytes / n / 1024).toFixed(2);
      console.log(`${what}: ${n} connections (broker fd limit ${limit}, ${fds0} fds idle, ${fdsN} at N) in ${seconds.toFixed(1)} s ` +
        `(${(n / seconds).toFixed(0)}/s; client CPU ${clientCpu} s over ${PROCESSES} processes)`);
      console.log(`${what}: RSS ${(rss0 / MB).toFixed(1)} -> ${(rssN / MB).toFixed(1)} MB (${kb(rssN - rss0)} KB/conn; ` +
        `${(rssGc / MB).toFixed(1)} MB after a full collection), live heap ${(live0 / MB).toFixed(1)} -> ${(liveN / MB).toFixed(1)} MB ` +
        `(${kb(liveN - live0)} KB/conn)`);
      console.log(`${what}: round trip ${rttIdle.toFixed(1)} ms idle, ${rttLoaded.toFixed(1)} ms at N, ${rttAfter.toFixed(1)} ms after; ` +
        `closed in ${closeSeconds.toFixed(1)} s (${dropped} dropped early by the broker); after: connections ` +
        `${metric(after, 'smq_connections')}, sessions ${metric(after, 'smq_sessions')}, fds ${fdsAfter}, ` +
        `RSS ${(rssAfter / MB).toFixed(1)} MB, live heap ${(liveAfter / MB).toFixed(1)} MB`);
      console.log(`RELIABILITY | connections | ${what}${subscribe ? ' (one QoS 1 subscription each)' : ''}: ${n} concurrent on one node ` +
        `(fd limit ${limit}) | connect: ${seconds.toFixed(1)} s (${(n / seconds).toFixed(0)}/s) | ` +
        `rss: ${(rss0 / MB).toFixed(1)}→${(rssN / MB).toFixed(1)} MB, ${kb(rssN - rss0)} KB/conn | ` +
        `heap: ${(live0 / MB).toFixed(1)}→${(liveN / MB).toFixed(1)} MB live, ${kb(liveN - live0)} KB/conn | ` +
        `round trip at N: ${rttLoaded.toFixed(1)} ms | after close: ${metric(after, 'smq_connections')} connections, fds ${fds0}→${fdsAfter}`);

      assert.equal(dropped, 0, 'the broker closed connections that were idle within their keep-alive');
      assert.equal(metric(after, 'smq_connections'), 0, 'connections left after closing');
      assert.equal(metric(after, 'smq_sessions'), 0, 'sessions left after closing');
      assert.equal(metric(after, 'smq_subscriptions'), 0, 'subscriptions left after closing');
      assert.ok(fdsAfter <= fds0, `${fdsAfter} descriptors after closing, ${fds0} before`);
      // What the connections held is released: 1-1.5 MB more than before stays (compiled code, pools); 200 bytes
      // kept per closed connection would be 3.8 MB more.
      assert.ok(liveAfter - live0 <= 3.5 * MB,
        `live heap ${(liveAfter / MB).toFixed(1)} MB after closing, ${(live0 / MB).toFixed(1)} MB before`);
    } finally {
      inspector?.close();
      await Promise.all(connectors.map((c) => c.kill()));
      await broker?.stop();
    }
  });
}
