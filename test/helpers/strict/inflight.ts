/**
 * The packet identifiers open between a client and a Server on one connection, as the strict checker tracks
 * them (5.0 sections 2.2.1, 4.3, 4.9; 3.1.1 sections 2.3.1, 4.3): the Server's QoS 1 and 2 PUBLISH until the
 * client acknowledges them, and the client's requests until the Server answers them.
 */
import type { ClientLimits } from './client-packets.js';
import type { Report } from './properties.js';
import { PUBACK, PUBCOMP, PUBREC, RULES, SUBACK, UNSUBACK, ruleAt, typeName, type Level } from './spec.js';

/** What the rules need to know of the connection. */
export interface FlightContext {
  readonly level: Level;
  readonly limits: ClientLimits | null;
  /** CONNACK's Session Present: a resumed session may resend and release what an earlier connection sent. */
  readonly sessionPresent: boolean;
  /** False once a client packet could not be read: the rules that pair answers with requests stand down. */
  readonly clientUnderstood: boolean;
}

/** A Server PUBLISH at QoS > 0 the client has not finished acknowledging. */
interface Outbound {
  readonly qos: number;
  /** `sent`: awaiting PUBACK or PUBREC; `received`: PUBREC came, PUBREL due; `released`: PUBREL sent. */
  state: 'sent' | 'received' | 'released';
}

/** One client acknowledgement: PUBACK, PUBREC or PUBCOMP, with its reason code (0 before 5.0). */
interface ClientAck {
  readonly type: number;
  readonly reason: number;
}

/** The identifiers in flight on one connection. */
export class InFlight {
  private readonly outbound = new Map<number, Outbound>();
  /** Ids the Server used in a QoS > 0 PUBLISH on this connection. */
  private readonly sentIds = new Set<number>();
  /**
   * Client acknowledgements of ids not in flight. They are kept and matched later because both directions may be
   * captured out of order (a fuzz input is written whole, before the Server's answers are read), and because a
   * PUBREC the Server does not know is answered by PUBREL (5.0 with 0x92, Packet Identifier not found).
   */
  private readonly early = new Map<number, ClientAck[]>();
  /** Every client PUBREC by id not yet answered by a Server PUBREL 0x92 (Packet Identifier not found). */
  private readonly pubrecs = new Map<number, number>();
  /** Client requests awaiting the Server's answer, by `${answer type}:${id}`: their topic filter counts. */
  private readonly awaiting = new Map<string, number[]>();

  /** A client packet the Server owes `answer` for (`filters`: the topic filters of a request, -1 when unknown). */
  expect(answer: number, id: number, filters: number): void {
    const key = `${answer}:${id}`;
    const list = this.awaiting.get(key);
    if (list === undefined) this.awaiting.set(key, [filters]);
    else list.push(filters);
  }

  /** The client's PUBACK, PUBREC or PUBCOMP for a Server PUBLISH. */
  clientAck(type: number, id: number, reason: number): void {
    if (type === PUBREC) this.pubrecs.set(id, (this.pubrecs.get(id) ?? 0) + 1);
    const o = this.outbound.get(id);
    if (o === undefined) {
      const list = this.early.get(id);
      if (list === undefined) this.early.set(id, [{ type, reason }]);
      else list.push({ type, reason });
      return;
    }
    // The id is free again after PUBACK, PUBCOMP, or a PUBREC with a Reason Code of 0x80 or more (2.2.1).
    if (type === PUBACK || type === PUBCOMP || (type === PUBREC && reason >= 0x80)) this.outbound.delete(id);
    else if (type === PUBREC && o.state === 'sent' && o.qos === 2) o.state = 'received';
  }

  /** A Server answer (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) must answer a client packet with its id. */
  answer(type: number, id: number, codes: number, ctx: FlightContext, report: Report): void {
    if (!ctx.clientUnderstood) return;
    const key = `${type}:${id}`;
    const list = this.awaiting.get(key);
    const filters = list?.shift();
    if (list !== undefined && list.length === 0) this.awaiting.delete(key);
    const reply = type === SUBACK || type === UNSUBACK;
    if (filters === undefined) {
      // [MQTT-2.2.1-5] / [MQTT-2.3.1-6], [MQTT-2.2.1-6] / [MQTT-2.3.1-7]: the id of the packet answered.
      report(ruleAt(reply ? RULES.subackPid : RULES.ackPid, ctx.level), `${typeName(type)} for packet identifier ${id}, which no client packet awaits`);
    } else if (codes >= 0 && filters >= 0 && codes !== filters) {
      // [MQTT-3.8.4-6] / [MQTT-3.8.4-5], [MQTT-3.11.3-2]: one code per topic filter.
      const rule = ruleAt(type === SUBACK ? RULES.subackCount : RULES.unsubackCount, ctx.level);
      report(rule, `${typeName(type)} with ${codes} reason code(s) for ${filters} topic filter(s)`);
    }
  }

