/**
 * Validation of topic names, topic filters, shared-subscription filters and client identifiers. Pure and on
 * the hot path (every PUBLISH checks its topic), so plain charCodeAt loops: no regex, no allocation.
 *
 * Why U+FFFD is rejected: mqtt-packet decodes strings with Buffer.toString('utf8'), which silently replaces
 * ill-formed UTF-8 (overlong forms, stray continuation bytes, encoded surrogates U+D800..U+DFFF) with U+FFFD.
 * The broker never sees the raw bytes, so a U+FFFD in a topic or client id is the only trace of ill-formed
 * UTF-8 it gets, and it is treated as such [MQTT-1.5.3-1] (v3.1.1) / [MQTT-1.5.4-1] (v5). A client that
 * really meant U+FFFD loses that one character, which is a cheap price for not routing mangled topics.
 * Lone surrogates cannot arrive through the decoder but can through other callers (the HTTP API, say), and
 * have no UTF-8 encoding, so they are rejected too.
 */

/** Largest UTF-8 string MQTT can carry: a two-byte length prefix [MQTT-4.7.3-3]. */
const MAX_BYTES = 65535;

const SLASH = 0x2f; // '/'
const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'

const SHARE_PREFIX = '$share/';
const QUEUE_PREFIX = '$queue/';
/** Group name reported for `$queue/<filter>`, the older (EMQX-style) spelling of a shared subscription. */
const QUEUE_GROUP = '$queue';

/** A shared subscription split into its group and the filter that is actually matched. */
export interface SharedSubscription {
  /** The ShareName, or `$queue` for `$queue/<filter>`. */
  readonly group: string;
  /** The topic filter after the group, already validated. */
  readonly filter: string;
}

/**
 * UTF-8 length of the non-ASCII code unit `c` at `s[i]`: 2 or 3, 4 for a surrogate pair (the caller skips
 * the low half), or -1 for a character that is not allowed in an MQTT string.
 */
function wideCharBytes(s: string, i: number, c: number): number {
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdbff) {
    const low = s.charCodeAt(i + 1); // NaN past the end, which fails both comparisons
    return low >= 0xdc00 && low <= 0xdfff ? 4 : -1; // lone high surrogate [MQTT-1.5.3-1] [MQTT-1.5.4-1]
  }
  if (c >= 0xdc00 && c <= 0xdfff) return -1; // lone low surrogate [MQTT-1.5.3-1] [MQTT-1.5.4-1]
  if (c === 0xfffd) return -1; // decoder's mark of ill-formed UTF-8, see the file comment [MQTT-1.5.3-1] [MQTT-1.5.4-1]
  return 3;
}

/**
 * UTF-8 length of `s[from..to)` when it is an acceptable MQTT string, else -1.
 * Used for topic names, share names and client ids; `noWildcards` also rejects '+' and '#'.
 */
function plainBytes(s: string, from: number, to: number, noWildcards: boolean): number {
  let bytes = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) return -1; // no U+0000 [MQTT-1.5.3-2] [MQTT-1.5.4-2] [MQTT-4.7.3-2]
      if (noWildcards && (c === PLUS || c === HASH)) return -1; // [MQTT-3.3.2-2] [MQTT-4.8.2-2]
      bytes++;
      continue;
    }
    const b = wideCharBytes(s, i, c);
    if (b < 0) return -1;
    if (b === 4) i++;
    bytes += b;
  }
  return bytes;
}

/** UTF-8 length of a syntactically valid topic filter `s[from..]`, else -1 (length limit not checked). */
function filterBytes(s: string, from: number): number {
  const n = s.length;
  if (from >= n) return -1; // at least one character [MQTT-4.7.3-1]
  let bytes = 0;
  for (let i = from; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) return -1; // no U+0000 [MQTT-4.7.3-2] [MQTT-1.5.4-2]
      if (c === HASH) {
        // '#' alone or after '/', and the last character [MQTT-4.7.1-2]
        if (i !== n - 1 || (i > from && s.charCodeAt(i - 1) !== SLASH)) return -1;
      } else if (c === PLUS) {
        // '+' fills a whole level [MQTT-4.7.1-3]
        if (i > from && s.charCodeAt(i - 1) !== SLASH) return -1;
        if (i < n - 1 && s.charCodeAt(i + 1) !== SLASH) return -1;
      }
      bytes++;
      continue;
    }
    const b = wideCharBytes(s, i, c);
    if (b < 0) return -1;
    if (b === 4) i++;
    bytes += b;
  }
  return bytes;
}

