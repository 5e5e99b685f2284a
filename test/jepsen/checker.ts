/**
 * The checker: judges a run's history and the final state the nodes reported after the heal. Each invariant
 * gives how many cases it checked, how many broke it, and the message and client ids involved, so a failure
 * can be investigated from the run's files. Pure: synthetic histories test it (checker.test.ts).
 */
import type { Event, MsgId } from './history.js';

/** Which clients and topics play which part. */
export interface Roles {
  /** Persistent subscribers of every data topic (`<dataPrefix>#`). */
  readonly dataSubscribers: readonly string[];
  readonly dataPrefix: string;
  /** Persistent members of one shared group on `<sharedPrefix>#`. */
  readonly sharedMembers: readonly string[];
  readonly sharedPrefix: string;
  /** Retained topics start with it. */
  readonly retainedPrefix: string;
}

/** What the nodes said after the heal; `error` when a node could not be asked. */
export interface FinalState {
  readonly ready: readonly { node: string; status: number | string }[];
  readonly clients: readonly { node: string; ids: readonly string[] | null; error?: string }[];
  readonly retained: readonly { node: string; values: Readonly<Record<string, string>> | null; error?: string }[];
  /** The node each client the workload holds connected went through, at the check. */
  readonly connected: Readonly<Record<string, string>>;
}

/** The outcome of one invariant. */
export interface InvariantResult {
  readonly name: string;
  /** Cases looked at (message × subscriber pairs, client ids, nodes, ...). */
  readonly checked: number;
  readonly violations: number;
  /** One line per violation kind or client, naming the ids involved (the first few of each). */
  readonly details: string[];
}

/** Every invariant's result, and the figures of the RELIABILITY line. */
export interface Verdict {
  readonly results: InvariantResult[];
  /** Acknowledged (message, subscriber) pairs that had to arrive, and how many did. */
  readonly acked: number;
  readonly received: number;
  /** Deliveries beyond the first (QoS 1 and 2 together). */
  readonly dup: number;
  /** Distinct messages acknowledged. */
  readonly messages: number;
}

/** The invariant names, in report order. */
export const INVARIANTS = ['delivered', 'shared-delivered', 'qos2-once', 'order', 'sessions-kept', 'one-connection', 'retained', 'ready'] as const;

interface Sent {
  client: string;
  seq: number;
  topic: string;
  qos: 1 | 2;
  retain: boolean;
  sentAt: number;
  connSent: number;
  acked: boolean;
  connAcked: number;
}

/** The first `n` items, and how many more. */
function some(ids: readonly string[], n = 20): string {
  return ids.length <= n ? ids.join(' ') : `${ids.slice(0, n).join(' ')} ... (+${ids.length - n})`;
}

