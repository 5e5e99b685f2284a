/**
 * The HTTP ACL backend as a hook (EMQX's convention): the broker POSTs
 * `{action, clientid, username, peerhost, topic, cn}` as JSON and the service answers 200 with
 * `{"result": "allow" | "deny" | "ignore"}`, or 204 for allow. Any other status, a body it cannot read, a
 * timeout or a network error means `acl.http.on_error` (deny by default), and is never cached.
 *
 * It governs publish and subscribe. Reads (deliveries) cannot wait for a request, so it answers them from its
 * cache only, and read filtering is the rules file's business.
 */
import type { Logger } from 'pino';
import type { HttpBackendConfig } from '../config/types.js';
import { SmqError } from '../errors.js';
import type { AuthzResult, ClientInfo, Hook, SubscriptionRequest } from '../hooks/types.js';
import type { Message } from '../message/message.js';
import { displayIp } from './address.js';
import type { FileAcl } from './file-hook.js';
import { aclFilter } from './match.js';

/** Cached answers kept in total, over every client; beyond it the oldest client's answers go first. */
export const HTTP_CACHE_LIMIT = 10_000;

/** An `acl.http.url` that is not an http(s) URL. */
export class AclConfigError extends SmqError {
  constructor(message: string) {
    super('ERR_ACL_CONFIG', message);
  }
}

/** The service failed to give a usable answer (a status other than 200/204, or a 200 without a result). */
export class AclBackendError extends SmqError {
  constructor(message: string) {
    super('ERR_ACL_HTTP', message);
  }
}

/** The two actions the service is asked about. */
type HttpAction = 'publish' | 'subscribe';

/** A cached answer: the final decision (after "ignore" became `acl.default`) and when it expires. */
interface Cached {
  readonly allow: boolean;
  readonly expires: number;
}

/** What the service is sent about a client, built once per client. */
interface Asker {
  readonly clientid: string;
  readonly username: string | null;
  readonly peerhost: string;
  readonly cn: string | null;
  /** Cache keys of this identity for each action. */
  readonly publishKey: string;
  readonly subscribeKey: string;
}

/**
 * Answers by identity and action, then topic. Two levels so a delivery can look an answer up without building a
 * key string; bounded in total, evicting whole identities in insertion order.
 */
class AnswerCache {
  private readonly byIdentity = new Map<string, Map<string, Cached>>();
  private count = 0;

  get(identity: string, topic: string, now: number): boolean | undefined {
    const entry = this.byIdentity.get(identity)?.get(topic);
    if (entry === undefined || entry.expires <= now) return undefined;
    return entry.allow;
  }

  set(identity: string, topic: string, allow: boolean, expires: number): void {
    while (this.count >= HTTP_CACHE_LIMIT) {
      const oldest = this.byIdentity.entries().next();
      if (oldest.done === true) break;
      this.count -= oldest.value[1].size;
      this.byIdentity.delete(oldest.value[0]);
    }
    let topics = this.byIdentity.get(identity);
    if (topics === undefined) {
      topics = new Map();
      this.byIdentity.set(identity, topics);
    }
    if (!topics.has(topic)) this.count++;
    topics.set(topic, { allow, expires });
  }

  get size(): number {
    return this.count;
  }
}

/** The service's answer that the hook acts on, or an error that means `on_error`. */
type ServiceAnswer = 'allow' | 'deny' | 'ignore';

/** The HTTP ACL hook. */
export class HttpAcl implements Hook {
  readonly name = 'acl-http';
  private readonly url: string;
  private readonly timeout: number;
  private readonly ttlMs: number;
  private readonly onErrorAllow: boolean;
  private readonly defaultAllow: boolean;
  /** The rules file, consulted first: where one of its rules matches, this backend is not asked. */
  private readonly first: FileAcl | null;
  private readonly log: Logger;
  private readonly cache = new AnswerCache();
  /** Requests in flight by cache key, so a burst of identical questions makes one request. */
  private readonly pending = new Map<string, Promise<boolean>>();
  private readonly askers = new WeakMap<ClientInfo, Asker>();
  /** Requests sent, for tests and metrics. */
  requests = 0;

