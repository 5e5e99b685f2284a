/**
 * The checker (issue 17), in CI: one short seeded schedule of random faults (node SIGKILL, SIGSTOP, drains,
 * etcd killed, a node cut from etcd or from its clients) under a QoS 1/2 workload with persistent subscribers
 * hopping between three nodes on one etcd, then a heal and a quiet phase; the history is checked for lost
 * messages, QoS 2 duplicates, reordering, lost sessions, client ids connected twice, retained state that differs
 * between nodes, and nodes not ready. Any violation fails the test, naming the message and client ids.
 *
 * SEED (and the other JEPSEN_* variables, test/jepsen/env.ts) replace the fixed seed; JEPSEN_RANDOM=1 adds a run
 * with a random seed. `npm run jepsen` runs many seeds, longer, on a 3-member etcd.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import { scheduleFromEnv } from './env.js';
import { reliabilityLines, runSchedule, violationLines } from './run.js';
import { DEFAULT_PARAMS, makeSchedule, type RunParams } from './schedule.js';

/** The CI run: short, three nodes, one etcd member, every fault kind. */
const CI: RunParams = { ...DEFAULT_PARAMS, seed: 17, durationS: 50 };

const fixed = scheduleFromEnv(process.env, CI);
const schedules = [fixed];
if (process.env['JEPSEN_RANDOM'] === '1') schedules.push(makeSchedule({ ...fixed.params, seed: randomInt(1, 2 ** 31 - 1) }));

for (const schedule of schedules) {
  const p = schedule.params;
  test(`checker, seed ${p.seed}: ${p.durationS} s of random faults on ${p.nodes} nodes and ${p.etcdMembers} etcd member(s) break no invariant`, { timeout: (p.durationS + 240) * 1000 }, async () => {
    const r = await runSchedule(schedule, (line) => console.log(line), process.env['JEPSEN_OUT'] || undefined);
    for (const line of reliabilityLines(r)) console.log(line);
    const broken = r.verdict.results.filter((x) => x.violations > 0);
    for (const line of violationLines(r)) console.log(line);
    assert.deepEqual(broken.map((x) => `${x.name}: ${x.violations}`), [],
      `seed ${p.seed} broke invariants (replay: SEED=${p.seed}, or JEPSEN_SCHEDULE=${r.dir}/schedule.json):\n${violationLines(r).join('\n')}`);
  });
}
