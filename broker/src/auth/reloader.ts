/**
 * Files that authentication reads (the password file, the JWKS file) are read once at start-up, where a bad
 * file stops the broker, and then polled: a changed file replaces the old content only if it can be read and
 * parsed, so a half-written or broken file never locks every client out.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { SmqError } from '../errors.js';

/** A file named by an `auth.*` key could not be read or understood. */
export class AuthFileError extends SmqError {
  /** The configuration key naming the file (`auth.password_file`). */
  readonly key: string;
  readonly file: string;

  constructor(key: string, file: string, message: string, options?: { cause?: unknown }) {
    super('ERR_AUTH_FILE', `${key}: ${file}: ${message}`, options);
    this.key = key;
    this.file = file;
  }
}

/** How often a watched file is checked. Polling (not fs.watch) also sees atomic renames and network mounts. */
export const POLL_INTERVAL_MS = 1000;

/** Options of {@link FileReloader}. */
export interface ReloaderOptions<T> {
  /** Configuration key that names the file, for messages. */
  readonly key: string;
  readonly file: string;
  /** What the file is, in words; log messages are `<what> reloaded` and `<what> not reloaded`. */
  readonly what: string;
  /** Turns the file's text into its value; throws (with a message naming no secret) when the text is bad. */
  readonly parse: (text: string) => T;
  readonly log: Logger;
  readonly intervalMs?: number;
}

/** Fields that change when a file is rewritten in place or replaced by a rename. */
function signature(st: Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** A system error by its code (ENOENT, EACCES), anything else by its message. */
function describe(err: unknown): string {
  if (err instanceof SmqError) return err.message;
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

/**
 * Holds the parsed content of a file and keeps it current. `value` is always a content that parsed; a reload
 * that fails is logged at error level and leaves it unchanged.
 */
export class FileReloader<T> {
  private current: T;
  private readonly options: ReloaderOptions<T>;
  private readonly timer: NodeJS.Timeout;
  private seen: string;
  private polling = false;

  /** Reads and parses the file now; throws {@link AuthFileError} when it cannot. Polling starts at once. */
  constructor(options: ReloaderOptions<T>) {
    this.options = options;
    const { key, file } = options;
    let text: string;
    try {
      this.seen = signature(statSync(file));
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new AuthFileError(key, file, `cannot read the file (${describe(err)})`, { cause: err });
    }
    try {
      this.current = options.parse(text);
    } catch (err) {
      throw new AuthFileError(key, file, describe(err), { cause: err });
    }
    this.timer = setInterval(() => void this.poll(), options.intervalMs ?? POLL_INTERVAL_MS);
    // A watched file must not keep a stopping process alive.
    this.timer.unref();
  }

  /** The last content that was read and parsed successfully. */
  get value(): T {
    return this.current;
  }

  /** Stops polling. */
  stop(): void {
    clearInterval(this.timer);
  }

  /** Checks the file once and reloads it when it changed. Exposed for tests; the timer calls it. */
  async poll(): Promise<void> {
    if (this.polling) return; // a slow disk must not pile up overlapping reads
    this.polling = true;
    const { file, what, log } = this.options;
    try {
      let now: string;
      try {
        now = signature(await stat(file));
      } catch (err) {
        now = `missing:${describe(err)}`;
        if (now !== this.seen) log.error({ file, err: describe(err) }, `${what} not reloaded: cannot read it; keeping the previous content`);
        this.seen = now;
        return;
      }
      if (now === this.seen) return;
      this.seen = now;
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        log.error({ file, err: describe(err) }, `${what} not reloaded: cannot read it; keeping the previous content`);
        return;
      }
      let next: T;
      try {
        next = this.options.parse(text);
      } catch (err) {
        log.error({ file, err: describe(err) }, `${what} not reloaded: it is not valid; keeping the previous content`);
        return;
      }
      this.current = next;
      log.info({ file }, `${what} reloaded`);
    } finally {
      this.polling = false;
    }
  }
}
