// Prints the configuration reference table for README.md from the one schema (run after `npm run build`).
import { SCHEMA, envName, describeExpected } from '../dist/broker/src/config/schema.js';
import { DEFAULTS } from '../dist/broker/src/config/defaults.js';

const get = (path) => path.split('.').reduce((o, k) => o[k], DEFAULTS);
const show = (v) => (Array.isArray(v) ? (v.length ? v.join(', ') : '(empty)') : v === '' ? '(empty)' : String(v));
console.log('| key | default | environment | meaning |');
console.log('|---|---|---|---|');
for (const k of SCHEMA) {
  const def = k.path === 'name' ? '(host name)' : show(get(k.path));
  console.log(`| \`${k.path}\` | \`${def}\` | \`${envName(k.path)}\` | ${k.description}; ${describeExpected(k)} |`);
}
