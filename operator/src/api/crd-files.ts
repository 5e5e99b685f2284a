import { stringify } from 'yaml';
import { smqBridgeCrd, smqClusterCrd } from './schema.js';

/** The files of `crds/` and their text, as `npm run crds` writes them. */
export function crdFiles(): [string, string][] {
  const header = '# Generated from operator/src/api/schema.ts by `npm run crds`; do not edit.\n';
  return [
    ['crds/smqclusters.smq.sestack.io.yaml', header + stringify(smqClusterCrd(), { lineWidth: 0 })],
    ['crds/smqbridges.smq.sestack.io.yaml', header + stringify(smqBridgeCrd(), { lineWidth: 0 })],
  ];
}
