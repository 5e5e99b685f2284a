import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { type KubeConfig, Watch } from '@kubernetes/client-node';

/** An object as the API server has it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** An answer of the API server that is not a success: `status` and its reason (`Conflict`, `NotFound`, ...). */
export class KubeError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
    this.name = 'KubeError';
  }
}

/** The plural and API path prefix of each kind the operator touches. */
const KINDS: Record<string, { readonly prefix: string; readonly plural: string }> = {
  ConfigMap: { prefix: '/api/v1', plural: 'configmaps' },
  Secret: { prefix: '/api/v1', plural: 'secrets' },
  Service: { prefix: '/api/v1', plural: 'services' },
  Pod: { prefix: '/api/v1', plural: 'pods' },
  Event: { prefix: '/api/v1', plural: 'events' },
  StatefulSet: { prefix: '/apis/apps/v1', plural: 'statefulsets' },
  PodDisruptionBudget: { prefix: '/apis/policy/v1', plural: 'poddisruptionbudgets' },
  Lease: { prefix: '/apis/coordination.k8s.io/v1', plural: 'leases' },
  ServiceMonitor: { prefix: '/apis/monitoring.coreos.com/v1', plural: 'servicemonitors' },
  SmqCluster: { prefix: '/apis/smq.sestack.io/v1alpha1', plural: 'smqclusters' },
  SmqBridge: { prefix: '/apis/smq.sestack.io/v1alpha1', plural: 'smqbridges' },
};

/** The collection path of a kind, in a namespace or across all (namespace ''). */
export function collectionPath(kind: string, namespace: string): string {
  const k = KINDS[kind];
  if (k === undefined) throw new Error(`unknown kind ${kind}`);
  return namespace === '' ? `${k.prefix}/${k.plural}` : `${k.prefix}/namespaces/${namespace}/${k.plural}`;
}

/** The path of one object. */
export function objectPath(kind: string, namespace: string, name: string): string {
  return `${collectionPath(kind, namespace)}/${encodeURIComponent(name)}`;
}

/** The field manager of every change the operator makes (server-side apply). */
export const FIELD_MANAGER = 'smq-operator';

/**
 * The operator's access to the API server: JSON requests authenticated as the KubeConfig says (in-cluster
 * ServiceAccount, or a kubeconfig file), server-side apply with one field manager, and watches.
 */
export class KubeClient {
  private readonly server: URL;
  /** Requests sent and not yet answered; idle() waits for them. */
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly config: KubeConfig) {
    const cluster = config.getCurrentCluster();
    if (cluster === null) throw new Error('the kubeconfig names no current cluster');
    this.server = new URL(cluster.server);
  }

  /** One request; resolves with the parsed body (null for an empty one), rejects with a KubeError for 4xx/5xx. */
  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    this.inflight++;
    try {
      return await this.send<T>(method, path, body, contentType);
    } finally {
      if (--this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Resolves once no request is in flight, or after `timeoutMs` (a stopping operator lets its requests end). */
  idle(timeoutMs = 5000): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs).unref();
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async send<T>(method: string, path: string, body: unknown, contentType: string): Promise<T> {
    const options: RequestOptions = {
      method,
      hostname: this.server.hostname,
      port: this.server.port,
      path,
      headers: { accept: 'application/json' } as Record<string, string>,
    };
    await this.config.applyToHTTPSOptions(options);
    // One connection per request, not pooled: the operator makes a few requests per reconcile, and pooled
    // sockets left by the kubeconfig's per-call agents surfaced as unhandled 'socket hang up' rejections when
    // the API server went away (seen in test 92 at teardown, 3 runs in 3; with this, 0 in 4).
    options.agent = false;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload !== undefined) Object.assign(options.headers as Record<string, string>, { 'content-type': contentType, 'content-length': String(payload.length) });
    const send = this.server.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let parsed: unknown = null;
          try {
            parsed = text === '' ? null : JSON.parse(text);
          } catch {
            parsed = text;
          }
          if (status >= 400) {
            const s = (parsed ?? {}) as { reason?: string; message?: string };
            reject(new KubeError(status, s.reason ?? String(status), `${method} ${path}: ${status} ${s.message ?? text}`));
          } else {
            resolve(parsed as T);
          }
        });
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** Server-side apply: the object as this operator wants it; fields it does not name stay as others set them. */
  apply<T extends KubeObject>(obj: T, subresource = ''): Promise<T> {
    const path = objectPath(obj.kind, obj.metadata.namespace ?? '', obj.metadata.name) + (subresource === '' ? '' : `/${subresource}`);
    return this.request<T>('PATCH', `${path}?fieldManager=${FIELD_MANAGER}&force=true`, obj, 'application/apply-patch+yaml');
  }

  /** Reads an object; null when it does not exist. */
  async get<T = KubeObject>(kind: string, namespace: string, name: string): Promise<T | null> {
    try {
      return await this.request<T>('GET', objectPath(kind, namespace, name));
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return null;
      throw err;
    }
  }

  /** Deletes an object; false when it was not there. */
  async delete(kind: string, namespace: string, name: string): Promise<boolean> {
    try {
      await this.request('DELETE', objectPath(kind, namespace, name), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return false;
      throw err;
    }
  }

  /** Lists a kind; returns the items and the list's resourceVersion (to watch from). */
  async list<T = KubeObject>(kind: string, namespace: string, labelSelector = ''): Promise<{ items: T[]; resourceVersion: string }> {
    const query = labelSelector === '' ? '' : `?labelSelector=${encodeURIComponent(labelSelector)}`;
    const res = await this.request<{ items: T[]; metadata: { resourceVersion: string } }>('GET', collectionPath(kind, namespace) + query);
    return { items: res.items, resourceVersion: res.metadata.resourceVersion };
  }

  /** Watches a collection from a resourceVersion; `done` is called when the stream ends (for any reason). */
  async watch(
    kind: string, namespace: string, resourceVersion: string, labelSelector: string,
    onEvent: (type: string, obj: KubeObject) => void, done: (err: unknown) => void,
  ): Promise<{ abort(): void }> {
    const query: Record<string, string | boolean> = { resourceVersion, allowWatchBookmarks: true };
    if (labelSelector !== '') query['labelSelector'] = labelSelector;
    const controller = await new Watch(this.config).watch(collectionPath(kind, namespace), query, (type, obj) => onEvent(type, obj as KubeObject), done);
    return { abort: () => controller.abort() };
  }
}
