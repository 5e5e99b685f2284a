/**
 * The ACL rules file: YAML in, validated {@link AclRule}s out. Every mistake is reported with the file, the
 * rule index and the field, so an operator can fix it without reading code; unknown fields are errors, so a
 * typo (`topic:` for `topics:`) never silently widens or narrows a rule.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { SmqError } from '../errors.js';
import { isValidTopicFilter, parseShared } from '../protocol/validate.js';
import { parseRange, type AddressRange } from './address.js';
import { parseTemplate, type AclRule, type TopicTemplate } from './match.js';

/** A rules file the broker cannot use: unreadable, not YAML, or a rule that does not validate. */
export class AclFileError extends SmqError {
  /** The rules file. */
  readonly file: string;
  /** Index of the offending rule in `rules` (0-based), or -1 when the file as a whole is at fault. */
  readonly rule: number;
  /** The offending field (`topics`, `topics[1]`, ...), or '' when it is not about one field. */
  readonly field: string;

  constructor(file: string, rule: number, field: string, detail: string, options?: { cause?: unknown }) {
    const where = rule < 0 ? '' : field === '' ? `rules[${rule}]: ` : `rules[${rule}], field "${field}": `;
    super('ERR_ACL_FILE', `acl file error in ${file}: ${where}${detail}`, options);
    this.file = file;
    this.rule = rule;
    this.field = field;
  }
}

/** The fields a rule may have. */
const FIELDS = ['permission', 'action', 'username', 'clientid', 'address', 'cn', 'topics'] as const;

/** Reads and validates a rules file; throws {@link AclFileError}. */
export function loadRulesFile(file: string): { rules: AclRule[]; text: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new AclFileError(file, -1, '', `cannot read the file (${reason})`, { cause: err });
  }
  return { rules: parseRules(text, file), text };
}

/** Validates the text of a rules file (`file` names it in errors); throws {@link AclFileError}. */
export function parseRules(text: string, file: string): AclRule[] {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0];
    const where = pos === undefined ? '' : `line ${pos.line}, column ${pos.col}: `;
    // The library's message ends with its own position and a source excerpt; keep only the sentence.
    const reason = first.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
    throw new AclFileError(file, -1, '', `${where}invalid YAML: ${reason}`, { cause: first });
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // Alias bombs and the like: the syntax is fine but the document cannot become plain data.
    const reason = err instanceof Error ? err.message : String(err);
    throw new AclFileError(file, -1, '', `invalid YAML: ${reason}`, { cause: err });
  }
  // An empty file is refused rather than read as "no rules": a file caught half-written during a reload
  // must not drop every rule.
  if (!isMapping(data) || !Array.isArray(data['rules'])) {
    throw new AclFileError(file, -1, '', `expected a mapping with a "rules" list, got ${show(data)}`);
  }
  for (const key of Object.keys(data)) {
    if (key !== 'rules') throw new AclFileError(file, -1, '', `unknown top-level key "${key}" (only "rules" is known)`);
  }
  return (data['rules'] as unknown[]).map((raw, i) => parseRule(raw, i, file));
}

function parseRule(raw: unknown, index: number, file: string): AclRule {
  const fail = (field: string, detail: string): AclFileError => new AclFileError(file, index, field, detail);
  if (!isMapping(raw)) throw fail('', `expected a mapping of rule fields, got ${show(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      throw fail(key, `unknown field (known fields: ${FIELDS.join(', ')})`);
    }
  }
  const permission = raw['permission'];
  if (permission !== 'allow' && permission !== 'deny') throw fail('permission', `expected "allow" or "deny", got ${show(permission)}`);
  const action = raw['action'];
  if (action !== 'publish' && action !== 'subscribe' && action !== 'all') {
    throw fail('action', `expected one of "publish", "subscribe", "all", got ${show(action)}`);
  }
  const strings = (field: 'username' | 'clientid' | 'cn'): string[] | null => {
    const list = stringList(raw[field]);
    if (list === undefined) throw fail(field, `expected a non-empty string or a non-empty list of them, got ${show(raw[field])}`);
    return list;
  };
  let addresses: AddressRange[] | null = null;
  const addressList = stringList(raw['address']);
  if (addressList === undefined) throw fail('address', `expected an IP address or CIDR range, or a list of them, got ${show(raw['address'])}`);
  if (addressList !== null) {
    addresses = addressList.map((a, i) => {
      const r = parseRange(a);
      if (typeof r === 'string') throw fail(Array.isArray(raw['address']) ? `address[${i}]` : 'address', `expected ${r}, got ${show(a)}`);
      return r;
    });
  }
  const topicList = stringList(raw['topics']);
  if (topicList === undefined || topicList === null) {
    throw fail('topics', `expected a non-empty list of topic filters, got ${show(raw['topics'])}`);
  }
  const topics: TopicTemplate[] = topicList.map((t, i) => {
    const field = Array.isArray(raw['topics']) ? `topics[${i}]` : 'topics';
    const inner = parseShared(t);
    if (inner !== null) {
      const hint = inner !== null && inner !== 'invalid' ? `; write "${inner.filter}"` : '';
      throw fail(field, `rules match the filter inside a shared subscription, not "$share/" or "$queue/"${hint}`);
    }
    // Placeholders stand for one safe level piece; validate the filter with a stand-in value.
    if (!isValidTopicFilter(t.replace(/%[uc]/g, 'x'))) {
      throw fail(field, `expected a valid MQTT topic filter ('+' and '#' as whole levels, '#' last), got ${show(t)}`);
    }
    return parseTemplate(t);
  });
  return {
    index,
    allow: permission === 'allow',
    publish: action !== 'subscribe',
    subscribe: action !== 'publish',
    usernames: strings('username'),
    clientIds: strings('clientid'),
    addresses,
    cns: strings('cn'),
    topics,
  };
}

/**
 * A string or a non-empty list of non-empty strings, as a list; null when the field is absent; undefined when
 * it is something else. Numbers are not coerced: `username: 123` is written `username: "123"`.
 */
function stringList(v: unknown): string[] | null | undefined {
  if (v === undefined) return null;
  if (typeof v === 'string') return v === '' ? undefined : [v];
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const out: string[] = [];
  for (const item of v) {
    if (typeof item !== 'string' || item === '') return undefined;
    out.push(item);
  }
  return out;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return JSON.stringify(v);
}
