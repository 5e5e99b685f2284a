#!/usr/bin/env node
// Writes crds/*.yaml from operator/src/api/schema.ts (built into dist/). Run after `npm run build`;
// operator/src/api/crds.test.ts fails while the files differ from what this writes.
import { writeFileSync } from 'node:fs';
import { crdFiles } from '../dist/operator/src/api/crd-files.js';

for (const [file, text] of crdFiles()) {
  writeFileSync(new URL(`../${file}`, import.meta.url), text);
  console.log(`wrote ${file}`);
}
