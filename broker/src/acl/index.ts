import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Hook } from '../hooks/types.js';

/** The access-control hooks the configuration asks for. */
export function createAclHooks(_config: Config, _log: Logger): Hook[] {
  return [];
}
