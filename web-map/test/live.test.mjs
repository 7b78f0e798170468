// The SSE parser of the worker's live feed (`node --test web-map/test`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEvents } from '../src/live.js';

test('events are split on blank lines and keep their id, name and data', () => {
  const { events, rest } = parseEvents('id: 7-1\nevent: report\ndata: {"id":7}\n\n:keep-alive\n\nid: 8-1\nevent: rep');
  assert.deepEqual(events, [{ id: '7-1', event: 'report', data: '{"id":7}' }]);
  assert.equal(rest, 'id: 8-1\nevent: rep');
});

test('an event cut across two chunks is read once it is complete', () => {
  const first = parseEvents('id: 9-2\nevent: report\ndata: {"id"');
  assert.deepEqual(first.events, []);
  const second = parseEvents(`${first.rest}:9}\r\n\r\n`);
  assert.deepEqual(second.events, [{ id: '9-2', event: 'report', data: '{"id":9}' }]);
  assert.equal(second.rest, '');
});

test('multi-line data is joined with newlines; a field without a space after the colon is read', () => {
  const { events } = parseEvents('data:a\ndata: b\n\n');
  assert.deepEqual(events, [{ id: null, event: 'message', data: 'a\nb' }]);
});
