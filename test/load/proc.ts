/**
 * What the load tests (99-*) read about a broker process: memory, file descriptors and CPU from /proc, and its
 * Prometheus metrics from the HTTP service.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { get } from 'node:http';

/** Resident memory of a process, in bytes (`/proc/<pid>/status`). */
export interface Memory {
  rss: number;
  /** Anonymous pages: the heap, Node's buffers and native allocations. */
  anon: number;
  /** File-backed pages: the node binary, shared libraries, the LMDB map. */
  file: number;
}

export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/** Open file descriptors of a process. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** CPU seconds (user + system) a process has used (`/proc/<pid>/stat`, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Nanoseconds the process's main thread (the event loop) has spent runnable but waiting for a CPU
 * (`/proc/<pid>/schedstat`, second field): time taken by other work on the machine, not by the process.
 */
export function cpuWaitNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
}

/** One scrape of `/metrics`: `name` or `name{labels}` to value. */
export type Metrics = Map<string, number>;

/**
 * Scrapes `<base>/metrics` on a connection of its own that closes after the answer (no keep-alive socket stays
 * in the broker's file-descriptor table between scrapes).
 */
export function scrape(base: string, timeoutMs = 5000): Promise<Metrics> {
  return new Promise((resolve, reject) => {
    const req = get(`${base}/metrics`, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`/metrics answered ${res.statusCode}`));
        const out: Metrics = new Map();
        for (const line of body.split('\n')) {
          if (line === '' || line.startsWith('#')) continue;
          const sp = line.lastIndexOf(' ');
          out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
        }
        resolve(out);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`/metrics: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** A metric's value, 0 when absent. */
export function metric(m: Metrics, name: string): number {
  return m.get(name) ?? 0;
}

/** Sum of every series of a metric (all label values). */
export function metricSum(m: Metrics, name: string): number {
  let sum = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) sum += v;
  return sum;
}

/** The median of a list (NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
