import { SmqError } from '../errors.js';

/**
 * A store that cannot be opened or read: a data directory that is missing, not a directory or not writable, or a
 * data file that is truncated or damaged. The message names the directory and what was found there.
 */
export class StoreError extends SmqError {
  /** The store's data directory. */
  readonly dir: string;

  constructor(dir: string, message: string, options?: { cause?: unknown }) {
    super('ERR_STORE', `store ${dir}: ${message}`, options);
    this.dir = dir;
  }
}
