import { createHash } from 'node:crypto';
import { open as openLmdb, type RootDatabase, type RootDatabaseOptionsWithPath } from 'lmdb';
import type { Logger } from 'pino';
import { CodecError, Decoder, Encoder } from './codec.js';
import { StoreError } from './errors.js';
import { checkDataFile, describe, prepareDirectory } from './lmdb-file.js';
import type { Snapshot, Store, StoredDelivery, StoredMessage, StoredSession } from './types.js';

/**
 * When `flush()` resolves, i.e. when an acknowledged message is safe:
 * - `fsync`: after the commit holding it was written and fsync'd: survives a process crash and a power loss.
 * - `write`: after the commit was written to the operating system, without fsync (LMDB `noSync`): survives a
 *   process crash (SIGKILL, OOM kill) but not a power loss or kernel crash, which may also damage the file
 *   (the next start then reports it, see lmdb-file.ts). `close()` fsyncs once, so a clean shutdown is safe.
 * - `none`: at once, and `dirty` stays false; commits (as in `write`) start in the next event-loop turn, so a
 *   crash may lose the last few milliseconds of writes.
 */
export type Durability = 'fsync' | 'write' | 'none';

/** Options of {@link LmdbStore}. */
export interface LmdbStoreOptions {
  /** The data directory (created if missing); holds `data.mdb` and `lock.mdb`. */
  readonly dir: string;
  /** Default `fsync`. */
  readonly durability?: Durability;
  readonly log: Logger;
  /**
   * Open what is intact of a damaged store instead of refusing to start: the commit before a truncated last one,
   * or the store without the records that fail their checksum. Every dropped record is logged. Default false.
   */
  readonly recover?: boolean;
}

/** The format record: the first thing read, so a store written by a later format is refused, not misread. */
const FORMAT_KEY = ['m', 'format'];
const FORMAT_VALUE = 'smq-store/1';
/**
 * Client ids and topics up to this many UTF-16 units are key parts as they are (at most 900 UTF-8 bytes, inside
 * LMDB's 1978-byte keys); longer ones (MQTT allows 65535 bytes) are keyed by their SHA-256 under the upper-case
 * namespace, and the value carries the full string. So is a string holding U+0000 (which MQTT forbids anyway):
 * lmdb-js writes strings of 64 characters or more unescaped, and a zero byte is its key-element separator, which
 * would let one client's key range take in another's.
 */
const MAX_KEY_CHARS = 300;
const RESOLVED: Promise<void> = Promise.resolve();
const noop = (): void => {};

type Key = (string | number)[];
type LmdbOptions = RootDatabaseOptionsWithPath & { usePreviousSnapshot?: boolean };

/**
 * The durable store, on LMDB (through lmdb-js): one memory-mapped B-tree file, copy-on-write, so a crash at any
 * moment leaves the last commit intact. Writes issued in one event-loop turn go into one transaction, committed on
 * lmdb-js's write thread; every caller of `flush()` in between waits on that one commit (group commit).
 *
 * Keys are arrays, ordered element by element, so one client's deliveries sit together in seq order and a
 * client's records are one exact key range ('a' and 'ab' never mix: the element separator sorts first):
 *   ['r', topic]                retained message
 *   ['s', clientId]             session
 *   ['d', clientId, seq]        delivery (queued or in flight)
 *   ['i', clientId, packetId]   incoming QoS 2 packet id awaiting PUBREL
 *   ['x', batchKey]             a cluster inbox batch delivered here, until etcd has deleted it
 *   ['m', 'format']             format record
 * with 'R', 'S', 'D', 'I', 'X' and a SHA-256 in place of ids longer than MAX_KEY_CHARS. Values are the compact,
 * checksummed encoding of `codec.ts`. Before LMDB maps the file, `open()` checks it in plain JavaScript
 * (`lmdb-file.ts`, `lmdb-check.ts`), so a damaged file gives a StoreError instead of a crash.
 */
