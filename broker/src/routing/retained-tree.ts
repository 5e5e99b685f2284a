/**
 * Index of retained messages by topic name, answering "which retained messages does this new subscription
 * receive?" by walking the trie along the filter's levels, so a subscription to `a/b/+` touches only the
 * `a/b` subtree even with 100,000+ retained topics. Pure: no I/O.
 */

/** Char code of '$': top-level '$' topics are hidden from first-level wildcards [MQTT-4.7.2-1]. */
const DOLLAR = 36;

/** A trie node: one topic level, holding the retained value of the topic ending here, if any. */
class TopicNode<T> {
  readonly parent: TopicNode<T> | null;
  readonly level: string;
  /** Null while there are none, so leaf nodes (most of them) cost no Map. */
  children: Map<string, TopicNode<T>> | null;
  /** A separate flag rather than `value !== undefined`, so T may itself include undefined. */
  hasValue: boolean;
  value: T | undefined;

  constructor(parent: TopicNode<T> | null, level: string) {
    this.parent = parent;
    this.level = level;
    this.children = null;
    this.hasValue = false;
    this.value = undefined;
  }
}

/** Retained messages keyed by topic name; topic names must already be valid (see `isValidTopicName`). */
export class RetainedTree<T> {
  private readonly root: TopicNode<T>;
  private count: number;

  constructor() {
    this.root = new TopicNode<T>(null, '');
    this.count = 0;
  }

  /** Stores (or replaces) the retained value for a topic name. */
  set(topic: string, value: T): void {
    let node = this.root;
    for (const level of topic.split('/')) {
      const children = (node.children ??= new Map());
      let child = children.get(level);
      if (child === undefined) {
        child = new TopicNode<T>(node, level);
        children.set(level, child);
      }
      node = child;
    }
    if (!node.hasValue) this.count++;
    node.hasValue = true;
    node.value = value;
  }

  /** The retained value for exactly this topic name. */
  get(topic: string): T | undefined {
    const node = this.find(topic);
    return node !== undefined && node.hasValue ? node.value : undefined;
  }

  /** Removes the retained value of a topic; returns true when there was one. Prunes empty nodes. */
  delete(topic: string): boolean {
    const node = this.find(topic);
    if (node === undefined || !node.hasValue) return false;
    node.hasValue = false;
    node.value = undefined;
    this.count--;
    // Prune, so topics that come and go (per-device status, say) do not leak nodes.
    for (let n: TopicNode<T> | null = node; n !== null && n.parent !== null; n = n.parent) {
      if (n.hasValue || n.children !== null) break;
      const siblings = n.parent.children;
      if (siblings === null) break;
      siblings.delete(n.level);
      if (siblings.size === 0) n.parent.children = null;
    }
    return true;
  }

  /** Every stored value whose topic name matches the filter (which may contain + and #), honouring the '$' rule. */
  match(filter: string): T[] {
    const out: T[] = [];
    const levels = filter.split('/');
    const last = levels.length;
    // Explicit stacks instead of recursion: a filter of thousands of '+' levels cannot overflow the call stack.
    const nodes: TopicNode<T>[] = [this.root];
    const depths: number[] = [0];
    for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
      const depth = depths.pop() ?? 0;
      if (depth === last) {
        if (node.hasValue) out.push(node.value as T);
        continue;
      }
      const level = levels[depth] ?? '';
      if (level === '#') {
        // '#' matches the parent level too (spec 4.7.1.2): `sport/#` matches `sport`.
        if (node.hasValue) out.push(node.value as T);
        collectBelow(node, depth === 0, out);
        continue;
      }
      const children = node.children;
      if (children === null) continue;
      if (level === '+') {
        for (const child of children.values()) {
          // A first-level wildcard must not match topics starting with '$' [MQTT-4.7.2-1].
          if (depth === 0 && child.level.charCodeAt(0) === DOLLAR) continue;
          nodes.push(child);
          depths.push(depth + 1);
        }
        continue;
      }
      const child = children.get(level);
      if (child !== undefined) {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
    return out;
  }

  /** Number of retained topics. */
  get size(): number {
    return this.count;
  }

  /** Every stored value. A snapshot, so callers may delete (e.g. expire) while iterating. */
  values(): IterableIterator<T> {
    const out: T[] = [];
    collectBelow(this.root, false, out);
    return out.values();
  }

  private find(topic: string): TopicNode<T> | undefined {
    let node: TopicNode<T> | undefined = this.root;
    for (const level of topic.split('/')) {
      node = node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node;
  }
}

/** Pushes the values of every descendant of `start` (not `start` itself); `skipDollar` hides '$' children of the root. */
function collectBelow<T>(start: TopicNode<T>, skipDollar: boolean, out: T[]): void {
  const stack: TopicNode<T>[] = [];
  if (start.children === null) return;
  for (const child of start.children.values()) {
    if (skipDollar && child.level.charCodeAt(0) === DOLLAR) continue; // [MQTT-4.7.2-1]
    stack.push(child);
  }
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (node.hasValue) out.push(node.value as T);
    if (node.children !== null) for (const child of node.children.values()) stack.push(child);
  }
}
