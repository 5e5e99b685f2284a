/**
 * Fault injection (issue 10): the disk holding `store.dir` fills up. The store is on a small tmpfs the test
 * mounts (it runs as root; without the right to mount, the test is skipped and says so), and a file fills it
 * while a persistent QoS 1 publisher streams into an offline persistent session. What a user checks:
 * - the broker does not crash (before the fix in broker/src/store/lmdb.ts it exited on an unhandled rejection
 *   from lmdb-js at the first failed commit);
 * - it acknowledges nothing it could not make durable: the publisher's connection is closed unacknowledged
 *   (Connection.heldFailed) and the client sends again after reconnecting;
 * - QoS 0 and clean-session QoS 1 traffic, which the store does not hold, are served meanwhile;
 * - once space is freed the same broker process acknowledges again, without a restart;
 * - everything acknowledged, before, during and after, is in the store: after a SIGKILL and a restart the
 *   persistent subscriber receives all of it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { reusablePort, startBroker, type RunningBroker } from './helpers/broker.js';
import { Ledger, since, Stream, waitFor, within } from './helpers/faults.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const MOUNT_SIZE = '16m';
const mnt = mkdtempSync(join(tmpdir(), 'smq-diskfull-'));
let mounted = false;
let mountError = '';
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${MOUNT_SIZE},mode=0700`, 'tmpfs', mnt], { stdio: 'pipe' });
  mounted = true;
} catch (e) {
  mountError = (e as { stderr?: Buffer }).stderr?.toString().trim() || String(e);
}
const store = join(mnt, 'store');
const filler = join(mnt, 'filler');
let port: number;
let broker: RunningBroker | undefined;
const brokers: RunningBroker[] = [];
const clients: MqttClient[] = [];

function start(): Promise<RunningBroker> {
  return startBroker({ config: { port, store: { dir: store }, ws: { enable: false }, mqtt: { max_queued: 100_000 } } }).then((b) => {
    brokers.push(b);
    broker = b;
    return b;
  });
}

before(async () => {
  if (!mounted) return;
  port = await reusablePort();
  await start();
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all(brokers.map((b) => b.stop('SIGKILL')));
  // A broker still holding the mount (it did not exit) would make a plain umount fail: detach it lazily then.
  if (mounted) {
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mnt]);
    }
  }
  rmSync(mnt, { recursive: true, force: true });
});

function freeBytes(): number {
  const s = statfsSync(mnt);
  return s.bavail * s.bsize;
}

/** Writes zeros to `filler` until the file system refuses more (ENOSPC): nothing is left for the store. */
function fill(): void {
  const fd = openSync(filler, 'a');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (let i = 0; i < 100_000; i++) {
      const n = freeBytes();
      if (n === 0) break;
      writeSync(fd, chunk, 0, Math.min(chunk.length, n));
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

async function client(clientId: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = strictConnect({ host: '127.0.0.1', port, clientId, reconnectPeriod: 100, ...options });
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

test('store.dir on a full disk: QoS 1 into a persistent session is not acknowledged, other traffic flows, the broker survives and recovers, and everything acknowledged survives a restart', {
  timeout: 60_000, skip: !mounted && `cannot mount a tmpfs for the store (${mountError}): run as root`,
}, async () => {
  const started = performance.now();
  const b = broker as RunningBroker;
  const ledger = new Ledger();
  // The persistent subscriber subscribes and goes away: what it is sent is queued in the store.
  const away = await client('disk-sub', { clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 } });
  await away.subscribeAsync('disk/#', { qos: 1 });
  away.end(true);
  // Clean clients: QoS 0 and QoS 1 between them touch no store.
  const plainSub = await client('disk-plain-sub');
  await plainSub.subscribeAsync('plain/#', { qos: 1 });
  const plainPub = await client('disk-plain-pub');

  const pub = await client('disk-pub', { clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 } });
  let closes = 0;
  pub.on('close', () => closes++);
  const before = new Stream(pub, { prefix: 'before-', topic: 'disk/m', window: 20, total: 1000, pad: 1000, ledgers: [ledger] });
  await before.settled(20_000);
  assert.equal(before.ackedCount, 1000);

  fill();
  const fullAt = performance.now();
  const logsAtFull = b.logs.length;
  // The stream goes on into a full disk: what the store cannot commit is not acknowledged.
  const during = new Stream(pub, { prefix: 'during-', topic: 'disk/m', window: 20, total: 1_000_000, pad: 1000, ledgers: [ledger] });
  await b.waitForLog((r) => b.logs.indexOf(r) >= logsAtFull && r['msg'] === 'store commit failed', 20_000);
  await waitFor('the publisher closed unacknowledged', () => closes > 0, 10_000);
  const ackedWhileFull = during.ackedCount;
  // The publisher reconnects and sends again; the store still cannot take it: it makes no progress.
  const failuresAt = b.logs.filter((r) => r['msg'] === 'store commit failed').length;
  await waitFor('a second refusal after the reconnect', () => b.logs.filter((r) => r['msg'] === 'store commit failed').length > failuresAt, 10_000,
    () => `broker exit code ${String(b.proc.exitCode)}`);
  assert.ok(during.ackedCount - ackedWhileFull <= 20, `at most one window acknowledged from pages LMDB had free: ${during.ackedCount - ackedWhileFull}`);
  // Other traffic is served meanwhile.
  let plainMs = 0;
  for (const qos of [0, 1] as const) {
    const t0 = performance.now();
    const got = new Promise<void>((resolve) => plainSub.once('message', () => resolve()));
    await within(Promise.all([got, plainPub.publishAsync('plain/x', `qos${qos}`, { qos })]), 5000, `a clean QoS ${qos} round trip on a full disk`);
    plainMs = Math.max(plainMs, since(t0));
  }
  assert.equal(b.proc.exitCode, null, 'the broker is running');

  // Space again: the same process acknowledges again.
  rmSync(filler);
  const freedAt = performance.now();
  const fullMs = since(fullAt);
  const ackedAtFree = during.ackedCount;
  await waitFor('the publisher acknowledged again', () => during.ackedCount >= ackedAtFree + 500, 20_000, () => `acked ${during.ackedCount}`);
  const recoverMs = since(freedAt);
  during.stop();
  await during.settled(20_000);
  assert.equal(during.error, null);

  // Everything acknowledged is durable: SIGKILL, restart, and the subscriber collects its queue.
  pub.end(true);
  await b.stop('SIGKILL');
  const b2 = await start();
  const back = strictConnect({ host: '127.0.0.1', port, clientId: 'disk-sub', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0 });
  clients.push(back);
  back.on('message', (t, p) => {
    if (t === 'disk/m') ledger.receive(p.toString().split(' ')[0] as string);
  });
  await waitFor('every acknowledged message after the restart', () => ledger.complete(), 30_000, () => `missing ${ledger.acked.size - ledger.received}: ${ledger.missing(5).join(',')}`);
  assert.equal(b2.proc.exitCode, null);

  report('the store\'s disk full', {
    load: `a persistent QoS 1 publisher (v5, window 20, 1 KB payloads) into an offline persistent session; clean QoS 0/1 pairs`,
    faults: `store.dir on a ${MOUNT_SIZE} tmpfs filled for ${fullMs} ms: ${ackedWhileFull} acked then the publisher closed unacknowledged (${closes} closes, its resends refused while full, ${during.resent} publishes MQTT.js gave up on sent again), clean round trips ${plainMs} ms at most; acknowledging again ${recoverMs} ms after the space was freed; SIGKILL + restart; ${Math.round(since(started) / 100) / 10} s`,
    acked: ledger.acked.size,
    received: ledger.received,
    dup: ledger.dup,
  });
});
