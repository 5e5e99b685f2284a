/**
 * The checker's parameters from the environment, for the CI test and `npm run jepsen`: `SEED` picks the
 * schedule, `JEPSEN_SCHEDULE=<file>` replays a saved one as it is, and the rest change what is drawn.
 */
import { readFileSync } from 'node:fs';
import { makeSchedule, parseMix, parseSchedule, type RunParams, type Schedule } from './schedule.js';

/** What each variable sets (for the usage text and RELIABILITY.md). */
export const VARIABLES: Readonly<Record<string, string>> = {
  SEED: 'the seed of the schedule (an integer)',
  JEPSEN_SCHEDULE: 'a schedule.json saved by a run: replayed as it is (the other variables are ignored)',
  JEPSEN_DURATION_S: 'seconds of workload under faults',
  JEPSEN_NODES: 'smq nodes, 3 to 5',
  JEPSEN_ETCD: 'etcd members, 1 or 3',
  JEPSEN_FAULTS: 'the fault mix: kinds with optional weights, e.g. kill,pause or kill:2,etcd-kill:1',
  JEPSEN_MAX_CONCURRENT: 'faults active at once, at most',
  JEPSEN_LEASE_TTL: 'the nodes\' etcd lease in seconds',
  JEPSEN_RATE: 'messages per second of each data publisher',
  JEPSEN_SUBSCRIBERS: 'persistent data subscribers',
};

/** An integer variable, or `fallback`; anything else is an error naming the variable. */
function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}=${v}: expected an integer from ${min} to ${max}`);
  return n;
}

/** The schedule the environment asks for, drawn over `base` where a variable is unset. */
export function scheduleFromEnv(env: NodeJS.ProcessEnv, base: RunParams): Schedule {
  const file = env['JEPSEN_SCHEDULE'];
  if (file !== undefined && file !== '') return parseSchedule(readFileSync(file, 'utf8'));
  const etcd = int(env, 'JEPSEN_ETCD', base.etcdMembers, 1, 3);
  if (etcd === 2) throw new Error('JEPSEN_ETCD=2: expected 1 or 3');
  const params: RunParams = {
    seed: int(env, 'SEED', base.seed, 0, 2 ** 31 - 1),
    durationS: int(env, 'JEPSEN_DURATION_S', base.durationS, 10, 3600),
    nodes: int(env, 'JEPSEN_NODES', base.nodes, 3, 5),
    etcdMembers: etcd as 1 | 3,
    mix: env['JEPSEN_FAULTS'] ? parseMix(env['JEPSEN_FAULTS']) : base.mix,
    maxConcurrent: int(env, 'JEPSEN_MAX_CONCURRENT', base.maxConcurrent, 1, 10),
    leaseTtl: int(env, 'JEPSEN_LEASE_TTL', base.leaseTtl, 1, 60),
    rate: int(env, 'JEPSEN_RATE', base.rate, 1, 1000),
    subscribers: int(env, 'JEPSEN_SUBSCRIBERS', base.subscribers, 1, 10),
  };
  return makeSchedule(params);
}
