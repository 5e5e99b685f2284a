import { parseShared } from '../protocol/validate.js';
import { Decoder, Encoder } from '../store/codec.js';
import type { StoredDelivery, StoredSession } from '../store/types.js';

/** A persistent session as it moves: its record, deliveries (in flight and queued) and incoming QoS 2 ids. */
export interface MovingSession {
  readonly session: StoredSession;
  readonly deliveries: StoredDelivery[];
  readonly incoming: number[];
  /** The old node's last delivery sequence number at the snapshot: what it queues later travels in the delta. */
  readonly mark: number;
  /**
   * Identities of the messages the session took lately (Session.firstTime), so that a copy arriving after the
   * move (a message sent again by a node whose view was stale, a merged copy) is not delivered twice.
   */
  readonly seen?: readonly string[];
}

/** What one `moves/<node>/<client id>` value carries. */
export type MoveFrame =
  | { kind: 'snapshot'; from: string; moving: MovingSession }
  | { kind: 'delta'; from: string; mark: number; deliveries: StoredDelivery[] }
  | { kind: 'none'; from: string }
  | { kind: 'redirect'; from: string };

const KINDS = { snapshot: 0x53, delta: 0x44, none: 0x4e, redirect: 0x52 } as const;

/**
 * Move frames: [kind byte][u16 length][sender node id], then for a snapshot or delta parts in the store's
 * encoding (CRC-checked), each as [u32 length][f64 number][bytes]. The number (a delivery's seq, an incoming
 * packet id, a count) is part of what the store's CRC covers but not of the bytes, so it travels in front. A
 * snapshot is the session (number: its delivery count), the mark, its deliveries, then its incoming ids; a
 * delta is an empty head (number: the mark) and deliveries.
 *
 * A snapshot's mark part carries the session's recent message identities in its bytes: [u8 version = 1]
 * [u32 count] and per identity [u16 length][UTF-8]. A node of an older version reads only the mark's number
 * and passes over the bytes, and an older frame has none, so both directions of a rolling upgrade read each
 * other's snapshots. A version byte this node does not know is refused as damage.
 */
export class SessionCodec {
  private readonly encoder = new Encoder();
  private readonly decoder = new Decoder();

  /** `ids`: the receiving node reads message identities (see store/codec.ts writeMessage). */
  encode(clientId: string, f: MoveFrame, ids = true): Buffer {
    const from = Buffer.from(f.from);
    const head = Buffer.alloc(3);
    head[0] = KINDS[f.kind];
    head.writeUInt16BE(from.length, 1);
    const out: Buffer[] = [head, from];
    const part = (n: number, bytes: Buffer): void => {
      const h = Buffer.alloc(12);
      h.writeUInt32BE(bytes.length, 0);
      h.writeDoubleBE(n, 4);
      out.push(h, Buffer.from(bytes));
    };
    const key = `m/${clientId}`;
    if (f.kind === 'snapshot') {
      const m = f.moving;
      part(m.deliveries.length, this.encoder.session(key, true, m.session));
      part(m.mark, encodeSeen(ids ? m.seen ?? [] : []));
      for (const d of m.deliveries) part(d.seq, this.encoder.delivery(key, true, d, ids));
      for (const id of m.incoming) part(id, this.encoder.incoming(key, true, clientId, id));
    } else if (f.kind === 'delta') {
      part(f.mark, Buffer.alloc(0));
      for (const d of f.deliveries) part(d.seq, this.encoder.delivery(key, true, d, ids));
    }
    return Buffer.concat(out);
  }

  /** Throws on a damaged frame (a CRC mismatch, a short part). */
  decode(clientId: string, value: Buffer): MoveFrame {
    const kind = value[0];
    const fromLen = value.readUInt16BE(1);
    const from = value.toString('utf8', 3, 3 + fromLen);
    let pos = 3 + fromLen;
    const next = (): { n: number; bytes: Buffer } => {
      if (pos + 12 > value.length) throw new Error(`damaged session move frame for ${clientId}`);
      const len = value.readUInt32BE(pos);
      const n = value.readDoubleBE(pos + 4);
      const bytes = value.subarray(pos + 12, pos + 12 + len);
      if (bytes.length !== len) throw new Error(`damaged session move frame for ${clientId}`);
      pos += 12 + len;
      return { n, bytes };
    };
    const key = `m/${clientId}`;
    if (kind === KINDS.none) return { kind: 'none', from };
    if (kind === KINDS.redirect) return { kind: 'redirect', from };
    if (kind === KINDS.delta) {
      const mark = next().n;
      const deliveries: StoredDelivery[] = [];
      while (pos < value.length) {
        const { n, bytes } = next();
        deliveries.push(this.decoder.delivery(key, undefined, n, bytes));
      }
      return { kind: 'delta', from, mark, deliveries };
    }
    if (kind !== KINDS.snapshot) throw new Error(`unknown session move frame 0x${(kind ?? 0).toString(16)} for ${clientId}`);
    const head = next();
    const session = this.decoder.session(key, undefined, head.bytes);
    const markPart = next();
    const mark = markPart.n;
    const seen = decodeSeen(clientId, markPart.bytes);
    const deliveries: StoredDelivery[] = [];
    for (let i = 0; i < head.n; i++) {
      const { n, bytes } = next();
      deliveries.push(this.decoder.delivery(key, undefined, n, bytes));
    }
    const incoming: number[] = [];
    while (pos < value.length) {
      const { n, bytes } = next();
      this.decoder.incoming(key, undefined, n, bytes);
      incoming.push(n);
    }
    return { kind: 'snapshot', from, moving: { session, deliveries, incoming, mark, seen } };
  }
}

const SEEN_VERSION = 1;

function encodeSeen(ids: readonly string[]): Buffer {
  if (ids.length === 0) return Buffer.alloc(0);
  const bodies = ids.map((id) => Buffer.from(id));
  const out = Buffer.alloc(5 + bodies.reduce((n, b) => n + 2 + b.length, 0));
  out[0] = SEEN_VERSION;
  out.writeUInt32BE(ids.length, 1);
  let pos = 5;
  for (const b of bodies) {
    pos = out.writeUInt16BE(b.length, pos);
    pos += b.copy(out, pos);
  }
  return out;
}

function decodeSeen(clientId: string, bytes: Buffer): string[] {
  if (bytes.length === 0) return [];
  const damaged = (): Error => new Error(`damaged message identities in the session move frame for ${clientId}`);
  if (bytes[0] !== SEEN_VERSION || bytes.length < 5) throw damaged();
  const count = bytes.readUInt32BE(1);
  const ids: string[] = [];
  let pos = 5;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > bytes.length) throw damaged();
    const len = bytes.readUInt16BE(pos);
    if (pos + 2 + len > bytes.length) throw damaged();
    ids.push(bytes.toString('utf8', pos + 2, pos + 2 + len));
    pos += 2 + len;
  }
  if (pos !== bytes.length) throw damaged();
  return ids;
}

/** The routes a moving session's subscriptions make (see Router: a filter, or `$share/<group>/<filter>`). */
export function routesOf(m: MovingSession): string[] {
  return m.session.subscriptions.map((s) => {
    const shared = parseShared(s.raw);
    return shared !== null && shared !== 'invalid' ? `$share/${shared.group}/${shared.filter}` : s.raw;
  });
}
