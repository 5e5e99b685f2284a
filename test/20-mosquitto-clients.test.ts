/**
 * Interoperability with Eclipse Mosquitto's command-line clients: real `mosquitto_sub`/`mosquitto_pub`
 * processes against the built broker, for MQTT 3.1.1 and 5: publish/subscribe at each QoS, retained
 * messages, the will on an abnormal disconnect, and `$share` groups.
 *
 * `mosquitto_sub` runs with `-d`, so readiness is seen on its debug output ("received SUBACK") rather than
 * guessed, and with `-F` so each message arrives as one parseable line.
 *
 * The clients connect through a StrictRelay, a loopback relay to the broker, so everything the broker sends them
 * also goes through the strict checker, as for the in-process clients.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { StrictRelay } from './helpers/strict/relay.js';

/** Output format for received messages: a marker, then topic, QoS, retain flag and payload. */
const FORMAT = 'MSG %t %q %r %p';

/** One message line printed by mosquitto_sub with {@link FORMAT}. */
interface SubMessage {
  topic: string;
  qos: number;
  retain: boolean;
  payload: string;
}

/** A mosquitto_sub or mosquitto_pub child process with its output split into lines ('line' events). */
class ClientProcess extends EventEmitter {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  /** Resolves with the exit code once the process has exited and its output is fully read ('close'). */
  readonly exited: Promise<number | null>;
  /** True once 'close' was seen: no more output will come. */
  closed = false;
  private stderr = '';

  constructor(cmd: string, args: readonly string[], stdin?: string) {
    super();
    this.proc = spawn(cmd, args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (stdin !== undefined) this.proc.stdin!.end(stdin);
    let buf = '';
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        this.emit('line', line);
      }
    });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (chunk: string) => { this.stderr += chunk; });
    // 'exit' can come before the last output is read; 'close' comes after stdout and stderr have ended.
    this.exited = new Promise((res) => this.proc.once('close', (code) => {
      this.closed = true;
      res(code);
      this.emit('line', '');
    }));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  /** Resolves with the first output line matching `re` (already printed or to come). */
  async waitForLine(re: RegExp, timeoutMs = 5000): Promise<string> {
    await waitUntil(() => this.lines.some((l) => re.test(l)) || this.closed, [this], timeoutMs, () => `${String(re)} not printed; ${this.describe()}`);
    const line = this.lines.find((l) => re.test(l));
    if (line === undefined) throw new Error(`exited before printing ${String(re)}; ${this.describe()}`);
    return line;
  }

  /** Resolves with the exit code; fails if the process is still running after `timeoutMs`. */
  async exit(timeoutMs = 10000): Promise<number | null> {
    await waitUntil(() => this.closed, [this], timeoutMs, () => `still running; ${this.describe()}`);
    return this.exited;
  }

  /** Messages printed so far. */
  messages(): SubMessage[] {
    const out: SubMessage[] = [];
    for (const line of this.lines) {
      const m = /^MSG (\S+) (\d) (\d) (.*)$/.exec(line);
      if (m) out.push({ topic: m[1]!, qos: Number(m[2]), retain: m[3] === '1', payload: m[4]! });
    }
    return out;
  }

  describe(): string {
    return `args: ${JSON.stringify(this.proc.spawnargs.slice(1))}; stdout: ${JSON.stringify(this.lines.slice(-15))}; stderr: ${JSON.stringify(this.stderr)}`;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }
}

/**
 * Resolves once `cond()` holds, re-checking it on every output line of `sources`; rejects after
 * `timeoutMs` with the message from `why`.
 */
