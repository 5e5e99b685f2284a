/**
 * 94 Image: the Dockerfile, checked without Docker (there is none on the build machine, nor hadolint). The
 * instructions are parsed and held to what the chart and the operator expect (two stages, non-root uid 10001,
 * the broker's entrypoint with bin/smq.js's Node flags, the listener ports); every COPY source exists and is
 * in the build context .dockerignore leaves; and the image's files, staged as the Dockerfile lays them out
 * (the context's files only, compiled by the build stage's command, importing production dependencies only),
 * start a broker that answers /readyz, loads the gRPC .proto and serves Swagger UI's assets.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { RUN_AS, PATHS } from '../operator/src/build/layout.js';
import { ROOT, freePort } from './helpers/broker.js';
import { runToEnd } from './helpers/process.js';

interface Instruction { readonly op: string; readonly args: string }
interface Stage { readonly from: string; readonly name: string | undefined; readonly body: Instruction[] }

/** The Dockerfile's stages: continuation lines joined, comments and blank lines dropped, ARG defaults substituted into FROM. */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line === '') continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const l of logical) {
    const [op, ...rest] = l.split(/\s+/);
    const instruction = { op: (op ?? '').toUpperCase(), args: rest.join(' ') };
    if (instruction.op === 'ARG' && stages.length === 0) {
      const [k, v] = instruction.args.split('=');
      args.set(k ?? '', v ?? '');
    } else if (instruction.op === 'FROM') {
      const from = instruction.args.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '');
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(from);
      assert.ok(m, `FROM ${instruction.args}`);
      stages.push({ from: m[1]!, name: m[2], body: [] });
    } else {
      assert.ok(stages.length > 0, `${instruction.op} before FROM`);
      stages.at(-1)!.body.push(instruction);
    }
  }
  return stages;
}

/** A JSON (exec form) instruction's array. */
function execForm(i: Instruction | undefined): string[] {
  assert.ok(i, 'instruction missing');
  const parsed = JSON.parse(i.args) as unknown;
  assert.ok(Array.isArray(parsed), `${i.op} in exec form (a JSON array), so that node is PID 1 and gets SIGTERM: ${i.args}`);
  return parsed as string[];
}

/** `COPY [--flags] src... dest` split up. */
function copyParts(i: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  const words = i.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
}

/**
 * Whether .dockerignore keeps `path` out of the build context, as Docker reads it: patterns in order, the last
 * match wins, `!` re-includes, a pattern that matches a parent directory matches everything under it,
 * `*` and `?` stay within one path segment and `**` spans any number.
 */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const negate = l.startsWith('!');
    const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
    let re = '';
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i]!;
      if (c === '*' && pattern[i + 1] === '*') {
        re += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*';
        i += pattern[i + 2] === '/' ? 2 : 1;
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return { negate, re: new RegExp(`^${re}$`) };
  });
  return (path) => {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (candidates.some((c) => r.re.test(c))) excluded = !r.negate;
    return excluded;
  };
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const build = stages[0]!;
const runtime = stages.at(-1)!;
const ignored = dockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
const ops = (s: Stage, op: string): Instruction[] => s.body.filter((i) => i.op === op);

test('two stages: node:20-bookworm builds (npm ci, build, prune), node:20-bookworm-slim runs', () => {
  assert.equal(stages.length, 2);
  assert.equal(build.from, 'node:20-bookworm');
  assert.equal(build.name, 'build');
  assert.equal(runtime.from, 'node:20-bookworm-slim');
  const runs = ops(build, 'RUN').map((i) => i.args).join(' && ');
  assert.match(runs, /npm ci\b/);
  assert.match(runs, /npm run build.*npm prune --omit=dev/);
  // Nothing from the build stage but what runs: no compiler, no dev dependencies, no sources.
  const fromBuild = ops(runtime, 'COPY').map(copyParts).filter((c) => c.from === 'build').flatMap((c) => c.sources);
  assert.deepEqual(fromBuild.sort(), ['/src/dist', '/src/node_modules', '/src/package.json']);
  // COPY, not ADD (no remote URLs, no archives unpacked); no HEALTHCHECK (Kubernetes probes instead).
  assert.deepEqual(stages.flatMap((s) => s.body.filter((i) => i.op === 'ADD' || i.op === 'HEALTHCHECK')), []);
  assert.ok(!stages.some((s) => /:latest$|^[^:]+$/.test(s.from)), 'base images carry a tag');
});

