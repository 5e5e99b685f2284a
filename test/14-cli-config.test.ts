/**
 * The `smq` command line and configuration as the seed documents them: `-v`, `-h`, `-c <file>`; errors that
 * name the file, the key and what was expected; embedded defaults that listen on loopback only; `SMQ_*`
 * environment overrides; and the seed's sample YAML loading as is.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { runToEnd } from './helpers/process.js';
import { BIN, ROOT, freePort, startBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * The sample configuration from the seed README, key for key (the comments translated). Only what a test
 * machine needs differs, in {@link sampleForTest}.
 */
const SEED_SAMPLE = `
cluster: smq                 # cluster name
broker: f7637a07-a081-42d0-bd56-6643b4ee522b   # node id
name: windows                # node name
worker: 4096                 # worker pool size
host: 0.0.0.0                # listen address
port: 1883                   # listen port
tls:                         # TLS settings
  enable: false
  verify: false              # verify client certificates (mutual TLS)
  cert: ssl/server/cert.pem
  key: ssl/server/key.pem
etcd:                        # etcd servers (clustering)
  endpoints:
    - 127.0.0.1:2379
http:                        # HTTP API service
  enable: true
  host: 0.0.0.0
  port: 8888
bridge:                      # bridge settings
  enable: false
  type: kafka
  kafka:
    addr:
      - 127.0.0.1:9092
notify:                      # notification settings
  enable: false
  type: grpc                 # grpc or http
  server: 127.0.0.1:9999
auth:                        # whether anonymous clients may connect (enable: true = authentication required)
  enable: false
acl:                         # whether access control is on
  enable: false
log:                         # log level
  level: info
`;

/** The sample with the ports made free for a test run. */
function sampleForTest(): Record<string, unknown> {
  const sample = parse(SEED_SAMPLE) as Record<string, unknown> & { http: Record<string, unknown> };
  sample['port'] = 0;
  sample.http['port'] = 0;
  // Configured etcd endpoints turn clustering on, and no etcd runs here: the standalone node is what this
  // test loads. (Clustering has its own tests.)
  delete sample['etcd'];
  return sample;
}

