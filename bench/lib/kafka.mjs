// A Kafka broker for the bridge scenarios (bench/scenarios/bridge.mjs): the test suite's helper
// (test/helpers/kafka.ts, compiled to dist/ by `npm run build`) starts Apache Kafka in KRaft mode, one node, on
// loopback with a temporary data directory, from the jars scripts/kafka.sh provisions. run.mjs starts it once
// per run when a selected scenario needs it and stops it at the end.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
const HELPER = join(ROOT, 'dist/test/helpers/kafka.js');
const CLK_TCK = 100;

/** Kafka cannot run here (not built, not provisioned): the scenarios that need it are skipped, not failed. */
export class KafkaUnavailable extends Error {}

/**
 * The JVM the test helper would use, but with the C2 compiler on: the tests keep Kafka to C1 so that JVM start-up
 * does not compete with them, while a benchmark runs long enough for C2 to pay off. A 1 GiB fixed heap and the
 * serial collector (one collector thread on 2 cores).
 */
const JVM_ARGS = ['-Xms1g', '-Xmx1g', '-XX:+UseSerialGC', '-XX:-UsePerfData', '-Djava.awt.headless=true'];

function readText(file) {
  try { return readFileSync(file, 'utf8'); } catch { return ''; }
}

/** The pid of the JVM running `${dir}/server.properties` (the helper does not expose it), or null. */
function jvmPid(dir) {
  const props = join(dir, 'server.properties');
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = readText(`/proc/${entry}/cmdline`).split('\0');
    if (cmd.includes('kafka.Kafka') && cmd.includes(props) && !cmd.includes('-c')) return Number(entry);
  }
  return null;
}

/**
 * Starts Kafka. Resolves to { version, brokers, dir, pid, cpuSeconds(), rss(), logTail(), stop() }; throws KafkaUnavailable when the
 * helper is not built or the jars are not provisioned, and the helper's error (with Kafka's log tail) when a
 * provisioned Kafka does not start.
 */
export async function startKafka(log) {
  if (!existsSync(HELPER)) throw new KafkaUnavailable(`${HELPER} is missing: run \`npm run build\` first`);
  const { startKafka: start, kafkaHome } = await import(HELPER);
  let home;
  try {
    home = kafkaHome();
  } catch (err) {
    throw new KafkaUnavailable(`scripts/kafka.sh --print-home failed: ${err.message}`);
  }
  if (!existsSync(join(home, 'jars.txt'))) {
    throw new KafkaUnavailable(`Kafka is not provisioned in ${home}: run \`bash scripts/kafka.sh\` (scripts/provision.sh does)`);
  }
  const t0 = Date.now();
  const kafka = await start({ jvmArgs: JVM_ARGS });
  const pid = jvmPid(kafka.dir);
  const version = home.replace(/.*kafka-/, '');
  log(`Kafka ${version} up on ${kafka.brokers.join(',')} in ${((Date.now() - t0) / 1000).toFixed(1)} s (JVM pid ${pid ?? 'unknown'})`);
  return {
    version,
    brokers: kafka.brokers,
    dir: kafka.dir,
    pid,
    /** CPU seconds the JVM used so far, user plus system (0 if its pid is unknown). */
    cpuSeconds() {
      if (pid === null) return 0;
      const stat = readText(`/proc/${pid}/stat`);
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return f.length > 12 ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0;
    },
    /** Resident memory of the JVM in bytes. */
    rss() {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readText(`/proc/${pid}/status`));
      return m ? Number(m[1]) * 1024 : 0;
    },
    logTail: (n) => kafka.logTail(n),
    stop: () => kafka.destroy(),
  };
}
