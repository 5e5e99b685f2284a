/**
 * Interoperability with Eclipse Paho: runs test/fixtures/paho_client.py (paho-mqtt 2.x) against the built
 * broker for MQTT 3.1.1 and 5 and checks the events it prints, one JSON object per line. The script connects
 * through a StrictRelay (a loopback relay to the broker), so what the broker sends it goes through the strict
 * checker too.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, startBroker, type RunningBroker } from './helpers/broker.js';
import { runToEnd } from './helpers/process.js';
import { StrictRelay } from './helpers/strict/relay.js';

const SCRIPT = join(ROOT, 'test', 'fixtures', 'paho_client.py');

/** One line printed by the fixture. */
interface PahoEvent {
  event: string;
  client?: string;
  topic?: string;
  payload?: string;
  qos?: number;
  retain?: boolean;
  session_present?: boolean;
  rc?: number;
  granted?: number[];
  user_properties?: [string, string][];
  content_type?: string;
  response_topic?: string;
  correlation_data?: string;
  error?: string;
}

/** What one run of the fixture printed, and how it ended. */
interface PahoRun {
  code: number | null;
  events: PahoEvent[];
  stderr: string;
}

let broker: RunningBroker;
/** What the script connects to: the broker, through the checker. */
let relay: StrictRelay;
let seq = 0;

/** Runs one scenario to completion (the script bounds each of its own waits; this bounds the whole run). */
async function runPaho(protocol: 'MQTTv311' | 'MQTTv5', scenario: string, timeoutMs = 30000): Promise<PahoRun> {
  seq += 1;
  const prefix = `paho/${process.pid}/${seq}`;
  const run = await runToEnd('python3', [SCRIPT, '127.0.0.1', String(relay.port), protocol, scenario, prefix], {
    env: { PYTHONUNBUFFERED: '1' },
    timeoutMs,
  });
  const events: PahoEvent[] = [];
  for (const line of run.stdout.split('\n')) {
    if (line.trim() === '') continue;
    try {
      events.push(JSON.parse(line) as PahoEvent);
    } catch {
      throw new Error(`unparseable line from paho_client.py: ${line}; stderr: ${run.stderr}`);
    }
  }
  return { code: run.code, events, stderr: run.stderr };
}

/** Asserts the run ended with "done" and exit code 0, showing everything it printed otherwise. */
function assertDone(run: PahoRun): void {
  const shown = `events: ${JSON.stringify(run.events)}; stderr: ${run.stderr}`;
  assert.equal(run.events.at(-1)?.event, 'done', shown);
  assert.equal(run.code, 0, shown);
  for (const e of run.events) if (e.event === 'connected') assert.equal(e.rc, 0, shown);
}

function messages(run: PahoRun, client?: string): PahoEvent[] {
  return run.events.filter((e) => e.event === 'message' && (client === undefined || e.client === client));
}

before(async () => {
  broker = await startBroker();
  relay = await StrictRelay.start(broker.port);
});

after(async () => {
  await relay?.close();
  await broker?.stop();
});

for (const protocol of ['MQTTv311', 'MQTTv5'] as const) {
  describe(`paho-mqtt, ${protocol}`, () => {
    test('publish and subscribe round trip at QoS 0, 1 and 2', async () => {
      const run = await runPaho(protocol, 'qos');
      assertDone(run);
      const subs = run.events.filter((e) => e.event === 'subscribed').map((e) => e.granted);
      assert.deepEqual(subs, [[0], [1], [2]]);
      assert.deepEqual(
        messages(run).map((m) => [m.topic?.split('/').at(-1), m.payload, m.qos, m.retain]),
        [['qos0', 'paho-q0', 0, false], ['qos1', 'paho-q1', 1, false], ['qos2', 'paho-q2', 2, false]],
      );
    });

    test('retained message reaches a later subscriber, and an empty retained payload clears it', async () => {
      const run = await runPaho(protocol, 'retained');
      assertDone(run);
      const got = messages(run);
      assert.equal(got.length, 1, JSON.stringify(run.events));
      assert.equal(got[0]?.client, 'subscriber');
      assert.equal(got[0]?.payload, 'kept');
      assert.equal(got[0]?.retain, true);
      assert.equal(got[0]?.qos, 1);
      assert.ok(run.events.some((e) => e.event === 'no_message' && e.client === 'late-subscriber'));
    });

    test('persistent session receives the messages queued while it was offline', async () => {
      const run = await runPaho(protocol, 'persistent');
      assertDone(run);
      const connects = run.events.filter((e) => e.event === 'connected' && e.client === 'persistent');
      assert.deepEqual(connects.map((e) => e.session_present), [false, true], JSON.stringify(run.events));
      assert.deepEqual(
        messages(run, 'persistent').map((m) => [m.payload, m.qos]),
        [['offline-0', 1], ['offline-1', 1], ['offline-2', 1]],
      );
    });

    if (protocol === 'MQTTv5') test('user properties and publish properties round trip', async () => {
      const run = await runPaho(protocol, 'userprops');
      assertDone(run);
      const [m] = messages(run);
      assert.ok(m, JSON.stringify(run.events));
      assert.equal(m.payload, 'with-props');
      // Every pair arrives, and the values of a repeated key keep their order. [MQTT-3.3.2-18] asks for the
      // order of all pairs; mqtt-packet holds user properties in an object keyed by name, so interleaved
      // repeats come out grouped ([k1,v1],[k1,v3],[k2,v2]). Known limitation until smq has its own PUBLISH
      // codec (issue 5), recorded in README.md.
      const pairs = (m.user_properties ?? []).map((p) => p.join('='));
      assert.deepEqual([...pairs].sort(), ['k1=v1', 'k1=v3', 'k2=v2']);
      assert.deepEqual(pairs.filter((p) => p.startsWith('k1=')), ['k1=v1', 'k1=v3']);
      assert.equal(m.content_type, 'text/plain');
      assert.equal(m.correlation_data, 'corr-42');
      assert.match(m.response_topic ?? '', /\/reply$/);
    });
  });
}
