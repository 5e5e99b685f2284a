import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { crdFiles } from './crd-files.js';
import { configSchema, OWNED_CONFIG, smqClusterCrd } from './schema.js';

const root = new URL('../../../../', import.meta.url);

test('crds/ holds what operator/src/api/schema.ts makes (run `npm run crds` after changing it)', () => {
  for (const [file, text] of crdFiles()) assert.equal(readFileSync(new URL(file, root), 'utf8'), text, file);
});

test('spec.config takes the broker\'s own key names and bounds, and none of the keys the operator sets', () => {
  const config = configSchema() as { properties: Record<string, { properties?: Record<string, Record<string, unknown>> }> };
  assert.deepEqual(config.properties['mqtt']?.properties?.['max_inflight']?.['type'], 'integer');
  assert.equal(typeof config.properties['limits']?.properties?.['publish_rate']?.['maximum'], 'number');
  for (const owned of OWNED_CONFIG) assert.equal(config.properties[owned], undefined, owned);
});

test('SmqCluster has the status and scale subresources, with the selector in status', () => {
  const spec = smqClusterCrd()['spec'] as { versions: { subresources: { scale: Record<string, string> } }[] };
  assert.deepEqual(spec.versions[0]?.subresources.scale, { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
});