function waitUntil(cond: () => boolean, sources: readonly ClientProcess[], timeoutMs: number, why: () => string): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!cond()) return;
      done();
      resolve();
    };
    const done = (): void => {
      clearTimeout(t);
      for (const s of sources) s.off('line', check);
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms: ${why()}`));
    }, timeoutMs);
    for (const s of sources) s.on('line', check);
  });
}

/** Every client process still running, killed when the suite ends. */
const running = new Set<ClientProcess>();

let broker: RunningBroker;
/** What the clients connect to: the broker, through the checker. */
let relay: StrictRelay;
let seq = 0;

/** A topic no other test uses. */
function uniqueTopic(name: string): string {
  seq += 1;
  return `mosq/${process.pid}/${seq}/${name}`;
}

function base(version: string, id: string): string[] {
  return ['-h', '127.0.0.1', '-p', String(relay.port), '-V', version, '-i', id];
}

/** Starts mosquitto_sub with `-d` and waits for its SUBACK. */
async function sub(version: string, id: string, topic: string, qos: number, extra: readonly string[] = []): Promise<ClientProcess> {
  // mosquitto_sub block-buffers its debug lines when stdout is a pipe; stdbuf makes them line-buffered.
  const p = new ClientProcess('stdbuf', ['-oL', 'mosquitto_sub', ...base(version, id), '-d', '-F', FORMAT, '-q', String(qos), '-t', topic, ...extra]);
  await p.waitForLine(/received SUBACK/i);
  return p;
}

/** Runs mosquitto_pub to completion (with `-d`) and asserts it exited 0; returns its output. */
async function pub(version: string, id: string, args: readonly string[], stdin?: string): Promise<ClientProcess> {
  const p = new ClientProcess('mosquitto_pub', [...base(version, id), '-d', ...args], stdin);
  assert.equal(await p.exit(), 0, `mosquitto_pub failed; ${p.describe()}`);
  return p;
}

before(async () => {
  broker = await startBroker();
  relay = await StrictRelay.start(broker.port);
});

after(async () => {
  for (const p of running) p.kill('SIGKILL');
  await relay?.close();
  await broker?.stop();
});

for (const version of ['mqttv311', 'mqttv5']) {
  describe(`mosquitto clients, ${version}`, () => {
    for (const qos of [0, 1, 2]) {
      test(`publish and subscribe at QoS ${qos}`, async () => {
        const topic = uniqueTopic(`qos${qos}`);
        const s = await sub(version, `sub-q${qos}-${version}`, topic, qos, ['-C', '1', '-W', '10']);
        const p = await pub(version, `pub-q${qos}-${version}`, ['-q', String(qos), '-t', topic, '-m', `hello-q${qos}`]);
        // The publisher saw the whole acknowledgement flow for its QoS.
        if (qos === 1) await p.waitForLine(/received PUBACK/i, 1);
        if (qos === 2) {
          await p.waitForLine(/received PUBREC/i, 1);
          await p.waitForLine(/received PUBCOMP/i, 1);
        }
        assert.equal(await s.exit(), 0, s.describe());
        assert.deepEqual(s.messages(), [{ topic, qos, retain: false, payload: `hello-q${qos}` }]);
        if (qos === 2) await s.waitForLine(/received PUBREL/i, 1);
      });
    }

    test('a subscription at QoS 0 downgrades a QoS 2 publish', async () => {
      const topic = uniqueTopic('downgrade');
      const s = await sub(version, `sub-down-${version}`, topic, 0, ['-C', '1', '-W', '10']);
      await pub(version, `pub-down-${version}`, ['-q', '2', '-t', topic, '-m', 'down']);
      assert.equal(await s.exit(), 0, s.describe());
      assert.deepEqual(s.messages(), [{ topic, qos: 0, retain: false, payload: 'down' }]);
    });

    test('retained message is delivered to a later subscriber, and cleared by an empty retained publish', async () => {
      const topic = uniqueTopic('retained');
      await pub(version, `pub-ret-${version}`, ['-q', '1', '-r', '-t', topic, '-m', 'kept']);
      const s = await sub(version, `sub-ret-${version}`, topic, 1, ['-C', '1', '-W', '10']);
      assert.equal(await s.exit(), 0, s.describe());
      assert.deepEqual(s.messages(), [{ topic, qos: 1, retain: true, payload: 'kept' }]);

      // A live subscriber gets a retained publish with the retain flag cleared [MQTT-3.3.1-9].
      const live = await sub(version, `sub-ret-live-${version}`, topic, 1, ['-C', '2', '-W', '10']);
      await pub(version, `pub-ret2-${version}`, ['-q', '1', '-r', '-t', topic, '-m', 'kept2']);
      assert.equal(await live.exit(), 0, live.describe());
      assert.deepEqual(live.messages(), [
        { topic, qos: 1, retain: true, payload: 'kept' },
        { topic, qos: 1, retain: false, payload: 'kept2' },
      ]);

      await pub(version, `pub-ret-clear-${version}`, ['-q', '1', '-r', '-n', '-t', topic]);
      // Proving an absence: a new subscriber waits one second and must get nothing.
      const after = await sub(version, `sub-ret-after-${version}`, topic, 1, ['-C', '1', '-W', '1']);
      await after.exit();
      assert.deepEqual(after.messages(), [], after.describe());
    });

    test('will is published when the client is killed, not when it disconnects cleanly', async () => {
      const willTopic = uniqueTopic('will');
      const watcher = await sub(version, `will-watch-${version}`, willTopic, 1, ['-C', '1', '-W', '10']);

      // Clean disconnect: mosquitto_sub -C 1 exits after one message with DISCONNECT, so no will.
      const politeTopic = uniqueTopic('polite');
      const polite = await sub(version, `will-polite-${version}`, politeTopic, 0, [
        '--will-topic', willTopic, '--will-payload', 'polite-gone', '--will-qos', '1', '-C', '1', '-W', '10',
      ]);
      await pub(version, `will-poke-${version}`, ['-t', politeTopic, '-m', 'x']);
      assert.equal(await polite.exit(), 0, polite.describe());

      const victim = await sub(version, `will-victim-${version}`, uniqueTopic('victim'), 0, [
        '--will-topic', willTopic, '--will-payload', 'victim-gone', '--will-qos', '1',
      ]);
      victim.kill('SIGKILL');
      assert.equal(await watcher.exit(), 0, watcher.describe());
      assert.deepEqual(watcher.messages(), [{ topic: willTopic, qos: 1, retain: false, payload: 'victim-gone' }]);
    });

    test('$share/g/t: each message goes to exactly one member of the group; a plain subscriber gets all', async () => {
      const topic = uniqueTopic('shared');
      const a = await sub(version, `share-a-${version}`, `$share/g/${topic}`, 1);
      const b = await sub(version, `share-b-${version}`, `$share/g/${topic}`, 1);
      const plain = await sub(version, `share-plain-${version}`, topic, 1);
      const payloads = Array.from({ length: 10 }, (_, i) => `m${i}`);
      // -l sends one message per stdin line and exits once every one is acknowledged.
      await pub(version, `share-pub-${version}`, ['-q', '1', '-t', topic, '-l'], payloads.join('\n') + '\n');

      await waitUntil(() => plain.messages().length >= 10, [plain], 5000, () => plain.describe());
      assert.deepEqual(plain.messages().map((m) => m.payload), payloads);
      await waitUntil(() => a.messages().length + b.messages().length >= 10, [a, b], 5000, () => `${a.describe()} / ${b.describe()}`);
      // Proving an absence: no duplicate may turn up a little later either.
      await new Promise((r) => setTimeout(r, 300));
      const got = [...a.messages(), ...b.messages()].map((m) => m.payload).sort();
      assert.deepEqual(got, [...payloads].sort(), `group members: ${a.describe()} / ${b.describe()}`);
      for (const m of [...a.messages(), ...b.messages()]) assert.equal(m.topic, topic);
      a.kill();
      b.kill();
      plain.kill();
      await Promise.all([a.exit(), b.exit(), plain.exit()]);
    });
  });
}
