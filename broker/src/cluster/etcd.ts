import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { EtcdConfig } from '../config/types.js';
import { SmqError } from '../errors.js';

/** etcd allows this many operations in one transaction by default (`--max-txn-ops`). */
export const MAX_TXN_OPS = 128;

/** Opens the etcd client for `etcd.*`: plain or TLS (with `etcd.ca`), optionally mutual TLS and a user. */
export function connectEtcd(cfg: EtcdConfig): Etcd3 {
  const tls = cfg.ca !== '';
  const options: IOptions = {
    hosts: cfg.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${tls ? 'https' : 'http'}://${e}`)),
    dialTimeout: 3000,
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
