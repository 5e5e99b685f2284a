/**
 * A real Apache Kafka broker in KRaft mode (one node, broker and controller in one JVM) on loopback with a
 * temporary data directory, for the Kafka bridge tests (issue 8). It can be stopped and started again on the
 * same ports and data, to test what the bridge does while Kafka is away.
 *
 * The jars come from Maven Central through scripts/kafka.sh (run by scripts/provision.sh), which caches them
 * outside the repo in `${SMQ_KAFKA_CACHE:-~/.cache/smq}/kafka-<version>/lib`; SMQ_KAFKA_HOME names another
 * kafka-<version> directory. There is no Kafka distribution and no shell script of Kafka's: the helper formats
 * the storage with `kafka.tools.StorageTool` and starts `java -cp <lib>/* kafka.Kafka server.properties` itself,
 * with a small heap, the serial collector and the client compiler only, which suit a 2-core machine.
 *
 * The JVM runs under a tiny `sh` watchdog that holds a pipe from this process: when this process dies in any
 * way (a test runner's SIGKILL included), the pipe closes and the watchdog kills the JVM, so no broker outlives
 * its test file.
 */
import { tailFile } from './process.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ROOT, reusablePort } from './broker.js';

/** A Kafka broker started by {@link startKafka}. */
export interface RunningKafka {
  /** `['127.0.0.1:<port>']`, as kafkajs' `brokers` option and `bridge.kafka.addr` take it. */
  readonly brokers: string[];
  /** The temporary directory holding server.properties, the data (data/) and the JVM's output (kafka.log). */
  readonly dir: string;
  /**
   * Stops the broker and waits for the JVM to exit: SIGKILL by default (a crash: nothing flushed or handed
   * over), or with `graceful` SIGTERM, Kafka's controlled shutdown, and SIGKILL if that takes over 20 s.
   */
  stop(options?: { graceful?: boolean }): Promise<void>;
  /** Stops it if running, then starts it again on the same ports and data, and waits until it is ready. */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  destroy(): Promise<void>;
  /** The last `lines` lines the JVM printed (all runs of it), for failure messages. */
  logTail(lines?: number): string;
}

/** Options for {@link startKafka}. */
export interface KafkaOptions {
  /** server.properties entries set over the helper's defaults. */
  properties?: Record<string, string | number | boolean>;
  /** JVM options used instead of the helper's defaults (heap, collector, JIT). */
  jvmArgs?: string[];
  /** Milliseconds each start may take before it fails with the log tail; default 90 000. */
  timeoutMs?: number;
}

const DEFAULT_JVM_ARGS = [
  '-Xms256m', '-Xmx512m',
  '-XX:+UseSerialGC',
  // C1 only: JVM start-up and a test's small load need no C2, whose compiler threads would compete for the
  // two cores with the tests themselves.
  '-XX:TieredStopAtLevel=1',
  '-XX:-UsePerfData',
  '-Djava.awt.headless=true',
];

/**
 * Kafka's logging: the lifecycle at INFO (the readiness line comes from kafka.server.KafkaRaftServer), the
 * configuration dumps and request noise only at WARN, all to standard output, which goes to kafka.log.
 */
const LOG4J2 = `status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.config.name = org.apache.kafka.common.config
logger.config.level = WARN
logger.utils.name = org.apache.kafka.common.utils.AppInfoParser
logger.utils.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
`;

/** The line Kafka logs once broker and controller are both up. */
const READY_LINE = 'Kafka Server started';

/**
 * The kafka-<version> directory of the cache: SMQ_KAFKA_HOME, or where scripts/kafka.sh keeps the version it
 * provisions (asked from the script, so the version is written down in one place).
 */
