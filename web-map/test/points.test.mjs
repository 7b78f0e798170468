// The points market's retry rule (points.js): the Idempotency-Key of a redemption attempt is
// made once and sent again on every retry, so a redemption whose answer was lost is never made
// (or charged) twice; another item gets its own key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyFor } from '../src/points.js';

function memoryStore() {
  const data = new Map();
  return { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, String(v)) };
}

test('a retry of the same item reuses its key; another item gets another', () => {
  const store = memoryStore();
  const first = keyFor(12, store);
  assert.match(first, /^[0-9a-f-]{36}$/);
  assert.equal(keyFor(12, store), first, 'the retry sends the same key');
  assert.notEqual(keyFor(13, store), first);
});

test('a corrupt store starts afresh instead of failing', () => {
  const store = memoryStore();
  store.setItem('gridmap.points.pending', '{not json');
  assert.match(keyFor(1, store), /^[0-9a-f-]{36}$/);
});
