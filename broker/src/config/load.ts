/**
 * Loading the configuration: defaults, then the YAML file, then `SMQ_*` environment variables, validated once
 * against the schema and frozen. This is the only module that reads `process.env` for configuration.
 */
import { readFileSync } from 'node:fs';

import { parseDocument } from 'yaml';

import { SmqError } from '../errors.js';
import { DEFAULTS, deepFreeze } from './defaults.js';
import { ENV_PREFIX, SCHEMA, describeExpected, envName, type ConfigPath, type KeySpec, type StringListKey } from './schema.js';
import type { Config } from './types.js';

/**
 * A configuration the broker cannot start with. It names where the bad value came from, the key and what
 * would have been accepted, so that an operator can fix it without reading code.
 */
export class ConfigError extends SmqError {
  /** The file holding the bad value, or `environment` when it came from an environment variable. */
  readonly file: string;
  /** Dotted key (`tls.port`) or variable name (`SMQ_TLS_PORT`); empty when the file as a whole is unusable. */
  readonly key: string;
  /** What would have been accepted, in words (`an integer from 0 to 65535`). */
  readonly expected: string;

  constructor(file: string, key: string, expected: string, message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options);
    this.file = file;
    this.key = key;
    this.expected = expected;
  }
}

/** The `file` of a ConfigError raised by an environment variable. */
const ENVIRONMENT = 'environment';

/** Where a value came from: a file and dotted key, or the environment and a variable name. */
interface Origin {
  readonly file: string;
  readonly key: string;
}

interface SectionNode {
  readonly kind: 'section';
  readonly path: string;
  readonly children: Map<string, SectionNode | KeyNode>;
}

interface KeyNode {
  readonly kind: 'key';
  readonly spec: KeySpec;
}

/** The schema as a tree, to walk the YAML mapping by mapping and report unknown keys where they are. */
const ROOT: SectionNode = buildTree(SCHEMA);

/** Every section and key path, for suggestions across levels. */
const ALL_PATHS: readonly string[] = collectPaths(ROOT);

/** Variable name → key, derived from the schema so that no key needs its own environment code. */
const ENV_KEYS: ReadonlyMap<string, KeySpec> = new Map(SCHEMA.map((spec) => [envName(spec.path), spec]));
if (ENV_KEYS.size !== SCHEMA.length) {
  // `a.b_c` and `a_b.c` would share SMQ_A_B_C; fail at start-up rather than let one key shadow the other.
  throw new Error('two configuration keys map to the same environment variable');
}

/** Test harness variables share the prefix but are not configuration. */
const IGNORED_ENV_PREFIX = `${ENV_PREFIX}TEST_`;

/**
 * Kubernetes injects `<SERVICE>_PORT=tcp://10.0.0.1:1883` for every Service in the namespace, so a Service
 * named `smq` (or `smq-http`, `smq-tls`, `smq-ws`) sets SMQ_PORT and friends to a URL. Such a value is never a
 * user's override; ignore it instead of refusing to start.
 */
const SERVICE_LINK = /^(tcp|udp|sctp):\/\//;

const BOOL_WORDS: ReadonlyMap<string, boolean> = new Map([
  ['true', true],
  ['false', false],
  ['1', true],
  ['0', false],
  ['yes', true],
  ['no', false],
]);

interface Requirement {
  readonly when: ConfigPath;
  readonly requires: ConfigPath;
  readonly expected: string;
}