export class LmdbStore implements Store {
  readonly dir: string;
  readonly durability: Durability;
  private readonly log: Logger;
  private readonly recover: boolean;
  private readonly encoder = new Encoder();
  private db: RootDatabase<Buffer, Key> | null = null;
  private _dirty = false;
  /** The promise of the newest commit written to (lmdb-js returns one promise per transaction). */
  private last: Promise<unknown> | null = null;
  /** The newest pending deleteSession transaction, which lmdb-js resolves apart from the plain writes. */
  private txn: Promise<unknown> | null = null;
  private flushFor: Promise<unknown> | null = null;
  private flushed: Promise<void> = RESOLVED;
  private readonly hashes = new Map<string, string>();
  /** The `commitError` promises already handled (lmdb-js shares one between the writes of a failed commit). */
  private readonly causes = new WeakSet<Promise<unknown>>();
  private readonly onCommitError = (err: unknown): void => {
    // lmdb-js rejects each write of a failed commit with a generic error whose `commitError` is one more
    // promise, rejected with the cause (EIO, ENOSPC: a full disk). Unhandled, that rejection ended the process
    // (test 98-faults-disk): handled here, once per failed commit, so a full disk costs acknowledgements only.
    const cause = (err as { commitError?: unknown } | null)?.commitError;
    if (cause instanceof Promise && !this.causes.has(cause)) {
      this.causes.add(cause);
      cause.then(undefined, (e: unknown) => this.log.error({ err: e, dir: this.dir }, 'store commit failed: the cause'));
    }
    this.log.error({ err, dir: this.dir }, 'store commit failed');
  };

  constructor(options: LmdbStoreOptions) {
    this.dir = options.dir;
    this.durability = options.durability ?? 'fsync';
    this.log = options.log;
    this.recover = options.recover ?? false;
  }

  /** True from a write until the next `flush()`, whose commit covers it; always false with durability `none`. */
  get dirty(): boolean {
    return this._dirty;
  }

  async open(): Promise<Snapshot> {
    if (this.db !== null) throw new StoreError(this.dir, 'the store is already open');
    prepareDirectory(this.dir);
    guardOrphanCommitFailures();
    const state = checkDataFile(this.dir, this.recover);
    if (state.recovering !== null) this.log.error({ dir: this.dir, file: state.file }, `store recovery: ${state.recovering}`);
    const options: LmdbOptions = {
      path: this.dir,
      encoding: 'binary',
      compression: false,
      // The commit promise then means what it says: with overlappingSync, lmdb-js would resolve it before the fsync.
      overlappingSync: false,
      noSync: this.durability !== 'fsync',
      // deleteSession's range delete runs as a transaction callback; it must see, and be ordered with, the
      // single puts queued around it.
      strictAsyncOrder: true,
      usePreviousSnapshot: state.usePrevious,
    };
    let db: RootDatabase<Buffer, Key>;
    try {
      db = openLmdb<Buffer, Key>(options);
    } catch (err) {
      throw new StoreError(this.dir, `cannot open the data file: ${describe(err)}`, { cause: err });
    }
    try {
      const snapshot = this.read(db);
      this.db = db;
      return snapshot;
    } catch (err) {
      await db.close().catch((e: unknown) => this.log.warn({ err: e, dir: this.dir }, 'store: closing after a failed open failed'));
      throw err instanceof StoreError ? err : new StoreError(this.dir, `cannot read the data file: ${describe(err)}`, { cause: err });
    }
  }

