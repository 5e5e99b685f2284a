/**
 * The checker's topology: N smq nodes as child processes (fixed ids, ports and store directories, so a restart
 * brings a node back as itself) on an etcd of one or three members. Every node reaches each etcd member through
 * a TCP proxy of its own and its clients reach it through another, so the nemesis can cut a node from etcd or
 * from its clients without touching either side. Every fault the nemesis injects is a method here.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { reusablePort, startBroker, type RunningBroker } from '../helpers/broker.js';
import { startEtcdCluster, type RunningEtcdCluster } from '../helpers/etcd.js';
import { startProxy, type TcpProxy } from '../helpers/proxy.js';
import type { History } from './history.js';

/** The API token every node accepts (http.tokens). */
export const TOKEN = 'checker-token';

/** One smq node and what surrounds it. */
interface Node {
  readonly id: string;
  readonly port: number;
  readonly httpPort: number;
  readonly dir: string;
  /** One per etcd member, in member order: the node's etcd.endpoints. */
  readonly etcdProxies: TcpProxy[];
  /** What clients connect to. */
  readonly clientProxy: TcpProxy;
  broker: RunningBroker | null;
  paused: boolean;
  /** Every process this node ran, for the logs. */
  readonly lives: RunningBroker[];
}

/** How long a drain may take before the node is SIGKILLed (the broker's own deadline is shorter). */
const DRAIN_LIMIT_MS = 30_000;

/** The nodes and etcd of one run. */
export class Topology {
  /** Processes that exited without the nemesis asking: `<node>: <how> at <t> ms`. */
  readonly crashes: string[] = [];
  private readonly nodes = new Map<string, Node>();

  private constructor(
    readonly cluster: string,
    readonly etcd: RunningEtcdCluster,
    private readonly leaseTtl: number,
    private readonly history: History,
  ) {}

  /**
   * Starts etcd (`etcdMembers` members), the proxies and the nodes `ids`, and waits until every node is ready. Each
   * node's store.dir is `<dir>/store-<id>`, kept with the run's other files (a store that will not open is evidence).
   */
  static async start(ids: readonly string[], etcdMembers: number, leaseTtl: number, history: History, dir: string): Promise<Topology> {
    const etcd = await startEtcdCluster({ size: etcdMembers });
    const topo = new Topology(`checker${process.pid}x${Date.now() % 100_000}`, etcd, leaseTtl, history);
    for (const id of ids) {
      mkdirSync(join(dir, `store-${id}`), { recursive: true });
      const port = await reusablePort(); // restarted on it: outside the ephemeral range
      const etcdProxies = await Promise.all(etcd.endpoints.map((e) => startProxy({ port: Number(e.split(':')[1]) })));
      topo.nodes.set(id, {
        id, port, httpPort: await reusablePort(), dir: join(dir, `store-${id}`),
        etcdProxies, clientProxy: await startProxy({ port }), broker: null, paused: false, lives: [],
      });
    }
    await Promise.all(ids.map((id) => topo.startNode(id)));
    return topo;
  }

  /** Node ids, in order. */
  get ids(): string[] {
    return [...this.nodes.keys()];
  }

  /** The port a client of `id` connects to (its client proxy). */
  clientPort(id: string): number {
    return this.node(id).clientProxy.port;
  }

  /** `http://127.0.0.1:<port>` of a node's HTTP service (straight, not through a proxy). */
  httpBase(id: string): string {
    return `http://127.0.0.1:${this.node(id).httpPort}`;
  }

  /** Whether node `id` runs and is not paused. */
  running(id: string): boolean {
    const n = this.node(id);
    return n.broker !== null && !n.paused;
  }

