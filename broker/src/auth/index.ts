/**
 * Authentication: the backends the configuration asks for, as hooks, in the order they are consulted.
 *
 * 1. `auth-failures`: logs refused CONNECTs and counts them per address for the throttle (the wait itself is
 *    the LoginGate's, in the CONNECT handler, before a worker slot is taken);
 * 2. `certificate`: a verified client certificate is enough (`tls.cert_username` not `none`);
 * 3. `password-file`: users of `auth.password_file`;
 * 4. `jwt`: a token in the password (or username);
 * 5. `auth-http`: the service at `auth.http.url`.
 *
 * The first backend that answers decides (see `Hook`): a certificate wins over everything, a listed user with a
 * wrong password is refused without asking JWT or HTTP. A backend abstains for clients that are not its own
 * (no username, not in the file while later backends exist, no token, `ignore`); when all abstain the client
 * gets in unless `auth.enable` is on (then Not authorized).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Hook } from '../hooks/types.js';
import { CertificateAuth } from './certificate.js';
import { HttpAuth } from './http.js';
import { JwtAuth } from './jwt.js';
import { PasswordFileAuth } from './password-file.js';
import { authFailureHook, FailureThrottle, LoginGate } from './throttle.js';

/** The failed-login throttle and the gate where slowed-down logins wait, both from `auth.*`. */
export function createLoginGate(config: Config): { throttle: FailureThrottle; gate: LoginGate } {
  const auth = config.auth;
  const throttle = new FailureThrottle({
    maxFailures: auth.max_failures,
    windowMs: auth.failure_window * 1000,
    delayMs: auth.failure_delay,
  });
  return { throttle, gate: new LoginGate(throttle, auth.max_pending) };
}

/**
 * The authentication hooks the configuration asks for, in the order they are consulted. Throws an
 * `AuthFileError` (code `ERR_AUTH_FILE`) when the password or JWKS file cannot be read or parsed.
 */
export function createAuthHooks(config: Config, log: Logger, throttle: FailureThrottle): Hook[] {
  const auth = config.auth;
  const hooks: Hook[] = [];
  hooks.push(authFailureHook(throttle, log));
  if (config.tls.cert_username !== 'none') hooks.push(new CertificateAuth(config.tls.cert_username));
  const jwt = auth.jwt.secret !== '' || auth.jwt.jwks_file !== '';
  const http = auth.http.url !== '';
  if (auth.password_file !== '') {
    hooks.push(new PasswordFileAuth({ file: auth.password_file, log, final: !jwt && !http }));
  }
  if (jwt) {
    hooks.push(new JwtAuth({
      from: auth.jwt.from,
      secret: auth.jwt.secret,
      jwksFile: auth.jwt.jwks_file,
      issuer: auth.jwt.issuer,
      audience: auth.jwt.audience,
      disconnectOnExpiry: auth.jwt.disconnect_on_expiry,
      log,
    }));
  }
  if (http) {
    hooks.push(new HttpAuth({
      url: auth.http.url,
      timeoutMs: auth.http.timeout,
      cacheTtlMs: auth.http.cache_ttl * 1000,
      onError: auth.http.on_error,
      log,
    }));
  }
  return hooks;
}
