/**
 * Notification receivers for black-box tests: a real node:http server and a real @grpc/grpc-js server (loading
 * the repository's broker/proto/notify.proto), both recording every event and letting tests wait for events.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ROOT } from './broker.js';

/** One event as a receiver saw it. */
export interface Received {
  /** The event name: from the HTTP `event` field, or derived from the gRPC method. */
  readonly event: string;
  /** The fields (HTTP: the JSON body; gRPC: the request message). */
  readonly body: Record<string, unknown>;
  /** HTTP only: the request's headers and path. */
  readonly headers?: IncomingHttpHeaders;
  readonly path?: string;
  /** gRPC only: the method called. */
  readonly method?: string;
}

/** Events recorded in arrival order, with waiting. */
export class EventLog {
  readonly events: Received[] = [];
  private waiters = new Set<() => void>();

  push(e: Received): void {
    this.events.push(e);
    for (const w of [...this.waiters]) w();
  }

  /** Events of one client id, in arrival order. */
  of(id: string): Received[] {
    return this.events.filter((e) => e.body['id'] === id);
  }

  /** Resolves once `ready()` returns a value other than undefined (checked on every event). */
  until<T>(ready: () => T | undefined, what: string, timeoutMs = 8000): Promise<T> {
    const now = ready();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const v = ready();
        if (v === undefined) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`not received within ${timeoutMs} ms: ${what}; got ${JSON.stringify(this.events.map((e) => [e.event, e.body['id']]))}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Resolves with the events of client `id` once `n` of them arrived (or `event` ones, when given). */
  forClient(id: string, n: number, event?: string): Promise<Received[]> {
    return this.until(() => {
      const got = this.of(id).filter((e) => event === undefined || e.event === event);
      return got.length >= n ? got : undefined;
    }, `${n} ${event ?? 'events'} of ${id}`);
  }
}

/** An HTTP notification receiver; `listen()` may be called late (a server that is down at first). */
export class HttpReceiver {
  readonly log = new EventLog();
  private readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        this.log.push({ event: String(body['event']), body, headers: req.headers, path: req.url ?? '' });
        res.writeHead(204).end();
      });
    });
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', () => resolve()));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** Event name of each RPC of notify.proto. */
const METHOD_EVENTS: Record<string, string> = {
  OnClientConnect: 'client_connected',
  OnClientDisconnected: 'client_disconnected',
  OnSubscribe: 'subscribe',
  OnUnSubscribe: 'unsubscribe',
  OnAgentConnect: 'agent_connected',
  OnAgentDisconnected: 'agent_disconnected',
};

/** A gRPC notification receiver implementing smq.notify.v1.Notification from the repository's .proto. */
export class GrpcReceiver {
  readonly log = new EventLog();
  private readonly server = new grpc.Server();

  constructor() {
    const definition = protoLoader.loadSync(join(ROOT, 'broker', 'proto', 'notify.proto'), { keepCase: true, longs: Number, defaults: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { smq: { notify: { v1: { Notification: grpc.ServiceClientConstructor } } } };
    const service = pkg.smq.notify.v1.Notification.service;
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const [method, event] of Object.entries(METHOD_EVENTS)) {
      handlers[method] = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        this.log.push({ event, body: call.request, method });
        callback(null, { ok: true });
      };
    }
    this.server.addService(service, handlers);
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.server.forceShutdown();
  }
}
