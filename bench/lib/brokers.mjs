// Starts one broker under test as its own process: smq, Mosquitto or Aedes. Every measurement gets a fresh
// process (nothing left over from the previous one: memory, sessions, retained messages), configured alike:
// anonymous access, loopback only, logs to a file in a temp dir, queue limits raised to opts.maxQueued so no
// scenario loses messages to a queue limit; everything else stock.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.mjs';

const ROOT = new URL('../..', import.meta.url).pathname;
const READY_TIMEOUT_MS = 15000;
// Clock ticks per second for /proc/<pid>/stat (USER_HZ); 100 on every Linux build Node runs on.
const CLK_TCK = 100;

/** Brokers still running, so the harness can stop them on Ctrl-C or an error. */
export const running = new Set();

function smqConfig(port, opts, tls) {
  const lines = [
    'host: 127.0.0.1',
    `port: ${port}`,
    'ws:\n  enable: false',
    // The HTTP API only where a scenario needs it (bridge mappings), on a free loopback port with one token.
    opts.http ? `http: ${JSON.stringify({ enable: true, host: '127.0.0.1', port: opts.http.port, tokens: [opts.http.token] })}` : 'http:\n  enable: false',
    'sys_interval: 0',
    `mqtt:\n  max_queued: ${opts.maxQueued}`,
  ];
  if (tls) lines.push(`tls:\n  enable: true\n  port: ${tls.port}\n  cert: ${tls.cert}\n  key: ${tls.key}`);
  // Durable scenarios: the LMDB store in the broker's temporary directory, fsync before acknowledging (default).
  if (opts.durable) lines.push(`store:\n  dir: ${opts.dir}/data`);
  // A cluster node (bench/scenarios/cluster.mjs): etcd endpoints, cluster name, node id.
  if (opts.cluster) lines.push(`cluster: ${opts.cluster.name}`, `broker: ${opts.cluster.node}`, `etcd:\n  endpoints: [${opts.cluster.etcd}]`);
  // The Kafka bridge (bench/scenarios/bridge.mjs): bridge.kafka.* from opts.bridge.kafka (addr at least),
  // everything else at its default. YAML takes JSON as it is.
  if (opts.bridge) lines.push(`bridge: ${JSON.stringify({ enable: true, ...opts.bridge, kafka: { ...opts.bridge.kafka } })}`);
  return lines.join('\n') + '\n';
}

function mosquittoConfig(port, opts, tls) {
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    `max_queued_messages ${opts.maxQueued}`,
    'max_queued_bytes 0',
    // Run as root, Mosquitto would switch to the "mosquitto" user before opening its log file, and could
    // then not write into our private temp dir. Which user it runs as does not change what it costs.
    ...(userInfo().uid === 0 ? ['user root'] : []),
  ];
  if (tls) lines.push(`listener ${tls.port} 127.0.0.1`, `certfile ${tls.cert}`, `keyfile ${tls.key}`);
  // Mosquitto's persistence is a database file saved every autosave_interval, not a write per message.
  if (opts.durable) lines.push('persistence true', `persistence_location ${opts.dir}/`);
  return lines.join('\n') + '\n';
}

/** The command line for one broker, after writing whatever config file it needs into dir. */
function command(name, dir, port, opts, tls) {
  if (name === 'smq') {
    const file = join(dir, 'smq.yaml');
    writeFileSync(file, smqConfig(port, opts, tls));
    // As users run it: bin/smq.js is executable and its first line carries the broker's Node flags.
    // BENCH_SMQ_NODE_ARGS (say `--cpu-prof --max-semi-space-size=4`) runs it under node with those flags instead.
    const nodeArgs = process.env.BENCH_SMQ_NODE_ARGS;
    if (nodeArgs) return [process.execPath, [...nodeArgs.split(' ').filter(Boolean), join(ROOT, 'bin/smq.js'), '-c', file]];
    return [join(ROOT, 'bin/smq.js'), ['-c', file]];
  }
  if (name === 'mosquitto') {
    const file = join(dir, 'mosquitto.conf');
    writeFileSync(file, mosquittoConfig(port, opts, tls) + `log_dest file ${join(dir, 'mosquitto.log')}\n`);
    return ['mosquitto', ['-c', file]];
  }
  if (name === 'aedes') {
    const extra = tls ? [String(tls.port), tls.cert, tls.key] : [];
    return [process.execPath, [join(ROOT, 'bench/lib/aedes-server.mjs'), String(port), ...extra]];
  }
  throw new Error(`unknown broker "${name}" (smq, mosquitto or aedes)`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function readText(file) {
  try { return readFileSync(file, 'utf8'); } catch { return ''; }
}

/** Resolves once the broker is ready: smq and Aedes say so in their log, Mosquitto accepts a connection. */
async function waitReady(name, port, tlsPort, logFile, exited) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited.code !== undefined) break;
    if (name === 'smq' && readText(logFile).includes('"broker ready"')) return;
    if (name === 'aedes' && /^ready$/m.test(readText(logFile))) return;
    if (name === 'mosquitto' && await accepts(port) && (!tlsPort || await accepts(tlsPort))) return;
    await sleep(25);
  }
  const why = exited.code !== undefined ? `exited (${exited.code})` : `not ready after ${READY_TIMEOUT_MS} ms`;
  throw new Error(`${name} ${why}; log: ${readText(logFile).slice(-2000)}`);
}