/** Settings that only make sense together; checked after merging, whichever source set them. */
const REQUIRES: readonly Requirement[] = [
  { when: 'tls.enable', requires: 'tls.cert', expected: 'a certificate file when tls.enable is true' },
  { when: 'tls.enable', requires: 'tls.key', expected: 'a private key file when tls.enable is true' },
  { when: 'tls.verify', requires: 'tls.ca', expected: 'a CA bundle file when tls.verify is true' },
  { when: 'wss.enable', requires: 'tls.cert', expected: 'a certificate file when wss.enable is true' },
  { when: 'wss.enable', requires: 'tls.key', expected: 'a private key file when wss.enable is true' },
  // A PROXY header is read only from trusted proxies: with none, the switch could never do anything.
  { when: 'proxy_protocol', requires: 'proxy.trusted', expected: 'the trusted proxies\' addresses when proxy_protocol is true' },
  { when: 'tls.proxy_protocol', requires: 'proxy.trusted', expected: 'the trusted proxies\' addresses when tls.proxy_protocol is true' },
  { when: 'ws.proxy_protocol', requires: 'proxy.trusted', expected: 'the trusted proxies\' addresses when ws.proxy_protocol is true' },
  { when: 'wss.proxy_protocol', requires: 'proxy.trusted', expected: 'the trusted proxies\' addresses when wss.proxy_protocol is true' },
];

/**
 * Loads, merges (defaults < file < environment), validates once, deep-freezes. `env` defaults to
 * `process.env`; tests pass their own. Throws {@link ConfigError} naming the file, the key and what was
 * expected.
 */
export function loadConfig(options: { file?: string; env?: Record<string, string | undefined> }): Config {
  const values = new Map<string, unknown>();
  const origins = new Map<string, Origin>();
  for (const spec of SCHEMA) values.set(spec.path, lookup(DEFAULTS, spec.path));

  if (options.file !== undefined) {
    const file = options.file;
    readSection(ROOT, parseFile(file), file, (spec, value) => {
      values.set(spec.path, value);
      origins.set(spec.path, { file, key: spec.path });
    });
  }

  for (const [name, text] of Object.entries(options.env ?? process.env)) {
    const spec = ENV_KEYS.get(name);
    // Unknown SMQ_* variables are ignored: containers carry many unrelated ones, and Kubernetes adds its own.
    if (spec === undefined || text === undefined || name.startsWith(IGNORED_ENV_PREFIX)) continue;
    if (spec.kind === 'int' && SERVICE_LINK.test(text)) continue;
    values.set(spec.path, fromEnv(spec, name, text));
    origins.set(spec.path, { file: ENVIRONMENT, key: name });
  }

  for (const rule of REQUIRES) {
    const required = values.get(rule.requires);
    const empty = required === '' || (Array.isArray(required) && required.length === 0);
    if (values.get(rule.when) !== true || !empty) continue;
    // Blame whichever source the user touched: the emptied key if they set it, otherwise the switch.
    const origin = origins.get(rule.requires) ?? origins.get(rule.when);
    const file = origin?.file ?? 'defaults';
    const key = file === ENVIRONMENT ? envName(rule.requires) : rule.requires;
    const message = `config error in ${file}: key "${key}": expected ${rule.expected}, got ${Array.isArray(required) ? '[]' : '""'}`;
    throw new ConfigError(file, key, rule.expected, message);
  }

  return build(values);
}

function parseFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const expected = 'a readable YAML file';
    const message = `config error in ${file}: cannot read the file (${reason})`;
    throw new ConfigError(file, '', expected, message, { cause: err });
  }

  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0];
    const where = pos === undefined ? '' : `line ${pos.line}, column ${pos.col}: `;
    // The library's message ends with its own position and a source excerpt; keep only the sentence.
    const reason =
      first.code === 'MULTIPLE_DOCS'
        ? 'the file holds more than one YAML document'
        : first.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
    throw new ConfigError(file, '', 'valid YAML', `config error in ${file}: ${where}invalid YAML: ${reason}`, {
      cause: first,
    });
  }

  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // Alias bombs and the like: the syntax is fine but the document cannot be turned into plain data.
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(file, '', 'valid YAML', `config error in ${file}: invalid YAML: ${reason}`, { cause: err });
  }
  // An empty file (or one holding only comments) means "all defaults".
  if (data === null || data === undefined) return {};
  if (!isMapping(data)) {
    const expected = 'a mapping of configuration keys at the top level';
    throw new ConfigError(file, '', expected, `config error in ${file}: expected ${expected}, got ${show(data)}`);
  }
  return data;
}

