/**
 * A real Kubernetes API server with its own etcd on loopback, for the operator and chart tests (issue 9),
 * started the way controller-runtime's envtest does it: kube-apiserver and etcd only, no kubelet, no
 * controller manager, no scheduler. Objects are stored and validated (schemas, CEL, admission, RBAC,
 * server-side apply, dry runs, watches, status and scale subresources) but nothing acts on them: no pod ever
 * runs, a deleted namespace stays Terminating, and owner references cascade nothing (there is no garbage
 * collector), so tests use fresh namespaces and delete what they must see gone.
 *
 * `startKube({ controllers: true })` also starts kube-controller-manager (same build, same cache) with a few
 * controllers only ({@link CONTROLLERS}): the garbage collector (owner references cascade, deleted owners take
 * their dependents), the StatefulSet controller (Pod and PersistentVolumeClaim objects, status), the namespace
 * controller (a deleted namespace goes). Pods are still never scheduled or run: no scheduler, no kubelet, they
 * stay Pending. startKube resolves once the garbage collector has deleted a probe dependent, so a test can
 * rely on it at once. It adds about 1.3 s to start-up and some CPU while it runs, hence off by default.
 *
 * The binaries are built from the Go module proxy by scripts/kube.sh (run by scripts/provision.sh) and cached
 * outside the repo in `${SMQ_KUBE_CACHE:-~/.cache/smq}/kube-<version>/bin` (kube-apiserver,
 * kube-controller-manager, the etcd that Kubernetes version pins, helm); SMQ_KUBE_HOME names another
 * kube-<version> directory.
 *
 * Security as a test needs it: a throwaway CA and serving certificate for 127.0.0.1 (openssl), static bearer
 * tokens (`--token-auth-file`) for an admin in system:masters and for any users a test declares up front,
 * `--authorization-mode=RBAC` so least-privilege roles can be proven, and a service-account signing key so
 * TokenRequest issues real ServiceAccount tokens. The ServiceAccount admission plugin is off, as in envtest:
 * without the controller manager no namespace gets its default ServiceAccount, and pods would be refused.
 *
 * Each process runs under a tiny `sh` watchdog that holds a pipe from this process: when this process dies in
 * any way (a test runner's SIGKILL included), the pipe closes and the watchdog kills it, so no API server,
 * etcd or controller manager outlives its test file.
 */
import { tailFile } from './process.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { ROOT, freePort } from './broker.js';

/** The answer to {@link RunningKube.request}. */
export interface KubeResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body as text. */
  readonly body: string;
  /** The body parsed as JSON (throws, quoting it, when it is not JSON). */
  json<T = unknown>(): T;
}

/** Options for {@link RunningKube.request}. */
export interface KubeRequestOptions {
  /** A string is sent as is; anything else as JSON. */
  readonly body?: unknown;
  /** Default `application/json`; `application/apply-patch+yaml` for server-side apply, `application/merge-patch+json`, ... */
  readonly contentType?: string;
  /** Bearer token; default the admin's. */
  readonly token?: string;
  /** Milliseconds before the request fails; default 30 000. */
  readonly timeoutMs?: number;
}

/** An API server and etcd started by {@link startKube}. */
export interface RunningKube {
  /** `https://127.0.0.1:<port>`. */
  readonly server: string;
  /** Bearer token of `admin`, in group system:masters (every permission, whatever RBAC says). */
  readonly token: string;
  /** PEM file of the CA that signed the serving certificate. */
  readonly caFile: string;
  /** The same CA as PEM text (for `ca` options; base64 it for a kubeconfig's certificate-authority-data). */
  readonly caData: string;
  /** A kubeconfig for the admin (context `smq-test`): for KubeConfig.loadFromFile and `helm --kubeconfig`. */
  readonly kubeconfigPath: string;
  /** `http://127.0.0.1:<port>` of the API server's etcd. */
  readonly etcdEndpoint: string;
  /** The temporary directory holding certificates, keys, the token file, kubeconfigs, etcd data and logs. */
  readonly dir: string;
  /** The token of a user declared in {@link KubeOptions.users} (or `admin`); throws for any other name. */
  tokenFor(user: string): string;
  /** Writes a kubeconfig that authenticates with `token` (a user's, a ServiceAccount's) and returns its path. */
  kubeconfigFor(token: string, name?: string): string;
  /**
   * A token for ServiceAccount `namespace/name` from the TokenRequest API (the ServiceAccount must exist):
   * RBAC sees `system:serviceaccount:<namespace>:<name>` in groups system:serviceaccounts and
   * system:serviceaccounts:<namespace>, as for the operator's pod in a real cluster.
   */
  serviceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** One HTTPS request to the API server (path with query, as `/api/v1/namespaces?limit=1`); any status resolves. */
  request(method: string, path: string, options?: KubeRequestOptions): Promise<KubeResponse>;
  /**
   * Kills every process (SIGKILL: nothing here needs a clean shutdown) and removes {@link dir} unless
   * `keepDir`.
   */
  stop(options?: { keepDir?: boolean }): Promise<void>;
  /**
   * The last `lines` lines of each log (kube-apiserver, etcd, and kube-controller-manager when it runs), for
   * failure messages.
   */
  logTail(lines?: number): string;
  /** Milliseconds kube-controller-manager took from its start to a garbage-collected probe; null without controllers. */
  readonly controllersReadyMs: number | null;
}

