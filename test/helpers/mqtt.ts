/** MQTT.js clients for black-box tests; what the broker sends them goes through the strict checker. */
import type { IClientOptions, MqttClient } from 'mqtt';
import { strictMqtt } from './strict/tap.js';

/**
 * Connects an MQTT.js client to a broker on loopback (no automatic reconnect unless `options` asks for it),
 * resolves once CONNACK accepted it and adds it to `track`, so the test's after() can end it.
 */
export async function connectMqtt(port: number, options: IClientOptions, track: MqttClient[]): Promise<MqttClient> {
  const c = strictMqtt(port, { reconnectPeriod: 0, ...options });
  track.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}