  /** Throws {@link AclConfigError} when the URL is not http(s). */
  constructor(config: HttpBackendConfig, defaultAllow: boolean, first: FileAcl | null, log: Logger) {
    let parsed: URL;
    try {
      parsed = new URL(config.url);
    } catch {
      throw new AclConfigError(`acl.http.url: expected an http:// or https:// URL, got ${JSON.stringify(config.url)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new AclConfigError(`acl.http.url: expected an http:// or https:// URL, got ${JSON.stringify(config.url)}`);
    }
    this.url = config.url;
    this.timeout = config.timeout;
    this.ttlMs = config.cache_ttl * 1000;
    this.onErrorAllow = config.on_error === 'allow';
    this.defaultAllow = defaultAllow;
    this.first = first;
    this.log = log;
  }

  /** Asks the service unless the rules file decided; a Promise only when the answer is not cached. */
  authorizePublish(client: ClientInfo, message: Message): AuthzResult | Promise<AuthzResult> {
    if (this.first?.decides(client, 'publish', message.topic) === true) return undefined;
    return this.ask(client, 'publish', message.topic);
  }

  /** Asks the service about the filter inside any `$share/` / `$queue/` prefix, unless the rules file decided. */
  authorizeSubscribe(client: ClientInfo, sub: SubscriptionRequest): AuthzResult | Promise<AuthzResult> {
    const filter = aclFilter(sub.filter);
    if (this.first?.decides(client, 'subscribe', filter) === true) return undefined;
    return this.ask(client, 'subscribe', filter);
  }

  /**
   * From the cache only, never a request: a cached "deny" for subscribing to exactly this topic keeps its
   * messages away; anything else is allowed here (the subscription itself was authorized).
   */
  authorizeRead(client: ClientInfo, message: Message): AuthzResult {
    if (this.first?.decides(client, 'read', message.topic) === true) return undefined;
    return this.cache.get(this.asker(client).subscribeKey, message.topic, Date.now()) !== false;
  }

  private ask(client: ClientInfo, action: HttpAction, topic: string): boolean | Promise<boolean> {
    const who = this.asker(client);
    const identity = action === 'publish' ? who.publishKey : who.subscribeKey;
    if (this.ttlMs > 0) {
      const hit = this.cache.get(identity, topic, Date.now());
      if (hit !== undefined) return hit;
    }
    const key = identity + '\u0000' + topic;
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    const p = this.request(who, action, topic).then(
      (answer) => {
        const allow = answer === 'allow' || (answer === 'ignore' && this.defaultAllow);
        if (this.ttlMs > 0) this.cache.set(identity, topic, allow, Date.now() + this.ttlMs);
        if (!allow) this.denied(who, action, topic, answer);
        return allow;
      },
      (err: unknown) => {
        this.log.warn({ err, clientId: who.clientid, action, topic, onError: this.onErrorAllow ? 'allow' : 'deny' }, 'acl backend failed');
        if (!this.onErrorAllow) this.denied(who, action, topic, 'error');
        return this.onErrorAllow;
      },
    ).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private denied(who: Asker, action: HttpAction, topic: string, answer: string): void {
    this.log.info({ clientId: who.clientid, action, topic, backend: 'http', answer }, 'acl denied');
  }

  /** POSTs the question; resolves with the service's answer, rejects for anything that means `on_error`. */
  private async request(who: Asker, action: HttpAction, topic: string): Promise<ServiceAnswer> {
    this.requests++;
    const body = JSON.stringify({ action, clientid: who.clientid, username: who.username, peerhost: who.peerhost, topic, cn: who.cn });
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(this.timeout),
    });
    if (res.status === 204) {
      await res.body?.cancel();
      return 'allow';
    }
    if (res.status !== 200) {
      // Read nothing of an error page, but release the connection for reuse.
      await res.body?.cancel();
      throw new AclBackendError(`acl backend answered HTTP ${res.status}`);
    }
    const data: unknown = await res.json();
    const result = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)['result'] : undefined;
    if (result === 'allow' || result === 'deny' || result === 'ignore') return result;
    throw new AclBackendError(`acl backend answered 200 without a "result" of "allow", "deny" or "ignore"`);
  }

  private asker(client: ClientInfo): Asker {
    let who = this.askers.get(client);
    if (who === undefined || who.clientid !== client.clientId || who.username !== (client.username ?? null)) {
      const username = client.username ?? null;
      const peerhost = displayIp(client.remoteAddress);
      const cn = client.certificate?.cn || null;
      // Everything the service is told is in the key: an answer may depend on any of it.
      const identity = JSON.stringify([client.clientId, username, peerhost, cn]);
      who = { clientid: client.clientId, username, peerhost, cn, publishKey: 'p' + identity, subscribeKey: 's' + identity };
      this.askers.set(client, who);
    }
    return who;
  }
}
