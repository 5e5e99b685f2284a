/**
 * The smq operator's entrypoint (`bin/smq-operator.js`, or the image with `node dist/operator/src/main.js`).
 * Configured by the environment, as a Deployment sets it:
 *   WATCH_NAMESPACE   the namespace to watch; empty for every namespace
 *   POD_NAMESPACE     where the leader-election Lease lives (the operator's own namespace)
 *   POD_NAME          this replica's identity in the Lease (default: the host name)
 *   LEADER_ELECTION   "false" to run without it (one replica only)
 *   HTTP_PORT         /healthz, /readyz and /metrics (default 8081)
 *   LOG_LEVEL         pino level (default info)
 *   KUBECONFIG        a kubeconfig file when not running in a pod
 */
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Operator } from './operator.js';

const env = process.env;
const log = pino({ level: env['LOG_LEVEL'] ?? 'info', base: { component: 'smq-operator' } });
const kubeConfig = new KubeConfig();
kubeConfig.loadFromDefault();
const leaderNamespace = env['POD_NAMESPACE'] ?? 'default';
const operator = new Operator({
  kubeConfig,
  log,
  namespace: env['WATCH_NAMESPACE'] ?? '',
  leader: env['LEADER_ELECTION'] === 'false' ? null : { namespace: leaderNamespace, identity: env['POD_NAME'] ?? hostname() },
  httpPort: Number(env['HTTP_PORT'] ?? 8081),
});

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    operator.stop().then(() => process.exit(0), () => process.exit(1));
  });
}

operator.start().catch((err: unknown) => {
  log.fatal({ err }, 'operator failed to start');
  process.exit(1);
});
