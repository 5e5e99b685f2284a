/**
 * Pieces of the OpenAPI document shared by its parts (openapi.ts and the *-openapi.ts files): the paging
 * parameters, and patterns that say which strings the API takes, by the rules protocol/validate.ts enforces.
 * The patterns work as ECMAScript and as Python regular expressions (schemathesis generates requests from them),
 * so no lookaround. U+FFFD is excluded because the broker reads it as the mark of ill-formed UTF-8; the
 * 65535-byte limit is left to the server (a pattern cannot count UTF-8 bytes).
 */

/** One character of a topic level: no wildcard, no U+0000, no U+FFFD. */
const CHAR = '[^+#\\u0000\\uFFFD]';
/** One level of a topic filter: `+`, or characters without `/` and wildcards (possibly none). */
const LEVEL = '(?:\\+|[^/+#\\u0000\\uFFFD]*)';
/** The first level of a filter that must not match `$` topics by name: as LEVEL, but not starting with `$`. */
const FIRST_LEVEL = '(?:\\+|[^$/+#\\u0000\\uFFFD][^/+#\\u0000\\uFFFD]*|)';

/** A topic name (PUBLISH): not empty, no wildcards. */
export const TOPIC_NAME = `^${CHAR}+$`;
/** A topic name a client may publish to: as TOPIC_NAME, not starting with `$`. */
export const PUBLIC_TOPIC_NAME = `^[^$+#\\u0000\\uFFFD]${CHAR}*$`;
/** A topic filter: `+` fills a whole level, `#` only as the whole last level. Pair it with minLength 1. */
export const TOPIC_FILTER = `^(?:${LEVEL}/)*(?:${LEVEL}|#)$`;
/** A topic filter whose first level does not start with `$`. Pair it with minLength 1. */
export const PUBLIC_TOPIC_FILTER = `^(?:${FIRST_LEVEL}/(?:${LEVEL}/)*(?:${LEVEL}|#)|${FIRST_LEVEL}|#)$`;
/** A Kafka topic name: 1 to 249 of `a-z A-Z 0-9 . _ -`, and not `.` or `..`. */
export const KAFKA_TOPIC = '^(?:[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$';
/** Standard base64 with padding (RFC 4648 section 4); empty is allowed. */
export const BASE64 = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

/** The largest page number a paged list takes (params.ts refuses more with 400 BAD_PARAMETER). */
export const PAGE_MAX = 1_000_000_000;
/** The most items one page holds. */
export const LIMIT_MAX = 1000;
/** The `page` query parameter of a paged list. */
export const PAGE_PARAM = { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, maximum: PAGE_MAX, default: 1 } };
/** The `limit` query parameter of a paged list. */
export const LIMIT_PARAM = { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: LIMIT_MAX, default: 100 } };
