/**
 * 97 fuzz (issue 10): what clients send, against the real broker path (test/fuzz/README.md says how).
 *
 *   1. Every input of every committed corpus (test/fuzz/corpus/<target>/) goes through the oracle in this
 *      process: nothing escapes as an exception, the connection answers PINGREQ or is closed, what the broker
 *      sends decodes and keeps the specification's rules (the strict checker, test/helpers/strict), and the
 *      broker forgets the client once it goes. The regress-* inputs of past findings are among them, and must
 *      stay.
 *   2. Jazzer.js fuzzes each target for SMQ_FUZZ_SECONDS (default 5) from that corpus, two targets at a time,
 *      and must find nothing.
 *
 * Long runs by hand: bash scripts/fuzz.sh [target] [seconds].
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { corpusDir, readInputs } from './fuzz/corpus.js';
import { addonPath, fuzz, summary, type RunResult } from './fuzz/jazzer/run.js';
import { replay } from './fuzz/replay.js';
import { TARGETS } from './fuzz/targets.js';

const SECONDS = Number(process.env['SMQ_FUZZ_SECONDS'] ?? 5);

/** Inputs that once broke a rule, by target: what they did, and what fixed it. */
const REGRESSIONS: Record<string, Record<string, string>> = {
  connect: {
    'regress-second-connect-unsupported-level':
      'a v5 CONNECT, then a CONNECT at level 2 in the same read: mqtt-packet threw out of the data event and ended the process (fixed: only a first CONNECT gets the 3.1.1 CONNACK 0x01)',
    'regress-ack-without-packet-id-v5':
      'PUBREL with Remaining Length 0: read as packet id -1, answered with a truncated PUBCOMP (fixed: malformed, DISCONNECT 0x81)',
    'regress-ack-without-packet-id-v4': 'PUBREC with Remaining Length 0 at 3.1.1: answered PUBREL for id 65535 (fixed: malformed, closed)',
    'regress-property-list-overrun':
      'an UNSUBSCRIBE whose User Property ran past its 3-byte property list: read anyway, answered with 2 codes for 3 filters (issue 16; fixed: the raw property check, 0x81)',
    'regress-oracle-connect-then-garbage':
      'a v5 CONNECT, then bytes no one can frame: the strict oracle dropped the CONNECT with the rest and judged the v5 CONNACK as 3.1.1 (fixed in the oracle)',
  },
  properties: {
    'regress-connack-over-maximum-packet-size':
      'a v5 CONNECT with Maximum Packet Size 8: answered with a CONNACK of 19 bytes (found by Jazzer.js in CI; fixed: optional CONNACK properties go until it fits, a client that allows less than any CONNACK is closed)',
  },
  publish: {
    'regress-pubrec-without-packet-id': 'PUBREC with Remaining Length 0 at v5: answered with a truncated PUBREL (fixed: malformed)',
    'regress-forwarded-repeated-receive-maximum':
      'a PUBLISH with Receive Maximum, repeated: acknowledged and forwarded as it was, malformed for every subscriber (issue 16; fixed: 0x81 before decoding)',
    'regress-forwarded-maximum-qos': 'a PUBLISH whose property list overran into a forwarded Maximum QoS 0x71 (issue 16; fixed: 0x81)',
    'regress-forwarded-nul-in-user-property': 'U+0000 in a User Property and other strings, forwarded (issue 16; fixed: 0x81)',
  },
  websocket: {
    'regress-client-closes':
      'a WebSocket client that closes stayed connected for ever with keep-alive 0 (fixed: the listener closes the stream when ws ends it)',
  },
};

after(async () => {
  for (const t of TARGETS.values()) await t.close();
});

describe('the committed corpus replays through the oracle', () => {
  for (const t of TARGETS.values()) {
    test(t.name, { timeout: 60_000 }, async (ctx) => {
      const inputs = readInputs(corpusDir(t.name));
      assert.ok(inputs.length > 0, `test/fuzz/corpus/${t.name} is empty`);
      for (const name of Object.keys(REGRESSIONS[t.name] ?? {})) {
        assert.ok(inputs.some((i) => i.name === name), `regression input test/fuzz/corpus/${t.name}/${name} is missing`);
      }
      const r = await replay(t, inputs);
      ctx.diagnostic(`${t.name}: ${r.inputs} inputs (${r.answers.pingresp} answered PINGRESP, ${r.answers.closed} closed)`);
      assert.deepEqual(r.findings, [], `inputs that broke a rule:\n${r.findings.map((f) => `${f.name}: ${f.error}`).join('\n')}`);
    });
  }
});

test('the inputs of past findings say what they were', () => {
  for (const [target, inputs] of Object.entries(REGRESSIONS)) {
    assert.ok(TARGETS.has(target), target);
    for (const name of Object.keys(inputs)) assert.ok(existsSync(join(corpusDir(target), name)), `${target}/${name}`);
  }
});

describe(`Jazzer.js finds nothing in ${SECONDS} s per target`, { concurrency: 2, timeout: 120_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'smq-fuzz-'));
  let addon: string | null = null;
  after(() => rmSync(work, { recursive: true, force: true }));
  for (const t of TARGETS.values()) {
    test(t.name, async (ctx) => {
      addon ??= addonPath(); // builds the loadable copy on first use (test/fuzz/jazzer/build.sh)
      const r: RunResult = await fuzz(t.name, SECONDS, join(work, t.name), { addon, artifacts: join(work, 'findings', t.name) });
      ctx.diagnostic(summary(r));
      assert.equal(r.code, 0, `Jazzer.js on ${t.name} ended with ${r.code}:\n${r.output.split('\n').filter((l) => !l.startsWith('INFO: Loaded')).slice(-60).join('\n')}`);
      assert.ok(r.execs > 0, `no input ran:\n${r.output.slice(-4000)}`);
      assert.ok(r.cov > 0, 'no coverage reported: the instrumentation did not reach the broker');
    });
  }
});