  /** Reads every record in one pass over the B-tree. */
  private read(db: RootDatabase<Buffer, Key>): Snapshot {
    const decoder = new Decoder();
    const retained: StoredMessage[] = [];
    const sessions: StoredSession[] = [];
    const deliveries: StoredDelivery[] = [];
    const incoming = new Map<string, number[]>();
    const consumed = new Set<string>();
    const damaged: { key: unknown; reason: string }[] = [];
    let format: string | null = null;
    let count = 0;
    let lastKey: unknown = null;
    try {
      for (const { key, value } of db.getRange({})) {
        count++;
        lastKey = key;
        const raw: Uint8Array = value;
        const v = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
        try {
          if (!Array.isArray(key) || typeof key[0] !== 'string') throw new CodecError('unknown key');
          const [ns, part, n] = key as [string, unknown, unknown];
          if (ns === 'm') {
            if (part === 'format') format = v.toString('latin1');
            else throw new CodecError('unknown key');
            continue;
          }
          if (typeof part !== 'string') throw new CodecError('unknown key');
          const hashed = ns === 'R' || ns === 'S' || ns === 'D' || ns === 'I' || ns === 'X';
          const id = hashed ? undefined : part;
          switch (ns) {
            case 'r':
            case 'R': {
              if (key.length !== 2) throw new CodecError('unknown key');
              const m = decoder.retained(part, v);
              if (this.keyPart(m.topic) !== part) throw new CodecError('topic does not match its key');
              retained.push(m);
              break;
            }
            case 's':
            case 'S': {
              if (key.length !== 2) throw new CodecError('unknown key');
              const s = decoder.session(part, id, v);
              if (hashed && this.keyPart(s.clientId) !== part) throw new CodecError('client id does not match its key');
              sessions.push(s);
              break;
            }
            case 'd':
            case 'D': {
              if (key.length !== 3 || typeof n !== 'number') throw new CodecError('unknown key');
              const d = decoder.delivery(part, id, n, v);
              if (hashed && this.keyPart(d.clientId) !== part) throw new CodecError('client id does not match its key');
              deliveries.push(d);
              break;
            }
            case 'i':
            case 'I': {
              if (key.length !== 3 || typeof n !== 'number') throw new CodecError('unknown key');
              const clientId = decoder.incoming(part, id, n, v);
              if (hashed && this.keyPart(clientId) !== part) throw new CodecError('client id does not match its key');
              let ids = incoming.get(clientId);
              if (ids === undefined) incoming.set(clientId, (ids = []));
              ids.push(n);
              break;
            }
            case 'x':
            case 'X': {
              if (key.length !== 2) throw new CodecError('unknown key');
              const batchKey = decoder.consumed(part, id, v);
              if (hashed && this.keyPart(batchKey) !== part) throw new CodecError('batch key does not match its key');
              consumed.add(batchKey);
              break;
            }
            default:
              throw new CodecError('unknown key');
          }
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
          damaged.push({ key, reason: err.message });
        }
      }
    } catch (err) {
      // LMDB found its B-tree damaged (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, ...): what lies past the damage cannot
      // be reached, so nothing is opened rather than part of it silently.
      const after = lastKey === null ? 'before the first record' : `after ${count} records (the last read: ${JSON.stringify(lastKey)})`;
      throw new StoreError(this.dir, `the data file is damaged: ${describe(err)}, ${after}; restore it from a backup, or move the directory away to start with an empty store`, { cause: err });
    }
    if (count > 0 && format === null && damaged.length === count) {
      throw new StoreError(this.dir, `the data file holds ${count} records, none of them readable: this is not an smq store, or it is damaged throughout`);
    }
    if (count > 0 && format === null) throw new StoreError(this.dir, `the data file holds ${count} records but no format record: not an smq store, or a damaged one`);
    if (format !== null && format !== FORMAT_VALUE) throw new StoreError(this.dir, `the store has format '${format}'; this smq reads '${FORMAT_VALUE}' (written by another version?)`);
    if (damaged.length > 0) {
      if (!this.recover) {
        const list = damaged.slice(0, 5).map((d) => `${JSON.stringify(d.key)}: ${d.reason}`).join('; ');
        throw new StoreError(this.dir, `${damaged.length} of ${count} records are damaged (${list}${damaged.length > 5 ? '; ...' : ''}); start with store recovery on to drop them (each is logged), or restore a backup`);
      }
      for (const d of damaged) {
        this.log.error({ dir: this.dir, key: d.key, reason: d.reason }, 'store: dropping a damaged record');
        this.track(db.remove(d.key as Key));
      }
    }
    if (format === null) this.track(db.put(FORMAT_KEY, Buffer.from(FORMAT_VALUE, 'latin1')));
    this._dirty = false;
    return { retained, sessions, deliveries, incoming, consumed };
  }

  putRetained(message: StoredMessage): void {
    const db = this.writable();
    const part = this.keyPart(message.topic);
    this.track(db.put([part === message.topic ? 'r' : 'R', part], this.encoder.retained(part, message)));
  }

  deleteRetained(topic: string): void {
    const db = this.writable();
    const part = this.keyPart(topic);
    this.track(db.remove([part === topic ? 'r' : 'R', part]));
  }

  putSession(session: StoredSession): void {
    const db = this.writable();
    const id = session.clientId;
    const part = this.keyPart(id);
    this.track(db.put([part === id ? 's' : 'S', part], this.encoder.session(part, part !== id, session)));
  }

  deleteSession(clientId: string): void {
    const db = this.writable();
    const part = this.keyPart(clientId);
    const short = part === clientId;
    const d = short ? 'd' : 'D';
    const i = short ? 'i' : 'I';
    // One transaction, ordered with the writes around it (strictAsyncOrder), so it also removes deliveries put
    // earlier in this event-loop turn and spares those put after it.
    const t = db.transaction(() => {
      db.removeSync([short ? 's' : 'S', part]);
      const keys = [...db.getKeys({ start: [d, part], end: [d, part, Infinity] })];
      for (const k of db.getKeys({ start: [i, part], end: [i, part, Infinity] })) keys.push(k);
      for (const k of keys) db.removeSync(k);
    });
    this.txn = t;
    const settled = (): void => {
      if (this.txn === t) this.txn = null;
    };
    t.then(settled, settled);
    this.track(t);
  }

