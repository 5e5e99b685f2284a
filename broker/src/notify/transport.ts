/**
 * The two ways a notification leaves the broker (`notify.type`): a JSON POST per event (http) or one unary RPC
 * per event on the service of broker/proto/notify.proto (grpc). Both resolve when the server acknowledged the
 * event and reject otherwise (error, timeout, non-2xx status, `Ack.ok` false), which the queue retries.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { SmqError } from '../errors.js';
import { GRPC_METHODS, type Notification } from './events.js';

/** Sends one notification; rejects when it was not acknowledged. */
export interface Transport {
  /** Where notifications go, for logs. */
  readonly target: string;
  send(n: Notification): Promise<void>;
  close(): void;
}

/** The header that names the event of an HTTP notification. */
export const EVENT_HEADER = 'x-smq-event';

/** The `.proto` of the gRPC service: the package root is four levels above dist/broker/src/notify/. */
export const PROTO_PATH = fileURLToPath(new URL('../../../../broker/proto/notify.proto', import.meta.url));

/** A failed delivery (non-2xx answer, `Ack.ok` false). */
export class NotifyError extends SmqError {
  constructor(message: string) {
    super('ERR_NOTIFY', message);
  }
}

/** `notify.server` for http: a URL as given, or `host:port` made into `http://host:port/`. */
export function httpUrl(server: string): string {
  const url = /^https?:\/\//i.test(server) ? server : `http://${server}/`;
  try {
    return new URL(url).href;
  } catch {
    throw new SmqError('ERR_CONFIG', `notify.server: expected host:port or an http(s):// URL, got ${JSON.stringify(server)}`);
  }
}

/** One JSON POST per event: the body is `{"event": <name>, ...fields}`, the event name also in `x-smq-event`; any 2xx is success. */
export class HttpTransport implements Transport {
  readonly target: string;

  constructor(server: string, private readonly timeoutMs: number) {
    this.target = httpUrl(server);
  }

  async send(n: Notification): Promise<void> {
    const res = await fetch(this.target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [EVENT_HEADER]: n.event },
      body: JSON.stringify({ event: n.event, ...n.data }),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    // Read to the end, so the keep-alive connection can carry the next event.
    await res.arrayBuffer();
    if (res.status < 200 || res.status > 299) throw new NotifyError(`notification server answered ${res.status}`);
  }

  close(): void {
    // fetch's pooled connections close themselves when idle.
  }
}

/** The answer callback of a unary call. */
type AckCallback = (err: GrpcJs.ServiceError | null, ack?: { ok?: boolean }) => void;
type UnaryCall = (request: unknown, options: GrpcJs.CallOptions, callback: AckCallback) => unknown;

/** The service of notify.proto as a client, with its methods looked up by name. */
type NotificationClient = GrpcJs.Client & Record<string, UnaryCall>;

/**
 * One unary RPC per event on `smq.notify.v1.Notification` (plaintext). @grpc/grpc-js is loaded only when gRPC
 * notifications are configured; its reconnect backoff follows the queue's, so a server that comes back is found
 * before the retries run out.
 */
export class GrpcTransport implements Transport {
  readonly target: string;
  private readonly client: NotificationClient;

  constructor(server: string, private readonly timeoutMs: number, backoff: { initial: number; max: number }) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(server) || !/:\d+$/.test(server)) {
      throw new SmqError('ERR_CONFIG', `notify.server: gRPC needs host:port, got ${JSON.stringify(server)}`);
    }
    this.target = server;
    const require = createRequire(import.meta.url);
    const grpc = require('@grpc/grpc-js') as typeof GrpcJs;
    const loader = require('@grpc/proto-loader') as typeof ProtoLoader;
    let definition: ProtoLoader.PackageDefinition;
    try {
      definition = loader.loadSync(PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true });
    } catch (err) {
      throw new SmqError('ERR_CONFIG', `notify: cannot load ${PROTO_PATH}: ${(err as Error).message}`, { cause: err });
    }
    type Package = { smq: { notify: { v1: { Notification: GrpcJs.ServiceClientConstructor } } } };
    const Service = (grpc.loadPackageDefinition(definition) as unknown as Package).smq.notify.v1.Notification;
    this.client = new Service(server, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': backoff.initial,
      'grpc.max_reconnect_backoff_ms': backoff.max,
    }) as NotificationClient;
  }

  send(n: Notification): Promise<void> {
    const method = this.client[GRPC_METHODS[n.event]] as UnaryCall;
    return new Promise((resolve, reject) => {
      method.call(this.client, n.data, { deadline: Date.now() + this.timeoutMs }, (err, ack) => {
        if (err) reject(err);
        else if (ack?.ok !== true) reject(new NotifyError(`notification server did not acknowledge ${n.event} (ok: false)`));
        else resolve();
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
