/**
 * The `smq` command: parses the command line, loads the configuration once, starts the broker and drains it on
 * SIGTERM/SIGINT.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Broker } from './broker.js';
import { SmqError } from './errors.js';
import type { Bound } from './listeners/types.js';
import { CliError, parseArgs, USAGE } from './config/cli.js';
import { ConfigError, loadConfig } from './config/load.js';
import type { Config } from './config/types.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Seconds a drain may take before the process exits anyway (Kubernetes' default grace period is 30 s). */
const DRAIN_DEADLINE_MS = 20000;

async function main(argv: readonly string[]): Promise<number> {
  let command;
  try {
    command = parseArgs(argv);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`smq: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  if (command.command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command.command === 'version') {
    process.stdout.write(`smq version ${pkg.version}\n`);
    return 0;
  }
  if (command.command === 'passwd') {
    // Loaded only here: the broker itself never needs the password tool.
    const { runPasswd } = await import('./auth/passwd.js');
    return runPasswd(command.args);
  }
  let config: Config;
  try {
    config = loadConfig({ file: command.configFile, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`smq: ${err.message}\n`);
      return 78; // EX_CONFIG
    }
    throw err;
  }
  const nodeId = config.broker || keptNodeId(config.store.dir);
  // Asynchronous writes: lines logged while a write is under way go out together in the next one (a
  // connection storm logged one write(2) per line, 8 % of the broker's CPU); pino flushes what is left at exit.
  // A reader that stops taking stdout costs at most 8 MiB; lines past that are dropped, not queued.
  const destination = pino.destination({ dest: 1, sync: false, maxLength: 8 * 1024 * 1024 });
  const log = pino({ level: config.log.level, base: { node: nodeId } }, destination);
  let broker: Broker;
  let listeners: Bound[];
  try {
    broker = new Broker(config, log, pkg.version, nodeId);
    listeners = await broker.listen();
  } catch (err) {
    // Bad certificates, ACL or password files are configuration problems: say what, where, and stop.
    if (err instanceof SmqError) {
      process.stderr.write(`smq: ${err.message}\n`);
      return 78;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      process.stderr.write(`smq: cannot listen: ${e.message}\n`);
      return 1;
    }
    throw err;
  }
  if (!command.configFile) {
    log.info('no configuration file given: using embedded defaults');
  }
  if (listeners.every((l) => l.host === '127.0.0.1' || l.host === '::1')) {
    // Like Mosquitto 2: nothing is reachable from the network unless the configuration opens it.
    log.info('listening on the loopback interface only; set "host" (e.g. 0.0.0.0) to accept remote clients');
  }
  log.info({ listeners, version: pkg.version, cluster: config.cluster, name: config.name }, 'broker ready');

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      log.info({ signal }, 'draining');
      broker.close(DRAIN_DEADLINE_MS).then(
        () => {
          log.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          log.error({ err }, 'error while draining');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Leave a moment for stdout to flush, then make sure no stray handle keeps the process alive.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (err: unknown) => {
    process.stderr.write(`smq: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);

/**
 * A node id for a node configured without `broker`: generated once and kept in the data directory, so a
 * restarted node is the same cluster member (its inbox waits for it); without a data directory, a new one.
 */
function keptNodeId(dir: string): string {
  if (dir === '') return randomUUID();
  const file = join(dir, 'node-id');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (id !== '') return id;
  } catch {
    // not there yet
  }
  const id = randomUUID();
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, id + '\n');
  return id;
}
