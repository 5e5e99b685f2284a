import { readFileSync } from 'node:fs';
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import type { EtcdConfig } from '../config/types.js';
import { SmqError } from '../errors.js';

/** etcd allows this many operations in one transaction by default (`--max-txn-ops`). */
export const MAX_TXN_OPS = 128;

/**
 * How the etcd client rides out failures. Its defaults suit a service that can wait, not a broker that holds
 * acknowledgements until etcd answers: a host's circuit breaker stayed open 5 s after three failures, so calls
 * failed without trying for seconds after etcd was back (a reconnecting client got a new, empty session because
 * fetching its old one was refused), and a broken watch waited up to 30 s between reconnects (one node saw no
 * change for 28 s after an etcd restart and routed by a stale view meanwhile). Here a host is tried again 0.5 s
 * after its breaker opens, and a watch reconnects within 0.5 s.
 */
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

const FAULT_HANDLING: NonNullable<IOptions['faultHandling']> = {
  host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(3) }),
  global: retry(handleWhen(isRecoverableError), { maxAttempts: 3 }),
  // etcd3 declares a backoff where it uses (as its own default does) a backoff factory: next() is called first.
  watchBackoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 500 }) as unknown as WatchBackoff,
};

/** Opens the etcd client for `etcd.*`: plain or TLS (with `etcd.ca`), optionally mutual TLS and a user. */
export function connectEtcd(cfg: EtcdConfig): Etcd3 {
  const tls = cfg.ca !== '';
  const options: IOptions = {
    hosts: cfg.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${tls ? 'https' : 'http'}://${e}`)),
    dialTimeout: 3000,
    faultHandling: FAULT_HANDLING,
  };
  if (tls) {
    options.credentials = {
      rootCertificate: readPem('etcd.ca', cfg.ca),
      ...(cfg.cert !== '' ? { certChain: readPem('etcd.cert', cfg.cert), privateKey: readPem('etcd.key', cfg.key) } : {}),
    };
  }
  if (cfg.username !== '') options.auth = { username: cfg.username, password: cfg.password };
  return new Etcd3(options);
}

function readPem(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new SmqError('ERR_ETCD_TLS', `${key}: cannot read ${file}: ${(err as Error).message}`);
  }
}
