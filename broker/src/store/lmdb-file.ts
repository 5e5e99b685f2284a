import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { StoreError } from './errors.js';
import { checkTrees } from './lmdb-check.js';

/*
 * Checks made before LMDB touches a data directory. LMDB maps the data file into memory and trusts it: a file
 * truncated below the pages its meta pages point to kills the process with SIGBUS on the first read, a zeroed
 * meta page with SIGSEGV, both beyond any try/catch, so a broker would crash at every start. These checks read
 * the meta pages with plain file I/O, then walk the B-trees (lmdb-check.ts), and turn such damage into a
 * StoreError first.
 *
 * Meta page layout (LMDB as built into lmdb-js 3, 64-bit): a 24-byte page header (page number, txn id, pad,
 * flags, lower, upper), then the meta: magic u32 @24, version u32 @28, address @32, map size @40, two 48-byte
 * database records @48 and @96 (the first one's pad field @48 holds the page size), last page number u64 @144,
 * transaction id u64 @152. Page 0 and page 1 are the two meta pages; the one with the higher transaction id is
 * the newest commit, the other the commit before it. `lmdb.test.ts` checks this reading against LMDB's own stats.
 */

/** LMDB's magic number at the start of each meta page. */
const MAGIC = 0xbeefc0de;
const MAX_PAGE = 65536;

/** A database record of a meta page: where a B-tree's root is and what LMDB counted in it. */
export interface DbRecord {
  readonly flags: number;
  readonly depth: number;
  readonly branchPages: number;
  readonly leafPages: number;
  readonly overflowPages: number;
  readonly entries: number;
  /** Page number of the root, or null for an empty tree. */
  readonly root: number | null;
}

/** One of the two meta pages. */
export interface MetaPage {
  readonly txnId: number;
  readonly lastPage: number;
  readonly pageSize: number;
  /** LMDB's free-page list. */
  readonly free: DbRecord;
  /** The main database: every record of the store. */
  readonly main: DbRecord;
}

/** What was found in the data directory. */
export interface DataFileState {
  /** The data file's path. */
  readonly file: string;
  /** False for a new store (no data file yet). */
  readonly exists: boolean;
  readonly size: number;
  /** The newest and the previous commit, when the file exists. */
  readonly newest: MetaPage | null;
  readonly previous: MetaPage | null;
  /** The newest commit is damaged but the previous one is intact: open that one (only when recovering). */
  readonly usePrevious: boolean;
  /** What damage is being recovered from, or what was found missing, for the log; null when nothing. */
  readonly recovering: string | null;
}

/**
 * Creates the directory if needed and checks it is a writable directory; throws a StoreError naming what was
 * found otherwise.
 */
export function prepareDirectory(dir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new StoreError(dir, 'a part of the path is a file, not a directory', { cause: err });
    if (code !== 'ENOENT') throw new StoreError(dir, `cannot read the directory: ${describe(err)}`, { cause: err });
    try {
      makeDirectory(dir);
    } catch (e) {
      throw new StoreError(dir, `cannot create the directory: ${describe(e)}`, { cause: e });
    }
    isDir = true;
  }
  if (!isDir) throw new StoreError(dir, 'the path is a file, not a directory (store.dir must name a directory)');
  try {
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new StoreError(dir, `the directory is not writable by this process: ${describe(err)}`, { cause: err });
  }
}

/**
 * mkdir -p, one level at a time: Node's `mkdirSync(dir, { recursive: true })` never returns for some paths
 * (under /proc, for one), which would hang start-up instead of failing it.
 */