function readSection(
  section: SectionNode,
  data: Record<string, unknown>,
  file: string,
  set: (spec: KeySpec, value: unknown) => void,
): void {
  for (const [name, raw] of Object.entries(data)) {
    const path = join(section.path, name);
    const child = section.children.get(name);
    if (child === undefined) throw unknownKey(file, section, name);
    if (child.kind === 'key') {
      set(child.spec, fromYaml(child.spec, raw, file));
      continue;
    }
    // `tls:` with every child commented out parses as null: keep the defaults of that section.
    if (raw === null) continue;
    if (!isMapping(raw)) {
      const expected = `a mapping of ${[...child.children.keys()].join(', ')}`;
      const message = `config error in ${file}: key "${path}": expected ${expected}, got ${show(raw)}`;
      throw new ConfigError(file, path, expected, message);
    }
    readSection(child, raw, file, set);
  }
}

function fromYaml(spec: KeySpec, raw: unknown, file: string): unknown {
  // `endpoints:` left empty is the natural way to write "no etcd"; other empty scalars stay errors, since an
  // empty host or port is more likely a mistake than a wish.
  const value = raw === null && spec.kind === 'string-list' ? [] : raw;
  if (accepts(spec, value)) return value;
  const expected = describeExpected(spec);
  // For a list, point at the bad item: "got a list" alone would leave the user searching.
  const got = spec.kind === 'string-list' && Array.isArray(raw) ? showBadItem(spec, raw) : show(raw);
  const message = `config error in ${file}: key "${spec.path}": expected ${expected}, got ${got} (${spec.description})`;
  throw new ConfigError(file, spec.path, expected, message);
}

function fromEnv(spec: KeySpec, name: string, text: string): unknown {
  const trimmed = text.trim();
  let value: unknown = text;
  switch (spec.kind) {
    case 'string':
      break;
    case 'int':
      if (/^[+-]?\d+$/.test(trimmed)) value = Number(trimmed);
      break;
    case 'bool':
      value = BOOL_WORDS.get(trimmed.toLowerCase()) ?? text;
      break;
    case 'enum':
      value = spec.values.find((v) => v === trimmed.toLowerCase()) ?? text;
      break;
    case 'string-list':
      // An empty variable is an empty list, so SMQ_ETCD_ENDPOINTS= switches a node back to standalone.
      value = text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
      break;
  }
  if (accepts(spec, value)) return value;
  const expected = describeExpected(spec);
  throw new ConfigError(
    ENVIRONMENT,
    name,
    expected,
    `config error in ${ENVIRONMENT}: key "${name}": expected ${expected}, got ${JSON.stringify(text)} ` +
      `(${spec.path}: ${spec.description})`,
  );
}

/** Whether a value, already in its JavaScript form, is valid for a key. */
function accepts(spec: KeySpec, value: unknown): boolean {
  switch (spec.kind) {
    case 'string':
      return typeof value === 'string' && (spec.pattern === undefined || spec.pattern.regex.test(value));
    case 'int':
      return typeof value === 'number' && Number.isSafeInteger(value) && value >= spec.min && value <= spec.max;
    case 'bool':
      return typeof value === 'boolean';
    case 'enum':
      return typeof value === 'string' && spec.values.includes(value);
    case 'string-list':
      return Array.isArray(value) && value.every((item) => itemProblem(spec, item) === null);
  }
}

/** What is wrong with one item of a list key, or null when it is fine. */
function itemProblem(spec: StringListKey, item: unknown): string | null {
  if (typeof item !== 'string' || item === '') return 'not a non-empty string';
  return spec.item?.check(item) ?? null;
}

function unknownKey(file: string, section: SectionNode, name: string): ConfigError {
  const path = join(section.path, name);
  const known = [...section.children.keys()].join(', ');
  const expected =
    section.path === '' ? `one of the top-level keys: ${known}` : `one of the keys of "${section.path}": ${known}`;
  const suggestions = suggest(section, name);
  const hint = suggestions.length === 0 ? '' : `; did you mean ${suggestions.map((s) => `"${s}"`).join(' or ')}?`;
  const message = `config error in ${file}: key "${path}": unknown key${hint} (expected ${expected})`;
  return new ConfigError(file, path, expected, message);
}

