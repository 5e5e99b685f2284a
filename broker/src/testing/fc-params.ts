import type fc from 'fast-check';

/**
 * fast-check parameters for the property tests: `runs` by default; FC_SEED and FC_PATH replay a failure (both
 * are printed with it), FC_RUNS overrides the number of runs.
 */
export function params(runs: number): fc.Parameters<unknown> {
  const seed = process.env['FC_SEED'];
  const path = process.env['FC_PATH'];
  return {
    numRuns: Number(process.env['FC_RUNS'] ?? runs),
    includeErrorInReport: true,
    ...(seed !== undefined ? { seed: Number(seed) } : {}),
    ...(path !== undefined ? { path } : {}),
  };
}
