import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forwardable, Message, type MessageProperties } from './message.js';

describe('message/forwardable', () => {
  it('keeps the very object when every property may travel in a PUBLISH', () => {
    const p: MessageProperties = { contentType: 'text/plain', userProperties: { a: '1' }, messageExpiryInterval: 5 };
    assert.equal(forwardable(p), p);
    assert.equal(forwardable({}), undefined);
    assert.equal(forwardable(undefined), undefined);
  });

  it('drops what only CONNECT, CONNACK or a will may carry', () => {
    const p = { contentType: 'a', sessionExpiryInterval: 60, willDelayInterval: 5, reasonString: 'x' } as MessageProperties;
    assert.deepEqual(forwardable(p), { contentType: 'a' });
    assert.equal(forwardable({ sessionExpiryInterval: 60 } as MessageProperties), undefined);
  });

  it('is applied to messages read back from a store or another node', () => {
    const m = Message.restore({
      topic: 't', payload: Buffer.from('x'), qos: 1, retain: true, origin: 'c', expiresAt: 0,
      properties: { serverReference: 'evil', correlationData: Buffer.from('k') } as MessageProperties,
    });
    assert.deepEqual(m.properties, { correlationData: Buffer.from('k') });
  });
});