/**
 * Starts broker `name` (smq | mosquitto | aedes) on free loopback ports.
 * opts: { tls: { cert, key } | undefined, maxQueued (default 200000), durable, cluster, smq only: http: { token }
 * (the HTTP API on a free port), bridge: { kafka: { addr, ... }, buffer? } }.
 * Resolves to { name, host, port, tlsPort, httpPort, pid, logFile, rss(), cpuSeconds(), stop() }.
 */
export async function startBroker(name, opts = {}) {
  const o = { maxQueued: 200000, ...opts };
  const dir = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  const port = await freePort();
  const tls = o.tls ? { port: await freePort(), cert: o.tls.cert, key: o.tls.key } : undefined;
  if (o.http) o.http = { ...o.http, port: await freePort() };
  const [cmd, args] = command(name, dir, port, { ...o, dir }, tls);
  // The broker's stdout and stderr go straight to a file: nothing passes through this process, which has
  // to stay idle while the broker is measured.
  const logFile = join(dir, `${name}-out.log`);
  const fd = openSync(logFile, 'a');
  // setpriv --pdeathsig: the kernel kills the broker if this process dies without stopping it (SIGKILL by a
  // test timeout, a crash). setpriv execs the broker, so proc.pid is the broker's own pid.
  const proc = spawn('setpriv', ['--pdeathsig', 'KILL', cmd, ...args], { stdio: ['ignore', fd, fd], cwd: dir });
  closeSync(fd);
  const exited = { code: undefined };
  const done = new Promise((resolve) => {
    proc.once('exit', (code, signal) => { exited.code = code ?? signal; resolve(); });
    proc.once('error', (err) => { exited.code = err.message; resolve(); });
  });

  let stopping;
  const broker = {
    name,
    host: '127.0.0.1',
    port,
    tlsPort: tls?.port,
    httpPort: o.http?.port,
    pid: proc.pid,
    logFile: name === 'mosquitto' ? join(dir, 'mosquitto.log') : logFile,
    /** Resident memory in bytes (VmRSS), 0 once the process is gone. */
    rss() {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readText(`/proc/${proc.pid}/status`));
      return m ? Number(m[1]) * 1024 : 0;
    },
    /** CPU seconds used so far, user plus system. */
    cpuSeconds() {
      const stat = readText(`/proc/${proc.pid}/stat`);
      // Fields after the command name, which is in parentheses and may hold spaces: state is field 3,
      // utime field 14, stime field 15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return f.length > 12 ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0;
    },
    /** SIGTERM, SIGKILL after 2 s; resolves once the process has exited and its temp dir is gone. */
    stop() {
      stopping ??= (async () => {
        if (exited.code === undefined) {
          proc.kill('SIGTERM');
          const t = setTimeout(() => { if (exited.code === undefined) proc.kill('SIGKILL'); }, 2000);
          await done;
          clearTimeout(t);
        }
        running.delete(broker);
        if (!process.env.BENCH_KEEP_LOGS) rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  running.add(broker);
  try {
    await waitReady(name, port, tls?.port, logFile, exited);
  } catch (err) {
    await broker.stop();
    throw err;
  }
  if (!existsSync(`/proc/${proc.pid}`)) throw new Error(`${name} vanished after start-up`);
  return broker;
}
