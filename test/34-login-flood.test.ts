/**
 * 34 login flood: one address whose logins are already slowed down by the failed-login throttle floods the broker
 * with bad CONNECTs, each connection closed at once. Before the fix, each throttled wait held a slot of the
 * shared authentication worker pool for its whole delay, and kept it after the client hung up: 4,000 such
 * connections and a correct login from another address got no CONNACK for minutes. Now a throttled wait is a
 * timer only, it ends with its connection, and at most auth.max_pending logins of a slowed-down address are
 * pending at once. Measured here: the CONNACK latency of good logins from another address during the flood.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect as netConnect, type NetConnectOpts, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { strictChecker, tapStream } from './helpers/strict/tap.js';

const ATTACKER = '127.0.0.2';
const DEVICE = '127.0.0.3';
const FLOOD = 5000;
/** Flood connections open at once (each is closed right after its CONNECT). */
const FLOOD_CONCURRENCY = 64;
const MAX_PENDING = 8;

function connectBytes(password: string, clientId: string): Buffer {
  return mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId,
    username: 'alice', password: Buffer.from(password),
  });
}

/** A socket to the broker whose traffic the strict checker sees (the CONNECTs here are 3.1.1). */
function checkedSocket(options: NetConnectOpts, onConnect?: () => void): Socket {
  const socket = netConnect(options, onConnect);
  tapStream(socket, strictChecker(4));
  return socket;
}

