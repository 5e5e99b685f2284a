import { createServer, type Server, type TlsOptions, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { verifiedPeerCertificate, type CertificateStore } from './certificates.js';
import { ProxyFront, RelayedAddresses, type ProxyOptions } from './proxy-front.js';
import { listenOn, type Bound, type Listener, type OnConnection } from './types.js';

/** What a TLS server needs beyond its address: the certificates and how strictly clients are checked. */
export interface SecureOptions {
  readonly store: CertificateStore;
  /** Require a client certificate signed by `tls.ca` (mutual TLS). */
  readonly verify: boolean;
  /** Milliseconds a client has to complete the handshake (`mqtt.connect_timeout`). */
  readonly handshakeTimeoutMs: number;
  readonly log: Logger;
}

/** Server options for a TLS or HTTPS server built on the store's current certificates. */
export function serverOptions(secure: SecureOptions): TlsOptions {
  return {
    ...secure.store.options,
    // With verify off no certificate is asked for, so no client is ever identified by an unchecked one.
    requestCert: secure.verify,
    rejectUnauthorized: secure.verify,
    handshakeTimeout: secure.handshakeTimeoutMs,
  };
}

/**
 * Follows a TLS or HTTPS server through certificate rotations, and logs failed handshakes at debug (a port
 * scanner or a client with the wrong CA is the client's problem, not an operator's) with a running count.
 * `remoteOf` names the client of a socket (behind a PROXY header, not the proxy). Returns the function that
 * stops following the store.
 */
export function superviseSecureServer(
  server: Server,
  secure: SecureOptions,
  transport: string,
  remoteOf: (socket: TLSSocket) => string = (socket) => socket.remoteAddress ?? '',
): () => void {
  let failures = 0;
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    failures++;
    // A refused client certificate is checked by Node after the handshake, which then only destroys the socket:
    // the error says "socket hang up", the real reason (CERT_HAS_EXPIRED, ...) is the authorization error.
    const refused = authorizationCode(socket);
    secure.log.debug({
      transport,
      remote: remoteOf(socket),
      code: refused ?? err.code,
      reason: refused === undefined ? err.message.trim() : 'client certificate refused',
      failures,
    }, 'tls handshake failed');
    // Node 20 reports a handshake timeout here but leaves the socket open (with or without this listener), so a
    // client that never speaks would hold it for ever (slowloris): every failed handshake is closed here.
    socket.destroy();
  });
  // Existing connections keep the context they were made with; only new handshakes see the new one.
  return secure.store.subscribe((options) => server.setSecureContext(options));
}

/** Node documents `authorizationError` as an Error but sets a string code such as `CERT_HAS_EXPIRED`. */
function authorizationCode(socket: TLSSocket): string | undefined {
  const a: unknown = socket.authorizationError;
  if (typeof a === 'string') return a;
  if (a instanceof Error) return (a as NodeJS.ErrnoException).code ?? a.message;
  return undefined;
}

/**
 * MQTT over TLS (`tls.port`), with optional mutual TLS; the connection sees the verified client certificate.
 * With `proxy_protocol` a front TCP server takes the PROXY header off first and hands the raw socket to the
 * TLS server, so the handshake, its timeout, mutual TLS and certificate rotation are the same either way.
 */
export class TlsListener implements Listener {
  private readonly server: Server;
  private readonly front: ProxyFront | null;
  private readonly host: string;
  private readonly port: number;
  private readonly unsubscribe: () => void;

  constructor(host: string, port: number, secure: SecureOptions, onConnection: OnConnection, proxy?: ProxyOptions) {
    this.host = host;
    this.port = port;
    const relayed = proxy?.protocol === true ? new RelayedAddresses() : null;
    const remoteOf = (socket: TLSSocket): string => relayed?.addressOf(socket) ?? socket.remoteAddress ?? '';
    this.server = createServer(serverOptions(secure), (socket: TLSSocket) => {
      socket.setNoDelay(true);
      onConnection(socket, {
        transport: 'tls',
        remoteAddress: remoteOf(socket),
        certificate: verifiedPeerCertificate(socket),
      });
    });
    this.unsubscribe = superviseSecureServer(this.server, secure, 'tls', remoteOf);
    if (proxy !== undefined && relayed !== null) {
      this.front = new ProxyFront('tls', proxy, (socket, address) => {
        relayed.remember(socket, address);
        // Node documents this for injecting a connection into a TLS server; it also reads what is buffered.
        this.server.emit('connection', socket);
      });
    } else {
      this.front = null;
    }
  }

  listen(): Promise<Bound> {
    return listenOn(this.front?.server ?? this.server, this.host, this.port, 'tls');
  }

  close(): Promise<void> {
    this.unsubscribe();
    if (this.front === null) return new Promise((resolve) => this.server.close(() => resolve()));
    const closed = new Promise<void>((resolve) => this.front?.server.close(() => resolve()));
    this.front.closePending();
    return closed;
  }
}
