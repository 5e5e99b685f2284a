/**
 * The module Jazzer.js loads: its `fuzz` runs one input through the target named by SMQ_FUZZ_TARGET
 * (test/fuzz/targets.ts). One entry for every target, so the command line names the target, not a file.
 */
import { target } from '../targets.js';

const chosen = target(process.env['SMQ_FUZZ_TARGET'] ?? '');

/** One input. A FuzzFinding (or anything else thrown) is a finding, reported with the input. */
export async function fuzz(data: Buffer): Promise<void> {
  await chosen.run(data);
}
