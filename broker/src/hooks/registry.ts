import type { IConnectPacket } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { Message } from '../message/message.js';
import { RC } from '../protocol/reason-codes.js';
import type { AuthVerdict, AuthzResult, ClientInfo, Hook, SubscriptionRequest } from './types.js';

type Fn<K extends keyof Hook> = NonNullable<Hook[K]>;

/**
 * Holds the hooks and calls them by the rules written on {@link Hook}. Lists of hooks that nobody provides
 * are `null`, so the hot path pays one check for an unused event (the fastify habit).
 */
export class HookRegistry {
  private readonly hooks: Hook[] = [];
  private readonly log: Logger;
  private readonly authRequired: boolean;
  private readonly aclRequired: boolean;
  private authenticateHooks: Hook[] | null = null;
  private publishAuthz: Hook[] | null = null;
  /** Hooks providing `authorizeRead`, or null: the delivery path checks this once per publish. */
  readAuthz: Hook[] | null = null;
  private subscribeAuthz: Hook[] | null = null;
  /** Hooks providing `onPublish`, or null when none does. */
  publishListeners: Hook[] | null = null;
  private eventHooks: Hook[] | null = null;
  /** `$` prefixes claimed by hooks (never `$SYS/`). */
  private claimed: string[] = [];

  constructor(log: Logger, options: { authRequired: boolean; aclRequired: boolean }) {
    this.log = log;
    this.authRequired = options.authRequired;
    this.aclRequired = options.aclRequired;
  }

  /** Adds a hook; it takes part in every event it provides. */
  add(hook: Hook): void {
    this.hooks.push(hook);
    const having = (k: keyof Hook): Hook[] | null => {
      const list = this.hooks.filter((h) => typeof h[k] === 'function');
      return list.length ? list : null;
    };
    this.authenticateHooks = having('authenticate');
    this.publishAuthz = having('authorizePublish');
    this.readAuthz = having('authorizeRead');
    this.subscribeAuthz = having('authorizeSubscribe');
    this.publishListeners = having('onPublish');
    const events = this.hooks.filter((h) => h.onConnected || h.onDisconnected || h.onSubscribed || h.onUnsubscribed || h.onDropped || h.onAuthFailure);
    this.eventHooks = events.length ? events : null;
    for (const prefix of hook.claims ?? []) {
      if (!prefix.startsWith('$') || prefix.startsWith('$SYS')) throw new Error(`hook ${hook.name} cannot claim ${prefix}`);
      this.claimed.push(prefix);
    }
  }

  /** True when a hook owns the `$` prefix of this topic, so clients may publish to it. */
  claims(topic: string): boolean {
    for (const prefix of this.claimed) if (topic.startsWith(prefix)) return true;
    return false;
  }

  /**
   * First non-abstaining answer decides: 0 to allow (with the identity it named) or the v5 reason code.
   * `abandoned` gives the signal that aborts when the client goes away, to the hooks that use one.
   */
  async authenticate(client: ClientInfo, connect: IConnectPacket, abandoned?: () => AbortSignal): Promise<AuthVerdict> {
    if (this.authenticateHooks) {
      for (const h of this.authenticateHooks) {
        const signal = h.abortable === true ? abandoned?.() : undefined;
        signal?.throwIfAborted();
        const r = await (h.authenticate as Fn<'authenticate'>).call(h, client, connect, signal);
        if (r !== undefined) return r.ok ? { rc: RC.SUCCESS, identity: r.identity, expiresAt: r.expiresAt } : { rc: r.reasonCode, identity: undefined };
      }
    }
    // No backend answered: with auth.enable on, nobody gets in anonymously.
    return { rc: this.authRequired ? RC.NOT_AUTHORIZED : RC.SUCCESS, identity: undefined };
  }

  /**
   * Deny wins; returns 0 to allow or a v5 reason code. Synchronous unless a hook answers with a promise, so the
   * common case costs no promise on the publish path.
   */
  authorizePublish(client: ClientInfo, message: Message): number | Promise<number> {
    const list = this.publishAuthz;
    if (list === null) return this.aclRequired ? RC.NOT_AUTHORIZED : RC.SUCCESS;
    const answers: (AuthzResult | Promise<AuthzResult>)[] = [];
    let pending = false;
    for (const h of list) {
      const a = (h.authorizePublish as Fn<'authorizePublish'>).call(h, client, message);
      if (a instanceof Promise) pending = true;
      answers.push(a);
    }
    if (!pending) return combine(answers as AuthzResult[], this.aclRequired);
    return Promise.all(answers).then((all) => combine(all, this.aclRequired));
  }