/** Judges `events` and `final` for the clients and topics of `roles`. */
export function check(events: readonly Event[], final: FinalState, roles: Roles): Verdict {
  const sent = new Map<MsgId, Sent>();
  const deliveries = new Map<string, Extract<Event, { type: 'deliver' }>[]>();
  const subscribedAt = new Map<string, number>();
  const connects = new Map<string, Extract<Event, { type: 'connect' }>[]>();
  for (const e of events) {
    if (e.type === 'publish') {
      sent.set(e.id, { client: e.client, seq: e.seq, topic: e.topic, qos: e.qos, retain: e.retain, sentAt: e.t, connSent: e.conn, acked: false, connAcked: -1 });
    } else if (e.type === 'ack') {
      const s = sent.get(e.id);
      if (s !== undefined && e.ok) {
        s.acked = true;
        s.connAcked = e.conn;
      }
    } else if (e.type === 'deliver') {
      const list = deliveries.get(e.client) ?? [];
      list.push(e);
      deliveries.set(e.client, list);
    } else if (e.type === 'subscribed') {
      if (!subscribedAt.has(e.client) && e.granted < 128) subscribedAt.set(e.client, e.t);
    } else if (e.type === 'connect') {
      const list = connects.get(e.client) ?? [];
      list.push(e);
      connects.set(e.client, list);
    }
  }
  // Messages sent before the fault phase began are not judged: routes were still travelling (warm-up).
  const faultsAt = events.find((e) => e.type === 'phase' && e.name === 'faults')?.t ?? 0;
  const ackedData = [...sent.entries()].filter(([, s]) => s.acked && s.topic.startsWith(roles.dataPrefix));
  const results: InvariantResult[] = [];
  let acked = 0;
  let received = 0;
  let dup = 0;

  // Session losses: a reconnect of a persistent client answered with session present 0.
  const losses = new Map<string, { t: number; node: string }[]>();
  let reconnects = 0;
  for (const [client, list] of connects) {
    for (const c of list.slice(1)) {
      reconnects++;
      if (!c.sessionPresent) losses.set(client, [...(losses.get(client) ?? []), { t: c.t, node: c.node }]);
    }
  }
  const lossAfter = (client: string, t: number): string => {
    const l = (losses.get(client) ?? []).find((x) => x.t > t);
    return l === undefined ? '' : ` (its session was lost at ${l.t} ms on ${l.node})`;
  };

  // delivered: every acknowledged data message at every subscriber subscribed before it was sent.
  {
    let checked = 0;
    const details: string[] = [];
    let violations = 0;
    for (const client of roles.dataSubscribers) {
      const since = subscribedAt.get(client);
      const got = new Map<MsgId, number>();
      for (const d of deliveries.get(client) ?? []) got.set(d.id, (got.get(d.id) ?? 0) + 1);
      for (const n of got.values()) dup += n - 1;
      if (since === undefined) {
        details.push(`${client}: never subscribed`);
        violations++;
        continue;
      }
      const lost: string[] = [];
      for (const [id, s] of ackedData) {
        if (s.sentAt <= since || s.sentAt <= faultsAt) continue;
        checked++;
        if (got.has(id)) received++;
        else lost.push(id);
      }
      if (lost.length > 0) {
        violations += lost.length;
        const first = sent.get(lost[0] as MsgId) as Sent;
        details.push(`${client}: ${lost.length} lost: ${some(lost)}${lossAfter(client, first.sentAt)}`);
      }
    }
    acked += checked;
    results.push({ name: 'delivered', checked, violations, details });
  }

  // shared-delivered: every acknowledged shared message at one member at least.
  const groupGot = new Map<MsgId, string[]>();
  for (const m of roles.sharedMembers) {
    for (const d of deliveries.get(m) ?? []) groupGot.set(d.id, [...(groupGot.get(d.id) ?? []), m]);
  }
  {
    const joined = Math.max(...roles.sharedMembers.map((m) => subscribedAt.get(m) ?? Infinity));
    const lost: string[] = [];
    let checked = 0;
    for (const [id, s] of sent) {
      if (!s.acked || !s.topic.startsWith(roles.sharedPrefix) || s.sentAt <= joined || s.sentAt <= faultsAt) continue;
      checked++;
      if (groupGot.has(id)) received++;
      else lost.push(id);
    }
    for (const members of groupGot.values()) dup += members.length - 1;
    acked += checked;
    results.push({ name: 'shared-delivered', checked, violations: lost.length, details: lost.length > 0 ? [`group: ${lost.length} lost: ${some(lost)}`] : [] });
  }

  // qos2-once: no QoS 2 message twice at one subscriber, nor twice in the shared group.
  {
    let checked = 0;
    let violations = 0;
    const details: string[] = [];
    for (const client of roles.dataSubscribers) {
      const got = new Map<MsgId, number>();
      for (const d of deliveries.get(client) ?? []) if (sent.get(d.id)?.qos === 2) got.set(d.id, (got.get(d.id) ?? 0) + 1);
      checked += got.size;
      const twice = [...got].filter(([, n]) => n > 1).map(([id, n]) => `${id}x${n}`);
      violations += twice.length;
      if (twice.length > 0) details.push(`${client}: ${twice.length} QoS 2 messages more than once: ${some(twice)}`);
    }
    const shared = [...groupGot].filter(([id]) => sent.get(id)?.qos === 2);
    checked += shared.length;
    const twice = shared.filter(([, m]) => m.length > 1).map(([id, m]) => `${id}@${m.join('+')}`);
    violations += twice.length;
    if (twice.length > 0) details.push(`shared group: ${twice.length} QoS 2 messages more than once: ${some(twice)}`);
    results.push({ name: 'qos2-once', checked, violations, details });
  }

  // order: a subscriber gets one publisher's messages in the order that publisher's connection sent them.
  // Only messages sent and acknowledged on one publisher connection are bound: one resent after a reconnect
  // reached the broker after later ones, and may come after them (counted apart as explained).
  {
    let checked = 0;
    let explained = 0;
    let violations = 0;
    const details: string[] = [];
    for (const client of roles.dataSubscribers) {
      const seen = new Set<MsgId>();
      const maxByConn = new Map<string, number>();
      const maxByPub = new Map<string, number>();
      const bad: string[] = [];
      for (const d of deliveries.get(client) ?? []) {
        const s = sent.get(d.id);
        if (s === undefined || seen.has(d.id)) continue;
        seen.add(d.id);
        checked++;
        const sameConn = s.acked && s.connSent === s.connAcked;
        const key = `${s.client}#${s.connSent}`;
        if (sameConn && (maxByConn.get(key) ?? -1) > s.seq) bad.push(`${d.id} after ${s.client}:${maxByConn.get(key)}`);
        else if ((maxByPub.get(s.client) ?? -1) > s.seq) explained++;
        if (sameConn) maxByConn.set(key, Math.max(maxByConn.get(key) ?? -1, s.seq));
        maxByPub.set(s.client, Math.max(maxByPub.get(s.client) ?? -1, s.seq));
      }
      violations += bad.length;
      if (bad.length > 0) details.push(`${client}: ${bad.length} out of order: ${some(bad, 10)}`);
    }
    if (explained > 0) details.push(`(not violations: ${explained} first deliveries after a later message of their publisher, resent after a publisher reconnect)`);
    results.push({ name: 'order', checked, violations, details });
  }

  // sessions-kept: a persistent session (expiry longer than the run) is present at every reconnect.
  {
    const details = [...losses].map(([client, l]) => `${client}: session present 0 at ${l.map((x) => `${x.t} ms on ${x.node}`).join(', ')}`);
    results.push({ name: 'sessions-kept', checked: reconnects, violations: [...losses.values()].reduce((n, l) => n + l.length, 0), details });
  }

  // one-connection: after the heal, each client id is connected once, on the node the workload went through.
  {
    const where = new Map<string, string[]>();
    const details: string[] = [];
    let violations = 0;
    for (const c of final.clients) {
      if (c.ids === null) {
        violations++;
        details.push(`${c.node}: could not list its clients: ${c.error ?? 'no answer'}`);
        continue;
      }
      for (const id of c.ids) where.set(id, [...(where.get(id) ?? []), c.node]);
    }
    const ids = new Set([...where.keys(), ...Object.keys(final.connected)]);
    const twice: string[] = [];
    const ghosts: string[] = [];
    const missing: string[] = [];
    for (const id of ids) {
      const nodes = where.get(id) ?? [];
      const via = final.connected[id];
      if (nodes.length > 1) twice.push(`${id}@${nodes.join('+')}${via === undefined ? '' : `(client on ${via})`}`);
      else if (nodes.length === 1 && via === undefined) ghosts.push(`${id}@${nodes[0]}`);
      else if (nodes.length === 1 && via !== nodes[0]) ghosts.push(`${id}@${nodes[0]}(client on ${via})`);
      else if (nodes.length === 0 && via !== undefined) missing.push(`${id}(client on ${via})`);
    }
    violations += twice.length + ghosts.length + missing.length;
    if (twice.length > 0) details.push(`${twice.length} client ids connected on two nodes: ${some(twice)}`);
    if (ghosts.length > 0) details.push(`${ghosts.length} connections listed where the client is not: ${some(ghosts)}`);
    if (missing.length > 0) details.push(`${missing.length} connected clients no node lists: ${some(missing)}`);
    results.push({ name: 'one-connection', checked: ids.size, violations, details });
  }

  results.push(checkRetained(sent, final, roles));

  // ready: every node answers /readyz 200 after the heal.
  {
    const bad = final.ready.filter((r) => r.status !== 200);
    results.push({ name: 'ready', checked: final.ready.length, violations: bad.length, details: bad.map((r) => `${r.node}: /readyz ${r.status}`) });
  }
  const messages = [...sent.values()].filter((s) => s.acked).length;
  return { results, acked, received, dup, messages };
}

