/** The PodDisruptionBudget of an SmqCluster. */
import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { SmqCluster } from '../api/types.js';
import { metadata, names, selectorLabels } from './names.js';

/**
 * `<cluster>` (policy/v1): voluntary evictions (node drains, cluster upgrades) take at most
 * `spec.podDisruptionBudget.maxUnavailable` broker pods at a time, so their clients can move to the others.
 * Null when disabled (the controller then deletes any it made before).
 */
export function podDisruptionBudget(cluster: SmqCluster): V1PodDisruptionBudget | null {
  const pdb = cluster.spec.podDisruptionBudget;
  if (!pdb.enabled) return null;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadata(cluster, names(cluster).podDisruptionBudget),
    spec: { maxUnavailable: pdb.maxUnavailable, selector: { matchLabels: selectorLabels(cluster) } },
  };
}
