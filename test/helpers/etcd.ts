/**
 * A real etcd (Debian's etcd-server, installed by scripts/provision.sh) on loopback with a temporary data
 * directory, for the cluster tests. It can be stopped and started again on the same ports and data, to test
 * what the brokers do while etcd is away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './broker.js';

export interface RunningEtcd {
  /** `127.0.0.1:<port>`, as `etcd.endpoints` takes it. */
  readonly endpoint: string;
  /** Kills etcd (SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data directory. */
  restart(): Promise<void>;
  /** Stops it for good and removes its data. */
  destroy(): Promise<void>;
}

export async function startEtcd(): Promise<RunningEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'smq-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const endpoint = `127.0.0.1:${client}`;
  const args = [
    '--name', 'smq-test',
    '--data-dir', join(dir, 'data'),
    '--listen-client-urls', `http://${endpoint}`,
    '--advertise-client-urls', `http://${endpoint}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `smq-test=http://127.0.0.1:${peer}`,
    // Keep history small under the tests' churn, as production settings should.
    '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '10000',
    '--log-level', 'error',
  ];
  let proc: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    const p = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    proc = p;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`etcd exited with ${p.exitCode}: ${stderr}`);
      try {
        const res = await fetch(`http://${endpoint}/health`);
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (p === null || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  };

  process.once('exit', () => proc?.kill('SIGKILL'));
  await start();
  return {
    endpoint,
    stop,
    restart: start,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
