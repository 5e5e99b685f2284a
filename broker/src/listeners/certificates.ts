/**
 * The TLS certificates of the broker (`tls.cert`, `tls.key`, `tls.ca`): loaded and checked at start-up, then
 * watched so that a rotated certificate reaches every TLS listener without a restart, and helpers that turn a
 * verified client certificate into what the rest of the broker sees.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config/types.js';
import { SmqError } from '../errors.js';
import { FileReadError, WatchedFiles, type WatchTiming } from '../files/watched-files.js';
import type { PeerCertificate } from '../hooks/types.js';

/** A TLS file that cannot be used (missing, unreadable, not PEM, key and certificate not matching). */
export class TlsConfigError extends SmqError {
  /** The configuration key at fault, e.g. `tls.cert`. */
  readonly key: string;
  /** The file it names, as an absolute path; `undefined` when the key names no file. */
  readonly file: string | undefined;

  constructor(key: string, file: string | undefined, problem: string, options?: { cause?: unknown }) {
    super('ERR_TLS_CONFIG', `TLS configuration error: key "${key}"${file === undefined ? '' : ` (file ${file})`}: ${problem}`, options);
    this.key = key;
    this.file = file;
  }
}

/** Receives each new set of secure-context options (a listener calls `tls.Server#setSecureContext`). */
export type ContextSink = (options: SecureContextOptions) => void;

/** One watched file: the key that names it and its absolute path. */
interface Source {
  readonly key: 'tls.cert' | 'tls.key' | 'tls.ca';
  readonly file: string;
}

/** Words for the usual reasons a file cannot be read, rather than a bare errno. */
function readProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT': return 'file not found';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'EISDIR': return 'is a directory, expected a PEM file';
    default: return `cannot read file: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** Every PEM block of a bundle; a CA file often holds several certificates. */
function pemBlocks(text: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`, 'g');
  return text.match(re) ?? [];
}

/**
 * Holds the current certificate, key and CA bundle and hands them to listeners. The constructor loads and
 * checks the files and throws {@link TlsConfigError} naming the key and the file when one is unusable;
 * {@link watch} then follows the files (through a Kubernetes `..data` symlink swap too, see
 * {@link WatchedFiles}) and pushes each good new set to every sink. A set that fails to load is logged and
 * ignored: the listeners keep the last good one. A change is loaded once the files have stayed still for
 * `timing.settleMs`, so a certificate and its key land together.
 */
export class CertificateStore {
  private readonly config: TlsConfig;
  private readonly log: Logger;
  private readonly sources: readonly Source[];
  private readonly sinks = new Set<ContextSink>();
  private readonly files: WatchedFiles<SecureContextOptions>;

  constructor(config: TlsConfig, log: Logger, timing: WatchTiming = {}) {
    this.config = config;
    this.log = log;
    const sources: Source[] = [
      { key: 'tls.cert', file: resolve(config.cert) },
      { key: 'tls.key', file: resolve(config.key) },
    ];
    if (config.ca !== '') sources.push({ key: 'tls.ca', file: resolve(config.ca) });
    else if (config.verify) {
      // Without a CA bundle Node would verify clients against the public web roots: never what a broker wants.
      throw new TlsConfigError('tls.ca', undefined, 'a CA bundle is required when tls.verify is true');
    }
    this.sources = sources;
    try {
      this.files = new WatchedFiles({
        files: sources.map((s) => s.file),
        parse: (texts) => this.load(texts),
        onReload: (next) => this.publish(next),
        onError: (err) => {
          if (!(err instanceof TlsConfigError || err instanceof FileReadError)) {
            this.log.error({ err }, 'certificate watch failed'); // a fault of ours, not a bad file
            return;
          }
          const e = this.configError(err);
          this.log.error({ err: e.message, code: e.code, key: e.key, file: e.file }, 'certificate reload failed: keeping the current certificates');
        },
        ...timing,
      });
    } catch (err) {
      throw err instanceof FileReadError ? this.configError(err) : err;
    }
  }

