/**
 * One checker run: the topology up, the workload subscribed and routed, the schedule's faults and moves played
 * at their times (the nemesis), then the heal (everything resumed and restarted), the quiet phase (publishers
 * stop and what was acknowledged drains), the final state asked of every node, and the checker's verdict. The
 * schedule, the history, the verdict and each node's logs are written to the run's directory.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, INVARIANTS, type FinalState, type Roles, type Verdict } from './checker.js';
import { Topology } from './cluster.js';
import { History, idOfPayload } from './history.js';
import { Prng } from './prng.js';
import { describeSchedule, nodeIds, type FaultStep, type MoveStep, type Schedule } from './schedule.js';
import { Workload } from './workload.js';

/** What a run did and found. */
export interface RunResult {
  readonly schedule: Schedule;
  readonly verdict: Verdict;
  /** Faults injected, by kind. */
  readonly injected: Readonly<Record<string, number>>;
  /** Where the schedule, history, verdict, node logs and node stores are. */
  readonly dir: string;
  readonly seconds: number;
  /** What went unexpectedly in the run itself (a restart that failed, a phase past its deadline). */
  readonly notes: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Runs `fn` after the previous call for the same key has finished: one fault at a time on a node's process. */
class Locks {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(fn, fn);
    this.tails.set(key, next.catch(() => undefined));
    return next;
  }
}

/** Plays one fault: inject, hold until `holdMs` passed or the fault phase ended, heal. */
async function playFault(f: FaultStep, topo: Topology, history: History, phaseEnd: number): Promise<void> {
  const target = f.kind === 'etcd-kill' ? `etcd ${f.members.join('+')}` : f.nodes.join(',');
  const node = f.nodes[0] as string;
  const hold = (): Promise<void> => sleep(Math.min(history.now() + f.holdMs, phaseEnd) - history.now());
  const mark = (phase: 'start' | 'end', detail?: string): void => {
    history.add({ type: 'fault', phase, kind: f.kind, target, ...(detail === undefined ? {} : { detail }) });
  };
  mark('start');
  switch (f.kind) {
    case 'kill':
      await topo.kill(node);
      await hold();
      await topo.restart(node);
      break;
    case 'pause':
      topo.pause(node);
      await hold();
      topo.resume(node);
      break;
    case 'drain': {
      const how = await topo.drain(node);
      await hold();
      await topo.restart(node);
      mark('end', how);
      return;
    }
    case 'etcd-kill':
      await topo.etcd.kill(f.members);
      await hold();
      await topo.etcd.restart(f.members);
      break;
    case 'etcd-cut':
      topo.cutEtcd(node);
      await hold();
      topo.healEtcd(node);
      break;
    case 'client-cut':
      topo.cutClients(node);
      await hold();
      topo.healClients(node);
      break;
  }
  mark('end');
}