export function kafkaHome(): string {
  const fromEnv = process.env['SMQ_KAFKA_HOME'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return execFileSync('bash', [join(ROOT, 'scripts', 'kafka.sh'), '--print-home'], { encoding: 'utf8' }).trim();
}

/** The jars, and the class-data archive when scripts/kafka.sh made one, after checking it completed. */
function kafkaInstall(): { lib: string; archive: string | null } {
  const home = kafkaHome();
  if (!existsSync(join(home, 'jars.txt'))) {
    throw new Error(`Kafka is not provisioned in ${home} (no jars.txt): run \`bash scripts/kafka.sh\` (scripts/provision.sh does)`);
  }
  const archive = join(home, 'kafka.jsa');
  return { lib: join(home, 'lib'), archive: existsSync(archive) ? archive : null };
}

/**
 * A random KRaft cluster id: 16 random bytes in URL-safe base64 without padding, as kafka-storage random-uuid.
 * Like Kafka's Uuid.randomUuid(), never one that starts with '-': the storage tool would read `-t -xyz...` as
 * an option and fail (one start in 64).
 */
function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function propertiesText(props: Record<string, string | number | boolean>): string {
  return Object.entries(props).map(([k, v]) => `${k}=${String(v)}`).join('\n') + '\n';
}


/** Whether the file contains `needle` after byte `from`. */
function fileHasAfter(path: string, from: number, needle: string): boolean {
  try {
    const size = statSync(path).size;
    if (size <= from) return false;
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.alloc(size - from);
      readSync(fd, buf, 0, buf.length, from);
      return buf.includes(needle);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/**
 * Runs "$@" (the JVM) in the background and waits for it. fd 3 is this process's pipe: when it reaches end of
 * file (this process ended, or called for a hard stop by closing it) the JVM is killed at once. SIGTERM to the
 * watchdog is passed on to the JVM for a graceful stop. Exits with the JVM's status.
 */
const WATCHDOG = `
exec 3<&0
"$@" </dev/null &
jvm=$!
trap 'kill -TERM $jvm 2>/dev/null' TERM
( read -r _ <&3; kill -KILL $jvm 2>/dev/null ) &
guard=$!
exec 3<&-
while :; do
  wait $jvm
  rc=$?
  kill -0 $jvm 2>/dev/null || break
done
kill $guard 2>/dev/null
exit $rc
`;

/** Every watchdog still running, killed (pipe closed) if this process exits with brokers up. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Runs a JVM to completion (the storage tool), failing with its output. */
function runJava(args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (d: Buffer): void => { out = (out + d.toString()).slice(-8000); };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('error', (e) => { clearTimeout(timer); reject(new Error(`could not run java (is a JDK/JRE 17+ on PATH?): ${e.message}`)); });
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`java ${args.slice(-6).join(' ')} failed (${signal ?? `exit ${code}`}):\n${out}`));
    });
  });
}

/**
 * Waits until the broker answers metadata requests, then warms up what the first producer and consumer of a
 * test would otherwise meet half-loaded (the producer-id manager, the group coordinator of
 * __consumer_offsets), so that tests see neither "coordinator is loading" retries nor their error logs.
 */