  /** The secure-context options in force: certificate, key, CA, minimum version and ciphers. */
  get options(): SecureContextOptions {
    return this.files.value;
  }

  /** Registers a sink for future reloads; returns a function that removes it. */
  subscribe(sink: ContextSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /** Starts polling the files (every second by default). Idempotent. */
  watch(): void {
    this.files.watch();
  }

  /** Stops watching. */
  close(): void {
    this.files.close();
  }

  /** Checks the texts of the files (in the order of `sources`); throws {@link TlsConfigError} on the first unusable one. */
  private load(texts: readonly string[]): SecureContextOptions {
    const pem = new Map<Source['key'], { file: string; text: string }>();
    this.sources.forEach((s, i) => pem.set(s.key, { file: s.file, text: texts[i] ?? '' }));
    const cert = pem.get('tls.cert')!;
    const key = pem.get('tls.key')!;
    const ca = pem.get('tls.ca');
    const certBlocks = pemBlocks(cert.text, 'CERTIFICATE');
    if (certBlocks.length === 0) throw new TlsConfigError('tls.cert', cert.file, 'no PEM certificate (-----BEGIN CERTIFICATE-----) found');
    for (const block of certBlocks) {
      try {
        new X509Certificate(block);
      } catch (err) {
        throw new TlsConfigError('tls.cert', cert.file, `not a valid PEM certificate: ${(err as Error).message}`, { cause: err });
      }
    }
    try {
      createPrivateKey(key.text);
    } catch (err) {
      // An encrypted key ends up here too: smq takes no passphrase, as nobody could type it in a pod.
      throw new TlsConfigError('tls.key', key.file, `not a usable unencrypted PEM private key: ${(err as Error).message}`, { cause: err });
    }
    if (ca !== undefined) {
      const blocks = pemBlocks(ca.text, 'CERTIFICATE');
      if (blocks.length === 0) throw new TlsConfigError('tls.ca', ca.file, 'no PEM certificate (-----BEGIN CERTIFICATE-----) found');
      for (const block of blocks) {
        try {
          new X509Certificate(block);
        } catch (err) {
          throw new TlsConfigError('tls.ca', ca.file, `not a valid PEM certificate: ${(err as Error).message}`, { cause: err });
        }
      }
    }
    const options: SecureContextOptions = {
      cert: cert.text,
      key: key.text,
      minVersion: this.config.min_version,
    };
    if (ca !== undefined) options.ca = ca.text;
    if (this.config.ciphers !== '') options.ciphers = this.config.ciphers;
    try {
      // The same call the listeners make: it catches a key that does not belong to the certificate and a
      // cipher list OpenSSL does not understand, before any listener is given the set.
      createSecureContext(options);
    } catch (err) {
      const message = (err as Error).message;
      if (/cipher/i.test(message)) throw new TlsConfigError('tls.ciphers', undefined, `OpenSSL rejects the cipher list: ${message}`, { cause: err });
      throw new TlsConfigError('tls.key', key.file, `does not match the certificate in ${cert.file}: ${message}`, { cause: err });
    }
    return options;
  }

  /** A file that cannot be read, as a {@link TlsConfigError} naming its key, like every other unusable file. */
  private configError(err: TlsConfigError | FileReadError): TlsConfigError {
    if (err instanceof TlsConfigError) return err;
    const key = this.sources.find((s) => s.file === err.file)?.key ?? 'tls.cert';
    return new TlsConfigError(key, err.file, readProblem(err.cause), { cause: err.cause });
  }

  /** Pushes a new, good set of files to every sink. */
  private publish(next: SecureContextOptions): void {
    for (const sink of this.sinks) {
      try {
        sink(next);
      } catch (err) {
        this.log.error({ err }, 'a listener refused the reloaded certificates');
      }
    }
    this.log.info({ files: this.sources.map((s) => s.file), certificate: describe(next), listeners: this.sinks.size }, 'certificates reloaded');
  }
}

/** Subject, expiry and fingerprint of the leaf certificate, for the reload log record. */
function describe(options: SecureContextOptions): { subject: string; validTo: string; fingerprint256: string } | undefined {
  const first = typeof options.cert === 'string' ? pemBlocks(options.cert, 'CERTIFICATE')[0] : undefined;
  if (first === undefined) return undefined;
  const x = new X509Certificate(first);
  return { subject: x.subject, validTo: x.validTo, fingerprint256: x.fingerprint256 };
}

/** The SAN types that name an identity; others (DirName, othername, Registered ID) are left out. */
const SAN_PREFIXES = ['DNS:', 'email:', 'URI:', 'IP Address:'] as const;

/**
 * Parses Node's `subjectaltname` string (`DNS:a.example, IP Address:10.0.0.1, email:x@y`) into the bare
 * values, in certificate order. Since Node 17.3.1 a value holding a comma, quote or other special character is
 * written as a JSON string (`DNS:"a,b"`), so a naive split on ", " would let a crafted name forge a second entry.
 */
export function parseSubjectAltName(text: string | undefined): string[] {
  const out: string[] = [];
  if (text === undefined || text === '') return out;
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ') i++;
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon + 1);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      // A JSON string: find its closing quote, skipping escaped characters.
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        break; // malformed: stop rather than guess where the next entry starts
      }
      j = k + 1;
    } else {
      const comma = text.indexOf(',', j);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(j, end);
      j = end;
    }
    if ((SAN_PREFIXES as readonly string[]).includes(type)) out.push(value);
    i = text[j] === ',' ? j + 1 : j;
    if (j >= text.length) break;
  }
  return out;
}