/** Asks every node for readiness, its clients and the retained messages of the run. */
async function finalState(topo: Topology, workload: Workload, roles: Roles): Promise<FinalState> {
  const ids = topo.ids;
  const ready: { node: string; status: number | string }[] = await Promise.all(ids.map(async (node) => ({ node, status: (await topo.get(node, '/readyz')).status })));
  for (const c of topo.crashes) ready.push({ node: c.slice(0, c.indexOf(':')), status: c });
  const clients = await Promise.all(ids.map(async (node) => {
    const r = await topo.get(node, `/api/v1/clients?node=${node}&limit=1000`);
    if (r.status !== 200) return { node, ids: null, error: `${r.status} ${JSON.stringify(r.body).slice(0, 200)}` };
    return { node, ids: (r.body as { clients: { clientid: string }[] }).clients.map((c) => c.clientid) };
  }));
  const retained = await Promise.all(ids.map(async (node) => {
    const r = await topo.get(node, `/api/v1/retained?topic=${encodeURIComponent(`${roles.retainedPrefix}#`)}&limit=1000`);
    if (r.status !== 200) return { node, values: null, error: `${r.status} ${JSON.stringify(r.body).slice(0, 200)}` };
    const values: Record<string, string> = {};
    for (const m of (r.body as { messages: { topic: string; payload: string }[] }).messages) {
      values[m.topic] = idOfPayload(Buffer.from(m.payload, 'base64').toString());
    }
    return { node, values };
  }));
  return { ready, clients, retained, connected: workload.connected() };
}

/** Runs `schedule` and checks it; `say` gets progress lines. */
export async function runSchedule(schedule: Schedule, say: (line: string) => void, outDir?: string): Promise<RunResult> {
  const p = schedule.params;
  const started = performance.now();
  const dir = outDir ?? mkdtempSync(join(tmpdir(), `smq-checker-seed${p.seed}-`));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'schedule.json'), JSON.stringify(schedule, null, 1));
  say(describeSchedule(schedule));
  const history = new History();
  const notes: string[] = [];
  const topo = await Topology.start(nodeIds(p.nodes), p.etcdMembers, p.leaseTtl, history, dir);
  const ctx = { history, nodes: topo.ids, port: (id: string) => topo.clientPort(id), rnd: new Prng(p.seed + 1) };
  const workload = new Workload(ctx, { subscribers: p.subscribers, rate: p.rate, run: `s${p.seed}` });
  const injected: Record<string, number> = {};
  let verdict: Verdict;
  try {
    await workload.subscribe(30_000);
    workload.startPublishers();
    await workload.routed(30_000);

    history.add({ type: 'phase', name: 'faults' });
    const t0 = history.now();
    const phaseEnd = t0 + p.durationS * 1000;
    const locks = new Locks();
    const tasks = schedule.faults.map(async (f) => {
      await sleep(t0 + f.at - history.now());
      const key = f.kind === 'etcd-kill' ? 'etcd' : `${f.nodes[0]}:${['kill', 'pause', 'drain'].includes(f.kind) ? 'process' : f.kind}`;
      await locks.run(key, async () => {
        if (history.now() >= phaseEnd) return; // a lock held it past the phase: the heal does the rest
        injected[f.kind] = (injected[f.kind] ?? 0) + 1;
        await playFault(f, topo, history, phaseEnd);
      }).catch((err: unknown) => notes.push(`${f.kind} ${f.nodes.join(',')}${f.members.join('+')} at ${f.at}: ${(err as Error).message.slice(0, 300)}`));
    });
    const moves = schedule.moves.map(async (m: MoveStep) => {
      await sleep(t0 + m.at - history.now());
      const peer = workload.peers.get(m.client);
      if (peer === undefined || history.now() >= phaseEnd) return;
      await (m.kind === 'hop' ? peer.hop(m.node) : peer.takeover(m.node));
    });
    await sleep(phaseEnd - history.now());
    await Promise.all([...tasks, ...moves]);

    say(`heal at ${Math.round(history.now() / 1000)} s`);
    history.add({ type: 'phase', name: 'heal' });
    await topo.healAll().catch((err: unknown) => notes.push(`heal: ${(err as Error).message.slice(0, 300)}`));

    history.add({ type: 'phase', name: 'quiet' });
    if (!(await workload.stopPublishing(30_000))) notes.push(`quiet: still unacknowledged after 30 s: ${workload.unsettled()}`);
    if (!(await workload.drained(t0, 60_000))) notes.push('quiet: not everything acknowledged was delivered (or not every client reconnected) within 60 s');

    // The final state converges after the heal (keep-alives, leases): asked again until it holds, 20 s at most.
    history.add({ type: 'phase', name: 'check' });
    const deadline = Date.now() + 20_000;
    for (;;) {
      verdict = check(history.events, await finalState(topo, workload, workload.roles), workload.roles);
      const settled = verdict.results.filter((r) => ['one-connection', 'retained', 'ready'].includes(r.name)).every((r) => r.violations === 0);
      if (settled || Date.now() > deadline) break;
      await sleep(1000);
    }
  } finally {
    workload.close();
    writeFileSync(join(dir, 'history.jsonl'), history.toJsonLines());
    topo.writeLogs(dir);
    await topo.destroy();
  }
  writeFileSync(join(dir, 'verdict.json'), JSON.stringify({ verdict, injected, notes }, null, 1));
  return { schedule, verdict, injected, dir, seconds: Math.round((performance.now() - started) / 1000), notes };
}

/** The RELIABILITY lines of a run: the usual one (acked, received, lost, dup), then one per invariant. */
export function reliabilityLines(r: RunResult): string[] {
  const p = r.schedule.params;
  const v = r.verdict;
  const scenario = `checker seed ${p.seed}`;
  const faults = Object.entries(r.injected).map(([k, n]) => `${n} ${k}`).join(', ') || 'none';
  const lines = [
    `RELIABILITY | ${scenario} | load: ${p.nodes} nodes, etcd ${p.etcdMembers} member(s), ${p.durationS} s, 4 data publishers at ${p.rate} msgs/s (QoS 1 and 2) to ${p.subscribers} hopping persistent subscribers, a shared group, 2 retained writers; ${v.messages} messages acknowledged | faults: ${faults} | acked: ${v.acked} | received: ${v.received} | lost: ${v.acked - v.received} | dup: ${v.dup}`,
  ];
  for (const name of INVARIANTS) {
    const res = v.results.find((x) => x.name === name);
    if (res !== undefined) lines.push(`RELIABILITY | ${scenario} | invariant ${name} | checked: ${res.checked} | violations: ${res.violations}`);
  }
  return lines;
}

/** The details of every broken invariant and the run's notes, for the output. */
export function violationLines(r: RunResult): string[] {
  const out: string[] = [];
  for (const res of r.verdict.results) for (const d of res.details) out.push(`${res.name}: ${d}`);
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(`files: ${r.dir} (schedule.json, history.jsonl, verdict.json, n*.log, store-n*/)`);
  return out;
}
