import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Hook } from '../hooks/types.js';

/** The authentication hooks the configuration asks for, in the order they are consulted. */
export function createAuthHooks(_config: Config, _log: Logger): Hook[] {
  return [];
}