  putDelivery(delivery: StoredDelivery): void {
    const db = this.writable();
    const id = delivery.clientId;
    const part = this.keyPart(id);
    this.track(db.put([part === id ? 'd' : 'D', part, delivery.seq], this.encoder.delivery(part, part !== id, delivery)));
  }

  deleteDelivery(clientId: string, seq: number): void {
    const db = this.writable();
    const part = this.keyPart(clientId);
    this.track(db.remove([part === clientId ? 'd' : 'D', part, seq]));
  }

  putIncoming(clientId: string, packetId: number): void {
    const db = this.writable();
    const part = this.keyPart(clientId);
    this.track(db.put([part === clientId ? 'i' : 'I', part, packetId], this.encoder.incoming(part, part !== clientId, clientId, packetId)));
  }

  putConsumed(batchKey: string): void {
    const db = this.writable();
    const part = this.keyPart(batchKey);
    this.track(db.put([part === batchKey ? 'x' : 'X', part], this.encoder.consumed(part, part !== batchKey, batchKey)));
  }

  deleteConsumed(batchKey: string): void {
    const db = this.writable();
    const part = this.keyPart(batchKey);
    this.track(db.remove([part === batchKey ? 'x' : 'X', part]));
  }

  deleteIncoming(clientId: string, packetId: number): void {
    const db = this.writable();
    const part = this.keyPart(clientId);
    this.track(db.remove([part === clientId ? 'i' : 'I', part, packetId]));
  }

  flush(): Promise<void> {
    this._dirty = false;
    const last = this.last;
    if (last === null || this.durability === 'none') return RESOLVED;
    if (this.txn !== null) return Promise.all([last, this.txn]).then(noop);
    // One promise per commit: every caller between two commits gets the same one.
    if (this.flushFor !== last) {
      this.flushFor = last;
      this.flushed = last.then(noop);
    }
    return this.flushed;
  }

  async close(): Promise<void> {
    const db = this.db;
    if (db === null) return;
    try {
      if (this.last !== null) await Promise.all([this.last, this.txn]);
      // Without fsync on each commit, a clean shutdown still leaves everything on disk.
      if (this.durability !== 'fsync') await sync(db);
    } finally {
      this.db = null;
      this.last = this.txn = this.flushFor = null;
      this.flushed = RESOLVED;
      this._dirty = false;
      await db.close();
    }
  }

  private writable(): RootDatabase<Buffer, Key> {
    if (this.db === null) throw new StoreError(this.dir, 'the store is not open');
    return this.db;
  }

  /** Notes the commit a write went into; attaches the failure log once per commit, not per write. */
  private track(commit: Promise<unknown>): void {
    if (commit !== this.last) {
      this.last = commit;
      commit.then(undefined, this.onCommitError);
    }
    if (this.durability !== 'none') this._dirty = true;
  }

  /** The key part for a client id or topic: itself, or its hash when too long for an LMDB key. */
  private keyPart(s: string): string {
    if (s.length <= MAX_KEY_CHARS && s.indexOf('\u0000') === -1) return s;
    let h = this.hashes.get(s);
    if (h === undefined) {
      if (this.hashes.size >= 1024) this.hashes.clear();
      h = createHash('sha256').update(s).digest('base64url');
      this.hashes.set(s, h);
    }
    return h;
  }
}

let guarded = false;

/**
 * lmdb-js (3.5) starts each event-turn batch with a write of its own whose promise nobody holds; when the
 * commit fails (a full disk: EIO/ENOSPC from the write thread) that promise rejects unhandled, and Node ended
 * the whole broker for it (test 98-faults-disk). The failure itself reaches the store through the promises of
 * its own writes (logged, acknowledgements refused), so that one rejection is let go here, with the cause it
 * carries. Any other unhandled rejection is thrown on, which ends the process as Node would have.
 */
function guardOrphanCommitFailures(): void {
  if (guarded) return;
  guarded = true;
  process.on('unhandledRejection', (reason: unknown) => {
    const cause = (reason as { commitError?: unknown } | null)?.commitError;
    if (reason instanceof Error && reason.message.startsWith('Commit failed') && cause instanceof Promise) {
      cause.then(undefined, noop);
      return;
    }
    throw reason;
  });
}

/** Flushes the operating system's buffers of the data file to disk (what noSync commits skip). */
function sync(db: RootDatabase<Buffer, Key>): Promise<void> {
  const env = db as unknown as { sync(callback: (err?: Error | null) => void): void };
  return new Promise((resolve, reject) => env.sync((err) => (err ? reject(err) : resolve())));
}