  private node(id: string): Node {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  private async startNode(id: string): Promise<void> {
    const n = this.node(id);
    const b = await startBroker({
      config: {
        cluster: this.cluster, broker: id, port: n.port,
        etcd: { endpoints: n.etcdProxies.map((p) => p.endpoint), lease_ttl: this.leaseTtl },
        store: { dir: n.dir }, ws: { enable: false },
        http: { enable: true, host: '127.0.0.1', port: n.httpPort, tokens: [TOKEN] },
        mqtt: { max_queued: 100_000 },
      },
      timeoutMs: 30_000,
    });
    n.broker = b;
    n.paused = false;
    n.lives.push(b);
    b.proc.once('exit', (code, signal) => {
      if (n.broker !== b) return; // the nemesis stopped it and knows
      n.broker = null;
      const how = `${id}: exited by itself (code ${code}, signal ${signal}) at ${this.history.now()} ms`;
      this.crashes.push(how);
      this.history.add({ type: 'fault', phase: 'start', kind: 'crash', target: id, detail: how });
    });
  }

  /** SIGKILL, then a restart after `holdMs`. */
  async kill(id: string): Promise<void> {
    const n = this.node(id);
    const b = n.broker;
    n.broker = null;
    if (b !== null) await b.stop('SIGKILL');
  }

  /** Starts a node that is down (a no-op for one that runs). */
  async restart(id: string): Promise<void> {
    if (this.node(id).broker === null) await this.startNode(id);
  }

  /** SIGSTOP: the process holds its sockets and answers nothing. */
  pause(id: string): void {
    const n = this.node(id);
    if (n.broker === null) return;
    n.broker.proc.kill('SIGSTOP');
    n.paused = true;
  }

  /** SIGCONT. */
  resume(id: string): void {
    const n = this.node(id);
    if (n.broker !== null && n.paused) n.broker.proc.kill('SIGCONT');
    n.paused = false;
  }

  /** SIGTERM, and waits for the drain to end (SIGKILL past DRAIN_LIMIT_MS); says how it ended. */
  async drain(id: string): Promise<string> {
    const n = this.node(id);
    const b = n.broker;
    n.broker = null;
    if (b === null) return 'was down';
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => { timer = setTimeout(() => r('late'), DRAIN_LIMIT_MS); });
    const code = await Promise.race([b.stop('SIGTERM'), late]);
    clearTimeout(timer);
    if (code === 'late') {
      await b.stop('SIGKILL');
      return `drain not done after ${DRAIN_LIMIT_MS} ms: SIGKILLed`;
    }
    return `exit ${code} after ${Math.round(performance.now() - t0)} ms`;
  }

  /** Resets the node's etcd connections and every new one. */
  cutEtcd(id: string): void {
    for (const p of this.node(id).etcdProxies) p.cut();
  }

  healEtcd(id: string): void {
    for (const p of this.node(id).etcdProxies) p.resume();
  }

  /** Resets the node's client connections and every new one. */
  cutClients(id: string): void {
    this.node(id).clientProxy.cut();
  }

  healClients(id: string): void {
    this.node(id).clientProxy.resume();
  }

  /** Everything back: proxies pass, paused nodes continue, stopped nodes and etcd members start. */
  async healAll(): Promise<void> {
    for (const n of this.nodes.values()) {
      this.healEtcd(n.id);
      this.healClients(n.id);
      this.resume(n.id);
    }
    const down = this.etcd.endpoints.map((_, i) => i).filter((i) => !this.etcd.isUp(i));
    if (down.length > 0) await this.etcd.restart(down);
    for (const n of this.nodes.values()) if (n.broker === null) await this.startNode(n.id);
  }

  /** GET `path` of node `id` with the API token: status and JSON body (or the error as a string). */
  async get(id: string, path: string): Promise<{ status: number | string; body: unknown }> {
    try {
      const res = await fetch(`${this.httpBase(id)}${path}`, { headers: { 'x-token': TOKEN }, signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      return { status: res.status, body };
    } catch (err) {
      return { status: (err as Error).message, body: null };
    }
  }

  /** Writes each node's logs (every process it ran, JSON lines) into `dir`. */
  writeLogs(dir: string): void {
    for (const n of this.nodes.values()) {
      const lines = n.lives.flatMap((b, i) => [`{"life":${i}}`, ...b.logs.map((r) => JSON.stringify(r))]);
      writeFileSync(join(dir, `${n.id}.log`), lines.join('\n') + '\n');
    }
  }

  /** Kills everything and closes the proxies. */
  async destroy(): Promise<void> {
    for (const n of this.nodes.values()) {
      const b = n.broker;
      n.broker = null;
      if (b !== null) {
        if (n.paused) b.proc.kill('SIGCONT');
        await b.stop('SIGKILL');
      }
      await Promise.all([...n.etcdProxies, n.clientProxy].map((p) => p.close()));
    }
    await this.etcd.destroy();
  }
}
