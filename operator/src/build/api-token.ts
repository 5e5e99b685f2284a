/** The HTTP API token of an SmqCluster: where the pods and the operator find it. */
import type { V1Secret } from '@kubernetes/client-node';
import type { KeyRef, SmqCluster } from '../api/types.js';
import { TOKEN_KEY } from './layout.js';
import { metadata, names } from './names.js';

/** The Secret key holding the token: `spec.apiToken`, or the Secret the operator creates (`<cluster>-api-token`, key `token`). */
export function apiTokenRef(cluster: SmqCluster): KeyRef {
  return cluster.spec.apiToken ?? { name: names(cluster).apiTokenSecret, key: TOKEN_KEY };
}

/**
 * The Secret the operator creates when `spec.apiToken` is absent, holding `token` (generated once by the
 * controller, which must reuse the token of an existing Secret rather than make a new one each reconcile).
 * `data`, not `stringData`: `stringData` is write-only, so a server-side apply of it would never match what is read back.
 */
export function apiTokenSecret(cluster: SmqCluster, token: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadata(cluster, names(cluster).apiTokenSecret),
    type: 'Opaque',
    data: { [TOKEN_KEY]: Buffer.from(token, 'utf8').toString('base64') },
  };
}
