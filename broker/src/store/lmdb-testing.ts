import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { type Durability, LmdbStore } from './lmdb.js';
import type { StoredDelivery, StoredMessage } from './types.js';

/* Helpers shared by the LMDB store's test files. */

/** A silent logger. */
export const log = pino({ level: 'silent' });

/** A new empty directory under the system's temp directory. */
export function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'smq-store-'));
}

/** A logger that keeps what it writes, to check what recovery reports. */
export function recordingLog(): { log: Logger; records: { msg: string; [k: string]: unknown }[] } {
  const records: { msg: string }[] = [];
  return { log: pino({ level: 'info' }, { write: (s: string) => void records.push(JSON.parse(s) as { msg: string }) }), records };
}

/** A QoS 1 message. */
export function message(topic: string, payload: Buffer): StoredMessage {
  return { topic, payload, qos: 1, retain: false, properties: undefined, origin: 'p', expiresAt: 0 };
}

/** A queued QoS 1 delivery whose payload names its seq. */
export function delivery(clientId: string, seq: number, payload = Buffer.from(`payload-${seq}`)): StoredDelivery {
  return { clientId, seq, message: message(`t/${seq}`, payload), qos: 1, retain: false, subIds: undefined, packetId: 0, state: 0 };
}

/** Opens a store over `dir`, runs `fn`, closes it. */
export async function withStore<T>(dir: string, fn: (s: LmdbStore, snap: Awaited<ReturnType<LmdbStore['open']>>) => Promise<T>, durability: Durability = 'fsync'): Promise<T> {
  const store = new LmdbStore({ dir, durability, log });
  const snap = await store.open();
  try {
    return await fn(store, snap);
  } finally {
    await store.close();
  }
}

/**
 * Runs a module script in a new node process; resolves with its output, exit code and signal. With
 * `withoutDacOverride`, a root process runs it without the capabilities that let root ignore file permissions
 * (util-linux `setpriv`), so permission checks apply while the repository stays readable wherever it is cloned
 * (a child as user nobody could not read a clone under a root-only directory).
 */
export function runNode(
  script: string,
  env: Record<string, string>,
  onLine?: (line: string, kill: () => void) => void,
  withoutDacOverride = false,
): Promise<{ out: string; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const node = [process.execPath, '--input-type=module', '-e', script];
    const drop = '-dac_override,-dac_read_search';
    const argv = withoutDacOverride ? ['setpriv', '--bounding-set', drop, '--inh-caps', drop, '--', ...node] : node;
    const child = spawn(argv[0] as string, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (onLine) for (const line of chunk.split('\n')) if (line) onLine(line, () => child.kill('SIGKILL'));
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ out: out + err, code, signal }));
  });
}

/** Where the child processes import the store and pino from. */
export const LMDB_URL = new URL('./lmdb.js', import.meta.url).href;
export const PINO_URL = import.meta.resolve('pino');

/** Opens the store in a child process and prints what it found, or the error's code and message. */
export const OPEN_SCRIPT = `
const { LmdbStore } = await import(process.env.LMDB_URL);
const { pino } = await import(process.env.PINO_URL);
const store = new LmdbStore({ dir: process.env.DIR, log: pino({ level: 'silent' }), recover: process.env.RECOVER === '1' });
try {
  const snap = await store.open();
  const bytes = snap.deliveries.reduce((n, d) => n + d.message.payload.length, 0);
  console.log(JSON.stringify({ ok: true, deliveries: snap.deliveries.length, retained: snap.retained.length, bytes }));
  await store.close();
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
}
`;

