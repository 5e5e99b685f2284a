/**
 * Agent mode's ClientInfo: what an agent says about its host when it connects (the seed's `ClientInfo`).
 *
 * On the wire it is JSON in one MQTT UTF-8 string (two-byte big-endian length, then the bytes) placed after the
 * last field of the CONNECT payload, inside the packet's Remaining Length, for every protocol level; an MQTT 5
 * client may send the same JSON as the user property `client_info` instead. mqtt-packet ignores bytes after the
 * payload, so {@link connectTrailer} finds where the standard payload ends itself.
 */
import type { IConnectPacket } from 'mqtt-packet';
import { SmqError } from '../errors.js';
import { MqttError } from '../protocol/errors.js';
import { RC } from '../protocol/reason-codes.js';

/** The seed's ClientInfo; a field the agent left out is ''. */
export interface AgentInfo {
  readonly host_name: string;
  readonly intranet_ip: string;
  readonly public_ip: string;
  readonly platform: string;
  readonly arch: string;
  readonly os: string;
  readonly agent_version: string;
}

/** The fields of {@link AgentInfo}, in the seed's order. */
export const AGENT_INFO_FIELDS = ['host_name', 'intranet_ip', 'public_ip', 'platform', 'arch', 'os', 'agent_version'] as const;

/** The v5 user property that may carry the JSON. */
export const CLIENT_INFO_PROPERTY = 'client_info';

/** Largest ClientInfo JSON accepted, in bytes. */
export const MAX_CLIENT_INFO_BYTES = 4096;

/** A CONNECT as the reader hands it on: with the bytes found after the standard payload, if any. */
export interface ConnectWithTrailer extends IConnectPacket {
  /** Bytes between the end of the standard payload and the end of the packet (a copy); absent when none. */
  trailer?: Buffer;
}

/** ClientInfo that cannot be accepted; the message says why, for the reason string and the log. */
export class ClientInfoError extends SmqError {
  constructor(message: string) {
    super('ERR_CLIENT_INFO', message);
  }
}

/**
 * The bytes after the standard payload of a whole CONNECT frame (`frame[off..end)`, fixed header included), or
 * null when there are none. Called only for frames mqtt-packet accepted, so the standard fields are known to be
 * there; it still never reads past `end` and answers null for anything inconsistent.
 */
export function connectTrailer(frame: Buffer, off: number, end: number): Buffer | null {
  let p = off + 1;
  // Remaining Length: 1 to 4 bytes (section 2.2.3).
  for (let i = 0; i < 4 && p < end; i++) if (((frame[p++] as number) & 0x80) === 0) break;
  // Variable header: protocol name (an MQTT string: "MQTT", or "MQIsdp" for 3.1), level, flags, keep-alive.
  p = skipString(frame, p, end);
  if (p < 0 || p + 4 > end) return null;
  const level = (frame[p] as number) & 0x7f; // 0x80 marks a bridge
  const flags = frame[p + 1] as number;
  p += 4;
  if (level === 5) p = skipProperties(frame, p, end); // CONNECT properties (MQTT 5 section 3.1.2.11)
  p = skipString(frame, p, end); // client identifier
  if (flags & 0x04) {
    if (level === 5) p = skipProperties(frame, p, end); // will properties (MQTT 5 section 3.1.3.2)
    p = skipString(frame, p, end); // will topic
    p = skipString(frame, p, end); // will payload (binary data, same two-byte length)
  }
  if (flags & 0x80) p = skipString(frame, p, end); // user name
  if (flags & 0x40) p = skipString(frame, p, end); // password
  if (p < 0 || p >= end) return null;
  return Buffer.from(frame.subarray(p, end));
}

/** The position after a two-byte-length field at `p`, or -1. */
function skipString(buf: Buffer, p: number, end: number): number {
  if (p < 0 || p + 2 > end) return -1;
  const next = p + 2 + (((buf[p] as number) << 8) | (buf[p + 1] as number));
  return next > end ? -1 : next;
}

/** The position after a property list (variable byte integer length, then the properties) at `p`, or -1. */
function skipProperties(buf: Buffer, p: number, end: number): number {
  if (p < 0) return -1;
  let len = 0;
  let mul = 1;
  for (let i = 0; i < 4; i++) {
    if (p >= end) return -1;
    const b = buf[p++] as number;
    len += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return p + len > end ? -1 : p + len;
  }
  return -1;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads trailing CONNECT bytes that must be exactly one MQTT UTF-8 string holding the ClientInfo JSON.
 * Throws ClientInfoError for anything else.
 */
export function clientInfoFromTrailer(trailer: Buffer): AgentInfo {
  if (trailer.length < 2) throw new ClientInfoError('client info: trailing byte after the CONNECT payload is not an MQTT string');
  const len = ((trailer[0] as number) << 8) | (trailer[1] as number);
  if (len + 2 !== trailer.length) {
    throw new ClientInfoError(`client info: string length ${len} does not match the ${trailer.length - 2} bytes after the CONNECT payload`);
  }
  let text: string;
  try {
    text = utf8.decode(trailer.subarray(2));
  } catch {
    throw new ClientInfoError('client info: not well-formed UTF-8'); // [MQTT-1.5.4-1]
  }
  if (text.includes('\u0000')) throw new ClientInfoError('client info: contains U+0000'); // [MQTT-1.5.4-2]
  return clientInfoFromJson(text, len);
}

/**
 * Parses ClientInfo JSON: an object whose known fields, when present, are strings; unknown fields are ignored.
 * Throws ClientInfoError otherwise.
 */
export function clientInfoFromJson(text: string, bytes = Buffer.byteLength(text)): AgentInfo {
  if (bytes > MAX_CLIENT_INFO_BYTES) throw new ClientInfoError(`client info: ${bytes} bytes, more than ${MAX_CLIENT_INFO_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ClientInfoError('client info: not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ClientInfoError('client info: not a JSON object');
  const obj = value as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const field of AGENT_INFO_FIELDS) {
    const v = obj[field];
    if (v === undefined) out[field] = '';
    else if (typeof v === 'string') out[field] = v;
    else throw new ClientInfoError(`client info: ${field} is not a string`);
  }
  return out as unknown as AgentInfo;
}

/**
 * The ClientInfo of a CONNECT: from the bytes after its payload, else (MQTT 5) from the `client_info` user
 * property; null for an ordinary client. Throws MqttError 0x99 (Payload format invalid) for ClientInfo that is
 * there but unusable; the CONNECT handler answers v5 with CONNACK 0x99 and closes a 3.1.x connection.
 */
export function clientInfoOf(packet: ConnectWithTrailer): AgentInfo | null {
  try {
    if (packet.trailer !== undefined) return clientInfoFromTrailer(packet.trailer);
    const prop = packet.properties?.userProperties?.[CLIENT_INFO_PROPERTY];
    if (prop === undefined) return null;
    if (typeof prop !== 'string') throw new ClientInfoError(`client info: user property ${CLIENT_INFO_PROPERTY} given more than once`);
    return clientInfoFromJson(prop);
  } catch (err) {
    if (err instanceof ClientInfoError) throw new MqttError(RC.PAYLOAD_FORMAT_INVALID, err.message);
    throw err;
  }
}