  /** Deny wins, synchronously; true when the client may receive the message. */
  authorizeRead(client: ClientInfo, message: Message): boolean {
    const list = this.readAuthz;
    if (list === null) return true;
    // The rules of combine(), inline: this runs for every delivery, so no array per call.
    let allowed = false;
    for (const h of list) {
      const a = (h.authorizeRead as Fn<'authorizeRead'>).call(h, client, message);
      if (a === false || (typeof a === 'number' && a >= 0x80)) return false;
      if (a === true || a === 0) allowed = true;
    }
    return allowed || !this.aclRequired;
  }

  /** Deny wins; returns 0 to allow or a v5 reason code. */
  async authorizeSubscribe(client: ClientInfo, sub: SubscriptionRequest): Promise<number> {
    if (!this.subscribeAuthz) return this.aclRequired ? RC.NOT_AUTHORIZED : RC.SUCCESS;
    const answers: AuthzResult[] = [];
    for (const h of this.subscribeAuthz) answers.push(await (h.authorizeSubscribe as Fn<'authorizeSubscribe'>).call(h, client, sub));
    return combine(answers, this.aclRequired);
  }

  /** Calls `onPublish` of every hook that has it; returns what the acknowledgement must wait for, or null. */
  publish(client: ClientInfo | null, message: Message): Promise<void> | null {
    const list = this.publishListeners;
    if (list === null) return null;
    let hold: Promise<void> | null = null;
    for (const h of list) {
      try {
        const wait = (h.onPublish as Fn<'onPublish'>).call(h, client, message);
        if (wait !== undefined) hold = hold === null ? wait : Promise.all([hold, wait]).then(() => undefined);
      } catch (err) {
        // A failing listener must never reach the publisher.
        this.log.error({ err, hook: h.name, event: 'onPublish' }, 'hook failed');
      }
    }
    return hold;
  }

  authFailed(client: ClientInfo, reasonCode: number): void {
    this.each('onAuthFailure', (h) => h.onAuthFailure?.(client, reasonCode));
  }

  connected(client: ClientInfo, connect: IConnectPacket): void {
    this.each('onConnected', (h) => h.onConnected?.(client, connect));
  }

  disconnected(client: ClientInfo, reason: string): void {
    this.each('onDisconnected', (h) => h.onDisconnected?.(client, reason));
  }

  subscribed(client: ClientInfo, sub: SubscriptionRequest, granted: number): void {
    this.each('onSubscribed', (h) => h.onSubscribed?.(client, sub, granted));
  }

  unsubscribed(client: ClientInfo, filter: string): void {
    this.each('onUnsubscribed', (h) => h.onUnsubscribed?.(client, filter));
  }

  dropped(clientId: string, message: Message, reason: string): void {
    this.each('onDropped', (h) => h.onDropped?.(clientId, message, reason));
  }

  /** Calls every `onStop`, in reverse order of registration. */
  async stop(): Promise<void> {
    for (const h of [...this.hooks].reverse()) {
      try {
        await h.onStop?.();
      } catch (err) {
        this.log.error({ err, hook: h.name }, 'hook failed to stop');
      }
    }
  }

  private each(event: keyof Hook, fn: (h: Hook) => void): void {
    if (this.eventHooks === null) return;
    for (const h of this.eventHooks) if (h[event]) this.safely(h, event, () => fn(h));
  }

  private safely(h: Hook, event: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A failing listener must never reach the client whose event it observed.
      this.log.error({ err, hook: h.name, event }, 'hook failed');
    }
  }
}

function combine(answers: readonly AuthzResult[], required: boolean): number {
  let allowed = false;
  for (const a of answers) {
    if (a === false) return RC.NOT_AUTHORIZED;
    if (typeof a === 'number' && a >= 0x80) return a;
    if (a === true || a === 0) allowed = true;
  }
  return allowed || !required ? RC.SUCCESS : RC.NOT_AUTHORIZED;
}
