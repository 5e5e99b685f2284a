/**
 * What an ACL rule means, as pure functions: MQTT topic matching, filter covering, `%u`/`%c` placeholders,
 * identity matchers and first-match evaluation. No I/O and no caching (the hooks cache); the rules file
 * parser (rules.ts) builds the {@link AclRule} values evaluated here.
 *
 * - publish: the topic name must match a rule filter (MQTT 5 section 4.7, `$` topics included).
 * - subscribe: the requested filter must be *covered* by a rule filter: every topic the requested filter can
 *   match is matched by the rule filter. For `$share/<g>/<f>` and `$queue/<f>` the inner `f` is checked.
 * - read (a message about to be delivered): its topic must match a filter of a subscribe or all rule.
 */
import type { AddressRange } from './address.js';
import { parseShared } from '../protocol/validate.js';

/** Char code of '$', the first character of broker-internal topics. */
const DOLLAR = 36;

/** What a client is doing: publishing, subscribing, or receiving a message (read). */
export type Access = 'publish' | 'subscribe' | 'read';

/** One piece of a rule's topic filter: literal text, or the username / client id placeholder. */
export type TemplatePart = string | { readonly placeholder: 'u' | 'c' };

/** A topic filter of a rule, kept split into levels once the file is loaded. */
export interface TopicTemplate {
  /** The filter as written in the rules file. */
  readonly source: string;
  /** Levels of a filter without placeholders; null when it has some (they are expanded per client). */
  readonly levels: readonly string[] | null;
  /** The filter cut at its placeholders; only read when `levels` is null. */
  readonly parts: readonly TemplatePart[];
  /** True when the first level begins with a literal '$' (a `$SYS/...` rule). */
  readonly dollar: boolean;
}

/** One rule of the rules file, validated. Identity matchers left null match every client. */
export interface AclRule {
  /** Position in the file's `rules` list (0-based), for logs. */
  readonly index: number;
  readonly allow: boolean;
  /** Applies to publish. */
  readonly publish: boolean;
  /** Applies to subscribe, and so to reads. */
  readonly subscribe: boolean;
  /** Username patterns ('*' wildcard), any of which may match. */
  readonly usernames: readonly string[] | null;
  readonly clientIds: readonly string[] | null;
  readonly addresses: readonly AddressRange[] | null;
  /** Patterns for the CN of the verified client certificate. */
  readonly cns: readonly string[] | null;
  readonly topics: readonly TopicTemplate[];
}

/** The facts about a client that rules look at. */
export interface Identity {
  readonly clientId: string;
  readonly username: string | undefined;
  /** The peer address as bytes (see `parseIp`), or null when it is not an IP address. */
  readonly address: Uint8Array | null;
  /** CN of the verified client certificate, when there is one. */
  readonly cn: string | undefined;
}

/** A rule that applies to one client, with its filters expanded for that client's username and client id. */
export interface AppliedRule {
  readonly rule: AclRule;
  readonly filters: readonly (readonly string[])[];
}

/** True when `level` (the first level of a topic or filter) is a `$` level, which wildcards skip [MQTT-4.7.2-1]. */
function isDollar(level: string | undefined): boolean {
  return level !== undefined && level.charCodeAt(0) === DOLLAR;
}

/**
 * True when the filter (split into levels) matches the topic name (split into levels): '+' one level, '#' the
 * parent level and everything below, and a first-level wildcard never matches a `$` topic [MQTT-4.7.2-1].
 */
export function matchLevels(filter: readonly string[], topic: readonly string[]): boolean {
  const n = filter.length;
  for (let i = 0; i < n; i++) {
    const f = filter[i];
    // '#' also matches the parent level [MQTT-4.7.1-2], and levels 0..i-1 already matched.
    if (f === '#') return i > 0 || !isDollar(topic[0]);
    const t = topic[i];
    if (t === undefined) return false;
    if (f === '+') {
      if (i === 0 && isDollar(t)) return false;
      continue;
    }
    if (f !== t) return false;
  }
  return n === topic.length;
}

/** {@link matchLevels} on strings. */
export function topicMatches(filter: string, topic: string): boolean {
  return matchLevels(filter.split('/'), topic.split('/'));
}

/**
 * True when the rule filter covers the requested filter: every topic name the requested filter matches is
 * also matched by the rule filter. `sensors/#` covers `sensors/+/temp` and `sensors`; `sensors/+` does not
 * cover `sensors/#`; `#` covers every filter except those that start with a `$` level.
 */
export function coverLevels(rule: readonly string[], requested: readonly string[]): boolean {
  const n = rule.length;
  for (let i = 0; i < n; i++) {
    const r = rule[i];
    if (r === '#') return i > 0 || !isDollar(requested[0]);
    const q = requested[i];
    if (q === undefined) return false;
    if (q === '#') {
      // The request reaches any depth from here, including this level missing. Only '#' follows it, and
      // '+/#' as a whole filter, which matches exactly what '#' matches (every topic has a first level).
      return i === 0 && n === 2 && r === '+' && rule[1] === '#';
    }
    if (r === '+') {
      // A literal '$' first level is out of a first-level '+''s reach; a requested '+' never yields one.
      if (i === 0 && isDollar(q)) return false;
      continue;
    }
    if (q === '+' || r !== q) return false;
  }
  return n === requested.length;
}

