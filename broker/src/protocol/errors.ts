import { RC } from './reason-codes.js';

/**
 * A protocol-level failure carrying the MQTT 5 reason code that describes it. Handlers throw it; the
 * dispatcher alone turns it into CONNACK, DISCONNECT or a plain close, depending on protocol version.
 */
export class MqttError extends Error {
  /** MQTT 5 reason code (0x80 and above). */
  readonly reasonCode: number;

  constructor(reasonCode: number, message: string) {
    super(message);
    this.name = 'MqttError';
    this.reasonCode = reasonCode;
  }
}

/** Shorthand for the most common failure. */
export function protocolError(message: string): MqttError {
  return new MqttError(RC.PROTOCOL_ERROR, message);
}
