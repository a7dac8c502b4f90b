import { expect, it } from 'vitest';
import { LruCache } from './lru.js';

it('evicts the least recently used entries beyond the byte budget', () => {
  const lru = new LruCache<number>(30);
  lru.set('a', 1, 10);
  lru.set('b', 2, 10);
  lru.set('c', 3, 10);
  expect(lru.get('a')).toBe(1); // a is now the most recent
  lru.set('d', 4, 10); // over budget: b goes
  expect([lru.get('b'), lru.get('c'), lru.get('a'), lru.get('d')]).toEqual([undefined, 3, 1, 4]);
  lru.set('big', 5, 31); // larger than the whole budget: not kept, nothing evicted
  expect(lru.size).toBe(3);
  lru.set('a', 6, 25); // replacing re-costs the entry
  expect(lru.get('a')).toBe(6);
  expect(lru.size).toBe(1);
  lru.delete('a');
  expect(lru.size).toBe(0);
});
