/** The ConfigMap holding the smq YAML of an SmqCluster (see config.ts). */
import type { V1ConfigMap } from '@kubernetes/client-node';
import type { SmqCluster } from '../api/types.js';
import { CONFIG_KEY } from './layout.js';
import { metadata, names } from './names.js';

/** The ConfigMap `<cluster>-config` with `configText` (from {@link smqConfig}) under the key `smq.yaml`. */
export function configMap(cluster: SmqCluster, configText: string): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(cluster, names(cluster).configMap),
    data: { [CONFIG_KEY]: configText },
  };
}
