/**
 * The cache of verified logins: a hit within the lifetime starts the
 * lifetime again, an expired entry misses, and the entry is bound to the
 * password and to the stored hash.
 */
import { LoginCache } from '../../server/passwords';

const TTL_MS = 1000;

afterEach(() => jest.useRealTimers());

test('hit within the lifetime renews it', () => {
  jest.useFakeTimers({ now: 0 });
  const cache = new LoginCache(TTL_MS);
  cache.add('alice', 'secret', 'hash-1');
  jest.setSystemTime(800);
  expect(cache.renew('alice', 'secret', 'hash-1')).toBe(true);
  // 1,600 ms after the login but 800 ms after the renewal.
  jest.setSystemTime(1600);
  expect(cache.renew('alice', 'secret', 'hash-1')).toBe(true);
});

test('expired entry misses and stays gone', () => {
  jest.useFakeTimers({ now: 0 });
  const cache = new LoginCache(TTL_MS);
  cache.add('alice', 'secret', 'hash-1');
  jest.setSystemTime(1001);
  expect(cache.renew('alice', 'secret', 'hash-1')).toBe(false);
  jest.setSystemTime(0);
  expect(cache.renew('alice', 'secret', 'hash-1')).toBe(false);
});

test('other password or hash misses', () => {
  const cache = new LoginCache(TTL_MS);
  cache.add('alice', 'secret', 'hash-1');
  expect(cache.renew('alice', 'other', 'hash-1')).toBe(false);
  expect(cache.renew('alice', 'secret', 'hash-2')).toBe(false);
  expect(cache.renew('bob', 'secret', 'hash-1')).toBe(false);
  expect(cache.renew('alice', 'secret', 'hash-1')).toBe(true);
});
