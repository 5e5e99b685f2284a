import type { SharedStrategy } from '../config/types.js';
import type { ClientInfo } from '../hooks/types.js';
import type { Message } from '../message/message.js';
import type { Session } from '../session/session.js';
import type { Subscription } from './subscription.js';

/**
 * The members of one shared-subscription group on one filter (`$share/<group>/<filter>`, or `$queue/<filter>`,
 * which is the group `$queue`). Each message goes to exactly one member (MQTT 5 section 4.8.2).
 */
export class SharedGroup {
  readonly name: string;
  readonly filter: string;
  readonly members: Subscription[] = [];
  private cursor = 0;

  constructor(name: string, filter: string) {
    this.name = name;
    this.filter = filter;
  }

  /** Adds or replaces the member for its session. */
  upsert(sub: Subscription): void {
    const i = this.members.findIndex((m) => m.session === sub.session);
    if (i >= 0) this.members[i] = sub;
    else this.members.push(sub);
  }

  /** Removes the member of a session; returns true when it was there. */
  remove(session: Session): boolean {
    const i = this.members.findIndex((m) => m.session === session);
    if (i < 0) return false;
    this.members.splice(i, 1);
    if (this.cursor > i) this.cursor--;
    return true;
  }

  /**
   * Picks the member for a message. Members with a live connection are preferred, so a message does not wait
   * in the queue of an absent member while others are online; `except` excludes a member that is leaving, and
   * `canRead` (the ACL's read check) members that may not read the message.
   */
  pick(
    strategy: SharedStrategy,
    message: Message,
    except: Session | null,
    canRead: ((client: ClientInfo, message: Message) => boolean) | null = null,
  ): Subscription | undefined {
    const n = this.members.length;
    if (n === 0) return undefined;
    let start: number;
    switch (strategy) {
      case 'random':
        start = Math.floor(Math.random() * n);
        break;
      case 'hash_clientid':
        start = hash(message.origin) % n;
        break;
      case 'hash_topic':
        start = hash(message.topic) % n;
        break;
      default:
        start = this.cursor % n;
    }
    let fallback: Subscription | undefined;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const m = this.members[i] as Subscription;
      if (m.session === except) continue;
      // A member the ACL does not let read this message is passed over, not given it (nor the group skipped).
      if (canRead !== null && m.session.client !== null && !canRead(m.session.client, message)) continue;
      if (m.session.online) {
        if (strategy === 'round_robin') this.cursor = i + 1;
        return m;
      }
      fallback ??= m;
    }
    // Nobody online: hashing strategies keep their member (its session queues), round robin moves on.
    if (fallback && strategy === 'round_robin') this.cursor = this.members.indexOf(fallback) + 1;
    return fallback;
  }
}

/** FNV-1a over UTF-16 code units: stable across restarts and nodes, cheap, no allocation. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