function makeDirectory(dir: string): void {
  const full = resolve(dir);
  const parts = full.split(sep).filter((p) => p !== '');
  let path = full.startsWith(sep) ? sep : '';
  for (const part of parts) {
    path = join(path, part);
    try {
      mkdirSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Reads a meta page, or returns a description of what is wrong with it. */
function readMeta(buf: Buffer, offset: number): MetaPage | string {
  if (buf.length < offset + 160) return `ends at byte ${buf.length}, inside the page`;
  const magic = buf.readUInt32LE(offset + 24);
  if (magic !== MAGIC) return `has no LMDB signature (found 0x${magic.toString(16).padStart(8, '0')})`;
  const pageSize = buf.readUInt32LE(offset + 48);
  if (pageSize < 512 || pageSize > MAX_PAGE || (pageSize & (pageSize - 1)) !== 0) return `gives an impossible page size ${pageSize}`;
  const lastPage = Number(buf.readBigUInt64LE(offset + 144));
  const txnId = Number(buf.readBigUInt64LE(offset + 152));
  if (!Number.isSafeInteger(lastPage) || lastPage < 1 || !Number.isSafeInteger(txnId)) return 'holds impossible page or transaction numbers';
  const free = readDb(buf, offset + 48);
  const main = readDb(buf, offset + 96);
  if (free === null || main === null) return 'holds impossible database records';
  return { txnId, lastPage, pageSize, free, main };
}

const NO_PAGE = 0xffffffffffffffffn;

function readDb(buf: Buffer, at: number): DbRecord | null {
  const n = (o: number): number => Number(buf.readBigUInt64LE(at + o));
  const rootRaw = buf.readBigUInt64LE(at + 40);
  const rec = {
    flags: buf.readUInt16LE(at + 4),
    depth: buf.readUInt16LE(at + 6),
    branchPages: n(8),
    leafPages: n(16),
    overflowPages: n(24),
    entries: n(32),
    root: rootRaw === NO_PAGE ? null : Number(rootRaw),
  };
  const counts = [rec.branchPages, rec.leafPages, rec.overflowPages, rec.entries, rec.root ?? 0];
  return counts.every((c) => Number.isSafeInteger(c)) ? rec : null;
}

/**
 * Checks the data file: its meta pages, its size against the newest commit, and that commit's B-trees. Throws a
 * StoreError when the file is damaged, unless `recover` is set and the commit before is intact, in which case
 * the result says to open that one.
 */
export function checkDataFile(dir: string, recover: boolean): DataFileState {
  const file = join(dir, 'data.mdb');
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new StoreError(dir, `${file} is not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof StoreError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // A lock file without a data file: the data file was removed (a new store creates both at once).
      const recovering = existsSync(join(dir, 'lock.mdb')) ? `${file} is missing while lock.mdb is there: starting with an empty store` : null;
      return { file, exists: false, size: 0, newest: null, previous: null, usePrevious: false, recovering };
    }
    throw new StoreError(dir, `cannot read ${file}: ${describe(err)}`, { cause: err });
  }
  const head = Buffer.alloc(Math.min(size, 2 * MAX_PAGE));
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new StoreError(dir, `cannot open ${file}: ${describe(err)}`, { cause: err });
  }
  try {
    readSync(fd, head, 0, head.length, 0);
  } catch (err) {
    throw new StoreError(dir, `cannot read ${file}: ${describe(err)}`, { cause: err });
  } finally {
    closeSync(fd);
  }
  const advice = 'restore it from a backup, or move the directory away to start with an empty store';
  if (size === 0) {
    // A store whose file was cut to nothing: every message is gone. Starting empty without a word would hide
    // that, so it takes `recover` (or removing the file) to go on.
    if (recover) return { file, exists: false, size, newest: null, previous: null, usePrevious: false, recovering: 'the data file is empty (0 bytes): starting with an empty store' };
    throw new StoreError(dir, `the data file ${file} is empty (0 bytes): it was truncated; ${advice}`);
  }
  const m0 = readMeta(head, 0);
  const m1 = typeof m0 === 'string' ? readMeta(head, 4096) : readMeta(head, m0.pageSize);
  if (typeof m0 === 'string' || typeof m1 === 'string') {
    const which = typeof m0 === 'string' ? `meta page 0 ${m0}` : `meta page 1 ${m1 as string}`;
    throw new StoreError(dir, `the data file ${file} (${size} bytes) is damaged: ${which}; ${advice}`);
  }
  const [newest, previous] = m0.txnId >= m1.txnId ? [m0, m1] : [m1, m0];
  // Not `size < (lastPage + 1) * pageSize`: LMDB may count pages it allocated and freed again in the same commit,
  // never written, so a healthy file can end before its last page (a drained node was refused at its restart).
  // The walk reads every page the commit refers to, and one past the end of the file is truncation.
  const damage = (m: MetaPage): string | null => {
    try {
      return checkTrees(file, m);
    } catch (err) {
      throw new StoreError(dir, `cannot read ${file}: ${describe(err)}`, { cause: err });
    }
  };
  const newestDamage = damage(newest);
  if (newestDamage === null) return { file, exists: true, size, newest, previous, usePrevious: false, recovering: null };
  const what = `the data file ${file} is damaged: in its last commit (transaction ${newest.txnId}) ${newestDamage}`;
  const previousDamage = damage(previous);
  if (previousDamage === null) {
    if (recover) {
      const recovering = `${what}; opening the commit before it (transaction ${previous.txnId}): the last commit is lost`;
      return { file, exists: true, size, newest, previous, usePrevious: true, recovering };
    }
    throw new StoreError(dir, `${what}; the commit before it (transaction ${previous.txnId}) is intact and store recovery would open it, losing the last commit; or ${advice}`);
  }
  throw new StoreError(dir, `${what}, and in the commit before it ${previousDamage}; ${advice}`);
}

/** An error's message, with its code when it has one. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(String(code)) ? `${err.message} (${String(code)})` : err.message;
  }
  return String(err);
}
