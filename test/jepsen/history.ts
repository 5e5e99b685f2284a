/**
 * The history of a checker run: every operation the workload made and saw, and every fault, with its time in
 * ms since the run started. The checker judges only this (plus the final state it asked the nodes for), so a
 * saved history can be checked again, or read to investigate a violation.
 */

/** A message id is `<publisher>:<seq>`; the payload starts with it. */
export type MsgId = string;

/** Every kind of event a run records. */
export type Event =
  /** A publish handed to the client: `conn` is the publisher's connection count at that moment. */
  | { t: number; type: 'publish'; client: string; id: MsgId; seq: number; topic: string; qos: 1 | 2; retain: boolean; conn: number }
  /** Its PUBACK/PUBCOMP (ok) or the client's error for it (not acknowledged). */
  | { t: number; type: 'ack'; client: string; id: MsgId; ok: boolean; conn: number; error?: string }
  /** A message delivered to a subscriber, with the packet id it came under (to tell a resend from a second send). */
  | { t: number; type: 'deliver'; client: string; id: MsgId; topic: string; qos: number; dup: boolean; retain: boolean; conn: number; node: string; pid: number }
  /** A CONNACK accepting the client on `node` (the node whose client proxy it went through). */
  | { t: number; type: 'connect'; client: string; node: string; sessionPresent: boolean; conn: number }
  /** A SUBACK: the filter and what was granted. */
  | { t: number; type: 'subscribed'; client: string; filter: string; granted: number; conn: number }
  /** The end of a connection: a server DISCONNECT (reason code), a close, an error. */
  | { t: number; type: 'disconnect'; client: string; node: string; reason: string; conn: number }
  /** A move the workload made (hop or takeover) and its outcome. */
  | { t: number; type: 'move'; client: string; kind: 'hop' | 'takeover'; from: string; to: string }
  /** A fault injected (`start`) or healed (`end`). */
  | { t: number; type: 'fault'; phase: 'start' | 'end'; kind: string; target: string; detail?: string }
  /** A phase of the run began: faults, heal, quiet, check. */
  | { t: number; type: 'phase'; name: string };

/** Distributes Omit over the union, so each event is recorded without its time. */
type WithoutTime<E> = E extends unknown ? Omit<E, 't'> : never;

/** An append-only list of events, timed from its creation. */
export class History {
  readonly events: Event[] = [];
  private readonly t0 = performance.now();

  /** Milliseconds since the run started. */
  now(): number {
    return Math.round((performance.now() - this.t0) * 10) / 10;
  }

  /** Appends `e`, stamped with the current time. */
  add(e: WithoutTime<Event>): void {
    this.events.push({ ...e, t: this.now() } as Event);
  }

  /** One JSON object per line, for a history file. */
  toJsonLines(): string {
    return this.events.map((e) => JSON.stringify(e)).join('\n') + '\n';
  }
}

/** Parses a history file written by {@link History.toJsonLines}. */
export function parseHistory(text: string): Event[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Event);
}

/** The payload of message `id`: the id, a space, its sequence number (publishers pad nothing more). */
export function payloadOf(id: MsgId, seq: number): string {
  return `${id} ${seq}`;
}

/** The message id a payload carries (everything before the first space). */
export function idOfPayload(payload: string): MsgId {
  const sp = payload.indexOf(' ');
  return sp < 0 ? payload : payload.slice(0, sp);
}