/** Topic name valid for PUBLISH: non-empty, no '+' or '#' [MQTT-3.3.2-2], no U+0000 [MQTT-1.5.4-2], no U+FFFD, UTF-8 length <= 65535. */
export function isValidTopicName(topic: string): boolean {
  const n = topic.length;
  if (n === 0) return false; // [MQTT-4.7.3-1]
  if (n > MAX_BYTES) return false; // every UTF-16 unit is at least one UTF-8 byte [MQTT-4.7.3-3]
  const bytes = plainBytes(topic, 0, n, true);
  return bytes >= 0 && bytes <= MAX_BYTES; // [MQTT-4.7.3-3]
}

/** Topic filter valid for SUBSCRIBE/UNSUBSCRIBE: non-empty [MQTT-4.7.3-1], '#' only as the whole last level [MQTT-4.7.1-2], '+' only as a whole level [MQTT-4.7.1-3], no U+0000, no U+FFFD. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length > MAX_BYTES) return false; // [MQTT-4.7.3-3]
  const bytes = filterBytes(filter, 0);
  return bytes >= 0 && bytes <= MAX_BYTES; // [MQTT-4.7.3-3]
}

/**
 * A shared subscription: `$share/<group>/<filter>` (group non-empty, without '+', '#' or '/'
 * [MQTT-4.8.2-1, 4.8.2-2]), or `$queue/<filter>` which is group '$queue'. Returns null when the filter is not
 * shared, or 'invalid' when it starts with $share/ or $queue/ but is malformed (`$share/g`, `$share//a`,
 * `$share/g+/a`, or an invalid inner filter).
 */
export function parseShared(filter: string): SharedSubscription | null | 'invalid' {
  if (filter.length > MAX_BYTES) {
    return filter.startsWith(SHARE_PREFIX) || filter.startsWith(QUEUE_PREFIX) ? 'invalid' : null;
  }
  if (filter.startsWith(SHARE_PREFIX)) {
    const start = SHARE_PREFIX.length;
    const slash = filter.indexOf('/', start);
    if (slash === start) return 'invalid'; // empty ShareName [MQTT-4.8.2-1]
    if (slash < 0) return 'invalid'; // ShareName must be followed by '/' and a filter [MQTT-4.8.2-2]
    const groupBytes = plainBytes(filter, start, slash, true); // no '+' or '#' in ShareName [MQTT-4.8.2-2]
    if (groupBytes < 0) return 'invalid';
    const innerBytes = filterBytes(filter, slash + 1); // followed by a valid Topic Filter [MQTT-4.8.2-2]
    if (innerBytes < 0) return 'invalid';
    if (start + groupBytes + 1 + innerBytes > MAX_BYTES) return 'invalid'; // [MQTT-4.7.3-3]
    return { group: filter.slice(start, slash), filter: filter.slice(slash + 1) };
  }
  if (filter.startsWith(QUEUE_PREFIX)) {
    const start = QUEUE_PREFIX.length;
    const innerBytes = filterBytes(filter, start);
    if (innerBytes < 0 || start + innerBytes > MAX_BYTES) return 'invalid';
    return { group: QUEUE_GROUP, filter: filter.slice(start) };
  }
  return null;
}

/**
 * Client identifier checks: returns true when the id is acceptable (any UTF-8 string of 1..65535 bytes without
 * U+0000 / U+FFFD) [MQTT-3.1.3-4]; an empty id returns false, since whether to assign one is the caller's call.
 */
export function isValidClientId(id: string): boolean {
  const n = id.length;
  if (n === 0 || n > MAX_BYTES) return false;
  const bytes = plainBytes(id, 0, n, false);
  return bytes >= 0 && bytes <= MAX_BYTES;
}

/**
 * True when a string is well-formed for MQTT (no U+0000, no ill-formed UTF-8). A topic that fails this makes the
 * whole packet malformed (0x81) [MQTT-1.5.4-1, 1.5.4-2], unlike a well-formed but unacceptable topic (0x90).
 */
export function isWellFormedString(s: string): boolean {
  return plainBytes(s, 0, s.length, false) >= 0;
}
