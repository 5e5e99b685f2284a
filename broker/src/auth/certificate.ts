/**
 * Certificate identity (`tls.cert_username`): a client that presented a certificate the TLS listener verified
 * is authenticated by it, like Mosquitto's `use_identity_as_username`. The listener has already made the
 * certificate's CN (or first SAN) the username; a password, if any, is not looked at.
 */
import type { AuthResult, ClientInfo, Hook } from '../hooks/types.js';
import { certificateUsername } from '../listeners/certificates.js';

/**
 * Answers ok for clients with a verified certificate that carries the configured identity; abstains for the
 * others, so they still meet the password, JWT and HTTP backends.
 */
export class CertificateAuth implements Hook {
  readonly name = 'certificate';
  private readonly field: 'cn' | 'san';

  constructor(field: 'cn' | 'san') {
    this.field = field;
  }

  authenticate(client: ClientInfo): AuthResult {
    // A certificate without the identity we take usernames from identifies nobody (the same rule that made
    // the username).
    const identity = certificateUsername({ cert_username: this.field }, client.certificate);
    return identity === undefined || identity === '' ? undefined : { ok: true };
  }
}
