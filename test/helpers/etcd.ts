/**
 * A real etcd (Debian's etcd-server, installed by scripts/provision.sh) on loopback with a temporary data
 * directory, for the cluster tests. It can be stopped and started again on the same ports and data, to test
 * what the brokers do while etcd is away. startEtcdCluster makes a multi-member cluster on loopback whose members
 * can be killed and restarted one by one (the checker, test/jepsen).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reusablePort } from './broker.js';

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

/** TLS for the client port (PEM file paths); with `ca`, clients must present a certificate it signed. */
export interface EtcdTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** A client certificate for the readiness check. */
  readonly clientCert: string;
  readonly clientKey: string;
}

/** GET /health over TLS with a client certificate (fetch cannot present one). */
function healthTls(url: string, tls: EtcdTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsGet(`${url}/health`, {
      ca: readFileSync(tls.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey),
    }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(body.includes('"health":"true"')));
    });
    req.on('error', () => resolve(false));
  });
}

export async function startEtcd(tls?: EtcdTls): Promise<RunningEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'smq-etcd-'));
  // A restarted etcd takes the same ports again (reusablePort: outside the ephemeral range).
  const client = await reusablePort();
  const peer = await reusablePort();
  const endpoint = `127.0.0.1:${client}`;
  const scheme = tls ? 'https' : 'http';
  const args = [
    ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
    '--name', 'smq-test',
    '--data-dir', join(dir, 'data'),
    '--listen-client-urls', `${scheme}://${endpoint}`,
    '--advertise-client-urls', `${scheme}://${endpoint}`,
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
      if (tls) {
        if (await healthTls(`https://${endpoint}`, tls)) return;
      } else {
        try {
          const res = await fetch(`http://${endpoint}/health`);
          const body = (await res.json()) as { health?: string };
          if (body.health === 'true') return;
        } catch {
          // not listening yet
        }
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (p === null || p.exitCode !== null || p.signalCode !== null) return; // gone already: no 'exit' to come
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

/** A multi-member etcd on loopback (see {@link startEtcdCluster}). */
export interface RunningEtcdCluster {
  /** `127.0.0.1:<client port>` of each member, in member order. */
  readonly endpoints: readonly string[];
  /** Whether member `i` runs now. */
  isUp(i: number): boolean;
  /** SIGKILLs the members `which` and waits for them to exit. */
  kill(which: readonly number[]): Promise<void>;
  /** Starts the members `which` again on their ports and data, and waits until each reports healthy (which needs a quorum). */
  restart(which: readonly number[], timeoutMs?: number): Promise<void>;
  /** Stops every member for good and removes the data. */
  destroy(): Promise<void>;
}

/** Options of {@link startEtcdCluster}. */
export interface EtcdClusterOptions {
  /** Members (1 makes a single-member cluster with the same API). */
  readonly size: number;
  /** The etcd binary (default `SMQ_ETCD_BIN` or `etcd` on PATH: Debian's 3.4; the kube cache holds a 3.7). */
  readonly bin?: string;
}

/** GET /health of `endpoint` over plain HTTP: true once the member serves with a leader. */
async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${endpoint}/health`, { signal: AbortSignal.timeout(2000) });
    return ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/**
 * Starts an etcd cluster of `size` members on loopback ports, each with its own data directory, and waits until
 * every member is healthy. Members can be killed and restarted one by one or several at once, as themselves.
 */
export async function startEtcdCluster(options: EtcdClusterOptions): Promise<RunningEtcdCluster> {
  const bin = options.bin ?? process.env['SMQ_ETCD_BIN'] ?? 'etcd';
  const dir = mkdtempSync(join(tmpdir(), 'smq-etcd-cluster-'));
  const members: { name: string; client: number; peer: number }[] = [];
  for (let i = 0; i < options.size; i++) members.push({ name: `m${i}`, client: await reusablePort(), peer: await reusablePort() });
  const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const procs: (ChildProcess | null)[] = members.map(() => null);
  const stderr: string[] = members.map(() => '');

  const spawnMember = (i: number): void => {
    const m = members[i] as { name: string; client: number; peer: number };
    const p = spawn(bin, [
      '--name', m.name, '--data-dir', join(dir, m.name),
      '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `smq-${process.pid}`,
      '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '10000', '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr?.on('data', (d: Buffer) => {
      stderr[i] = ((stderr[i] ?? '') + d.toString()).slice(-4000);
    });
    procs[i] = p;
  };

  const restart = async (which: readonly number[], timeoutMs = 30_000): Promise<void> => {
    for (const i of which) if (procs[i] === null) spawnMember(i);
    const deadline = Date.now() + timeoutMs;
    for (const i of which) {
      const endpoint = `127.0.0.1:${(members[i] as { client: number }).client}`;
      for (;;) {
        const p = procs[i];
        if (p?.exitCode !== null && p?.exitCode !== undefined) throw new Error(`etcd member m${i} exited with ${p.exitCode}: ${stderr[i]}`);
        if (await healthy(endpoint)) break;
        if (Date.now() > deadline) throw new Error(`etcd member m${i} not healthy within ${timeoutMs} ms: ${stderr[i]}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const kill = async (which: readonly number[]): Promise<void> => {
    await Promise.all(which.map(async (i) => {
      const p = procs[i];
      procs[i] = null;
      if (p === null || p === undefined || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }));
  };

  process.once('exit', () => {
    for (const p of procs) p?.kill('SIGKILL');
  });
  const all = members.map((_, i) => i);
  await restart(all);
  return {
    endpoints: members.map((m) => `127.0.0.1:${m.client}`),
    isUp: (i) => procs[i] !== null && procs[i] !== undefined,
    kill,
    restart,
    async destroy() {
      await kill(all);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
