import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { DbRecord, MetaPage } from './lmdb-file.js';

/*
 * A walk over the data file's B-trees in plain JavaScript, before LMDB maps the file. LMDB trusts every page it
 * reads: a damaged branch or leaf page (a node offset past the page, a child page number out of range) makes it
 * read or write outside its map and the process dies with SIGSEGV, SIGBUS or an assertion's SIGABRT, which no
 * try/catch sees, so the broker would crash at every start. Random damage to a page did that in about one case
 * in four when this was written. The walk checks what LMDB relies on, page by page, and reports the first thing
 * that is wrong; a file that passes holds only pages LMDB can follow. Values' bytes are not LMDB's concern:
 * the codec's checksums cover them.
 *
 * Page layout (LMDB 1.0 as built into lmdb-js 3, with MDB_DEVEL's relative offsets): a 24-byte header — page
 * number u64, txn id u64, pad u16, flags u16, then lower u16 and upper u16, both relative to the end of the
 * header (an overflow page has the page count u32 there instead) — then lower/2 node offsets u16, relative to
 * the end of the header too. A node is lo u16, hi u16, flags u16, key size u16, the key, then the data; in a
 * branch node lo|hi<<16|flags<<32 is the child page number, in a leaf node lo|hi<<16 the data size, and with
 * F_BIGDATA the data is the u64 number of its first overflow page. The free list's keys are txn ids (u64,
 * compared as integers); its values are lists of free pages in lmdb-js's own format (with runs and empty
 * slots), which the walk does not read: a wrong entry there makes LMDB reuse a page wrongly, which the values'
 * checksums catch, but does not make it read outside its map. A false alarm would stop a healthy broker.
 */

const HEADER = 24;
const NODE = 8;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
const P_TYPES = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40;
const F_BIGDATA = 0x01;
const MAX_DEPTH = 32;

/** Walks both B-trees of the commit `meta` describes; returns what is wrong, or null when nothing is. */
export function checkTrees(file: string, meta: MetaPage): string | null {
  const fd = openSync(file, 'r');
  try {
    const walk = new Walk(fd, meta);
    return walk.tree('the record tree', meta.main, false) ?? walk.tree('the free-page list', meta.free, true);
  } finally {
    closeSync(fd);
  }
}

class Walk {
  private readonly fd: number;
  private readonly meta: MetaPage;
  private readonly ps: number;
  /** One buffer per tree level, since a walk holds one page per level. */
  private readonly buffers: Buffer[] = [];
  /** Pages reached so far: each page belongs to one place only. */
  private readonly seen: Uint8Array;
  /** Bytes in the file: LMDB may number pages past its end that no tree refers to (allocated, freed, never written). */
  private readonly fileSize: number;
  private branch = 0;
  private leaf = 0;
  private overflow = 0;
  private entries = 0;
  private prevKey: Buffer | null = null;
  private prevTxn = -1;

  constructor(fd: number, meta: MetaPage) {
    this.fileSize = fstatSync(fd).size;
    this.fd = fd;
    this.meta = meta;
    this.ps = meta.pageSize;
    this.seen = new Uint8Array(meta.lastPage + 1);
  }

  tree(name: string, db: DbRecord, isFree: boolean): string | null {
    this.branch = this.leaf = this.overflow = this.entries = 0;
    this.prevKey = null;
    this.prevTxn = -1;
    if (db.root === null) {
      return db.depth === 0 && db.entries === 0 ? null : `${name} has no root but claims ${db.entries} entries`;
    }
    if (db.depth < 1 || db.depth > MAX_DEPTH) return `${name} claims an impossible depth ${db.depth}`;
    const err = this.page(db.root, 1, db, isFree);
    if (err !== null) return `${name}: ${err}`;
    const counted = `${this.branch}/${this.leaf}/${this.overflow} branch/leaf/overflow pages and ${this.entries} entries`;
    const claimed = `${db.branchPages}/${db.leafPages}/${db.overflowPages} and ${db.entries}`;
    if (this.branch !== db.branchPages || this.leaf !== db.leafPages || this.overflow !== db.overflowPages || this.entries !== db.entries) {
      return `${name} holds ${counted}, but its header claims ${claimed}`;
    }
    return null;
  }

  private claim(n: number, what: string): string | null {
    if (!Number.isSafeInteger(n) || n < 2 || n > this.meta.lastPage) return `${what} points to page ${n}, outside pages 2..${this.meta.lastPage}`;
    if (this.seen[n] === 1) return `page ${n} is reached twice`;
    this.seen[n] = 1;
    return null;
  }