/** The first value of a subject attribute; Node gives an array when the attribute repeats. */
function firstOf(value: string | readonly string[] | undefined): string {
  if (typeof value === 'string') return value;
  return value?.[0] ?? '';
}

/** The fields of Node's peer certificate object that carry an identity. */
export interface CertificateFields {
  /** Subject attributes; Node gives an array when an attribute repeats, which its typings leave out. */
  readonly subject?: Readonly<Record<string, string | readonly string[] | undefined>> | undefined;
  readonly subjectaltname?: string | undefined;
}

/** The identity in a certificate as Node reports it (`tls.TLSSocket#getPeerCertificate()`). */
export function toPeerCertificate(cert: CertificateFields): PeerCertificate {
  return { cn: firstOf(cert.subject?.['CN']), san: parseSubjectAltName(cert.subjectaltname) };
}

/**
 * The client certificate of a TLS socket, only once OpenSSL has verified it against `tls.ca`: an unverified
 * certificate proves nothing about its holder and must never become an identity.
 */
export function verifiedPeerCertificate(socket: TLSSocket): PeerCertificate | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  // Node returns an empty object when the client sent no certificate.
  if (cert === null || Object.keys(cert).length === 0) return undefined;
  // Node's Certificate interface has no index signature, though it is a plain object of attributes.
  return toPeerCertificate({ subject: cert.subject as unknown as CertificateFields['subject'], subjectaltname: cert.subjectaltname });
}

/**
 * The username that `tls.cert_username` takes from a verified client certificate: its CN (`cn`), or its first
 * SAN that is not an IP address (`san`; the configuration promises a DNS name, email or URI). `undefined` when
 * the option is `none`, when there is no verified certificate, or when the certificate has no such name; the
 * CONNECT handler then keeps what the client sent (or refuses, as its owner decides).
 */
export function certificateUsername(config: Pick<TlsConfig, 'cert_username'>, certificate: PeerCertificate | undefined): string | undefined {
  if (certificate === undefined) return undefined;
  switch (config.cert_username) {
    case 'none': return undefined;
    case 'cn': return certificate.cn === '' ? undefined : certificate.cn;
    case 'san': return certificate.san.find((s) => s !== '' && isIP(s) === 0);
  }
}
