/**
 * The committed corpora: test/fuzz/corpus/<target>/, one input per file, named by the SHA-1 of its bytes as
 * libFuzzer names what it keeps (so a merge does not add a seed twice). An input that once broke the broker
 * is kept as `regress-<what it was>`, replayed in CI like the rest, and never merged away.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root (this file is dist/test/fuzz/corpus.js once built). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The committed corpus directory of a target. */
export function corpusDir(target: string): string {
  return join(ROOT, 'test', 'fuzz', 'corpus', target);
}

/** One stored input. */
export interface Input {
  readonly name: string;
  readonly data: Buffer;
}

/** The inputs of a directory, in name order (none if it does not exist). */
export function readInputs(dir: string): Input[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort()
    .map((name) => ({ name, data: readFileSync(join(dir, name)) }));
}

/** libFuzzer's name for an input: the hex SHA-1 of its bytes. */
export function inputName(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}

/** Writes inputs into `dir` under their libFuzzer names; returns how many were new. */
export function writeInputs(dir: string, inputs: readonly Buffer[]): number {
  mkdirSync(dir, { recursive: true });
  let added = 0;
  for (const data of inputs) {
    const file = join(dir, inputName(data));
    if (existsSync(file)) continue;
    writeFileSync(file, data);
    added++;
  }
  return added;
}
