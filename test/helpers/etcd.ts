/**
 * A real etcd (Debian's etcd-server, installed by scripts/provision.sh) on loopback with a temporary data
 * directory, for the cluster tests. It can be stopped and started again on the same ports and data, to test
 * what the brokers do while etcd is away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
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
  const client = await freePort();
  const peer = await freePort();
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