  /** A Server PUBLISH at QoS 1 or 2 with a non-zero id. */
  serverPublish(qos: number, id: number, dup: boolean, ctx: FlightContext, report: Report): void {
    const o = this.outbound.get(id);
    if (o !== undefined) {
      // [MQTT-4.3.3-6] after PUBREL the PUBLISH is never sent again; otherwise only a retransmission (DUP) reuses it.
      if (o.state === 'released') report('[MQTT-4.3.3-6]', `PUBLISH with packet identifier ${id}, already released by PUBREL`);
      else if (!dup) report(ruleAt(RULES.publishPidUnused, ctx.level), `PUBLISH with packet identifier ${id}, still in flight to the client`);
      return;
    }
    const fresh = !this.sentIds.has(id);
    this.sentIds.add(id);
    // Only an acknowledgement of this PUBLISH's kind: a PUBREC for an id that carries a QoS 1 PUBLISH is answered
    // by the Server's PUBREL 0x92 (not found), which must still find it.
    const early = this.takeEarly(id, (a) => (qos === 1 ? a.type === PUBACK : a.type !== PUBACK));
    if (early !== undefined) {
      if (qos === 2 && early.type === PUBREC && early.reason < 0x80) this.outbound.set(id, { qos, state: 'received' });
      return;
    }
    // [MQTT-3.3.1-3] DUP only on a retransmission: never on the first sending of an id in a new session.
    if (dup && fresh && !ctx.sessionPresent && ctx.level >= 4) {
      report('[MQTT-3.3.1-3]', `DUP set on the first PUBLISH with packet identifier ${id} of a new session`);
    }
    this.outbound.set(id, { qos, state: 'sent' });
    // [MQTT-3.3.4-9] no more unacknowledged QoS 1 and 2 PUBLISH than the client's Receive Maximum.
    if (ctx.level === 5 && ctx.limits !== null && this.outbound.size > ctx.limits.receiveMaximum) {
      report('[MQTT-3.3.4-9]', `${this.outbound.size} unacknowledged QoS 1/2 PUBLISH; the client's Receive Maximum is ${ctx.limits.receiveMaximum}`);
    }
  }

  /** A Server PUBREL with a non-zero id: the second half of a QoS 2 PUBLISH the Server sent. */
  serverPubrel(id: number, reason: number, ctx: FlightContext, report: Report): void {
    if (reason === 0x92) {
      // 5.0 section 4.3.3: the answer to a client PUBREC whose id the Server does not know (or that names a QoS 1
      // PUBLISH): right whenever the client sent such a PUBREC, whatever else flies under that id.
      const n = this.pubrecs.get(id) ?? 0;
      if (n > 0) {
        if (n === 1) this.pubrecs.delete(id);
        else this.pubrecs.set(id, n - 1);
        this.takeEarly(id, (a) => a.type === PUBREC);
        return;
      }
      if (ctx.clientUnderstood) report(ruleAt(RULES.ackPid, ctx.level), `PUBREL 0x92 for packet identifier ${id}, which no client PUBREC named`);
      return;
    }
    const o = this.outbound.get(id);
    if (o === undefined) {
      // It answers a client's PUBREC for an id the Server does not know; a resumed session may release what an
      // earlier connection received; a new session has nothing else to release.
      if (this.takeEarly(id, (a) => a.type === PUBREC) !== undefined) return;
      if (!ctx.sessionPresent && ctx.clientUnderstood && ctx.level >= 4) {
        report(ruleAt(RULES.ackPid, ctx.level), `PUBREL for packet identifier ${id}, which no QoS 2 PUBLISH of this session used`);
      }
      return;
    }
    if (o.qos !== 2) report(ruleAt(RULES.ackPid, ctx.level), `PUBREL for packet identifier ${id} of a QoS 1 PUBLISH`);
    else if (o.state === 'sent') report('§4.3.3', `PUBREL for packet identifier ${id} before the client's PUBREC`);
    else o.state = 'released';
  }

  /** Removes and returns the first early acknowledgement of `id` that `match` accepts. */
  private takeEarly(id: number, match: (a: ClientAck) => boolean): ClientAck | undefined {
    const list = this.early.get(id);
    const i = list?.findIndex(match) ?? -1;
    if (list === undefined || i < 0) return undefined;
    const [a] = list.splice(i, 1);
    if (list.length === 0) this.early.delete(id);
    return a;
  }
}