async function warmUp(brokers: string[], deadline: number): Promise<void> {
  const kafka = new Kafka({
    clientId: 'smq-test-kafka-helper', brokers, logLevel: logLevel.NOTHING,
    retry: { retries: 30, initialRetryTime: 50, maxRetryTime: 500 },
  });
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  let lastError: unknown = null;
  try {
    for (;;) {
      try {
        await admin.connect();
        await admin.listTopics();
        await admin.describeGroups(['smq-test-warm-up']);
        await producer.connect();
        return;
      } catch (e) {
        lastError = e;
        if (Date.now() > deadline) throw new Error(`Kafka is up but not answering clients: ${String(lastError)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await producer.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Formats a fresh KRaft data directory and starts a single-node Kafka on two free loopback ports (PLAINTEXT
 * for clients, CONTROLLER for the quorum). Resolves once clients can produce and join groups; rejects with the
 * tail of Kafka's output when it does not get there in time, leaving the directory for a look at kafka.log.
 */
export async function startKafka(options: KafkaOptions = {}): Promise<RunningKafka> {
  const { lib, archive } = kafkaInstall();
  const timeoutMs = options.timeoutMs ?? 90_000;
  const dir = mkdtempSync(join(tmpdir(), 'smq-kafka-'));
  const port = await reusablePort();
  const controllerPort = await reusablePort();
  const brokers = [`127.0.0.1:${port}`];
  const logFile = join(dir, 'kafka.log');
  const propsFile = join(dir, 'server.properties');
  const log4jFile = join(dir, 'log4j2.properties');
  writeFileSync(log4jFile, LOG4J2);
  writeFileSync(propsFile, propertiesText({
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    'listeners': `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': join(dir, 'data'),
    // One node: every internal topic with one replica, and few partitions so that creating them is quick.
    'num.partitions': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'auto.create.topics.enable': true,
    'group.initial.rebalance.delay.ms': 0,
    // After a SIGKILL the controller refuses the restarted broker's registration (DUPLICATE_BROKER_REGISTRATION)
    // until the old incarnation's session expires: 9 s by default, 4 s here. Heartbeats every 500 ms keep a
    // live broker well inside that even on a busy machine.
    'broker.session.timeout.ms': 4000,
    'broker.heartbeat.interval.ms': 500,
    // Small logs: 1 MiB segments (the smallest Kafka 4 accepts), a short retention check.
    'log.segment.bytes': 1_048_576,
    'log.retention.check.interval.ms': 60_000,
    // Few threads: two cores are shared with the broker under test and the test itself.
    'num.network.threads': 2,
    'num.io.threads': 2,
    'background.threads': 2,
    'num.recovery.threads.per.data.dir': 1,
    'num.replica.fetchers': 1,
    'log.cleaner.threads': 1,
    ...options.properties,
  }));

  // The classpath is spelled exactly as scripts/kafka.sh spelled it when it made the class-data archive: the
  // JVM uses the archive only for the same classpath (and JVM build), and otherwise warns and loads normally.
  // The storage tool shares most of its classes with the broker, so the archive speeds it up too.
  const jvmArgs = [
    ...(archive === null ? [] : [`-XX:SharedArchiveFile=${archive}`]),
    ...(options.jvmArgs ?? DEFAULT_JVM_ARGS),
    `-Dlog4j2.configurationFile=${log4jFile}`,
    '-cp', join(lib, '*'),
  ];
  const serverArgs = [...jvmArgs, 'kafka.Kafka', propsFile];
  await runJava([...jvmArgs, 'kafka.tools.StorageTool', 'format', '-t', clusterId(), '-c', propsFile], timeoutMs);

  let proc: ChildProcess | null = null;
  let runs = 0;

  const start = async (): Promise<void> => {
    runs += 1;
    appendFileSync(logFile, `=== test/helpers/kafka.ts: starting Kafka (run ${runs}) on ${brokers[0]} ===\n`);
    const from = fileSize(logFile);
    const out = openSync(logFile, 'a');
    let p: ChildProcess;
    try {
      p = spawn('sh', ['-c', WATCHDOG, 'smq-kafka', 'java', ...serverArgs], {
        cwd: dir, stdio: ['pipe', out, out],
      });
    } finally {
      closeSync(out);
    }
    // Nothing is ever written to the pipe; a stop racing the watchdog's own exit must not throw EPIPE.
    p.stdin?.on('error', () => undefined);
    proc = p;
    live.add(p);
    p.once('exit', () => live.delete(p));
    const deadline = Date.now() + timeoutMs;
    // A broker that is not ready in time is killed before the error is thrown, first start or restart.
    const fail = async (why: string): Promise<never> => {
      await stop();
      throw new Error(`Kafka on ${brokers[0]} ${why}; last lines of ${logFile}:\n${tailFile(logFile, 40)}`);
    };
    while (!fileHasAfter(logFile, from, READY_LINE)) {
      if (p.exitCode !== null || p.signalCode !== null) await fail(`exited (${p.signalCode ?? p.exitCode}) before it was ready`);
      if (Date.now() > deadline) await fail(`did not log "${READY_LINE}" within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      await warmUp(brokers, deadline);
    } catch (e) {
      await fail(e instanceof Error ? e.message : String(e));
    }
  };

  const stop = async (stopOptions: { graceful?: boolean } = {}): Promise<void> => {
    const p = proc;
    proc = null;
    if (p === null || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    if (stopOptions.graceful === true) {
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.stdin?.end(), 20_000);
      await exited;
      clearTimeout(timer);
    } else {
      // Closing the watchdog's pipe makes it SIGKILL the JVM; it then exits itself.
      p.stdin?.end();
      await exited;
    }
  };

  await start();
  return {
    brokers,
    dir,
    stop,
    async restart() {
      await stop();
      await start();
    },
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    logTail: (lines = 40) => tailFile(logFile, lines),
  };
}
