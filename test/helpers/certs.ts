/**
 * Test certificates made with Debian's `openssl` command into a fresh temporary directory: a CA, server
 * certificates for 127.0.0.1/localhost, client certificates that are valid, expired or issued by another CA.
 *
 * Every certificate is signed with `openssl ca`, because OpenSSL 3.0 (Debian 12) has no way to give
 * `openssl x509 -req` explicit dates, and the expired client needs dates in the past. Keys are P-256: they
 * are generated instantly, and every client under test (Node, MQTT.js, mosquitto) accepts them.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, as file paths and PEM text. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-256 fingerprint as Node prints it (`AB:CD:...`), to tell certificates apart on the wire. */
  readonly fingerprint256: string;
}

/** Everything {@link makeCertificates} produces. */
export interface TestCertificates {
  /** The directory holding every file. */
  readonly dir: string;
  /** The CA that signs the servers and the good clients: `ca.cert` is the file to give `tls.ca` and `--cafile`. */
  readonly ca: KeyPair;
  /** Server for CN=localhost, SAN DNS:localhost and IP:127.0.0.1. */
  readonly server: KeyPair;
  /** A second server certificate (new key, same names, same CA), the one rotated in. */
  readonly server2: KeyPair;
  /** Client CN=device-1, SAN DNS:device-1.example, valid now. */
  readonly client: KeyPair;
  /** Client CN=device-expired, valid from 2020-01-01 to 2021-01-01. */
  readonly expired: KeyPair;
  /** A CA nobody trusts. */
  readonly otherCa: KeyPair;
  /** Client CN=device-1 issued by {@link otherCa}. */
  readonly otherClient: KeyPair;
}

function openssl(args: readonly string[], cwd: string, env: Record<string, string> = {}): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? String(err)}`);
  }
}

function pair(cert: string, key: string): KeyPair {
  const certPem = readFileSync(cert, 'utf8');
  return { cert, key, certPem, keyPem: readFileSync(key, 'utf8'), fingerprint256: new X509Certificate(certPem).fingerprint256 };
}

/** `openssl ca` needs a small database per CA; `unique_subject = no` lets two certificates share a CN. */
function caConfig(dir: string): string {
  return [
    '[ca]',
    'default_ca = test_ca',
    '[test_ca]',
    `dir = ${dir}`,
    'database = $dir/index.txt',
    'serial = $dir/serial',
    'new_certs_dir = $dir/issued',
    'certificate = $dir/ca.pem',
    'private_key = $dir/ca.key',
    'default_md = sha256',
    'policy = any',
    'unique_subject = no',
    'copy_extensions = none',
    '[any]',
    'commonName = supplied',
    '[server]',
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage = serverAuth',
    'subjectAltName = DNS:localhost,IP:127.0.0.1',
    '[client]',
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage = clientAuth',
    'subjectAltName = DNS:${ENV::SAN}',
    '',
  ].join('\n');
}

/** A self-signed CA in `root/<name>/`. */
function makeCa(root: string, name: string, cn: string): KeyPair {
  const dir = join(root, name);
  mkdirSync(join(dir, 'issued'), { recursive: true });
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(join(dir, 'ca.cnf'), caConfig(dir));
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', `/CN=${cn}`, '-days', '30', '-out', 'ca.pem',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return pair(join(dir, 'ca.pem'), join(dir, 'ca.key'));
}

/** A key and a certificate signed by the CA in `caDir`, with the extensions of `profile`. */
function issue(caDir: string, out: string, cn: string, profile: 'server' | 'client', dates: { start?: string; end?: string } = {}, san = ''): KeyPair {
  const key = join(caDir, `${out}.key`);
  const csr = join(caDir, `${out}.csr`);
  const cert = join(caDir, `${out}.pem`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], caDir);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr], caDir);
  const validity = dates.start && dates.end ? ['-startdate', dates.start, '-enddate', dates.end] : ['-days', '30'];
  // SAN is read from the environment by the config's [client] section, so one config serves every client.
  openssl(['ca', '-batch', '-notext', '-config', 'ca.cnf', '-extensions', profile, '-in', csr, '-out', cert, ...validity],
    caDir, { SAN: san || 'unused.invalid' });
  return pair(cert, key);
}

/** Generates every certificate into a new temporary directory (about 100 ms). */
export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'smq-certs-'));
  const ca = makeCa(dir, 'ca', 'smq test CA');
  const caDir = join(dir, 'ca');
  const otherCa = makeCa(dir, 'other', 'untrusted CA');
  return {
    dir,
    ca,
    server: issue(caDir, 'server', 'localhost', 'server'),
    server2: issue(caDir, 'server2', 'localhost', 'server'),
    client: issue(caDir, 'client', 'device-1', 'client', {}, 'device-1.example'),
    expired: issue(caDir, 'expired', 'device-expired', 'client', { start: '20200101000000Z', end: '20210101000000Z' }, 'device-expired.example'),
    otherCa,
    otherClient: issue(join(dir, 'other'), 'client', 'device-1', 'client', {}, 'device-1.example'),
  };
}

/**
 * A certificate directory laid out as Kubernetes mounts a Secret: `tls.crt` → `..data/tls.crt`, `..data` →
 * a versioned directory. {@link rotate} swaps `..data` atomically, as the kubelet does.
 */
export class SecretDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'smq-secret-'));
  private version = 0;

  constructor(first: KeyPair) {
    this.writeVersion(first);
    symlinkSync('..data/tls.crt', join(this.dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(this.dir, 'tls.key'));
  }

  /** The path to configure as `tls.cert`. */
  get cert(): string { return join(this.dir, 'tls.crt'); }
  /** The path to configure as `tls.key`. */
  get key(): string { return join(this.dir, 'tls.key'); }

  /** Points `..data` at a new version holding `pair` (any PEM text, so a broken pair can be rotated in too). */
  rotate(pair: Pick<KeyPair, 'certPem' | 'keyPem'>): void {
    this.writeVersion(pair);
  }

  private writeVersion(pair: Pick<KeyPair, 'certPem' | 'keyPem'>): void {
    this.version++;
    const real = mkdtempSync(join(this.dir, `..v${this.version}-`));
    writeFileSync(join(real, 'tls.crt'), pair.certPem);
    writeFileSync(join(real, 'tls.key'), pair.keyPem);
    const tmp = join(this.dir, '..data_tmp');
    symlinkSync(real.slice(this.dir.length + 1), tmp);
    renameSync(tmp, join(this.dir, '..data'));
  }
}
