/**
 * Starts the built broker (`bin/smq.js`) as a child process with a temporary YAML config, as a user would,
 * and waits for its "broker ready" log line to learn the ports it bound (tests use port 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** Repository root (dist/test/helpers → three levels up). */
export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
/** The broker's executable entry point. */
export const BIN = join(ROOT, 'bin', 'smq.js');

/** One listener the broker reported in its ready line. */
export interface ListenerInfo {
  transport: string;
  host: string;
  port: number;
}

/** Options for {@link startBroker}. */
export interface StartOptions {
  /** Config keys merged over the test defaults (port 0, ws on port 0, log level info). */
  config?: Record<string, unknown>;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Pass no config file at all (embedded defaults). */
  noConfigFile?: boolean;
  /** Milliseconds to wait for readiness. */
  timeoutMs?: number;
}

/** A broker process under test. */
export interface RunningBroker {
  readonly proc: ChildProcess;
  /** MQTT TCP port. */
  readonly port: number;
  /** MQTT over WebSocket port, when enabled. */
  readonly wsPort: number | undefined;
  /** MQTT over TLS port, when `tls.enable` is set (optional so brokers built by other helpers need not set it). */
  readonly tlsPort?: number | undefined;
  /** MQTT over secure WebSocket port, when `wss.enable` is set. */
  readonly wssPort?: number | undefined;
  /** Every log record the broker printed so far (parsed pino JSON). */
  readonly logs: Record<string, unknown>[];
  /** The config file used, if any. */
  readonly configFile: string | undefined;
  /** Resolves with the first log record for which `match` returns true. */
  waitForLog(match: (rec: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a signal (default SIGTERM) and resolves with the exit code once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)) {
      out[k] = deepMerge(b as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** Writes `config` as YAML into a fresh temporary directory and returns the file's path. */
export function writeConfig(config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'smq-test-'));
  const file = join(dir, 'smq.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/** A free loopback TCP port (for brokers that cannot bind port 0 and report it). */
/**
 * A free port below the kernel's ephemeral range, for a listener a test restarts on the same port (a node or an
 * etcd member that is killed and started again). A port from freePort() lies inside that range: while its
 * listener is down, a client connection made meanwhile can get it as its own source port, and the restart then
 * fails with EADDRINUSE (the checker hit this).
 */
export async function reusablePort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // Not Linux: the usual default.
  }
  const from = 10000;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = from + Math.floor(Math.random() * Math.max(1, low - from));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${from} and ${low}`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * Development aid: with SMQ_TEST_AGAINST=mosquitto, black-box tests run against Debian's Mosquitto instead,
 * to check that a test encodes the spec rather than smq's reading of it. Only plain listeners are set up.
 */
async function startMosquitto(): Promise<RunningBroker> {
  const port = await freePort();
  const wsPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'smq-mosq-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nlistener ${wsPort} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n`);
  const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = netConnect({ port, host: '127.0.0.1' }, () => { s.destroy(); res(true); });
      s.once('error', () => res(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc, port, wsPort, logs: [], configFile: conf,
    waitForLog: () => Promise.reject(new Error('logs are not available from mosquitto')),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

/** Every broker child still running; killed when the test process exits so none outlives a failed test. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Starts a broker and waits until it is ready. */
export async function startBroker(options: StartOptions = {}): Promise<RunningBroker> {
  if (process.env['SMQ_TEST_AGAINST'] === 'mosquitto') return startMosquitto();
  const base = { host: '127.0.0.1', port: 0, ws: { enable: true, port: 0 }, http: { enable: false }, log: { level: 'info' } };
  const configFile = options.noConfigFile ? undefined : writeConfig(deepMerge(base, options.config ?? {}));
  const args = [BIN, ...(configFile ? ['-c', configFile] : [])];
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  proc.once('exit', () => {
    children.delete(proc);
    // The config's temporary directory goes with the broker (the broker reads the file only at start).
    if (configFile !== undefined) rmSync(dirname(configFile), { recursive: true, force: true });
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<{ match: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }>();
  let stderr = '';
  let buf = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        rec = { msg: line };
      }
      logs.push(rec);
      for (const w of waiters) {
        if (w.match(rec)) {
          waiters.delete(w);
          w.resolve(rec);
        }
      }
    }
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => { stderr += chunk; });
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));

  const waitForLog = (match: (r: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolveLog, reject) => {
      const w = { match, resolve: (r: Record<string, unknown>) => { clearTimeout(t); resolveLog(r); } };
      const t = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`log line not seen within ${timeoutMs} ms; stderr: ${stderr}; last logs: ${JSON.stringify(logs.slice(-5))}`));
      }, timeoutMs);
      waiters.add(w);
      void exited.then((code) => {
        if (waiters.delete(w)) {
          clearTimeout(t);
          reject(new Error(`broker exited with ${code} before the log line; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-5))}`));
        }
      });
    });
  };

  const ready = await waitForLog((r) => r['msg'] === 'broker ready', options.timeoutMs ?? 10000);
  const listeners = (ready['listeners'] ?? []) as ListenerInfo[];
  const tcp = listeners.find((l) => l.transport === 'tcp');
  const ws = listeners.find((l) => l.transport === 'ws');
  const tls = listeners.find((l) => l.transport === 'tls');
  const wss = listeners.find((l) => l.transport === 'wss');
  if (!tcp) throw new Error(`broker ready without a tcp listener: ${JSON.stringify(ready)}`);
  return {
    proc,
    port: tcp.port,
    wsPort: ws?.port,
    tlsPort: tls?.port,
    wssPort: wss?.port,
    logs,
    configFile,
    waitForLog,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

/** `http://127.0.0.1:<port>` of a broker's HTTP service, from its 'broker ready' log line. */
export async function httpBase(broker: RunningBroker): Promise<string> {
  const ready = await broker.waitForLog((r) => r['msg'] === 'broker ready');
  const http = (ready['listeners'] as { transport: string; port: number }[]).find((l) => l.transport === 'http');
  if (http === undefined) throw new Error('the ready line lists no http listener (is http.enable on?)');
  return `http://127.0.0.1:${http.port}`;
}
