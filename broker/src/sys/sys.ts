import type { Broker } from '../broker.js';

/**
 * Publishes `$SYS/broker/...` topics (Mosquitto's names) as retained messages every `sys_interval` seconds, so
 * a new `$SYS/#` subscriber sees current values at once.
 */
export class SysPublisher {
  private readonly broker: Broker;
  private timer: NodeJS.Timeout | null = null;
  private readonly last = new Map<string, string>();

  constructor(broker: Broker) {
    this.broker = broker;
  }

  /** Publishes once now, then every interval; off when `sys_interval` is 0. */
  start(): void {
    const seconds = this.broker.config.sys_interval;
    if (seconds <= 0) return;
    this.publish(`smq version ${this.broker.version}`, '$SYS/broker/version');
    this.tick();
    this.timer = setInterval(() => this.tick(), seconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const b = this.broker;
    const s = b.stats;
    this.publish(`${Math.floor((Date.now() - s.startedAt) / 1000)} seconds`, '$SYS/broker/uptime');
    this.publish(String(s.clientsConnected), '$SYS/broker/clients/connected');
    this.publish(String(s.clientsMaximum), '$SYS/broker/clients/maximum');
    this.publish(String(b.sessions.size), '$SYS/broker/clients/total');
    this.publish(String(s.messagesReceived), '$SYS/broker/messages/received');
    this.publish(String(s.messagesSent), '$SYS/broker/messages/sent');
    this.publish(String(s.messagesDropped), '$SYS/broker/publish/messages/dropped');
    this.publish(String(s.bytesReceived), '$SYS/broker/bytes/received');
    this.publish(String(s.bytesSent), '$SYS/broker/bytes/sent');
    this.publish(String(b.router.subscriptionCount), '$SYS/broker/subscriptions/count');
    this.publish(String(b.router.retained.size), '$SYS/broker/retained messages/count');
    const c = b.cluster;
    if (c !== null) {
      // Cross-node traffic of this node: messages sent to and received from other nodes through etcd, the
      // etcd writes that carried them, and QoS 0 messages for other nodes dropped while etcd was away.
      this.publish(String(c.membership.members.size), '$SYS/broker/cluster/members');
      this.publish(String(c.outbox.carried), '$SYS/broker/cluster/messages/sent');
      this.publish(String(c.inbox.messages), '$SYS/broker/cluster/messages/received');
      this.publish(String(c.outbox.dropped), '$SYS/broker/cluster/messages/dropped');
      this.publish(String(c.outbox.writes), '$SYS/broker/cluster/etcd/writes');
    }
  }

  /** Publishes only values that changed, as Mosquitto does, to keep `$SYS` traffic low. */
  private publish(value: string, topic: string): void {
    if (this.last.get(topic) === value) return;
    this.last.set(topic, value);
    this.broker.publishInternal(topic, value, true);
  }
}
