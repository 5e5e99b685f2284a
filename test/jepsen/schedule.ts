/**
 * The fault schedule of one checker run, drawn from a seed: what breaks when, for how long, and when the
 * persistent subscribers hop or are taken over. Pure: the same parameters give the same schedule, which can be
 * printed, saved as JSON and loaded again to replay a run.
 */
import { Prng } from './prng.js';

/** The faults the nemesis knows. */
export const FAULT_KINDS = ['kill', 'pause', 'drain', 'etcd-kill', 'etcd-cut', 'client-cut'] as const;
/** One kind of fault: SIGKILL + restart, SIGSTOP/SIGCONT, SIGTERM drain + restart, etcd members SIGKILLed, a node cut from etcd, a node cut from its clients. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a run is made of; `seed` decides everything else the schedule holds. */
export interface RunParams {
  readonly seed: number;
  /** Seconds of workload under faults (the heal and quiet phases come after). */
  readonly durationS: number;
  /** smq nodes, 3 to 5. */
  readonly nodes: number;
  /** etcd members: 1 or 3. */
  readonly etcdMembers: 1 | 3;
  /** Relative weight of each fault kind (0: never). */
  readonly mix: Readonly<Record<FaultKind, number>>;
  /** Faults active at once, at most. */
  readonly maxConcurrent: number;
  /** The nodes' etcd lease, seconds: faults longer than it make nodes leave the member list. */
  readonly leaseTtl: number;
  /** Messages per second of each data publisher. */
  readonly rate: number;
  /** Persistent data subscribers (they hop and are taken over). */
  readonly subscribers: number;
}

/** One fault: injected at `at` ms after the workload starts, healed `holdMs` later. */
export interface FaultStep {
  readonly at: number;
  readonly kind: FaultKind;
  /** Node ids (every kind but etcd-kill). */
  readonly nodes: readonly string[];
  /** etcd member indexes (etcd-kill). */
  readonly members: readonly number[];
  readonly holdMs: number;
}

/** A persistent subscriber leaving its node for another: a clean hop (DISCONNECT, reconnect) or a takeover (a second connection with its id). */
export interface MoveStep {
  readonly at: number;
  readonly kind: 'hop' | 'takeover';
  readonly client: string;
  readonly node: string;
}

/** Everything a run does on purpose. */
export interface Schedule {
  readonly params: RunParams;
  readonly faults: readonly FaultStep[];
  readonly moves: readonly MoveStep[];
}

/** The defaults of a run by hand; the CI test uses them with a short duration. */
export const DEFAULT_PARAMS: RunParams = {
  seed: 1, durationS: 60, nodes: 3, etcdMembers: 1,
  mix: { kill: 1, pause: 1, drain: 1, 'etcd-kill': 1, 'etcd-cut': 1, 'client-cut': 1 },
  maxConcurrent: 2, leaseTtl: 3, rate: 30, subscribers: 3,
};

/** Node ids of a run: n1 .. nN. */
export function nodeIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `n${i + 1}`);
}

/** How long each kind is held, ms (drawn uniformly): some shorter than a lease, some longer. */
const HOLD: Record<FaultKind, [number, number]> = {
  kill: [500, 6000], pause: [1000, 8000], drain: [500, 4000], 'etcd-kill': [1000, 8000], 'etcd-cut': [1000, 8000], 'client-cut': [1000, 6000],
};
/** What a restart adds to a kill or drain in the plan (the executor waits for the real one). */
const RESTART_MS = 3000;

/** Faults that take the node process away: one at a time per node. */
function onProcess(kind: FaultKind): boolean {
  return kind === 'kill' || kind === 'pause' || kind === 'drain';
}

/** The interval a fault occupies in the plan. */
function span(f: FaultStep): [number, number] {
  return [f.at, f.at + f.holdMs + (f.kind === 'kill' || f.kind === 'drain' ? RESTART_MS : 0)];
}

function overlaps(a: FaultStep, b: FaultStep): boolean {
  const [a0, a1] = span(a);
  const [b0, b1] = span(b);
  return a0 < b1 && b0 < a1;
}

/** Whether two faults may not overlap: same node and both on its process, the same cut of the same node, or two etcd kills. */
function exclusive(a: FaultStep, b: FaultStep): boolean {
  if (a.kind === 'etcd-kill' || b.kind === 'etcd-kill') return a.kind === b.kind;
  if (!a.nodes.some((n) => b.nodes.includes(n))) return false;
  return (onProcess(a.kind) && onProcess(b.kind)) || a.kind === b.kind;
}

