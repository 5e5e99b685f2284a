/**
 * Access control: which hooks `acl.*` asks for, and how they form one chain.
 *
 * The chain is the rules file, then the HTTP backend, then `acl.default` (EMQX's order):
 * - a file rule that matches decides, and the HTTP backend is not asked;
 * - otherwise the HTTP backend decides ("allow", "deny"; "ignore" falls to `acl.default`; errors to
 *   `acl.http.on_error`);
 * - with no HTTP backend, a topic no rule matches gets `acl.default`.
 * Both are hooks, so the registry's rule that any denial wins still holds against other hooks.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Hook } from '../hooks/types.js';
import { FileAcl } from './file-hook.js';
import { HttpAcl } from './http-hook.js';

export { AclFileError } from './rules.js';
export { AclBackendError, AclConfigError } from './http-hook.js';
export { FileAcl } from './file-hook.js';
export { HttpAcl } from './http-hook.js';

/**
 * The access-control hooks the configuration asks for: the rules-file hook, then the HTTP hook, and none when
 * `acl.enable` is off. Throws `AclFileError` for a rules file that does not validate and `AclConfigError`
 * for an unusable `acl.http.url`.
 */
export function createAclHooks(config: Config, log: Logger): Hook[] {
  const acl = config.acl;
  if (!acl.enable) {
    if (acl.file !== '' || acl.http.url !== '') {
      log.warn({ file: acl.file || undefined }, 'acl.file or acl.http.url is set but acl.enable is false: no access control is enforced');
    }
    return [];
  }
  const aclLog = log.child({ component: 'acl' });
  const http = acl.http.url !== '';
  const hooks: Hook[] = [];
  let file: FileAcl | null = null;
  // Without any backend the file hook still runs, with no rules, so that acl.default answers everything.
  if (acl.file !== '' || !http) {
    if (acl.file === '') {
      aclLog.warn({ default: acl.default }, `acl.enable is true but neither acl.file nor acl.http.url is set: acl.default (${acl.default}) applies to every publish and subscribe`);
    }
    file = new FileAcl({ file: acl.file, defaultAllow: acl.default === 'allow', fallthrough: http, log: aclLog });
    hooks.push(file);
  }
  if (http) {
    try {
      hooks.push(new HttpAcl(acl.http, acl.default === 'allow', file, aclLog));
    } catch (err) {
      file?.onStop(); // the start fails: leave no watcher behind
      throw err;
    }
  }
  return hooks;
}
