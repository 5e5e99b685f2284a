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
  for (const owned of OWNED_CONFIG) {
    const parts = owned.split('.');
    type Node = { properties?: Record<string, unknown> } | undefined;
    let node: Node = config as unknown as Node;
    for (const p of parts.slice(0, -1)) node = node?.properties?.[p] as Node;
    assert.equal(node?.properties?.[parts[parts.length - 1] as string], undefined, owned);
  }
  // The user's keys in sections the operator has a part of stay.
  assert.equal(config.properties['store']?.properties?.['durability']?.['type'], 'string');
  assert.equal(config.properties['log']?.properties?.['level']?.['type'], 'string');
  assert.equal(config.properties['bridge']?.properties?.['buffer']?.['type'], 'integer');
});

test('SmqCluster has the status and scale subresources, with the selector in status', () => {
  const spec = smqClusterCrd()['spec'] as { versions: { subresources: { scale: Record<string, string> } }[] };
  assert.deepEqual(spec.versions[0]?.subresources.scale, { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
});
