import { type MoveFrame, SessionCodec } from './session-codec.js';

/** One session's part of a batch, as the sender encoded it (a single-session frame, session-codec.ts). */
export interface EncodedItem {
  readonly clientId: string;
  readonly frame: Buffer;
}

/** What one `batches/<node>/<batch id>` value carries: the snapshots of many sessions, or their deltas. */
export interface MoveBatch {
  readonly kind: 'snapshots' | 'deltas';
  readonly from: string;
  readonly items: { readonly clientId: string; readonly frame: MoveFrame }[];
}

const KINDS = { snapshots: 0x42, deltas: 0x62 } as const;

/**
 * Batch frames: [kind byte: 'B' snapshots, 'b' deltas][u16 length][sender node id][u32 count], then per session
 * [u16 length][client id, UTF-8][u32 length][its single-session frame]. Each session's frame is exactly what a
 * single move carries (CRC-checked parts, message identities behind their version byte), so a batch adds no
 * second encoding of a session. A batch is read whole before anything of it is used: one damaged session, a
 * count that does not match, a frame of the wrong kind or sender, refuse the whole batch.
 *
 * The kind bytes are new: a node of an older version refuses them as an unknown frame, and batches only go to
 * nodes that announce `move-batch` (members.ts).
 */
export class BatchCodec {
  private readonly single = new SessionCodec();

  encode(kind: MoveBatch['kind'], from: string, items: readonly EncodedItem[]): Buffer {
    const sender = Buffer.from(from);
    const head = Buffer.alloc(7 + sender.length);
    head[0] = KINDS[kind];
    head.writeUInt16BE(sender.length, 1);
    sender.copy(head, 3);
    head.writeUInt32BE(items.length, 3 + sender.length);
    const out: Buffer[] = [head];
    for (const { clientId, frame } of items) {
      const id = Buffer.from(clientId);
      const h = Buffer.alloc(6 + id.length);
      h.writeUInt16BE(id.length, 0);
      id.copy(h, 2);
      h.writeUInt32BE(frame.length, 2 + id.length);
      out.push(h, frame);
    }
    return Buffer.concat(out);
  }

  /** Throws on a damaged batch; `name` (the batch id) is for the message. */
  decode(name: string, value: Buffer): MoveBatch {
    const damaged = (): Error => new Error(`damaged session batch frame ${name}`);
    const kind = value[0] === KINDS.snapshots ? 'snapshots' : value[0] === KINDS.deltas ? 'deltas' : null;
    if (kind === null) throw new Error(`unknown session batch frame 0x${(value[0] ?? 0).toString(16)} ${name}`);
    if (value.length < 3) throw damaged();
    const fromLen = value.readUInt16BE(1);
    if (value.length < 7 + fromLen) throw damaged();
    const from = value.toString('utf8', 3, 3 + fromLen);
    const count = value.readUInt32BE(3 + fromLen);
    let pos = 7 + fromLen;
    const items: MoveBatch['items'][number][] = [];
    const want = kind === 'snapshots' ? 'snapshot' : 'delta';
    for (let i = 0; i < count; i++) {
      if (pos + 2 > value.length) throw damaged();
      const idLen = value.readUInt16BE(pos);
      if (pos + 6 + idLen > value.length) throw damaged();
      const clientId = value.toString('utf8', pos + 2, pos + 2 + idLen);
      const len = value.readUInt32BE(pos + 2 + idLen);
      pos += 6 + idLen;
      if (pos + len > value.length) throw damaged();
      const frame = this.single.decode(clientId, value.subarray(pos, pos + len));
      pos += len;
      if (frame.kind !== want || frame.from !== from) throw damaged();
      items.push({ clientId, frame });
    }
    if (pos !== value.length) throw damaged();
    return { kind, from, items };
  }
}