/** A CONNECT from `localAddress`; resolves with the CONNACK return code and its latency in ms. */
function login(port: number, localAddress: string, password: string): Promise<{ rc: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const socket = checkedSocket({ port, host: '127.0.0.1', localAddress });
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let start = 0;
    socket.once('connect', () => {
      start = performance.now();
      socket.write(connectBytes(password, `dev-${Math.random().toString(36).slice(2)}`));
    });
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd !== 'connack') return;
      socket.destroy();
      resolve({ rc: p.returnCode ?? -1, ms: performance.now() - start });
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed without CONNACK after ${(performance.now() - start).toFixed(0)} ms`)));
  });
}

/** One flood connection: a bad CONNECT, then the socket is closed at once. Resolves when it is gone. */
function abandonedLogin(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = checkedSocket({ port, host: '127.0.0.1', localAddress: ATTACKER }, () => {
      socket.end(connectBytes('wrong', `flood-${Math.random().toString(36).slice(2)}`));
    });
    socket.on('data', () => undefined);
    socket.once('error', () => undefined);
    socket.once('close', () => resolve());
  });
}

/** A bad CONNECT from the attacker's address left open (it waits out the throttle's delay); resolves once written. */
function pendingLogin(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = checkedSocket({ port, host: '127.0.0.1', localAddress: ATTACKER }, () => {
      socket.write(connectBytes('wrong', `wait-${Math.random().toString(36).slice(2)}`), () => resolve(socket));
    });
    socket.on('data', () => reject(new Error('a slowed-down login was answered before its delay')));
    socket.once('error', () => undefined);
  });
}

/** Runs `n` abandoned logins with at most `concurrency` open at once. */
async function flood(port: number, n: number, concurrency: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      next++;
      await abandonedLogin(port);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

describe('34 login flood', () => {
  let broker: RunningBroker;
  let base: string;

  before(async () => {
    // mosquitto_passwd's PBKDF2 hashes are cheap to check, so the figures measure the throttle, not scrypt.
    const file = join(mkdtempSync(join(tmpdir(), 'smq-34-')), 'passwd');
    const made = spawnSync('mosquitto_passwd', ['-c', '-b', file, 'alice', 'right'], { encoding: 'utf8' });
    assert.equal(made.status, 0, `mosquitto_passwd: ${made.stderr}`);
    broker = await startBroker({
      config: {
        // The longest delay at once: each abandoned login used to hold its worker slot for 30 s.
        auth: { enable: true, password_file: file, max_failures: 5, failure_window: 60, failure_delay: 30000, max_pending: MAX_PENDING },
        http: { enable: true, host: '127.0.0.1', port: 0, tokens: ['t'] },
      },
    });
    base = await httpBase(broker);
  });

  /** A gauge of the broker's own metrics. */
  async function metric(name: string): Promise<number> {
    const text = await (await fetch(`${base}/metrics`)).text();
    const n = Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
    assert.ok(Number.isFinite(n), `${name} is exported`);
    return n;
  }

  /** Waits (polling /metrics, at most 5 s) until a gauge satisfies `ok`. */
  async function untilMetric(name: string, ok: (n: number) => boolean): Promise<void> {
    for (let i = 0; ; i++) {
      const n = await metric(name);
      if (ok(n)) return;
      assert.ok(i < 200, `${name} is still ${n}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  after(async () => { await broker?.stop(); });

  it(`while one slowed-down address floods ${FLOOD} abandoned bad logins, good logins from another address are answered at once`, { timeout: 120000 }, async () => {
    // The attacker's address is slowed down first: max_failures refusals, each answered.
    for (let i = 0; i < 5; i++) assert.equal((await login(broker.port, ATTACKER, 'wrong')).rc, 4);
    await broker.waitForLog((r) => r['msg'] === 'login attempts from this address are slowed down' && r['remote'] === ATTACKER);

    const baselineFds = await metric('smq_process_open_fds');
    let flooding = true;
    const flooded = flood(broker.port, FLOOD, FLOOD_CONCURRENCY).finally(() => { flooding = false; });
    const latencies: number[] = [];
    // Good logins one after another for as long as the flood lasts (and at least ten).
    while (flooding || latencies.length < 10) {
      const r = await login(broker.port, DEVICE, 'right');
      assert.equal(r.rc, 0, 'the device from another address is let in');
      latencies.push(r.ms);
    }
    await flooded;

    latencies.sort((a, b) => a - b);
    const [p50, p99, max] = [percentile(latencies, 0.5), percentile(latencies, 0.99), latencies[latencies.length - 1] ?? NaN];
    console.log(`SECURITY | 34 login flood | ${FLOOD} abandoned bad logins from one slowed-down address | good logins from another address: ${latencies.length}, CONNACK p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
    // The target is 100 ms; the bound here is wider because the test shares two cores with the rest of the suite.
    // Before the fix these logins got no CONNACK at all (closed at the connect timeout).
    assert.ok(p50 < 100, `median CONNACK latency ${p50.toFixed(1)} ms`);
    assert.ok(max < 2000, `slowest CONNACK ${max.toFixed(1)} ms`);

    // Everything the flood held is gone: its sockets are closed, nothing waits, and the attacker's logins were
    // capped, not queued for a worker.
    await untilMetric('smq_process_open_fds', (n) => n <= baselineFds + 2);
    await untilMetric('smq_auth_logins_slowed', (n) => n === 0);
    await untilMetric('smq_auth_logins_queued', (n) => n === 0);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const capped = Number(/^smq_limit_hits_total\{limit="login_pending"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    assert.ok(capped > 0, 'some flood logins were refused at once by auth.max_pending');

    // The attacker is still slowed down and capped: MAX_PENDING logins wait, the next one is refused at once
    // (v3.1.1 CONNACK 3, server unavailable; v5 would say 0x9F), and all of them go when their clients do.
    const waiting = await Promise.all(Array.from({ length: MAX_PENDING }, () => pendingLogin(broker.port)));
    await untilMetric('smq_auth_logins_slowed', (n) => n === MAX_PENDING);
    const refused = await login(broker.port, ATTACKER, 'wrong');
    assert.equal(refused.rc, 3);
    for (const socket of waiting) socket.destroy();
    await untilMetric('smq_auth_logins_slowed', (n) => n === 0);
  });
});
