/**
 * The subscription trie: topic filters to per-key values (a key is a client id, or a shared group name), and
 * the answer to "who is subscribed to this topic name?" on the publish hot path. Pure: no I/O, no timers.
 *
 * Matching follows MQTT 3.1.1 and 5.0 section 4.7: levels split on '/', empty levels are real levels, '+'
 * matches exactly one level (an empty one too), '#' matches its parent level and every level below it.
 */

/** Char code of '$', the first character of broker-internal topics such as `$SYS/...`. */
const DOLLAR = 36;

/** Default cap of the match cache; reaching it clears the cache rather than tracking recency, which is cheaper. */
const DEFAULT_MATCH_CACHE_LIMIT = 10_000;

/**
 * When a full cache was hit less often than it was filled, the publishers are spreading over more distinct
 * topics than it holds (a topic per device, say). Caching then only adds garbage: the result arrays live long
 * enough to be promoted, and measured with 100,000 distinct topics it doubled the cost of a miss. So the cache
 * stops admitting entries for this many times its limit in misses, then tries again (at 50 the trial fills
 * cost no more than the noise; a workload that turns repetitive gets its cache back within 500,000 misses).
 */
const CACHE_BYPASS_FACTOR = 50;

/** Shared result for topics nobody subscribes to, so a miss allocates nothing once cached. */
const EMPTY: readonly never[] = Object.freeze([]);

/** One (key, value) stored at a filter node; `pos` is its slot in the node's array, for O(1) swap-removal. */
class Entry<T> {
  readonly key: string;
  value: T;
  pos: number;

  constructor(key: string, value: T, pos: number) {
    this.key = key;
    this.value = value;
    this.pos = pos;
  }
}

/** A trie node: one filter level. Wildcard children have their own fields so matching never looks them up. */
class FilterNode<T> {
  readonly parent: FilterNode<T> | null;
  /** The filter level this node stands for ('' for the root, which stands for none). */
  readonly level: string;
  /** Literal children; null while there are none, so the many leaf nodes cost no Map. */
  children: Map<string, FilterNode<T>> | null;
  plus: FilterNode<T> | null;
  hash: FilterNode<T> | null;
  /** Values of filters ending here, as an array so the hot path iterates without a Map iterator. */
  entries: Entry<T>[] | null;
  /** key -> entry, for set/get/delete by key. */
  byKey: Map<string, Entry<T>> | null;

  constructor(parent: FilterNode<T> | null, level: string) {
    this.parent = parent;
    this.level = level;
    this.children = null;
    this.plus = null;
    this.hash = null;
    this.entries = null;
    this.byKey = null;
  }

  isEmpty(): boolean {
    return this.byKey === null && this.children === null && this.plus === null && this.hash === null;
  }

  child(level: string): FilterNode<T> | undefined {
    if (level === '+') return this.plus ?? undefined;
    if (level === '#') return this.hash ?? undefined;
    return this.children?.get(level);
  }

  childOrCreate(level: string): FilterNode<T> {
    if (level === '+') return (this.plus ??= new FilterNode<T>(this, level));
    if (level === '#') return (this.hash ??= new FilterNode<T>(this, level));
    const children = (this.children ??= new Map());
    let node = children.get(level);
    if (node === undefined) {
      node = new FilterNode<T>(this, level);
      children.set(level, node);
    }
    return node;
  }

  /** Unlinks this node from its parent; the caller has checked that it is empty. */
  detach(): void {
    const parent = this.parent;
    if (parent === null) return;
    if (this.level === '+') parent.plus = null;
    else if (this.level === '#') parent.hash = null;
    else if (parent.children !== null) {
      parent.children.delete(this.level);
      if (parent.children.size === 0) parent.children = null;
    }
  }

  /** The filter this node stands for, rebuilt from the parent chain (listing only, not the hot path). */
  filter(): string {
    const levels: string[] = [];
    for (let node: FilterNode<T> | null = this; node !== null && node.parent !== null; node = node.parent) {
      levels.push(node.level);
    }
    return levels.reverse().join('/');
  }
}

/**
 * A subscription trie mapping (topic filter, key) to a value. Filters must already be valid
 * (see `isValidTopicFilter`); shared-subscription prefixes are stripped by the caller.
 */
export class TopicTree<T> {
  private readonly root: FilterNode<T>;
  private readonly cache: Map<string, readonly T[]>;
  private readonly cacheLimit: number;
  /** Cache hits since the cache was last emptied, to tell a useful cache from a churning one. */
  private cacheHits: number;
  /** Misses left before the cache admits entries again; see CACHE_BYPASS_FACTOR. */
  private cacheBypass: number;
  private count: number;
  /** Explicit DFS stack reused by `match`: no recursion, so a hostile 32,768-level filter cannot overflow the call stack. */
  private readonly stackNodes: FilterNode<T>[];
  private readonly stackOffsets: number[];

  /** `matchCacheLimit` caps the topic -> result cache; 0 disables it. */
  constructor(matchCacheLimit: number = DEFAULT_MATCH_CACHE_LIMIT) {
    this.root = new FilterNode<T>(null, '');
    this.cache = new Map();
    this.cacheLimit = matchCacheLimit;
    this.cacheHits = 0;
    this.cacheBypass = 0;
    this.count = 0;
    this.stackNodes = [];
    this.stackOffsets = [];
  }

