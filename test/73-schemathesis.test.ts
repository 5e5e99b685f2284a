/**
 * 73 schemathesis: the HTTP API against its own OpenAPI document. schemathesis 4 (PyPI; scripts/provision.sh
 * installs it) generates requests from /api/v1/openapi.json, valid and invalid, runs every check it has (no
 * server error, documented status codes and content types, responses that fit their schemas, invalid input
 * refused and valid input taken, 405 for other methods, the token enforced, deleted things gone), and links
 * calls together (a listed client is read, then kicked). Two MQTT clients and retained messages give the
 * endpoints something to show.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { ROOT, startBroker, type RunningBroker, httpBase } from './helpers/broker.js';
import { runToEnd } from './helpers/process.js';
import { connectMqtt } from './helpers/mqtt.js';

const TOKEN = 'schemathesis-t0ken';
// hypothesis and schemathesis keep their databases and reports in the working directory: not the repo.
const workDir = mkdtempSync(join(tmpdir(), 'smq-schemathesis-'));
let broker: RunningBroker;
let base: string;
const clients: MqttClient[] = [];

async function mqttClient(options: IClientOptions): Promise<MqttClient> {
  return connectMqtt(broker.port, options, clients);
}

before(async () => {
  broker = await startBroker({ config: { http: { enable: true, host: '127.0.0.1', port: 0, tokens: [TOKEN] } } });
  base = await httpBase(broker);
  // A v5 subscriber with a persistent session, and a v3.1.1 publisher that leaves retained messages.
  const sub = await mqttClient({ clientId: 'st-subscriber', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } });
  await sub.subscribeAsync(['sensors/#', 'cmd/+/set'], { qos: 1 });
  const pub = await mqttClient({ clientId: 'st-publisher', protocolVersion: 4, username: 'probe' });
  const seen = new Promise<void>((resolve) => sub.on('message', (topic) => { if (topic === 'sensors/a/b') resolve(); }));
  await pub.publishAsync('sensors/t1', '21.5', { qos: 1, retain: true });
  await pub.publishAsync('sensors/a/b', Buffer.from([0, 1, 2, 255]), { qos: 1, retain: true });
  await seen;
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

test('schemathesis (every check, all phases) finds no server error and no answer outside the OpenAPI document', async () => {
  const version = await runToEnd('python3', ['-m', 'schemathesis.cli', '--version']).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
  assert.equal(version.code, 0, `schemathesis is not importable by python3 (run scripts/provision.sh): ${version.stderr}`);
  assert.match(version.stdout, /version 4\./);

  const run = await runToEnd('python3', [
    '-m', 'schemathesis.cli', '--no-color',
    // Every check on, and one exception for one operation, with its reason: see the file.
    '--config-file', join(ROOT, 'test', 'fixtures', 'schemathesis.toml'),
    'run', `${base}/api/v1/openapi.json`,
    '--header', `x-token: ${TOKEN}`,
    '--max-examples', '25',
    '--seed', '73',
    '--workers', '1',
    // A health check on how fast hypothesis itself generates data, which a busy 2-core machine can trip; it
    // says nothing about the API.
    '--suppress-health-check', 'too_slow',
  ], {
    cwd: workDir,
    timeoutMs: 110_000,
  });
  // Long generated bodies make lines of many kilobytes: keep each line short in the failure message.
  const shown = run.stdout.split('\n').map((l) => (l.length > 400 ? `${l.slice(0, 400)}...` : l)).join('\n');
  assert.equal(run.code, 0, `schemathesis exit ${run.code}\n${shown.slice(-12_000)}\n${run.stderr.slice(-2000)}`);
  // Every operation of the document was run, and the run was not vacuous.
  const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item).filter((k) => k !== 'parameters')).length;
  assert.match(run.stdout, new RegExp(`Tested: ${operations}\\b`), 'every operation was tested');
  const generated = Number(/(\d+) generated, \1 passed/.exec(run.stdout)?.[1] ?? 0);
  assert.ok(generated >= 20 * operations, `${generated} test cases`);
  // A 500 is logged by the broker whether or not schemathesis noticed it.
  assert.deepEqual(broker.logs.filter((r) => r['msg'] === 'http request failed'), []);
});