/**
 * Likely intended keys for an unknown one: a near sibling (`prot` → `port`, `enabled` → `enable`), or else
 * the same name at another level (`max_inflight` written at the top instead of under `mqtt`).
 */
function suggest(section: SectionNode, name: string): string[] {
  const wanted = normalize(name);
  const limit = wanted.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of section.children.keys()) {
    const d = distance(normalize(candidate), wanted);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined) return [join(section.path, best)];
  return ALL_PATHS.filter((path) => normalize(path.slice(path.lastIndexOf('.') + 1)) === wanted).slice(0, 3);
}

function normalize(name: string): string {
  return name.toLowerCase().replaceAll('-', '_');
}

/** Edit distance counting a swap of two neighbours as one edit, since `prot` for `port` is the usual typo. */
function distance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [];
    for (let j = 0; j <= b.length; j++) {
      if (i === 0 || j === 0) {
        row.push(i + j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(cell(rows, i - 1, j) + 1, (row[j - 1] ?? 0) + 1, cell(rows, i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, cell(rows, i - 2, j - 2) + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return cell(rows, a.length, b.length);
}

function cell(rows: readonly (readonly number[])[], i: number, j: number): number {
  return rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
}

function buildTree(schema: readonly KeySpec[]): SectionNode {
  const root: SectionNode = { kind: 'section', path: '', children: new Map() };
  for (const spec of schema) {
    const parts = spec.path.split('.');
    const last = parts.pop();
    if (last === undefined) continue;
    let section = root;
    for (const part of parts) {
      let next = section.children.get(part);
      if (next === undefined) {
        next = { kind: 'section', path: join(section.path, part), children: new Map() };
        section.children.set(part, next);
      }
      if (next.kind !== 'section') throw new Error(`configuration key "${next.spec.path}" is also used as a section`);
      section = next;
    }
    section.children.set(last, { kind: 'key', spec });
  }
  return root;
}

function collectPaths(section: SectionNode): string[] {
  const paths: string[] = [];
  for (const child of section.children.values()) {
    if (child.kind === 'key') {
      paths.push(child.spec.path);
    } else {
      paths.push(child.path, ...collectPaths(child));
    }
  }
  return paths;
}

/** Turns the flat, validated values back into the nested shape of Config and freezes it. */
function build(values: ReadonlyMap<string, unknown>): Config {
  const root: Record<string, unknown> = {};
  for (const spec of SCHEMA) {
    const parts = spec.path.split('.');
    const last = parts.pop();
    if (last === undefined) continue;
    let node = root;
    for (const part of parts) {
      const existing = node[part];
      const next: Record<string, unknown> = isMapping(existing) ? existing : {};
      node[part] = next;
      node = next;
    }
    node[last] = values.get(spec.path);
  }
  // Sound because schema.ts proves at compile time that SCHEMA covers every field of Config, and every value
  // above was either taken from DEFAULTS or checked against its key.
  return deepFreeze(root) as unknown as Config;
}

function lookup(data: unknown, path: string): unknown {
  let node = data;
  for (const part of path.split('.')) node = isMapping(node) ? node[part] : undefined;
  return node;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function join(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}

/** A value as it should appear after "got" in an error message. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : typeof value;
}

function showBadItem(spec: StringListKey, list: readonly unknown[]): string {
  const bad = list.findIndex((item) => itemProblem(spec, item) !== null);
  if (bad < 0) return 'a list';
  // Say what is wrong with it when the key checks its items (`10.0.0.1/8`: host bits set).
  const why = spec.item !== undefined && typeof list[bad] === 'string' && list[bad] !== '' ? ` (${itemProblem(spec, list[bad])})` : '';
  return `a list whose item ${bad + 1} is ${show(list[bad])}${why}`;
}
