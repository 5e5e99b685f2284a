/**
 * Files the broker reads at start-up and then follows while it runs: the password and JWKS files, the ACL
 * rules, the TLS certificate, key and CA. They are read and parsed once, where a bad file stops the start, and
 * then polled; a changed set replaces the content only when every file can be read and parsed, so a
 * half-written or broken file never takes away what works.
 *
 * Polling the paths' stat rather than fs.watch: a stat follows the path, so an editor's rename-over and the
 * `..data` symlink swap of a Kubernetes Secret or ConfigMap are seen, where fs.watch stays on the inode it
 * started with (after the first swap, a deleted file). Not fs.watchFile either, whose first stat is taken
 * asynchronously and so misses a change made right after start-up. A few stats a second cost nothing.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SmqError } from '../errors.js';

/** Milliseconds between two looks at the files. */
export const POLL_INTERVAL_MS = 1000;

/** Milliseconds a change must stay still before it is read, so a certificate and its key land together. */
export const SETTLE_MS = 300;

/** A watched file could not be read; `cause` is the system error (ENOENT, EACCES, EISDIR, ...). */
export class FileReadError extends SmqError {
  readonly file: string;

  constructor(file: string, cause: unknown) {
    super('ERR_FILE_READ', `${file}: cannot read it (${errnoOf(cause)})`, { cause });
    this.file = file;
  }
}

/** The code of a system error (ENOENT), else its message. */
export function errnoOf(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

/** How often the files are looked at; the defaults suit production, tests shorten them. */
export interface WatchTiming {
  /** Milliseconds between two looks; {@link POLL_INTERVAL_MS} by default. */
  readonly intervalMs?: number | undefined;
  /** Milliseconds a change must stay still before it is read; {@link SETTLE_MS} by default. */
  readonly settleMs?: number | undefined;
}

/** Options of {@link WatchedFiles}. */
export interface WatchedFilesOptions<T> extends WatchTiming {
  /** The paths, read as UTF-8 text. */
  readonly files: readonly string[];
  /** Turns the texts (in the order of `files`) into the value; throws when they are not usable. */
  readonly parse: (texts: readonly string[]) => T;
  /** A changed set was read and parsed: `value` is now in force. */
  readonly onReload: (value: T, previous: T) => void;
  /** A changed set was not taken: a file cannot be read ({@link FileReadError}) or `parse` threw. */
  readonly onError: (err: unknown) => void;
  /** After a failure, the files hold the content in force again. */
  readonly onRestore?: (() => void) | undefined;
}

/** The parts of a stat that change when a file is rewritten, renamed over or swapped behind a symlink. */
function signature(st: Stats | undefined): string {
  return st === undefined ? 'missing' : `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function statOrUndefined(file: string): Stats | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined; // reading it reports why
  }
}

/** Read synchronously: files are small and read only when they changed, and start-up needs the result now. */
function readAll(files: readonly string[]): string[] {
  return files.map((file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new FileReadError(file, err);
    }
  });
}

function sameTexts(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((text, i) => text === b[i]);
}

/**
 * The parsed content of one or several files, kept current. `value` is always a content that parsed; a change
 * that does not is handed to `onError` and leaves it unchanged, and a file touched but not changed is no
 * reload. The constructor reads the files; {@link watch} starts polling them.
 */
export class WatchedFiles<T> {
  private readonly options: WatchedFilesOptions<T>;
  private current: T;
  /** The texts `current` was parsed from. */
  private texts: readonly string[];
  /** Stat signatures of the files when last looked at; a different one means "read them again". */
  private seen: string;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** A look (stat, settle, stat again) is in progress. */
  private looking = false;
  /** The last attempt failed, so a return to the content in force is worth saying. */
  private failed = false;

  /** Reads and parses the files now; throws {@link FileReadError}, or what `parse` throws. */
  constructor(options: WatchedFilesOptions<T>) {
    this.options = options;
    // The stat comes before the read, so a write landing in between shows up as a change at the next look.
    this.seen = options.files.map((f) => signature(statOrUndefined(f))).join('|');
    this.texts = readAll(options.files);
    this.current = options.parse(this.texts);
  }

  /** The last content that was read and parsed successfully. */
  get value(): T {
    return this.current;
  }

  /** Starts polling. Idempotent; the timer is unref'd, so a watch never keeps a stopping process alive. */
  watch(): void {
    if (this.timer !== null || this.closed) return;
    const settleMs = this.options.settleMs ?? SETTLE_MS;
    this.timer = setInterval(() => {
      // Only a throwing callback gets here: reported, never thrown out of a timer, where it would end the process.
      this.look(settleMs).catch((err: unknown) => this.options.onError(err));
    }, this.options.intervalMs ?? POLL_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops polling for good. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Looks at the files now and reloads them if their stat changed, without waiting for them to settle: for a
   * caller that knows the write is complete. Resolves true when the value was replaced.
   */
  check(): Promise<boolean> {
    return this.look(0);
  }

  /** Reads the files now, whatever their stat says. Returns true when the value was replaced. */
  reload(): boolean {
    let texts: string[];
    let next: T;
    try {
      texts = readAll(this.options.files);
      if (sameTexts(texts, this.texts)) {
        if (this.failed) this.options.onRestore?.();
        this.failed = false;
        return false;
      }
      next = this.options.parse(texts);
    } catch (err) {
      this.failed = true;
      this.options.onError(err);
      return false;
    }
    const previous = this.current;
    this.current = next;
    this.texts = texts;
    this.failed = false;
    this.options.onReload(next, previous);
    return true;
  }

  /** One look at the files; never two at once, however slow the disk. */
  private async look(settleMs: number): Promise<boolean> {
    if (this.looking) return false;
    this.looking = true;
    try {
      const sig = await this.signature();
      if (sig === this.seen || this.closed) return false;
      if (settleMs > 0) {
        await sleep(settleMs, undefined, { ref: false });
        // Still moving (or closed meanwhile): the next look starts a new wait.
        if (this.closed || (await this.signature()) !== sig) return false;
      }
      this.seen = sig;
      return this.reload();
    } finally {
      this.looking = false;
    }
  }

  /** The files' stat signatures, without blocking the event loop (a slow volume must not stall clients). */
  private async signature(): Promise<string> {
    const stats = await Promise.all(this.options.files.map((f) => stat(f).catch(() => undefined)));
    return stats.map(signature).join('|');
  }
}