/** Options for {@link startKube}. */
export interface KubeOptions {
  /**
   * Users besides `admin`, by name, with their groups (every authenticated user is also in
   * system:authenticated), e.g. `{ operator: [] }`. Static tokens are read once at start, so every user is
   * declared here, up front.
   */
  users?: Record<string, readonly string[]>;
  /** kube-apiserver flags set over the helper's (`{ 'feature-gates': 'X=true' }`), as `--key=value`. */
  apiServerFlags?: Record<string, string>;
  /** Milliseconds until /readyz must answer ok, else it fails with the log tails; default 90 000. */
  timeoutMs?: number;
  /**
   * Also run kube-controller-manager with {@link CONTROLLERS} (garbage collector, StatefulSet, namespace),
   * ready (a probe dependent garbage-collected) when startKube resolves; default false.
   */
  controllers?: boolean;
  /** kube-controller-manager flags set over the helper's, as `--key=value` (`{ controllers: '...' }`). */
  controllerManagerFlags?: Record<string, string>;
  /**
   * YAML files of CustomResourceDefinitions (one or more documents each) applied, and waited for until
   * Established, before the controllers start. The garbage collector discovers resources again only every
   * 30 s: an owner of a kind it does not watch yet is found by polling with a growing backoff, so a test
   * that deletes custom resources and waits for their dependents to go should name its CRDs here.
   */
  crds?: readonly string[];
}

/**
 * The kube-controller-manager controllers {@link KubeOptions.controllers} runs: owner references cascade
 * (garbage collector), StatefulSets get their Pods and PersistentVolumeClaims, deleted namespaces empty and go.
 * No ServiceAccount or token controllers (the ServiceAccount admission plugin is off, nothing needs them).
 */
export const CONTROLLERS = ['garbage-collector-controller', 'statefulset-controller', 'namespace-controller'] as const;

/**
 * The kube-<version> directory of the cache: SMQ_KUBE_HOME, or where scripts/kube.sh keeps the version it
 * provisions (asked from the script, so the version is written down in one place).
 */