  private read(n: number, level: number): Buffer | string {
    let b = this.buffers[level];
    if (b === undefined) this.buffers[level] = b = Buffer.allocUnsafe(this.ps);
    const got = readSync(this.fd, b, 0, this.ps, n * this.ps);
    if (got !== this.ps) return `page ${n} lies past the end of the file (truncated)`;
    if (Number(b.readBigUInt64LE(0)) !== n) return `page ${n} is labelled page ${Number(b.readBigUInt64LE(0))}`;
    if (Number(b.readBigUInt64LE(8)) > this.meta.txnId) return `page ${n} claims a transaction after the last commit`;
    return b;
  }

  private page(n: number, depth: number, db: DbRecord, isFree: boolean): string | null {
    const claimErr = this.claim(n, depth === 1 ? 'the root' : `a branch at level ${depth - 1}`);
    if (claimErr !== null) return claimErr;
    const p = this.read(n, depth);
    if (typeof p === 'string') return p;
    const flags = p.readUInt16LE(18) & P_TYPES;
    const isLeaf = depth === db.depth;
    if (flags !== (isLeaf ? P_LEAF : P_BRANCH)) return `page ${n} at level ${depth} has flags 0x${flags.toString(16)}, expected a ${isLeaf ? 'leaf' : 'branch'}`;
    const lower = p.readUInt16LE(20);
    const upper = p.readUInt16LE(22);
    const count = lower >> 1;
    if (lower & 1 || lower > upper || HEADER + upper > this.ps || count < 1) return `page ${n} has impossible bounds (lower ${lower}, upper ${upper})`;
    if (isLeaf) this.leaf++;
    else this.branch++;
    for (let i = 0; i < count; i++) {
      const off = HEADER + p.readUInt16LE(HEADER + 2 * i);
      if (off < HEADER + upper || off + NODE > this.ps) return `page ${n} node ${i} lies outside the page`;
      const lo = p.readUInt16LE(off);
      const hi = p.readUInt16LE(off + 2);
      const nodeFlags = p.readUInt16LE(off + 4);
      const ksize = p.readUInt16LE(off + 6);
      const keyEnd = off + NODE + ksize;
      if (keyEnd > this.ps) return `page ${n} node ${i}'s key runs past the page`;
      if (!isLeaf) {
        const child = lo + hi * 0x10000 + nodeFlags * 0x100000000;
        const err = this.page(child, depth + 1, db, isFree);
        if (err !== null) return err;
        continue;
      }
      this.entries++;
      const key = p.subarray(off + NODE, keyEnd);
      const orderErr = this.ordered(key, isFree, n);
      if (orderErr !== null) return orderErr;
      const size = lo + hi * 0x10000;
      if (nodeFlags === F_BIGDATA) {
        if (keyEnd + 8 > this.ps) return `page ${n} node ${i}'s overflow page number runs past the page`;
        const first = Number(p.readBigUInt64LE(keyEnd));
        const err = this.overflowPages(first, size);
        if (err !== null) return `page ${n} node ${i}: ${err}`;
      } else if (nodeFlags === 0) {
        if (keyEnd + size > this.ps) return `page ${n} node ${i}'s value runs past the page`;
      } else return `page ${n} node ${i} has flags 0x${nodeFlags.toString(16)}, which this store never writes`;
    }
    return null;
  }

  /** Keys strictly increase across the whole tree: bytewise for records, as integers for the free list. */
  private ordered(key: Buffer, isFree: boolean, n: number): string | null {
    if (isFree) {
      if (key.length !== 8) return `page ${n} holds a free-list key of ${key.length} bytes`;
      const txn = Number(key.readBigUInt64LE(0));
      if (txn <= this.prevTxn) return `page ${n}: free-list keys out of order`;
      this.prevTxn = txn;
      return null;
    }
    if (key.length === 0) return `page ${n} holds an empty key`;
    if (this.prevKey !== null && Buffer.compare(this.prevKey, key) >= 0) return `page ${n}: keys out of order`;
    this.prevKey = Buffer.from(key);
    return null;
  }

  private overflowPages(first: number, size: number): string | null {
    const p = this.read(first, 0);
    if (typeof p === 'string') return p;
    const flags = p.readUInt16LE(18) & P_TYPES;
    const pages = p.readUInt32LE(20);
    if (flags !== P_OVERFLOW) return `overflow page ${first} has flags 0x${flags.toString(16)}`;
    if (pages < 1 || pages * this.ps < HEADER + size) return `overflow page ${first} spans ${pages} pages, too few for ${size} bytes`;
    if (first + pages - 1 > this.meta.lastPage) return `overflow pages ${first}..${first + pages - 1} run past the last page ${this.meta.lastPage}`;
    // Only the first page is read above: the rest must be in the file too.
    if ((first + pages) * this.ps > this.fileSize) return `overflow pages ${first}..${first + pages - 1} lie past the end of the file (truncated)`;
    for (let k = 0; k < pages; k++) {
      const err = this.claim(first + k, 'an overflow value');
      if (err !== null) return err;
    }
    this.overflow += pages;
    return null;
  }
}