/** {@link coverLevels} on strings. */
export function filterCovers(rule: string, requested: string): boolean {
  return coverLevels(rule.split('/'), requested.split('/'));
}

/** The filter rules judge for a SUBSCRIBE entry: the inner filter of `$share/<g>/<f>` and `$queue/<f>`. */
export function aclFilter(requested: string): string {
  const shared = parseShared(requested);
  return shared === null || shared === 'invalid' ? requested : shared.filter;
}

/**
 * Cuts a rule filter at its `%u` (username) and `%c` (client id) placeholders. Any other '%' is literal text,
 * as topics may contain it.
 */
export function parseTemplate(source: string): TopicTemplate {
  const parts: TemplatePart[] = [];
  let literal = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '%' && (next === 'u' || next === 'c')) {
      if (literal !== '') parts.push(literal);
      literal = '';
      parts.push({ placeholder: next });
      i++;
    } else {
      literal += c;
    }
  }
  if (literal !== '') parts.push(literal);
  const plain = parts.every((p) => typeof p === 'string');
  return { source, levels: plain ? source.split('/') : null, parts, dollar: isDollar(source) };
}

/**
 * True when an identity may stand in for a placeholder: not empty, without U+0000, and without '+', '#' or
 * '/', which would widen the filter (a user named `+` would get `sensors/+/#`, every user's tree; `a/b` would
 * reach another level). A client without a username never matches a `%u` rule (no `sensors//#`).
 */
export function safeForPlaceholder(value: string | undefined): value is string {
  if (value === undefined || value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x2b || c === 0x23 || c === 0x2f || c === 0) return false; // '+', '#', '/', NUL
  }
  return true;
}

/**
 * The template's levels for this identity, or null when the rule cannot apply to it: a placeholder whose
 * value is missing or unsafe, or a value that would turn the filter into a `$` filter (username `$SYS`
 * against `%u/#`). Substitution is one pass, so a username containing `%c` stays literal text.
 */
export function expandTemplate(t: TopicTemplate, username: string | undefined, clientId: string): readonly string[] | null {
  if (t.levels !== null) return t.levels;
  let out = '';
  for (const p of t.parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    const value = p.placeholder === 'u' ? username : clientId;
    if (!safeForPlaceholder(value)) return null;
    out += value;
  }
  if (!t.dollar && isDollar(out)) return null;
  return out.split('/');
}

/**
 * Shell-style match where '*' stands for any run of characters (none included) and every other character is
 * literal. Linear backtracking to the last '*' (no regular expression), so a hostile 64 KiB client id costs
 * O(pattern × value) at worst, once per client.
 */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  let p = 0;
  let v = 0;
  let star = -1;
  let mark = 0;
  while (v < value.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = v;
    } else if (p < pattern.length && pattern[p] === value[v]) {
      p++;
      v++;
    } else if (star >= 0) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

function anyGlob(patterns: readonly string[] | null, value: string | undefined): boolean {
  if (patterns === null) return true;
  if (value === undefined || value === '') return false; // a matcher never matches an absent identity
  for (const p of patterns) if (globMatch(p, value)) return true;
  return false;
}

/** True when every identity matcher of the rule (username, clientid, address, cn) accepts the client. */
export function identityMatches(rule: AclRule, id: Identity): boolean {
  if (!anyGlob(rule.usernames, id.username)) return false;
  if (!anyGlob(rule.clientIds, id.clientId)) return false;
  if (!anyGlob(rule.cns, id.cn)) return false;
  if (rule.addresses !== null && !rule.addresses.some((a) => a.contains(id.address))) return false;
  return true;
}

/**
 * The rules that apply to one client, in file order, with placeholders expanded. A rule whose filters all
 * drop out (placeholders the client cannot fill) is left out entirely.
 */
export function rulesFor(rules: readonly AclRule[], id: Identity): AppliedRule[] {
  const out: AppliedRule[] = [];
  for (const rule of rules) {
    if (!identityMatches(rule, id)) continue;
    const filters: (readonly string[])[] = [];
    for (const t of rule.topics) {
      const levels = expandTemplate(t, id.username, id.clientId);
      if (levels !== null) filters.push(levels);
    }
    if (filters.length > 0) out.push({ rule, filters });
  }
  return out;
}

/**
 * First match wins: the first applied rule for this access whose filter matches (publish, read) or covers
 * (subscribe) decides. `topic` is a topic name for publish and read, the requested filter for subscribe
 * (shared prefixes stripped by the caller, see {@link aclFilter}). Undefined when no rule matches.
 */
export function firstMatch(applied: readonly AppliedRule[], access: Access, topic: string): AclRule | undefined {
  const levels = topic.split('/');
  const covering = access === 'subscribe';
  for (const a of applied) {
    if (access === 'publish' ? !a.rule.publish : !a.rule.subscribe) continue;
    for (const f of a.filters) {
      if (covering ? coverLevels(f, levels) : matchLevels(f, levels)) return a.rule;
    }
  }
  return undefined;
}
