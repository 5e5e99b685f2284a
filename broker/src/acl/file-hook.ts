/**
 * The rules-file ACL backend as a hook: loads `acl.file` at start-up (a bad file stops the start), reloads it
 * when it changes (a bad new file keeps the old rules), and answers publish, subscribe and read questions by
 * the first matching rule. Decisions are cached per client and topic, since reads are asked on every delivery.
 */
import type { Logger } from 'pino';
import { FileReadError, WatchedFiles } from '../files/watched-files.js';
import type { AuthzResult, ClientInfo, Hook, SubscriptionRequest } from '../hooks/types.js';
import type { Message } from '../message/message.js';
import { parseIp } from './address.js';
import { aclFilter, firstMatch, rulesFor, type Access, type AclRule, type AppliedRule } from './match.js';
import { AclFileError, parseRules } from './rules.js';

/**
 * Topics remembered per client and access. Reaching it clears that client's cache rather than tracking
 * recency (the topic tree's trade-off): cheaper, and a client spread over more topics gains little anyway.
 */
export const CLIENT_CACHE_LIMIT = 1024;

/** What the rules say: no rule matched, or the first matching rule allows or denies. */
const NONE = 0;
const ALLOW = 1;
const DENY = 2;
type Verdict = typeof NONE | typeof ALLOW | typeof DENY;

/** Options of {@link FileAcl}. */
export interface FileAclOptions {
  /** The rules file; '' for none, when `acl.default` then applies to everything. */
  readonly file: string;
  /** `acl.default`: what applies when no rule matches and no later backend decides. */
  readonly defaultAllow: boolean;
  /** True when a later backend (HTTP) decides what no rule matches: this hook then abstains. */
  readonly fallthrough: boolean;
  readonly log: Logger;
  /** Milliseconds between checks for changes (tests use less). */
  readonly pollMs?: number;
}

const NO_RULES: readonly AclRule[] = [];

/** One client's rules (placeholders expanded) and cached verdicts, valid for one generation of the rules. */
class ClientState {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly applied: readonly AppliedRule[];
  readonly publish: Map<string, Verdict>;
  readonly read: Map<string, Verdict>;

  constructor(client: ClientInfo, rules: readonly AclRule[]) {
    this.clientId = client.clientId;
    this.username = client.username;
    this.applied = rulesFor(rules, {
      clientId: client.clientId,
      username: client.username,
      address: parseIp(client.remoteAddress),
      cn: client.certificate?.cn,
    });
    this.publish = new Map();
    this.read = new Map();
  }
}

/** The rules-file ACL hook. */
export class FileAcl implements Hook {
  readonly name = 'acl-file';
  private readonly file: string;
  private readonly defaultAllow: boolean;
  private readonly fallthrough: boolean;
  private readonly log: Logger;
  /** The rules file, followed for changes; null when there is none. */
  private readonly watched: WatchedFiles<readonly AclRule[]> | null;
  /** Replaced (not cleared) on reload: a WeakMap cannot be cleared, and states die with their clients. */
  private clients: WeakMap<ClientInfo, ClientState>;

  /** Loads the rules and starts watching the file; throws `AclFileError` for a bad file. */
  constructor(options: FileAclOptions) {
    this.file = options.file;
    this.defaultAllow = options.defaultAllow;
    this.fallthrough = options.fallthrough;
    this.log = options.log;
    this.clients = new WeakMap();
    this.watched = this.file === '' ? null : this.watchRules(options.pollMs);
  }

  /** Number of rules in force. */
  get size(): number {
    return this.rules.length;
  }

  /**
   * Reads the file again. A file that does not validate keeps the rules in force (and says why in the log);
   * a changed good one replaces them and forgets every cached decision. Returns true when rules changed.
   */
  reload(): boolean {
    return this.watched?.reload() ?? false;
  }

  /** Publish: the topic name must match a filter of a publish/all rule. */
  authorizePublish(client: ClientInfo, message: Message): AuthzResult {
    return this.answer(this.verdict(client, 'publish', message.topic, true));
  }

