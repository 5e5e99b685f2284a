import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MqttError } from '../errors.js';
import { checkFrameProperties, isV5Connect } from './properties.js';

/** Bytes from hex with `#` comments, one field per line. */
function hex(src: string): Buffer {
  return Buffer.from(src.split('\n').map((l) => l.replace(/#.*$/, '')).join('').replace(/\s+/g, ''), 'hex');
}

/** Runs the check on a whole frame whose Remaining Length is one byte. */
function check(frame: Buffer): void {
  checkFrameProperties(frame, 0, 2, frame.length);
}

/** The reason code the check refuses with, or null when it accepts. */
function verdict(frame: Buffer): number | null {
  assert.equal(frame[1], frame.length - 2, 'fixture: remaining length');
  try {
    check(frame);
    return null;
  } catch (err) {
    assert.ok(err instanceof MqttError, String(err));
    return err.reasonCode;
  }
}

/** A QoS 0 PUBLISH to "t" with the given property bytes (their length prefix is added). */
function publish(props: string): Buffer {
  const p = hex(props);
  const body = Buffer.concat([hex('00 01 74'), Buffer.from([p.length]), p, hex('78')]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

describe('protocol/codec/properties', () => {
  it('accepts the PUBLISH properties a client may send', () => {
    assert.equal(verdict(publish(`
      01 01          # Payload Format Indicator 1
      02 00 00 00 3c # Message Expiry Interval 60
      03 00 01 61    # Content Type "a"
      08 00 01 72    # Response Topic "r"
      09 00 02 01 02 # Correlation Data
      23 00 01       # Topic Alias 1
      26 00 01 6b 00 01 76 # User Property k=v
      26 00 01 6b 00 01 77 # User Property k=w: may repeat
    `)), null);
  });

  // The five the hostile-client review found forwarded as they were, plus the rest of CONNACK's.
  const notInPublish: [string, string][] = [
    ['Session Expiry Interval', '11 00 00 00 3c'],
    ['Receive Maximum', '21 00 0a'],
    ['Server Reference', '1c 00 01 73'],
    ['Reason String', '1f 00 01 72'],
    ['Assigned Client Identifier', '12 00 01 63'],
    ['Will Delay Interval', '18 00 00 00 01'],
    ['Maximum QoS', '24 01'],
    ['Authentication Method', '15 00 01 6d'],
  ];
  for (const [name, bytes] of notInPublish) {
    it(`refuses ${name} in PUBLISH as a Malformed Packet (0x81)`, () => {
      assert.equal(verdict(publish(bytes)), 0x81);
    });
  }

  it('refuses an identifier that exists nowhere (0x81)', () => {
    assert.equal(verdict(publish('7f 00')), 0x81);
  });

  it('refuses a repeated single-instance property as a Protocol Error (0x82), even when the first value is 0', () => {
    assert.equal(verdict(publish('01 00 01 01 # Payload Format Indicator 0, then 1')), 0x82);
    assert.equal(verdict(publish('02 00 00 00 01 02 00 00 00 02 # two Message Expiry Intervals')), 0x82);
    assert.equal(verdict(publish('23 00 01 23 00 01 # two Topic Aliases')), 0x82);
  });

  it('refuses a flag other than 0 or 1 (0x82)', () => {
    assert.equal(verdict(publish('01 02 # Payload Format Indicator 2')), 0x82);
  });

  it('refuses values that are not of their data type (0x81)', () => {
    assert.equal(verdict(publish('03 00 02 c3 28 # Content Type: ill-formed UTF-8')), 0x81);
    assert.equal(verdict(publish('08 00 01 00    # Response Topic: U+0000')), 0x81);
    assert.equal(verdict(publish('02 00 00       # Message Expiry Interval cut short')), 0x81);
    assert.equal(verdict(publish('26 00 01 6b 00 05 76 # User Property value past the list')), 0x81);
  });

  it('refuses a property list longer than the packet (0x81)', () => {
    const frame = hex(`
      30          # PUBLISH QoS 0
      05          # remaining length 5
      00 01 74    # topic "t"
      09          # property length 9, but one byte follows
      01
    `);
    assert.equal(verdict(frame), 0x81);
  });

  it('finds the list after the packet identifier of a QoS 1 PUBLISH', () => {
    const frame = hex(`
      32          # PUBLISH QoS 1
      0a          # remaining length 10
      00 01 74    # topic "t"
      00 07       # packet identifier 7
      04          # property length 4
      11 00 00 00 # Session Expiry Interval, cut: the identifier alone is already refused
    `);
    assert.equal(verdict(frame), 0x81);
  });

  it('checks SUBSCRIBE: one Subscription Identifier, not 0', () => {
    const sub = (props: string): Buffer => {
      const p = hex(props);
      const body = Buffer.concat([hex('00 01'), Buffer.from([p.length]), p, hex('00 01 61 01')]);
      return Buffer.concat([Buffer.from([0x82, body.length]), body]);
    };
    assert.equal(verdict(sub('0b 05         # Subscription Identifier 5')), null);
    assert.equal(verdict(sub('0b 00         # Subscription Identifier 0')), 0x82);
    assert.equal(verdict(sub('0b 05 0b 06   # two Subscription Identifiers')), 0x82);
    assert.equal(verdict(sub('0b ff ff ff ff 01 # a Variable Byte Integer of five bytes')), 0x81);
    assert.equal(verdict(sub('01 01         # Payload Format Indicator')), 0x81);
  });

  it('checks acknowledgements only when they carry properties', () => {
    assert.equal(verdict(hex('40 02 00 01 # PUBACK id 1')), null);
    assert.equal(verdict(hex('40 03 00 01 10 # PUBACK id 1, reason 0x10, no properties')), null);
    assert.equal(verdict(hex('40 08 00 01 00 04 1f 00 01 72 # PUBACK with a Reason String')), null);
    assert.equal(verdict(hex('40 09 00 01 00 05 11 00 00 00 01 # PUBACK with Session Expiry Interval')), 0x81);
    assert.equal(verdict(hex('62 08 00 01 00 04 1f 00 01 72 # PUBREL with a Reason String')), null);
  });

  it('checks DISCONNECT and AUTH after their reason code', () => {
    assert.equal(verdict(hex('e0 00')), null);
    assert.equal(verdict(hex('e0 01 04')), null);
    assert.equal(verdict(hex('e0 07 00 05 11 00 00 00 00 # Session Expiry Interval 0')), null);
    assert.equal(verdict(hex('e0 04 00 02 23 00 # Topic Alias in DISCONNECT')), 0x81);
    assert.equal(verdict(hex('f0 06 18 04 15 00 01 6d # AUTH with an Authentication Method')), null);
    assert.equal(verdict(hex('f0 05 18 03 01 01 00 # AUTH with a Payload Format Indicator')), 0x81);
  });

  const connect = (props: string, will?: string): Buffer => {
    const p = hex(props);
    const parts = [
      hex('00 04 4d 51 54 54 05'), // "MQTT", level 5
      Buffer.from([will === undefined ? 0x02 : 0x06]), // clean start, will flag
      hex('00 3c'),
      Buffer.from([p.length]), p,
      hex('00 01 63'), // client id "c"
    ];
    if (will !== undefined) {
      const w = hex(will);
      parts.push(Buffer.from([w.length]), w, hex('00 01 77 00 01 78')); // will topic "w", payload "x"
    }
    const body = Buffer.concat(parts);
    return Buffer.concat([Buffer.from([0x10, body.length]), body]);
  };

  it('checks CONNECT properties and Will Properties separately', () => {
    assert.equal(verdict(connect('11 00 00 00 3c 21 00 0a 27 00 00 10 00 22 00 05 17 01 19 00')), null);
    assert.equal(verdict(connect('23 00 01 # Topic Alias in CONNECT')), 0x81);
    assert.equal(verdict(connect('17 02 # Request Problem Information 2')), 0x82);
    assert.equal(verdict(connect('21 00 0a 21 00 0b # two Receive Maximums')), 0x82);
    assert.equal(verdict(connect('', '18 00 00 00 05 01 01 03 00 01 61 # will delay, format, content type')), null);
    assert.equal(verdict(connect('', '11 00 00 00 05 # Session Expiry Interval in the will')), 0x81);
    assert.equal(verdict(connect('', '18 00 00 00 05 18 00 00 00 06 # two Will Delay Intervals')), 0x82);
  });

  it('tells a v5 CONNECT from other frames', () => {
    const v5 = connect('');
    assert.equal(isV5Connect(v5, 0, 2, v5.length), true);
    const v4 = hex('10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 63');
    assert.equal(isV5Connect(v4, 0, 2, v4.length), false);
    const pub = publish('');
    assert.equal(isV5Connect(pub, 0, 2, pub.length), false);
  });
});