/** Draws the schedule of `params`. */
export function makeSchedule(params: RunParams): Schedule {
  const rnd = new Prng(params.seed);
  const ids = nodeIds(params.nodes);
  const endMs = params.durationS * 1000;
  const faults: FaultStep[] = [];
  // Faults start after 2 s of clean workload and stop being drawn 3 s before the heal.
  for (let t = 2000 + rnd.int(0, 2000); t < endMs - 3000; t += rnd.int(500, 4000)) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const kind = rnd.weighted(params.mix);
      const [lo, hi] = HOLD[kind];
      const holdMs = Math.min(rnd.int(lo, hi), endMs - t);
      let members: number[] = [];
      if (kind === 'etcd-kill') {
        // A 3-member cluster loses one member (it keeps quorum) twice as often as a majority (it does not).
        members = params.etcdMembers === 1 ? [0] : rnd.sample([0, 1, 2], rnd.next() < 2 / 3 ? 1 : 2).sort();
      }
      const step: FaultStep = { at: t, kind, nodes: kind === 'etcd-kill' ? [] : [rnd.pick(ids)], members, holdMs };
      const active = faults.filter((f) => overlaps(f, step));
      if (active.length >= params.maxConcurrent || active.some((f) => exclusive(f, step))) continue;
      faults.push(step);
      break;
    }
  }
  // A separate stream for the moves, so changing the fault mix does not move the hops.
  const mrnd = new Prng(params.seed * 7919 + 17);
  const moves: MoveStep[] = [];
  for (let s = 1; s <= params.subscribers; s++) {
    const client = `s${s}`;
    let at = 1000 + mrnd.int(1000, 8000);
    let node = ids[(s - 1) % ids.length] as string;
    while (at < endMs - 2000) {
      node = mrnd.pick(ids.filter((n) => n !== node));
      moves.push({ at, kind: mrnd.next() < 0.7 ? 'hop' : 'takeover', client, node });
      at += mrnd.int(3000, 10000);
    }
  }
  moves.sort((a, b) => a.at - b.at || a.client.localeCompare(b.client));
  return { params, faults, moves };
}

/** One line per step, for the test output: `+12.3s kill n2 for 3.1s`. */
export function describeSchedule(s: Schedule): string {
  const p = s.params;
  const sec = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
  const mix = FAULT_KINDS.filter((k) => p.mix[k] > 0).map((k) => `${k}:${p.mix[k]}`).join(',');
  const lines = [`seed ${p.seed}: ${p.nodes} nodes, etcd ${p.etcdMembers} member(s), ${p.durationS} s, lease ${p.leaseTtl} s, mix ${mix}, at most ${p.maxConcurrent} at once, ${p.rate} msgs/s per publisher`];
  for (const f of s.faults) {
    const target = f.kind === 'etcd-kill' ? `etcd member(s) ${f.members.join('+')}` : f.nodes.join(',');
    lines.push(`  +${sec(f.at)} ${f.kind} ${target} for ${sec(f.holdMs)}`);
  }
  lines.push(`  moves: ${s.moves.map((m) => `+${sec(m.at)} ${m.kind} ${m.client}->${m.node}`).join(', ')}`);
  return lines.join('\n');
}

/** Reads a schedule saved as JSON (by a run's schedule.json), checking its shape enough to replay it. */
export function parseSchedule(text: string): Schedule {
  const s = JSON.parse(text) as Schedule;
  if (typeof s !== 'object' || s === null || typeof s.params?.seed !== 'number' || !Array.isArray(s.faults) || !Array.isArray(s.moves)) {
    throw new Error('not a schedule: expected {params: {seed, ...}, faults: [...], moves: [...]}');
  }
  for (const f of s.faults) {
    if (!FAULT_KINDS.includes(f.kind)) throw new Error(`unknown fault kind ${String(f.kind)}`);
  }
  return s;
}

/** A fault mix from `kill,pause` (weight 1 each) or `kill:2,etcd-kill:1`; kinds not named get 0. */
export function parseMix(text: string): Record<FaultKind, number> {
  const mix = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const [name, weight] = part.split(':');
    if (!FAULT_KINDS.includes(name as FaultKind)) throw new Error(`unknown fault kind "${name}" (known: ${FAULT_KINDS.join(', ')})`);
    const w = weight === undefined ? 1 : Number(weight);
    if (!Number.isFinite(w) || w < 0) throw new Error(`bad weight for ${name}: ${weight}`);
    mix[name as FaultKind] = w;
  }
  return mix;
}
