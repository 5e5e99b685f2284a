import type { Logger } from 'pino';
import { collectionPath, type KubeClient } from './client.js';

/** The object an Event is about. */
export interface Involved {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly uid?: string };
}

/**
 * Records Kubernetes Events (`kubectl describe` shows them) for what users must see: a rollout started, a
 * bridge applied, a reconcile that failed. The same event repeated within a minute is not recorded again.
 */
export class EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  normal(obj: Involved, reason: string, message: string): void {
    this.emit(obj, 'Normal', reason, message);
  }

  warning(obj: Involved, reason: string, message: string): void {
    this.emit(obj, 'Warning', reason, message);
  }

  private emit(obj: Involved, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const ns = obj.metadata.namespace ?? 'default';
    const key = `${ns}/${obj.metadata.name}/${reason}/${message}`;
    const now = Date.now();
    if ((this.recent.get(key) ?? 0) > now - 60_000) return;
    this.recent.set(key, now);
    if (this.recent.size > 1000) for (const [k, t] of this.recent) if (t < now - 60_000) this.recent.delete(k);
    const time = new Date(now).toISOString();
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${obj.metadata.name}.${now.toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`, namespace: ns },
      involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: ns, uid: obj.metadata.uid },
      type, reason, message,
      source: { component: 'smq-operator' },
      reportingComponent: 'smq-operator',
      firstTimestamp: time,
      lastTimestamp: time,
      count: 1,
    };
    this.client.request('POST', collectionPath('Event', ns), event).catch((err: unknown) => {
      this.log.warn({ reason, err: (err as Error).message }, 'recording an event failed');
    });
  }
}