test('the runtime runs as the non-root uid 10001 the operator\'s pods and the chart expect', () => {
  const users = ops(runtime, 'USER');
  assert.equal(users.length, 1);
  assert.equal(users[0]!.args, `${RUN_AS}:${RUN_AS}`, 'numeric, so that runAsNonRoot can check it');
  assert.equal(RUN_AS, 10001);
  const iUser = runtime.body.indexOf(users[0]!);
  const iEntry = runtime.body.findIndex((i) => i.op === 'ENTRYPOINT');
  assert.ok(iUser < iEntry, 'USER before ENTRYPOINT');
  assert.ok(runtime.body.slice(iUser + 1).every((i) => i.op !== 'RUN'), 'nothing runs as root after USER');
  assert.match(ops(runtime, 'RUN').map((i) => i.args).join(' '), /useradd .*--uid 10001 .*--gid 10001/);
  assert.equal(ops(runtime, 'WORKDIR').at(-1)?.args, '/app');
});

test('the entrypoint is the broker with bin/smq.js\'s Node flags; CMD its config; the listener ports exposed', () => {
  const shebang = readFileSync(join(ROOT, 'bin', 'smq.js'), 'utf8').split('\n')[0]!;
  const m = /^#!\/usr\/bin\/env -S (node(?: --\S+)*)$/.exec(shebang);
  assert.ok(m, shebang);
  const flags = m[1]!.split(' ');
  assert.deepEqual(execForm(ops(runtime, 'ENTRYPOINT').at(-1)), [...flags, 'bin/smq.js']);
  assert.deepEqual(execForm(ops(runtime, 'CMD').at(-1)), ['-c', PATHS.configFile]);
  // The default config the CMD names is in the image.
  assert.ok(ops(runtime, 'COPY').map(copyParts).some((c) => c.dest === PATHS.configFile && c.sources[0] === 'docker/smq.yaml'));
  const exposed = ops(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
  assert.deepEqual(exposed, ['1883', '8883', '8083', '8888']);
  // The operator: the other launcher (the chart runs `node bin/smq-operator.js`).
  assert.equal(readFileSync(join(ROOT, 'bin', 'smq-operator.js'), 'utf8').split('\n').find((l) => l.startsWith('import')), "import '../dist/operator/src/main.js';");
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.deepEqual(pkg.bin, { smq: 'bin/smq.js', 'smq-operator': 'bin/smq-operator.js' });
});

test('every COPY from the context names something that exists and that .dockerignore lets in', () => {
  const sources = stages.flatMap((s) => ops(s, 'COPY').map(copyParts).filter((c) => c.from === undefined).flatMap((c) => c.sources));
  assert.ok(sources.length >= 7, sources.join(' '));
  for (const src of sources) {
    assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: no such file in the repository`);
    assert.ok(!ignored(src), `COPY ${src}: .dockerignore leaves it out of the context`);
  }
  // And what must never be in an image stays out.
  for (const path of ['node_modules/x', 'dist/broker/src/main.js', '.git/config', 'test/01-connect.test.ts', 'broker/src/broker.test.ts', 'bench/run.mjs', 'charts/smq/values.yaml', '.env', 'id_rsa', 'ssl/server/key.pem']) {
    assert.ok(ignored(path), `${path} is kept out of the context`);
  }
});

describeStaged();

/** The image's files staged in a temporary directory, and the broker run from them. */
function describeStaged(): void {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'smq-image-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('staged as the Dockerfile lays it out, the build stage compiles and the runtime runs the broker', async () => {
    // The build context: the repository's files (tracked or not, less .gitignore'd) that .dockerignore lets in.
    const context = join(dir, 'context');
    const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n').filter((f) => f !== '' && existsSync(join(ROOT, f)) && !ignored(f));
    for (const f of files) {
      mkdirSync(dirname(join(context, f)), { recursive: true });
      cpSync(join(ROOT, f), join(context, f));
    }
    const stage = (s: Stage, workdir: string): void => {
      for (const c of ops(s, 'COPY').map(copyParts)) {
        for (const src of c.sources) {
          const from = c.from === 'build' ? join(dir, 'build', src.replace(/^\/src\/?/, '')) : join(context, src);
          const dest = c.dest.startsWith('/') ? join(dir, s === runtime ? 'root' : 'build', c.dest) : join(workdir, c.dest);
          // `COPY a b ./` copies into the directory; `COPY dir ./dir` copies the directory's contents.
          const target = c.dest.endsWith('/') ? join(dest, src.split('/').at(-1)!) : dest;
          if (src.endsWith('node_modules')) {
            // npm ci cannot run here (and would not be faster): the repository's own node_modules stands in.
            symlinkSync(join(ROOT, 'node_modules'), target);
          } else {
            mkdirSync(dirname(target), { recursive: true });
            cpSync(from, target, { recursive: true });
          }
        }
      }
    };
    // Build stage: its COPYs, node_modules for `npm ci`, then its build command.
    const buildDir = join(dir, 'build');
    mkdirSync(buildDir, { recursive: true });
    stage(build, buildDir);
    symlinkSync(join(ROOT, 'node_modules'), join(buildDir, 'node_modules'));
    const tsc = await runToEnd(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: buildDir, timeoutMs: 60_000 });
    assert.equal(tsc.code, 0, `the build stage's \`npm run build\` fails on the context's files: ${tsc.stdout}${tsc.stderr}`);
    assert.ok(!existsSync(join(buildDir, 'dist', 'test')), 'no tests compiled into the image');
    assert.deepEqual(execFileSync('find', [join(buildDir, 'dist'), '-name', '*.test.js'], { encoding: 'utf8' }), '');
    // node_modules here has the dev dependencies too, which `npm prune --omit=dev` removes from the image:
    // every package the compiled code imports must be a production dependency.
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const imported = new Set<string>();
    const js = execFileSync('find', [join(buildDir, 'dist'), '-name', '*.js'], { encoding: 'utf8' }).split('\n').filter((f) => f !== '');
    const specifier = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(=])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)/gm;
    for (const file of js) {
      for (const m of readFileSync(file, 'utf8').matchAll(specifier)) {
        const spec = m[1] ?? m[2] ?? m[3] ?? m[4] ?? '';
        if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
        imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    assert.ok(imported.has('mqtt-packet') && imported.has('@kubernetes/client-node'), [...imported].join(', '));
    for (const p of imported) assert.ok(p in pkg.dependencies, `dist imports ${p}, which is not in package.json "dependencies" (npm prune --omit=dev removes it from the image)`);

    // Runtime stage: /app and /etc/smq/smq.yaml.
    const app = join(dir, 'root', 'app');
    mkdirSync(app, { recursive: true });
    stage(runtime, app);
    if (existsSync(join(ROOT, 'operator', 'src', 'main.ts'))) {
      assert.ok(existsSync(join(app, 'dist', 'operator', 'src', 'main.js')), 'the operator\'s entrypoint is in the image');
    }
    const entry = execForm(ops(runtime, 'ENTRYPOINT').at(-1));
    const [node, ...nodeArgs] = entry;
    assert.equal(node, 'node');
    const version = await runToEnd(process.execPath, [...nodeArgs, '-v'], { cwd: app });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /0\.1\.0/);

    // The image's own config (listeners on every interface), moved to loopback and free ports for the test;
    // notifications over gRPC load the .proto from broker/proto at start.
    const [port, wsPort, httpPort, grpcPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const config = join(dir, 'root', PATHS.configFile);
    const proc = spawn(process.execPath, [...nodeArgs, '-c', config], {
      cwd: app,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        SMQ_HOST: '127.0.0.1', SMQ_HTTP_HOST: '127.0.0.1', SMQ_PORT: String(port), SMQ_WS_PORT: String(wsPort), SMQ_HTTP_PORT: String(httpPort),
        SMQ_STORE_DIR: join(dir, 'data'),
        SMQ_NOTIFY_ENABLE: 'true', SMQ_NOTIFY_TYPE: 'grpc', SMQ_NOTIFY_SERVER: `127.0.0.1:${grpcPort}`,
      },
    });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    try {
      let ready = false;
      for (const deadline = Date.now() + 15_000; !ready && Date.now() < deadline && proc.exitCode === null;) {
        ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.status === 200, () => false);
        if (!ready) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(ready, `the staged broker never answered /readyz:\n${output}`);
      const swagger = await fetch(`http://127.0.0.1:${httpPort}/api/v1/swagger/swagger-ui-bundle.js`);
      assert.equal(swagger.status, 200, 'Swagger UI\'s assets come from node_modules');
      await swagger.arrayBuffer();
    } finally {
      proc.kill('SIGTERM');
    }
    assert.equal(await exited, 0, output);
  });
}
