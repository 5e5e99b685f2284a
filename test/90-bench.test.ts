/**
 * 90 bench: a smoke run of the broker comparison (`bench/run.mjs`): one quick round of fan-in QoS 0 and of
 * latency at 1,000 msgs/s against smq, Mosquitto and Aedes. It checks that the harness starts and stops all
 * three, that the load generator delivers, and that the table and the JSON come out; it says nothing about
 * the figures themselves (other tests run beside it on the same cores).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT } from './helpers/broker.js';
import { runToEnd } from './helpers/process.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';

interface Cell { median: number | null; rounds: { value: number | null; error?: string }[] }
interface Row { id: string; brokers: Record<string, Cell> }

describe('bench/run.mjs', { skip: AGAINST_MOSQUITTO && 'compares smq with Mosquitto itself' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-bench-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a quick run measures fan-in and latency on all three brokers', { timeout: 150000 }, async () => {
    const out = join(dir, 'results.json');
    const run = await runToEnd(process.execPath, ['bench/run.mjs', '--quick', '--only', 'fanin-qos0,latency-1k', '--out', out], {
      cwd: ROOT,
      timeoutMs: 120000,
    });
    assert.equal(run.code, 0, `run.mjs failed; stderr: ${run.stderr}`);
    assert.match(run.stdout, /\| scenario \| unit \| smq \| mosquitto \| aedes \| smq\/mosquitto \| smq\/aedes \|/);

    const result = JSON.parse(readFileSync(out, 'utf8')) as { rows: Row[]; machine: Record<string, unknown> };
    const ids = result.rows.map((r) => r.id);
    assert.deepEqual(ids.sort(), ['fanin-qos0', 'latency-1k-p50', 'latency-1k-p99', 'latency-1k-p999']);
    for (const row of result.rows) {
      for (const broker of ['smq', 'mosquitto', 'aedes']) {
        const cell = row.brokers[broker];
        assert.ok(cell, `${row.id}: no ${broker} column`);
        assert.ok(typeof cell.median === 'number' && cell.median > 0, `${row.id} ${broker}: median ${cell.median} (${JSON.stringify(cell.rounds)})`);
      }
    }
    assert.match(String(result.machine['mosquitto']), /^\d+\.\d+/);
  });
});
