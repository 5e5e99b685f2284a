/**
 * Starts the Jazzer.js command line (the same arguments as `npx jazzer`) with its libFuzzer addon taken from
 * SMQ_JAZZER_ADDON when that is set: the copy build.sh makes for systems the prebuilt addon does not load on.
 * The addon's loader asks for a fixed path inside node_modules; this answers that request with the copy, so
 * node_modules stays as npm left it.
 *
 *   SMQ_JAZZER_ADDON=$(bash test/fuzz/jazzer/build.sh) node dist/test/fuzz/jazzer/launch.js <jazzer arguments>
 */
import { createRequire } from 'node:module';
import { sep } from 'node:path';

/** The part of node's CommonJS loader this needs (not in @types/node's public types). */
interface ModuleInternals {
  _extensions: Record<string, (module: unknown, filename: string) => void>;
}

const require = createRequire(import.meta.url);
const addon = process.env['SMQ_JAZZER_ADDON'];
const prebuilt = ['@jazzer.js', 'fuzzer', 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`].join(sep);
if (addon !== undefined && addon !== '') {
  const extensions = (require('node:module') as ModuleInternals)._extensions;
  const load = extensions['.node'] as (module: unknown, filename: string) => void;
  extensions['.node'] = function loadNode(this: unknown, module: unknown, filename: string): void {
    load.call(this, module, filename.endsWith(prebuilt) ? addon : filename);
  };
}
// The CLI reads process.argv from index 2: what was given to this script.
require('@jazzer.js/core/dist/cli.js');