  /** Stores value under (filter, key); replaces an existing one. Returns true when (filter, key) was new. */
  set(filter: string, key: string, value: T): boolean {
    let node = this.root;
    for (const level of filter.split('/')) node = node.childOrCreate(level);
    this.invalidate();
    const byKey = (node.byKey ??= new Map());
    const existing = byKey.get(key);
    if (existing !== undefined) {
      existing.value = value;
      return false;
    }
    const entries = (node.entries ??= []);
    const entry = new Entry(key, value, entries.length);
    entries.push(entry);
    byKey.set(key, entry);
    this.count++;
    return true;
  }

  /** The value stored under (filter, key), if any. */
  get(filter: string, key: string): T | undefined {
    return this.find(filter)?.byKey?.get(key)?.value;
  }

  /** Returns true when something was removed; prunes empty nodes. */
  delete(filter: string, key: string): boolean {
    const node = this.find(filter);
    const entry = node?.byKey?.get(key);
    if (node === undefined || node.byKey === null || node.entries === null || entry === undefined) return false;
    // Swap-remove keeps the entries array dense for the hot loop.
    const entries = node.entries;
    const last = entries.pop();
    if (last !== undefined && last !== entry) {
      entries[entry.pos] = last;
      last.pos = entry.pos;
    }
    node.byKey.delete(key);
    if (node.byKey.size === 0) {
      node.byKey = null;
      node.entries = null;
    }
    this.count--;
    this.invalidate();
    // Prune so unsubscribed one-off filters (client-specific topics) do not leak nodes.
    for (let n: FilterNode<T> | null = node; n !== null && n.parent !== null && n.isEmpty(); n = n.parent) {
      n.detach();
    }
    return true;
  }

  /**
   * Every value whose filter matches the topic name. The returned array is owned by the tree (cached) and must
   * not be mutated by callers; it stays valid until the next set/delete.
   */
  match(topic: string): readonly T[] {
    const cached = this.cache.get(topic);
    if (cached !== undefined) {
      this.cacheHits++;
      return cached;
    }

    // The stack holds (node, offset of the next topic level). No split(): it costs several times more than
    // indexOf + slice, and only the levels a literal child needs are sliced. `end` (one past the length)
    // means every level is consumed, which keeps an empty last level (offset === length) distinct.
    const length = topic.length;
    const end = length + 1;
    // Topics starting with '$' are not matched by a first-level '+' or '#' [MQTT-4.7.2-1].
    const dollar = topic.charCodeAt(0) === DOLLAR;
    let out: T[] | null = null;
    const nodes = this.stackNodes;
    const offsets = this.stackOffsets;
    nodes.push(this.root);
    offsets.push(0);
    for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
      const offset = offsets.pop() ?? end;
      const wild = offset > 0 || !dollar;
      // '#' matches the parent level and any number of child levels, so it matches wherever it is reached.
      const hash = node.hash;
      if (hash !== null && hash.entries !== null && wild) {
        out ??= [];
        for (const entry of hash.entries) out.push(entry.value);
      }
      if (offset === end) {
        if (node.entries !== null) {
          out ??= [];
          for (const entry of node.entries) out.push(entry.value);
        }
        continue;
      }
      const slash = topic.indexOf('/', offset);
      const levelEnd = slash < 0 ? length : slash;
      const next = levelEnd + 1;
      if (node.plus !== null && wild) {
        nodes.push(node.plus);
        offsets.push(next);
      }
      if (node.children !== null) {
        const child = node.children.get(topic.slice(offset, levelEnd));
        if (child !== undefined) {
          nodes.push(child);
          offsets.push(next);
        }
      }
    }

    const result: readonly T[] = out ?? EMPTY;
    this.remember(topic, result);
    return result;
  }

  /** Number of (filter, key) entries. */
  get size(): number {
    return this.count;
  }

  /** Iterates all entries (for listing/persistence), not on the hot path. A snapshot, so callers may mutate the tree meanwhile. */
  entries(): IterableIterator<[filter: string, key: string, value: T]> {
    const out: [filter: string, key: string, value: T][] = [];
    const stack: FilterNode<T>[] = [this.root];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      if (node.entries !== null) {
        const filter = node.filter();
        for (const entry of node.entries) out.push([filter, entry.key, entry.value]);
      }
      if (node.children !== null) for (const child of node.children.values()) stack.push(child);
      if (node.plus !== null) stack.push(node.plus);
      if (node.hash !== null) stack.push(node.hash);
    }
    return out.values();
  }

  private find(filter: string): FilterNode<T> | undefined {
    let node: FilterNode<T> | undefined = this.root;
    for (const level of filter.split('/')) {
      node = node.child(level);
      if (node === undefined) return undefined;
    }
    return node;
  }

  private remember(topic: string, result: readonly T[]): void {
    if (this.cacheLimit === 0) return;
    if (this.cacheBypass > 0) {
      this.cacheBypass--;
      return;
    }
    if (this.cache.size >= this.cacheLimit) {
      if (this.cacheHits < this.cache.size) this.cacheBypass = this.cacheLimit * CACHE_BYPASS_FACTOR;
      this.cache.clear();
      this.cacheHits = 0;
      if (this.cacheBypass > 0) return;
    }
    this.cache.set(topic, result);
  }

  /** Any set/delete can change any cached result, and working out which is costlier than refilling. */
  private invalidate(): void {
    if (this.cache.size > 0) this.cache.clear();
    this.cacheHits = 0;
  }
}
