import type { QoS } from 'mqtt-packet';
import type { Session } from '../session/session.js';
import type { SharedGroup } from './shared.js';

/** One subscription of one session, as stored in the topic tree (or in a shared group). */
export class Subscription {
  readonly session: Session;
  /** The filter as the client sent it (with any `$share/<group>/` prefix); the session's key for it. */
  readonly raw: string;
  /** The filter that is matched against topics. */
  readonly filter: string;
  readonly qos: QoS;
  /** v5 No Local: do not deliver the subscriber's own publishes. */
  readonly noLocal: boolean;
  /** v5 Retain As Published. */
  readonly retainAsPublished: boolean;
  /** v5 Retain Handling (0 send, 1 send if new, 2 never). */
  readonly retainHandling: 0 | 1 | 2;
  /** v5 Subscription Identifier, 0 when absent. */
  readonly id: number;
  /** The shared group this subscription belongs to, or null. */
  readonly group: SharedGroup | null;

  constructor(
    session: Session,
    raw: string,
    filter: string,
    qos: QoS,
    options: { noLocal: boolean; retainAsPublished: boolean; retainHandling: 0 | 1 | 2; id: number },
    group: SharedGroup | null,
  ) {
    this.session = session;
    this.raw = raw;
    this.filter = filter;
    this.qos = qos;
    this.noLocal = options.noLocal;
    this.retainAsPublished = options.retainAsPublished;
    this.retainHandling = options.retainHandling;
    this.id = options.id;
    this.group = group;
  }
}