export function kubeHome(): string {
  const fromEnv = process.env['SMQ_KUBE_HOME'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return execFileSync('bash', [join(ROOT, 'scripts', 'kube.sh'), '--print-home'], { encoding: 'utf8' }).trim();
}

/** Path of one provisioned binary (`helm` for the chart tests), after checking scripts/kube.sh completed. */
export function kubeBinary(name: 'kube-apiserver' | 'kube-controller-manager' | 'etcd' | 'helm'): string {
  const home = kubeHome();
  const path = join(home, 'bin', name);
  if (!existsSync(join(home, 'versions.txt')) || !existsSync(path)) {
    throw new Error(`${name} is not provisioned in ${home} (no versions.txt, or no bin/${name}): run \`bash scripts/kube.sh\` (scripts/provision.sh does; the first build takes a while)`);
  }
  return path;
}


function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? String(err)}`);
  }
}

/**
 * A CA (ca.crt) and the API server's serving certificate (server.crt, server.key) for 127.0.0.1 and the
 * in-cluster names, P-256 keys, valid for two days.
 */
function makeServingCert(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=smq-test-kube-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=kube-apiserver'], dir);
  writeFileSync(join(dir, 'server.ext'), [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1',
    '',
  ].join('\n'));
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'server.ext', '-out', 'server.crt'], dir);
}

/**
 * Runs "$@" in the background and waits for it. fd 3 is this process's pipe: when it reaches end of file (this
 * process ended, or stop() closed it) the command is killed at once. Exits with the command's status.
 */
const WATCHDOG = `
exec 3<&0
"$@" </dev/null &
child=$!
( read -r _ <&3; kill -KILL $child 2>/dev/null ) &
guard=$!
exec 3<&-
wait $child
rc=$?
kill $guard 2>/dev/null
exit $rc
`;

/** Every watchdog still running, killed if this process exits with them up (their pipes close too). */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Starts `command args` under the watchdog with its output appended to `logFile`. */
function supervise(name: string, command: string, args: readonly string[], cwd: string, logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  let p: ChildProcess;
  try {
    p = spawn('sh', ['-c', WATCHDOG, `smq-${name}`, command, ...args], { cwd, stdio: ['pipe', out, out] });
  } finally {
    closeSync(out);
  }
  // Nothing is ever written to the pipe; a stop racing the watchdog's own exit must not throw EPIPE.
  p.stdin?.on('error', () => undefined);
  live.add(p);
  p.once('exit', () => live.delete(p));
  return p;
}

/** Closes the watchdog's pipe (it SIGKILLs the process, then exits) and waits for it. */
async function kill(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.stdin?.end();
  await exited;
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

/** GET http://<endpoint>/health answers {"health":"true"}. */
function etcdHealthy(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet(`${endpoint}/health`, { timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function kubeconfig(server: string, caData: string, user: string, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'smq-test', cluster: { server, 'certificate-authority-data': Buffer.from(caData).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'smq-test', context: { cluster: 'smq-test', user } }],
    'current-context': 'smq-test',
  });
}

/** A name fit for a file: letters, digits, dot, dash, underscore. */
function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * Starts etcd and kube-apiserver on free loopback ports in a fresh temporary directory and resolves once
 * /readyz answers ok to the admin. Rejects with the tails of both logs when either exits or the API server is
 * not ready in time, after killing both (the directory is kept for a look at the logs).
 */
export async function startKube(options: KubeOptions = {}): Promise<RunningKube> {
  const apiServerBin = kubeBinary('kube-apiserver');
  const etcdBin = kubeBinary('etcd');
  const controllersBin = options.controllers === true ? kubeBinary('kube-controller-manager') : null;
  const timeoutMs = options.timeoutMs ?? 90_000;
  const dir = mkdtempSync(join(tmpdir(), 'smq-kube-'));
  const pki = join(dir, 'pki');
  mkdirSync(pki);

  makeServingCert(pki);
  const caFile = join(pki, 'ca.crt');
  const caData = readFileSync(caFile, 'utf8');
  // ServiceAccount tokens are ES256 JWTs signed with this key.
  const sa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(pki, 'sa.key'), sa.privateKey.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(pki, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));

  // token,user,uid,"group1,group2"
  const users: Record<string, readonly string[]> = { ...options.users, admin: ['system:masters'] };
  const tokens = new Map<string, string>();
  const rows: string[] = [];
  for (const [user, groups] of Object.entries(users)) {
    if (/[",\s]/.test(user) || groups.some((g) => /[",\s]/.test(g))) {
      throw new Error(`startKube: user ${JSON.stringify(user)} or its groups contain a comma, quote or space, which the token file cannot hold`);
    }
    const token = randomBytes(24).toString('base64url');
    tokens.set(user, token);
    rows.push(`${token},${user},${user},"${groups.join(',')}"`);
  }
  const tokenFile = join(pki, 'tokens.csv');
  writeFileSync(tokenFile, rows.join('\n') + '\n', { mode: 0o600 });
  const adminToken = tokens.get('admin') as string;

  const etcdClient = await freePort();
  const etcdPeer = await freePort();
  const port = await freePort();
  const etcdEndpoint = `http://127.0.0.1:${etcdClient}`;
  const server = `https://127.0.0.1:${port}`;
  const etcdLog = join(dir, 'etcd.log');
  const apiLog = join(dir, 'kube-apiserver.log');

  const etcdArgs = [
    '--name', 'smq-kube',
    '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', etcdEndpoint,
    '--advertise-client-urls', etcdEndpoint,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
    '--initial-cluster', `smq-kube=http://127.0.0.1:${etcdPeer}`,
    // Throwaway data: no fsync (as envtest), which matters on a shared disk.
    '--unsafe-no-fsync',
    '--log-level', 'warn',
  ];
  const flags: Record<string, string> = {
    'etcd-servers': etcdEndpoint,
    'bind-address': '127.0.0.1',
    'advertise-address': '127.0.0.1',
    // The endpoint reconciler publishes the advertise address as the endpoint of Service default/kubernetes and
    // refuses a loopback one; nothing in the tests reaches the API server through that Service.
    'endpoint-reconciler-type': 'none',
    'secure-port': String(port),
    'cert-dir': pki,
    'tls-cert-file': join(pki, 'server.crt'),
    'tls-private-key-file': join(pki, 'server.key'),
    'token-auth-file': tokenFile,
    'authorization-mode': 'RBAC',
    'service-account-issuer': server,
    'service-account-key-file': join(pki, 'sa.pub'),
    'service-account-signing-key-file': join(pki, 'sa.key'),
    'service-cluster-ip-range': '10.0.0.0/24',
    'allow-privileged': 'true',
    'disable-admission-plugins': 'ServiceAccount',
    'profiling': 'false',
    ...options.apiServerFlags,
  };
  const apiArgs = Object.entries(flags).map(([k, v]) => `--${k}=${v}`);

  const agent = new Agent({ ca: caData, keepAlive: true, maxSockets: 8 });
  const request = (method: string, path: string, req: KubeRequestOptions = {}): Promise<KubeResponse> =>
    new Promise((resolve, reject) => {
      let payload: Buffer | undefined;
      if (req.body !== undefined) payload = Buffer.from(typeof req.body === 'string' ? req.body : JSON.stringify(req.body));
      const headers: Record<string, string> = {
        authorization: `Bearer ${req.token ?? adminToken}`,
        accept: 'application/json',
      };
      if (payload !== undefined) {
        headers['content-type'] = req.contentType ?? 'application/json';
        headers['content-length'] = String(payload.length);
      }
      const r = httpsRequest(`${server}${path}`, { method, agent, headers, timeout: req.timeoutMs ?? 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json<T>(): T {
              try {
                return JSON.parse(body) as T;
              } catch {
                throw new Error(`${method} ${path} answered ${res.statusCode} with a body that is not JSON: ${body.slice(0, 500)}`);
              }
            },
          });
        });
      });
      r.on('timeout', () => r.destroy(new Error(`${method} ${path}: no answer within ${req.timeoutMs ?? 30_000} ms`)));
      r.on('error', reject);
      r.end(payload);
    });

  const kcmLog = join(dir, 'kube-controller-manager.log');
  const logTail = (lines = 40): string =>
    `--- ${apiLog} ---\n${tailFile(apiLog, lines)}\n--- ${etcdLog} ---\n${tailFile(etcdLog, lines)}` +
    (controllersBin === null ? '' : `\n--- ${kcmLog} ---\n${tailFile(kcmLog, lines)}`);

  // Both start at once: the API server retries etcd until it answers, which saves etcd's start-up time.
  const etcd = supervise('etcd', etcdBin, etcdArgs, dir, etcdLog);
  const apiServer = supervise('kube-apiserver', apiServerBin, apiArgs, dir, apiLog);
  let controllerManager: ChildProcess | null = null;
  const stopProcesses = async (): Promise<void> => {
    agent.destroy();
    if (controllerManager !== null) await kill(controllerManager);
    await kill(apiServer);
    await kill(etcd);
  };
  const fail = async (why: string): Promise<never> => {
    await stopProcesses();
    throw new Error(`startKube: ${why} (API server ${server}, etcd ${etcdEndpoint}); logs in ${dir}:\n${logTail(40)}`);
  };

  const deadline = Date.now() + timeoutMs;
  let lastAnswer = 'no answer yet';
  for (let etcdUp = false; ;) {
    if (exited(etcd)) await fail(`etcd exited (${etcd.signalCode ?? etcd.exitCode}) before the API server was ready`);
    if (exited(apiServer)) await fail(`kube-apiserver exited (${apiServer.signalCode ?? apiServer.exitCode}) before it was ready`);
    if (!etcdUp) {
      etcdUp = await etcdHealthy(etcdEndpoint);
    } else {
      try {
        const res = await request('GET', '/readyz', { timeoutMs: 5000 });
        if (res.status === 200) break;
        lastAnswer = `${res.status}: ${res.body.slice(0, 2000)}`;
      } catch (e) {
        lastAnswer = e instanceof Error ? e.message : String(e);
      }
    }
    if (Date.now() > deadline) {
      await fail(etcdUp
        ? `kube-apiserver was not ready within ${timeoutMs} ms (last /readyz: ${lastAnswer})`
        : `etcd was not healthy within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfig(server, caData, 'admin', adminToken), { mode: 0o600 });
  let kubeconfigs = 0;

  for (const file of options.crds ?? []) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const crd = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
      if (crd === null) continue;
      const name = crd.metadata?.name;
      if (crd.kind !== 'CustomResourceDefinition' || name === undefined) {
        await fail(`${file}: a document that is not a named CustomResourceDefinition (kind ${String(crd.kind)})`);
        continue;
      }
      const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${encodeURIComponent(name)}`;
      const res = await request('PATCH', `${path}?fieldManager=smq-test&force=true`, { body: crd, contentType: 'application/apply-patch+yaml' });
      if (res.status !== 200 && res.status !== 201) await fail(`applying CRD ${name} from ${file} answered ${res.status}: ${res.body.slice(0, 2000)}`);
      for (;;) {
        const got = await request('GET', path);
        const conds = got.status === 200 ? (got.json<{ status?: { conditions?: { type: string; status: string }[] } }>().status?.conditions ?? []) : [];
        if (conds.some((c) => c.type === 'Established' && c.status === 'True')) break;
        if (Date.now() > deadline) await fail(`CRD ${name} was not Established within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  let controllersReadyMs: number | null = null;
  if (controllersBin !== null) {
    const kcmFlags: Record<string, string> = {
      // The admin, in system:masters: every controller may do everything (no per-controller credentials).
      'kubeconfig': kubeconfigPath,
      'controllers': CONTROLLERS.join(','),
      'use-service-account-credentials': 'false',
      'leader-elect': 'false',
      // No HTTPS endpoint (nor the delegated authentication it would need): readiness is the probe below.
      'secure-port': '0',
      // Client-side rate limits (default 20 and 30): the garbage collector's first discovery and deletes go faster.
      'kube-api-qps': '100',
      'kube-api-burst': '200',
      'v': '1',
      ...options.controllerManagerFlags,
    };
    const t0 = Date.now();
    controllerManager = supervise('kube-controller-manager', controllersBin, Object.entries(kcmFlags).map(([k, v]) => `--${k}=${v}`), dir, kcmLog);
    // Ready means working: a ConfigMap owned by another is deleted by the garbage collector once the owner is.
    const ns = '/api/v1/namespaces/default/configmaps';
    const probe = `smq-gc-probe-${randomBytes(4).toString('hex')}`;
    const owner = await request('POST', ns, { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${probe}-owner` } } });
    if (owner.status !== 201) await fail(`creating the garbage collector's probe answered ${owner.status}: ${owner.body}`);
    const uid = owner.json<{ metadata: { uid: string } }>().metadata.uid;
    const dependent = await request('POST', ns, {
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${probe}-dependent`, ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: `${probe}-owner`, uid }] } },
    });
    if (dependent.status !== 201) await fail(`creating the garbage collector's probe answered ${dependent.status}: ${dependent.body}`);
    const deleted = await request('DELETE', `${ns}/${probe}-owner`);
    if (deleted.status !== 200) await fail(`deleting the garbage collector's probe answered ${deleted.status}: ${deleted.body}`);
    const kcm = controllerManager;
    for (;;) {
      if (exited(kcm)) await fail(`kube-controller-manager exited (${kcm.signalCode ?? kcm.exitCode}) before its garbage collector worked`);
      if ((await request('GET', `${ns}/${probe}-dependent`, { timeoutMs: 5000 })).status === 404) break;
      if (Date.now() > deadline) await fail(`the garbage collector did not delete a dependent of a deleted owner within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
    controllersReadyMs = Date.now() - t0;
  }

  return {
    server,
    token: adminToken,
    caFile,
    caData,
    kubeconfigPath,
    etcdEndpoint,
    dir,
    tokenFor(user: string): string {
      const token = tokens.get(user);
      if (token === undefined) {
        throw new Error(`no token for user ${JSON.stringify(user)}: declare it in startKube({ users: { ${JSON.stringify(user)}: [groups] } }) (known: ${[...tokens.keys()].join(', ')})`);
      }
      return token;
    },
    kubeconfigFor(token: string, name = 'user'): string {
      kubeconfigs += 1;
      const path = join(dir, `kubeconfig-${fileSafe(name)}-${kubeconfigs}`);
      writeFileSync(path, kubeconfig(server, caData, name, token), { mode: 0o600 });
      return path;
    },
    async serviceAccountToken(namespace: string, name: string, expirationSeconds = 3600): Promise<string> {
      const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`;
      const res = await request('POST', path, {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
      });
      if (res.status !== 201) throw new Error(`TokenRequest for ServiceAccount ${namespace}/${name} answered ${res.status}: ${res.body}`);
      return res.json<{ status: { token: string } }>().status.token;
    },
    request,
    async stop(stopOptions: { keepDir?: boolean } = {}): Promise<void> {
      await stopProcesses();
      if (stopOptions.keepDir !== true) rmSync(dir, { recursive: true, force: true });
    },
    logTail,
    controllersReadyMs,
  };
}
