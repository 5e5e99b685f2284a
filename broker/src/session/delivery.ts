import type { QoS } from 'mqtt-packet';
import type { Message } from '../message/message.js';
import type { SharedGroup } from '../routing/shared.js';
import type { StoredDelivery } from '../store/types.js';

/** Outgoing QoS 2 state: PUBLISH sent, awaiting PUBREC (or PUBACK for QoS 1). */
export const AWAIT_ACK = 0;
/** Outgoing QoS 2 state: PUBREL sent, awaiting PUBCOMP. */
export const AWAIT_COMP = 1;

/** One message on its way to one session: queued, or in flight with a packet id. */
export class Delivery {
  readonly message: Message;
  /** QoS granted for this delivery: min(message QoS, subscription QoS). */
  readonly qos: QoS;
  /** RETAIN flag to send. */
  readonly retain: boolean;
  /** Subscription identifiers of the matching subscriptions (v5), or undefined. */
  readonly subIds: number[] | undefined;
  /** The shared group this came through, so it can go to another member if this one leaves. */
  readonly group: SharedGroup | null;
  packetId = 0;
  /** Order within its session, for the store (0 for QoS 0, which is never stored). */
  seq = 0;
  state: typeof AWAIT_ACK | typeof AWAIT_COMP = AWAIT_ACK;
  /** In flight from an earlier connection, not yet sent again on this one: the client's window was full. */
  held = false;

  constructor(message: Message, qos: QoS, retain: boolean, subIds: number[] | undefined, group: SharedGroup | null) {
    this.message = message;
    this.qos = qos;
    this.retain = retain;
    this.subIds = subIds;
    this.group = group;
  }
}

/** The stored form of a delivery of the session `clientId`. */
export function storedDelivery(clientId: string, d: Delivery): StoredDelivery {
  return { clientId, seq: d.seq, message: d.message, qos: d.qos, retain: d.retain, subIds: d.subIds, packetId: d.packetId, state: d.state };
}
