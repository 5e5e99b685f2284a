/**
 * StrictChecker: an oracle for everything a Server sends on one connection, written from the MQTT 3.1, 3.1.1 and
 * 5.0 specifications and sharing no code with the broker or mqtt-packet. Feed it both directions as they happen,
 * in chunks cut anywhere: `client()` with what the client wrote (so it learns the protocol level, the client's
 * limits from CONNECT and the packet ids in flight), `server()` with what the Server sent. Each broken rule is a
 * Violation with its id ([MQTT-x.y.z-n], or a section where the spec gives none) and the frame in hex.
 *
 * The rules of one frame are in server-packets.ts and properties.ts, those of packet ids in flight (unused ids,
 * acknowledgements that answer something, Receive Maximum) in inflight.ts; this file holds the rest of the
 * connection's: CONNACK first and once, nothing after a refusal or a DISCONNECT, what the CONNECT asked for,
 * topic aliases.
 */
import { hex } from './bytes.js';
import { DEFAULT_LIMITS, readClientPacket, type ClientLimits } from './client-packets.js';
import { Framer, type Frame } from './framer.js';
import { InFlight, type FlightContext } from './inflight.js';
import type { Report } from './properties.js';
import { checkServerFrame, type ServerPacket } from './server-packets.js';
import {
  AUTH, CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBREC, PUBREL, RULES, SUBACK, SUBSCRIBE, UNSUBACK, ruleAt, typeName,
  type Level,
} from './spec.js';

/** One rule the Server broke. */
export interface Violation {
  /** `[MQTT-x.y.z-n]`, or `§x.y.z` where the specification gives the rule no id. */
  readonly rule: string;
  readonly message: string;
  /** The packet's type name and its position among the Server's packets on this connection (from 1). */
  readonly packet: string;
  readonly index: number;
  readonly level: Level;
  /** The offending frame. */
  readonly hex: string;
  /** The connection (a client id, say), for messages. */
  readonly label: string;
}

/** One line for a violation. */
export function formatViolation(v: Violation): string {
  return `${v.rule} ${v.label} ${v.packet} #${v.index} (level ${v.level}): ${v.message}\n    ${v.hex}`;
}

/** Options of a checker. */
export interface CheckerOptions {
  /** The protocol level until the client's CONNECT says otherwise (default 4). */
  readonly level?: Level;
  /** Names the connection in messages (default: the client id of its CONNECT). */
  readonly label?: string;
  /** Called with each violation as it is found (the test helpers collect them across connections). */
  readonly onViolation?: (v: Violation) => void;
}

/** Violations kept per connection; the rest are only counted. */
const KEEP = 100;

/** A byte-level checker of one connection's Server output. */
export class StrictChecker {
  readonly violations: Violation[] = [];
  /** Violations past the first KEEP. */
  dropped = 0;
  label: string;
  level: Level;
  /** The client's v5 limits (the defaults until a CONNECT says otherwise; null when unreadable). */
  limits: ClientLimits | null = DEFAULT_LIMITS;

  private readonly fromServer = new Framer();
  private readonly fromClient = new Framer();
  private connectSeen = false;
  private cleanStart = false;
  private emptyClientId = false;
  private unsupportedLevel = false;
  /** False once a client packet could not be read: the rules that pair answers with requests stand down. */
  private clientUnderstood = true;
  private serverPackets = 0;
  private connack: 'none' | 'accepted' | 'refused' = 'none';
  private sessionPresent = false;
  private disconnected = false;
  private readonly flight = new InFlight();
  /** Topic aliases the Server has mapped on this connection. */
  private readonly aliases = new Map<number, string>();

  private readonly named: boolean;
  private readonly onViolation: ((v: Violation) => void) | null;

  constructor(options: CheckerOptions = {}) {
    this.level = options.level ?? 4;
    this.label = options.label ?? 'connection';
    this.named = options.label !== undefined;
    this.onViolation = options.onViolation ?? null;
  }

  /** True when no rule was broken. */
  get ok(): boolean {
    return this.violations.length === 0;
  }

  /** Bytes the client sent, in order. */
  client(chunk: Buffer): void {
    for (const f of this.fromClient.push(chunk)) this.onClientFrame(f);
    if (this.fromClient.broken !== null) this.clientUnderstood = false;
  }

  /** Bytes the Server sent, in order. */
  server(chunk: Buffer): void {
    const wasBroken = this.fromServer.broken !== null;
    for (const f of this.fromServer.push(chunk)) this.onServerFrame(f);
    const broken = this.fromServer.broken;
    if (!wasBroken && broken !== null) this.record(ruleAt({ v5: '§1.5.5', v4: '§2.2.3' }, this.level), broken.message, 'stream', broken.bytes);
  }

  private record(rule: string, message: string, packet: string, bytes: Buffer): void {
    if (this.violations.length >= KEEP) {
      this.dropped++;
      return;
    }
    const v: Violation = { rule, message, packet, index: this.serverPackets, level: this.level, hex: hex(bytes), label: this.label };
    this.violations.push(v);
    this.onViolation?.(v);
  }

