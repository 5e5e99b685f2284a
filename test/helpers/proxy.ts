/**
 * A TCP proxy on loopback that a test controls, to cut one process off from another (a broker from etcd, say)
 * without touching either: `pass` forwards every connection to the target, `cut()` resets every open
 * connection and resets each new one as soon as it is accepted (the client sees ECONNRESET, as when a firewall
 * rejects it), `resume()` forwards again. Nothing is buffered across a cut: what was in flight is gone, as
 * when a connection breaks.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** A proxy started by {@link startProxy}. */
export interface TcpProxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** `127.0.0.1:<port>`, as `etcd.endpoints` takes it. */
  readonly endpoint: string;
  /** `pass` or `cut`. */
  readonly state: 'pass' | 'cut';
  /** Connections forwarded so far. */
  readonly forwarded: number;
  /** Connections reset on arrival while cut. */
  readonly refused: number;
  /** Connections open through it now. */
  readonly open: number;
  /** Resets every open connection; new ones are reset on arrival until resume(). */
  cut(): void;
  /** Forwards new connections again. */
  resume(): void;
  /** Resets everything and stops listening. */
  close(): Promise<void>;
}

/** Starts a proxy from a free loopback port to `target` (default host 127.0.0.1). */
export async function startProxy(target: { host?: string; port: number }): Promise<TcpProxy> {
  const host = target.host ?? '127.0.0.1';
  const pairs = new Set<[Socket, Socket]>();
  let state: 'pass' | 'cut' = 'pass';
  let forwarded = 0;
  let refused = 0;

  const reset = (s: Socket): void => {
    if (!s.destroyed) s.resetAndDestroy();
  };

  const server: Server = createServer((client) => {
    if (state === 'cut') {
      refused++;
      client.on('error', () => undefined);
      reset(client);
      return;
    }
    forwarded++;
    const upstream = connect({ host, port: target.port });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // Either side ending or failing ends the pair; an error is the peer's business, not the test's.
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const cutAll = (): void => {
    for (const [a, b] of pairs) {
      reset(a);
      reset(b);
    }
    pairs.clear();
  };

  return {
    port,
    endpoint: `127.0.0.1:${port}`,
    get state() {
      return state;
    },
    get forwarded() {
      return forwarded;
    },
    get refused() {
      return refused;
    },
    get open() {
      return pairs.size;
    },
    cut() {
      state = 'cut';
      cutAll();
    },
    resume() {
      state = 'pass';
    },
    async close() {
      state = 'cut';
      cutAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