  /** Subscribe: the requested filter (inside `$share/` / `$queue/`) must be covered by a subscribe/all rule. */
  authorizeSubscribe(client: ClientInfo, sub: SubscriptionRequest): AuthzResult {
    return this.answer(this.verdict(client, 'subscribe', aclFilter(sub.filter), true));
  }

  /**
   * Read, for retained messages on subscribe and every live delivery: the topic must match a filter of a
   * subscribe/all rule. With a later backend, an unmatched topic is allowed: that backend already granted the
   * subscription, and it cannot be asked synchronously here.
   */
  authorizeRead(client: ClientInfo, message: Message): AuthzResult {
    const v = this.verdict(client, 'read', message.topic, true);
    if (v === NONE) return this.fallthrough || this.defaultAllow;
    return v === ALLOW;
  }

  /**
   * True when a rule of the file matches, so later backends leave the decision to this hook. For subscribe,
   * `topic` is the filter already taken out of any `$share/` / `$queue/` prefix (see `aclFilter`).
   */
  decides(client: ClientInfo, access: Access, topic: string): boolean {
    return this.verdict(client, access, topic, false) !== NONE;
  }

  /** Stops watching the file. */
  onStop(): void {
    this.watched?.close();
  }

  private get rules(): readonly AclRule[] {
    return this.watched?.value ?? NO_RULES;
  }

  /** Reads the rules file, throwing `AclFileError` when it is unusable, and starts following it. */
  private watchRules(pollMs: number | undefined): WatchedFiles<readonly AclRule[]> {
    const { file, log } = this;
    let watched: WatchedFiles<readonly AclRule[]>;
    try {
      watched = new WatchedFiles<readonly AclRule[]>({
        files: [file],
        parse: (texts) => parseRules(texts[0] ?? '', file),
        intervalMs: pollMs,
        onReload: (rules) => {
          this.clients = new WeakMap();
          log.info({ file, rules: rules.length }, 'acl reloaded');
        },
        onRestore: () => log.info({ file }, 'acl file is usable again; the rules in force are unchanged'),
        onError: (err) => {
          if (err instanceof FileReadError) log.error({ file, err: err.cause }, 'acl file not reloaded: cannot read it; the previous rules stay in force');
          else log.error({ file, err }, 'acl file not reloaded: it does not validate; the previous rules stay in force');
        },
      });
    } catch (err) {
      if (!(err instanceof FileReadError)) throw err; // parseRules' AclFileError
      const reason = err.cause instanceof Error ? err.cause.message : String(err.cause);
      throw new AclFileError(file, -1, '', `cannot read the file (${reason})`, { cause: err.cause });
    }
    watched.watch();
    log.info({ file, rules: watched.value.length }, 'acl rules loaded');
    return watched;
  }

  private answer(v: Verdict): AuthzResult {
    if (v === NONE) return this.fallthrough ? undefined : this.defaultAllow;
    return v === ALLOW;
  }

  /** The verdict of the rules, from the client's cache for publish and read; logs a denial it computes. */
  private verdict(client: ClientInfo, access: Access, topic: string, logDenial: boolean): Verdict {
    let state = this.clients.get(client);
    // Rules depend on the username and client id; they are fixed once connected, but a state built for
    // other values must never be used.
    if (state === undefined || state.clientId !== client.clientId || state.username !== client.username) {
      state = new ClientState(client, this.rules);
      this.clients.set(client, state);
    }
    const cache = access === 'publish' ? state.publish : access === 'read' ? state.read : null;
    const cached = cache?.get(topic);
    if (cached !== undefined) return cached;
    const rule = firstMatch(state.applied, access, topic);
    const v: Verdict = rule === undefined ? NONE : rule.allow ? ALLOW : DENY;
    if (cache !== null) {
      if (cache.size >= CLIENT_CACHE_LIMIT) cache.clear();
      cache.set(topic, v);
    }
    if (logDenial && (v === DENY || (v === NONE && !this.fallthrough && !this.defaultAllow))) {
      const fields = { clientId: client.clientId, action: access, topic, backend: 'file', rule: rule === undefined ? 'default' : rule.index };
      // Reads are judged on the delivery path: a denial there is routine filtering, not an event.
      if (access === 'read') this.log.debug(fields, 'acl denied');
      else this.log.info(fields, 'acl denied');
    }
    return v;
  }
}