/** What one run of `smq` printed and how it ended. */
interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node bin/smq.js ...args` to completion. A run that has not exited after `timeoutMs` is killed and
 * reported as such (a broker that started instead of refusing its configuration, say).
 */
function runSmq(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 10000): Promise<Run> {
  return runToEnd(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeoutMs });
}

/** Writes `text` as a config file in a fresh directory. */
function configFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'smq-cli-')), 'smq.yaml');
  writeFileSync(file, text);
  return file;
}

/** Asserts a run failed with a non-zero exit code, showing its output otherwise. */
function assertFailed(run: Run): void {
  assert.ok(run.code !== null && run.code !== 0, `expected a non-zero exit; got ${run.code} / ${run.signal}; stdout: ${run.stdout}; stderr: ${run.stderr}`);
}

describe('smq command line and configuration', { skip: AGAINST_MOSQUITTO && 'smq-specific' }, () => {
  for (const flag of ['-v', '--version']) {
    test(`${flag} prints the version from package.json and exits 0`, async () => {
      const run = await runSmq([flag]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`(^|\\D)${VERSION.replaceAll('.', '\\.')}(\\D|$)`));
    });
  }

  for (const flag of ['-h', '--help']) {
    test(`${flag} prints usage with -c, -v and -h and exits 0`, async () => {
      const run = await runSmq([flag]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /usage/i);
      for (const opt of ['-c', '--config', '-v', '--version', '-h', '--help']) {
        assert.ok(run.stdout.includes(opt), `usage does not mention ${opt}: ${run.stdout}`);
      }
    });
  }

  test('an unknown option exits non-zero and names the option', async () => {
    const run = await runSmq(['--bogus-flag']);
    assertFailed(run);
    assert.match(run.stderr + run.stdout, /--bogus-flag/);
  });

  test('-c without a file exits non-zero', async () => {
    const run = await runSmq(['-c']);
    assertFailed(run);
    assert.match(run.stderr + run.stdout, /-c|config/);
  });

  test('a wrongly typed value names the file, the key and what was expected', async () => {
    const file = configFile('port: abc\n');
    const run = await runSmq(['-c', file]);
    assertFailed(run);
    const out = run.stderr + run.stdout;
    assert.ok(out.includes(file), `the file is not named: ${out}`);
    assert.match(out, /\bport\b/);
    assert.match(out, /integer|number/i, `what was expected is not said: ${out}`);
    assert.match(out, /abc/, `the bad value is not shown: ${out}`);
  });

  test('a nested wrongly typed value names its dotted key', async () => {
    const file = configFile('mqtt:\n  max_inflight: lots\n');
    const run = await runSmq(['-c', file]);
    assertFailed(run);
    const out = run.stderr + run.stdout;
    assert.ok(out.includes(file), out);
    assert.match(out, /max_inflight/);
  });

  test('an unknown key is refused with a suggestion', async () => {
    const file = configFile('port: 0\nsys_intervall: 5\n');
    const run = await runSmq(['-c', file]);
    assertFailed(run);
    const out = run.stderr + run.stdout;
    assert.ok(out.includes(file), out);
    assert.match(out, /sys_intervall/, `the unknown key is not named: ${out}`);
    assert.match(out, /sys_interval(?!l)/, `no suggestion: ${out}`);
  });

  test('a missing config file is named', async () => {
    const file = join(tmpdir(), `smq-no-such-dir-${process.pid}`, 'missing.yaml');
    const run = await runSmq(['-c', file]);
    assertFailed(run);
    assert.ok((run.stderr + run.stdout).includes(file), run.stderr + run.stdout);
  });

  test('a bad environment override names the variable', async () => {
    const run = await runSmq([], { SMQ_PORT: 'abc', SMQ_WS_PORT: '0', SMQ_HTTP_PORT: '0' });
    assertFailed(run);
    assert.match(run.stderr + run.stdout, /SMQ_PORT/);
  });

  test('without a config file the broker listens on 127.0.0.1 only, and says so', async () => {
    // Port 0 everywhere so the defaults (1883, 8083, 8888) need not be free on this machine.
    const broker = await startBroker({ noConfigFile: true, env: { SMQ_PORT: '0', SMQ_WS_PORT: '0', SMQ_HTTP_PORT: '0' } });
    try {
      const ready = broker.logs.find((r) => r['msg'] === 'broker ready');
      const listeners = (ready?.['listeners'] ?? []) as { transport: string; host: string; port: number }[];
      assert.ok(listeners.length > 0, JSON.stringify(ready));
      for (const l of listeners) assert.equal(l.host, '127.0.0.1', `listener ${JSON.stringify(l)}`);
      assert.ok(listeners.some((l) => l.transport === 'ws'), 'WebSocket is on by default');
      assert.ok(
        broker.logs.some((r) => r['msg'] !== 'broker ready' && /loopback|127\.0\.0\.1/i.test(String(r['msg']))),
        `no log line says the broker listens on loopback only: ${JSON.stringify(broker.logs)}`,
      );
      const { client, connack } = await RawClient.connected(broker.port, 4);
      assert.equal(connack.returnCode, 0);
      client.destroy();
      assert.equal(await broker.stop(), 0);
    } finally {
      await broker.stop('SIGKILL');
    }
  });

  test('SMQ_PORT overrides the port in the file', async () => {
    const port = await freePort();
    const broker = await startBroker({ config: { port: 0 }, env: { SMQ_PORT: String(port) } });
    try {
      assert.equal(broker.port, port);
      const { client, connack } = await RawClient.connected(port, 5);
      assert.equal(connack.reasonCode ?? 0, 0);
      client.destroy();
    } finally {
      await broker.stop();
    }
  });

  test("the seed's sample configuration loads", async () => {
    const broker = await startBroker({ config: sampleForTest() });
    try {
      const ready = broker.logs.find((r) => r['msg'] === 'broker ready');
      assert.equal(ready?.['cluster'], 'smq');
      assert.equal(ready?.['name'], 'windows');
      const sub = await RawClient.connected(broker.port, 4);
      const pub = await RawClient.connected(broker.port, 4);
      sub.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sample/t', qos: 1 }] });
      await sub.client.next('suback');
      pub.client.send({ cmd: 'publish', topic: 'sample/t', payload: Buffer.from('hi'), qos: 1, messageId: 2, retain: false, dup: false });
      await pub.client.next('puback');
      const msg = await sub.client.next('publish');
      assert.equal(msg.cmd === 'publish' && msg.payload.toString(), 'hi');
      sub.client.destroy();
      pub.client.destroy();
    } finally {
      await broker.stop();
    }
  });
});
