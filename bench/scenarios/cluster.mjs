// Cross-node scenarios (smq only: Mosquitto and Aedes have no cluster of this kind, so they show n/a). Three smq
// nodes join a fresh etcd (Debian's etcd-server, one member, fsync on, on loopback); publishers connect to node
// 1 and subscribers to node 2, so every message crosses etcd. Compare with the single-node rows of the same
// shape (fan-in, latency). extra.etcdWritesPerMessage: etcd puts and transactions during the window (from
// etcd's own /metrics) per message delivered.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../lib/brokers.mjs';
import { freePort } from '../lib/ports.mjs';
import { measureLoad, sourceAddress } from '../load/driver.mjs';

const range = (n) => Array.from({ length: n }, (_, i) => i);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A throwaway etcd with its data in a temporary directory. */
async function startEtcd() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const proc = spawn('setpriv', ['--pdeathsig', 'KILL', 'etcd', '--name', 'bench', '--data-dir', join(dir, 'data'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `bench=http://127.0.0.1:${peer}`,
    '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '10000', '--log-level', 'error'], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    try {
      if ((await (await fetch(`${url}/health`)).json()).health === 'true') break;
    } catch { /* not up yet */ }
    if (i > 200) throw new Error('etcd did not start');
    await sleep(50);
  }
  return {
    endpoint: `127.0.0.1:${client}`,
    /** etcd's count of puts and transactions so far. */
    async writes() {
      const text = await (await fetch(`${url}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(/^etcd_mvcc_(put|txn)_total (\d+)/gm)) n += Number(m[2]);
      return n;
    },
    async stop() {
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** etcd and three nodes; `run` gets node 1 (publishers) and node 2 (subscribers). */
async function withCluster(ctx, run) {
  const etcd = await startEtcd();
  const nodes = [];
  try {
    const name = `bench${process.pid}${Date.now() % 100000}`;
    for (const node of ['n1', 'n2', 'n3']) nodes.push(await startBroker('smq', { cluster: { name, node, etcd: etcd.endpoint } }));
    return await run(nodes[0], nodes[1], etcd);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await etcd.stop();
  }
}

/** Subscribers on node 2, publishers on node 1; waits until node 1 routes to node 2 (warm-up covers it). */
function crossNode(qos) {
  return {
    id: `cluster-qos${qos}`,
    title: `cross-node QoS ${qos}: 10 publishers on node 1 -> 1 subscriber on node 2 (3 nodes, etcd)`,
    unit: 'msgs/s',
    better: 'higher',
    async run(broker, ctx) {
      if (broker.name !== 'smq') return { value: null, generatorCpu: [], extra: { note: 'no etcd cluster' } };
      return withCluster(ctx, async (n1, n2, etcd) => {
        const w0 = await etcd.writes();
        const r = await measureLoad(n1, ctx, {
          subs: [{ qos, host: n2.host, port: n2.port, clients: [{ id: 'bench-sub', localAddress: sourceAddress(0), subscribe: [{ topic: 'bench/in/+', qos }] }] }],
          pubs: [{ qos, window: 100, clients: range(10).map((i) => ({ id: `bench-pub-${i}`, localAddress: sourceAddress(i), topic: `bench/in/${i}` })) }],
          fanout: qos ? 1 : 0,
        });
        const writes = (await etcd.writes()) - w0;
        return {
          value: r.subRate,
          generatorCpu: r.generatorCpu,
          extra: { sent: r.sent, delivered: r.delivered, etcdWrites: writes, etcdWritesPerMessage: r.delivered ? writes / r.delivered : null },
        };
      });
    },
  };
}

function crossLatency(rate) {
  return {
    id: `cluster-latency-${rate / 1000}k`,
    title: `cross-node latency at ${rate.toLocaleString('en-US')} msgs/s QoS 0 (node 1 -> node 2 via etcd)`,
    unit: 'µs',
    better: 'lower',
    async run(broker, ctx) {
      if (broker.name !== 'smq') return { rows: [50, 99].map((p) => ({ id: `cluster-latency-${rate / 1000}k-p${p}`, title: `cross-node latency at ${rate} msgs/s, p${p}`, unit: 'µs', better: 'lower', value: null })), generatorCpu: [] };
      return withCluster(ctx, async (n1, n2) => {
        const r = await measureLoad(n1, ctx, {
          subs: [{ qos: 0, timestamps: true, host: n2.host, port: n2.port, clients: [{ id: 'bench-lat-sub', localAddress: sourceAddress(0), subscribe: [{ topic: 'bench/lat', qos: 0 }] }] }],
          pubs: [{ qos: 0, rate, clients: [{ id: 'bench-lat-pub', localAddress: sourceAddress(1), topic: 'bench/lat' }] }],
          fanout: 0,
        });
        const lat = r.subReports[0].latency;
        const title = `cross-node latency at ${rate.toLocaleString('en-US')} msgs/s QoS 0`;
        return {
          rows: [
            { id: `cluster-latency-${rate / 1000}k-p50`, title: `${title}, p50`, unit: 'µs', better: 'lower', value: lat?.p50 ?? null },
            { id: `cluster-latency-${rate / 1000}k-p99`, title: `${title}, p99`, unit: 'µs', better: 'lower', value: lat?.p99 ?? null },
          ],
          generatorCpu: r.generatorCpu,
          extra: { latency: lat, delivered: r.delivered },
        };
      });
    },
  };
}

export const scenarios = [crossNode(0), crossNode(1), crossLatency(1000)];

/**
 * How long 100,000 subscriptions (distinct filters, 100 clients x 1,000, SUBSCRIBE packets of 100 filters) made
 * on node 2 take to become routable from node 1: from the first SUBSCRIBE until a message published on node 1
 * to the last filter's topic arrives.
 */
const routable = {
  id: 'cluster-routes-100k',
  title: 'cross-node: 100,000 new subscriptions routable from another node',
  unit: 's',
  better: 'lower',
  async run(broker, ctx) {
    if (broker.name !== 'smq') return { value: null, generatorCpu: [], extra: { note: 'no etcd cluster' } };
    const { default: mqtt } = await import('mqtt-packet');
    const net = await import('node:net');
    const clientsN = ctx.quick ? 10 : 100;
    const perClient = 1000;
    const connect = (port, id) => new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('error', reject);
      s.write(mqtt.generate({ cmd: 'connect', clientId: id, protocolVersion: 4, keepalive: 0 }));
      s.once('data', () => resolve(s));
    });
    return withCluster(ctx, async (n1, n2) => {
      const last = `bench/routes/${clientsN - 1}/${perClient - 1}`;
      const pub = await connect(n1.port, 'bench-routes-pub');
      const subs = [];
      for (let c = 0; c < clientsN; c++) subs.push(await connect(n2.port, `bench-routes-${c}`));
      const lastSub = subs[clientsN - 1];
      const arrived = new Promise((resolve) => lastSub.on('data', (d) => { if (d.includes(Buffer.from(last))) resolve(); }));
      const t0 = performance.now();
      for (let c = 0; c < clientsN; c++) {
        for (let p = 0; p < perClient / 100; p++) {
          const subscriptions = Array.from({ length: 100 }, (_, k) => ({ topic: `bench/routes/${c}/${p * 100 + k}`, qos: 0 }));
          subs[c].write(mqtt.generate({ cmd: 'subscribe', messageId: p + 1, subscriptions }));
        }
      }
      const probe = mqtt.generate({ cmd: 'publish', topic: last, payload: 'x', qos: 0 });
      const timer = setInterval(() => pub.write(probe), 20);
      const limit = new Promise((_, reject) => setTimeout(() => reject(new Error('not routable within 120 s')), 120_000).unref());
      try {
        await Promise.race([arrived, limit]);
      } finally {
        clearInterval(timer);
        for (const s of [pub, ...subs]) s.destroy();
      }
      return { value: (performance.now() - t0) / 1000, generatorCpu: [], extra: { subscriptions: clientsN * perClient } };
    });
  },
};

scenarios.push(routable);
