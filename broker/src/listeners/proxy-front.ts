/**
 * The front door of a listener with `proxy_protocol` on: a TCP server that reads the PROXY header of each
 * connection from a trusted proxy before anyone else sees a byte, then hands the socket on (to the MQTT
 * connection, or to the TLS or HTTP server behind it) with the bytes after the header put back and the
 * client's address. A peer that is not a trusted proxy is handed on at once, as a direct client: nothing of
 * its is read as a header, so a header it sends is just bad MQTT (or TLS, or HTTP).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { parseProxyHeader, type ProxyHeaderProblem } from './proxy-protocol.js';
import type { TrustedProxies } from './trusted-proxies.js';

/** Why a connection was closed before it was handed on: a bad header, none in time, or the peer went. */
export type ProxyRefusal = ProxyHeaderProblem | 'timeout' | 'closed';

/** Every {@link ProxyRefusal}, so that each has a counter from zero. */
export const PROXY_REFUSALS: readonly ProxyRefusal[] = ['missing', 'malformed', 'too_long', 'timeout', 'closed'];

/** What a listener needs to find its clients' real addresses. */
export interface ProxyOptions {
  readonly trusted: TrustedProxies;
  /** Read a PROXY protocol header first on every connection from a trusted peer (the listener's `proxy_protocol`). */
  readonly protocol: boolean;
  /** Milliseconds a trusted peer has to send its whole header (`mqtt.connect_timeout`). */
  readonly headerTimeoutMs: number;
  readonly log: Logger;
  /** Counts a connection closed for its header. */
  readonly refused: (reason: ProxyRefusal) => void;
}

/** Receives a socket ready for its client protocol, with the address of the client on its far end. */
export type HandOn = (socket: Socket, remoteAddress: string) => void;

/** Refusals are logged at info at most this often per listener (the rest at debug): a misconfigured proxy would flood. */
const INFO_EVERY_MS = 60_000;

/** A TCP server that takes PROXY headers off connections from trusted proxies (see the module comment). */
export class ProxyFront {
  /** The server to listen on. */
  readonly server: Server;
  private readonly transport: string;
  private readonly options: ProxyOptions;
  private readonly handOn: HandOn;
  /** Sockets still owing their header: closed with the listener, as no one else knows them yet. */
  private readonly pending = new Set<Socket>();
  private refusals = 0;
  private lastInfo = -INFO_EVERY_MS;

  constructor(transport: string, options: ProxyOptions, handOn: HandOn) {
    this.transport = transport;
    this.options = options;
    this.handOn = handOn;
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Closes the connections still sending their header; the caller closes the server. */
  closePending(): void {
    for (const s of this.pending) s.destroy();
    this.pending.clear();
  }

  private accept(socket: Socket): void {
    const peer = socket.remoteAddress ?? '';
    if (!this.options.trusted.trusts(peer)) {
      this.handOn(socket, peer);
      return;
    }
    this.pending.add(socket);
    let read: Buffer = Buffer.alloc(0);
    const finish = (): void => {
      clearTimeout(timer);
      this.pending.delete(socket);
      socket.off('readable', onReadable);
      socket.off('end', onGone);
      socket.off('close', onGone);
      socket.off('error', onGone);
    };
    const refuse = (reason: ProxyRefusal, detail: string): void => {
      finish();
      this.refuse(peer, reason, detail, read.length);
      // Our listeners are gone and no one else has the socket: a late error must not end the process.
      socket.on('error', () => undefined);
      socket.destroy();
    };
    const onGone = (): void => refuse('closed', 'the peer closed or reset the connection before its header was complete');
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        read = read.length === 0 ? chunk : Buffer.concat([read, chunk]);
        const r = parseProxyHeader(read);
        if (r.kind === 'more') continue;
        if (r.kind === 'refused') {
          refuse(r.problem, r.detail);
          return;
        }
        finish();
        // The rest is the client's (MQTT, a TLS ClientHello, an HTTP upgrade): put back unread. With the
        // 'readable' listener gone the socket returns to its initial mode, so whoever takes it next reads it
        // as if straight from the network (a 'data' listener starts the flow; TLS reads what is buffered).
        const rest = read.subarray(r.header.length);
        if (rest.length > 0) socket.unshift(rest);
        this.handOn(socket, r.header.source?.address ?? peer);
        return;
      }
    };
    // Bounded like a CONNECT: a proxy that opens a connection and dribbles (or sends nothing) is closed.
    const timer = setTimeout(() => refuse('timeout', `no complete header within ${this.options.headerTimeoutMs} ms`), this.options.headerTimeoutMs);
    socket.on('readable', onReadable);
    socket.on('end', onGone);
    socket.on('close', onGone);
    socket.on('error', onGone);
  }

  private refuse(peer: string, reason: ProxyRefusal, detail: string, bytes: number): void {
    this.options.refused(reason);
    this.refusals++;
    const fields = { transport: this.transport, remote: peer, reason, detail, bytes, refusals: this.refusals };
    const now = Date.now();
    // A load balancer's TCP health check connects and closes without a word: routine, never above debug.
    if (reason !== 'closed' && now - this.lastInfo >= INFO_EVERY_MS) {
      this.lastInfo = now;
      this.options.log.info(fields, 'proxy header refused (more within a minute are logged at debug)');
    } else {
      this.options.log.debug(fields, 'proxy header refused');
    }
  }
}

/**
 * The client addresses of sockets a {@link ProxyFront} handed to a TLS or HTTP server, found again from the
 * socket that server gives back (a TLSSocket wrapping ours, or ours). Node offers no public way from a
 * TLSSocket to the socket it wraps, but both report the same peer address and port, and that pair is unique
 * among a listener's open connections.
 */
export class RelayedAddresses {
  private readonly byPeer = new Map<string, { readonly address: string }>();

  /** Remembers the client address of `socket` until it closes. */
  remember(socket: Socket, address: string): void {
    const key = peerKey(socket);
    const entry = { address };
    this.byPeer.set(key, entry);
    socket.once('close', () => {
      // A newer connection from the same address and port may have taken the key meanwhile: leave it.
      if (this.byPeer.get(key) === entry) this.byPeer.delete(key);
    });
  }

  /** The client address remembered for `socket` (or the socket it wraps), else its own peer address. */
  addressOf(socket: Socket): string {
    return this.byPeer.get(peerKey(socket))?.address ?? socket.remoteAddress ?? '';
  }

  /** Sockets remembered now (for tests). */
  get size(): number {
    return this.byPeer.size;
  }
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}