/**
 * retained: every node holds the same retained message per topic, and it is the writer's last acknowledged value
 * or one it sent after that (an unacknowledged write may have landed).
 */
function checkRetained(sent: ReadonlyMap<MsgId, Sent>, final: FinalState, roles: Roles): InvariantResult {
  const writes = new Map<string, [MsgId, Sent][]>();
  for (const [id, s] of sent) {
    if (s.retain && s.topic.startsWith(roles.retainedPrefix)) writes.set(s.topic, [...(writes.get(s.topic) ?? []), [id, s]]);
  }
  const details: string[] = [];
  let violations = 0;
  let checked = 0;
  for (const r of final.retained) {
    if (r.values === null) {
      violations++;
      details.push(`${r.node}: could not list retained messages: ${r.error ?? 'no answer'}`);
    }
  }
  for (const [topic, list] of writes) {
    list.sort((a, b) => a[1].seq - b[1].seq);
    const lastAcked = list.map(([, s]) => s.acked).lastIndexOf(true);
    if (lastAcked < 0) continue;
    const allowed = new Set(list.slice(lastAcked).map(([id]) => id));
    const seen: string[] = [];
    for (const r of final.retained) {
      if (r.values === null) continue;
      checked++;
      const v = r.values[topic];
      seen.push(`${r.node}=${v ?? 'none'}`);
      if (v === undefined || !allowed.has(v)) violations++;
    }
    const distinct = new Set(final.retained.filter((r) => r.values !== null).map((r) => r.values?.[topic]));
    const stale = seen.some((x) => !allowed.has(x.slice(x.indexOf('=') + 1)));
    // Nodes that hold different values that are each allowed still diverged: one violation for the topic.
    if (distinct.size > 1 && !stale) violations++;
    if (distinct.size > 1 || stale) {
      details.push(`${topic}: last acknowledged ${(list[lastAcked] as [MsgId, Sent])[0]}, nodes hold ${seen.join(' ')}`);
    }
  }
  return { name: 'retained', checked, violations, details };
}