  private onClientFrame(f: Frame): void {
    const p = readClientPacket(f, this.level);
    switch (p.kind) {
      case 'connect':
        if (this.connectSeen) return; // a second CONNECT is the client's Protocol Error; the first one rules
        this.connectSeen = true;
        if (p.level === 3 || p.level === 4 || p.level === 5) this.level = p.level;
        else {
          // The Server answers an unsupported level with 3.1.1's CONNACK 0x01 (3.1.1 [MQTT-3.1.2-2]).
          this.unsupportedLevel = true;
          this.level = 4;
        }
        this.cleanStart = p.cleanStart;
        this.emptyClientId = p.clientId === '';
        if (!this.named && p.clientId !== null) this.label = `client ${JSON.stringify(p.clientId)}`;
        this.limits = p.limits;
        return;
      case 'publish':
        if (p.qos === 1 || p.qos === 2) this.flight.expect(p.qos === 1 ? PUBACK : PUBREC, p.id, 0);
        return;
      case 'ack':
        if (p.type === PUBREL) this.flight.expect(PUBCOMP, p.id, 0);
        else this.flight.clientAck(p.type, p.id, p.reason);
        return;
      case 'request':
        this.flight.expect(p.type === SUBSCRIBE ? SUBACK : UNSUBACK, p.id, p.filters ?? -1);
        return;
      case 'unreadable':
        if (p.type === 1) this.limits = null; // a CONNECT that cannot be read: its limits are unknown
        else this.clientUnderstood = false;
        return;
      case 'other':
        return;
    }
  }

  private onServerFrame(f: Frame): void {
    this.serverPackets++;
    const name = typeName(f.type);
    const report = (rule: string, message: string): void => this.record(rule, message, name, f.bytes);
    const v5 = this.level === 5;
    if (this.disconnected) report('[MQTT-3.14.4-1]', `${name} after the Server's DISCONNECT`);
    else if (this.connack === 'refused') report(ruleAt(RULES.afterRefusal, this.level), `${name} after a CONNACK that refused the connection`);
    else if (this.connack === 'none' && f.type !== CONNACK && !(v5 && f.type === AUTH)) {
      // [MQTT-3.14.0-1] no DISCONNECT before a successful CONNACK; [MQTT-3.2.0-1] CONNACK comes first.
      if (v5 && f.type === DISCONNECT) report('[MQTT-3.14.0-1]', 'DISCONNECT before a CONNACK accepted the connection');
      else report(ruleAt(RULES.firstConnack, this.level), `${name} before CONNACK`);
    } else if (f.type === CONNACK && this.connack !== 'none') report(ruleAt(RULES.oneConnack, this.level), 'a second CONNACK');
    const p = checkServerFrame(f, { level: this.level, limits: this.limits }, report);
    if (p !== null) this.apply(p, report);
  }

  /** The rules that relate a Server packet to what came before it. */
  private apply(p: ServerPacket, report: Report): void {
    const level = this.level;
    switch (p.kind) {
      case 'connack': {
        if (this.connack !== 'none') return;
        const accepted = p.code === 0;
        this.connack = accepted ? 'accepted' : 'refused';
        this.sessionPresent = p.sessionPresent;
        if (this.unsupportedLevel && accepted) report(ruleAt(RULES.unsupportedLevel, level), 'CONNACK accepted a CONNECT of an unsupported protocol level');
        if (accepted && this.cleanStart && p.sessionPresent && level >= 4) {
          report(ruleAt(RULES.sessionPresentOnCleanStart, level), 'Session Present set for a Clean Start / CleanSession connection');
        }
        // [MQTT-3.2.2-16] a client that sent an empty Client Identifier is told the one it was given.
        if (accepted && level === 5 && this.emptyClientId && p.props !== null && !p.props.count.has(0x12)) {
          report('[MQTT-3.2.2-16]', 'CONNACK to an empty Client Identifier without an Assigned Client Identifier');
        }
        return;
      }
      case 'publish':
        if (p.alias !== null) this.topicAlias(p.alias, p.topic, report);
        // A zero id was reported with the frame's rules.
        if ((p.qos === 1 || p.qos === 2) && p.id !== 0) this.flight.serverPublish(p.qos, p.id, p.dup, this.flightContext, report);
        return;
      case 'ack':
        // The id of the PUBLISH or PUBREL answered, which is never 0 ([MQTT-2.2.1-5], [MQTT-2.3.1-6]).
        if (p.id === 0) report(ruleAt(RULES.ackPid, level), `${typeName(p.type)} with packet identifier 0`);
        else if (p.type === PUBREL) this.flight.serverPubrel(p.id, p.reason, this.flightContext, report);
        else this.flight.answer(p.type, p.id, -1, this.flightContext, report);
        return;
      case 'reply':
        // The id of a SUBSCRIBE or UNSUBSCRIBE, which is never 0 ([MQTT-2.3.1-1], [MQTT-2.2.1-3]).
        if (p.id === 0) report(ruleAt(RULES.subackPid, level), `${typeName(p.type)} with packet identifier 0`);
        else this.flight.answer(p.type, p.id, p.type === UNSUBACK && level < 5 ? -1 : p.codes, this.flightContext, report);
        return;
      case 'disconnect':
        if (this.connack === 'accepted') this.disconnected = true;
        return;
      case 'auth':
        if (this.limits !== null && !this.limits.authenticationMethod) report('[MQTT-4.12.0-6]', 'AUTH to a client whose CONNECT had no Authentication Method');
        return;
      case 'pingresp':
        return;
    }
  }

  /** What the in-flight rules need of the connection now. */
  private get flightContext(): FlightContext {
    return { level: this.level, limits: this.limits, sessionPresent: this.sessionPresent, clientUnderstood: this.clientUnderstood };
  }

  private topicAlias(alias: number, topic: string, report: Report): void {
    if (topic.length > 0) this.aliases.set(alias, topic);
    // 3.3.2.3.4: an empty Topic Name uses a mapping this connection established.
    else if (!this.aliases.has(alias)) report('§3.3.2.3.4', `empty Topic Name with Topic Alias ${alias}, which this connection never mapped`);
  }
}
