/**
 * Files that authentication reads (the password file, the JWKS file): read once at start-up, where a bad file
 * stops the broker, and then followed by {@link WatchedFiles}, so a half-written or broken file never locks
 * every client out. This module adds what is particular to `auth.*` files: the error and the log messages.
 */
import type { Logger } from 'pino';
import { SmqError } from '../errors.js';
import { errnoOf, FileReadError, WatchedFiles } from '../files/watched-files.js';

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

/** Options of {@link watchAuthFile}. */
export interface AuthFileOptions<T> {
  /** Configuration key that names the file, for messages. */
  readonly key: string;
  readonly file: string;
  /** What the file is, in words; log messages are `<what> reloaded` and `<what> not reloaded: ...`. */
  readonly what: string;
  /** Turns the file's text into its value; throws (with a message naming no secret) when the text is bad. */
  readonly parse: (text: string) => T;
  readonly log: Logger;
  /** Poll interval, for tests. */
  readonly intervalMs?: number | undefined;
}

/** A system error by its code (ENOENT, EACCES), ours by its message. */
function describe(err: unknown): string {
  if (err instanceof FileReadError) return errnoOf(err.cause);
  if (err instanceof SmqError) return err.message;
  return errnoOf(err);
}

/**
 * Reads and parses an `auth.*` file and starts following it. Throws {@link AuthFileError} naming the key and
 * the file when it cannot be read or parsed.
 */
export function watchAuthFile<T>(options: AuthFileOptions<T>): WatchedFiles<T> {
  const { key, file, what, log } = options;
  let watched: WatchedFiles<T>;
  try {
    watched = new WatchedFiles<T>({
      files: [file],
      parse: (texts) => options.parse(texts[0] ?? ''),
      intervalMs: options.intervalMs,
      onReload: () => log.info({ file }, `${what} reloaded`),
      // A file put back as it was after a failure: said the same way, so the repair shows in the log.
      onRestore: () => log.info({ file }, `${what} reloaded`),
      onError: (err) => {
        const problem = err instanceof FileReadError ? 'cannot read it' : 'it is not valid';
        log.error({ file, err: describe(err) }, `${what} not reloaded: ${problem}; keeping the previous content`);
      },
    });
  } catch (err) {
    if (err instanceof FileReadError) throw new AuthFileError(key, file, `cannot read the file (${describe(err)})`, { cause: err.cause });
    throw new AuthFileError(key, file, describe(err), { cause: err });
  }
  watched.watch();
  return watched;
}
