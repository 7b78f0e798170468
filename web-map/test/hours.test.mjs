// Unit tests of the opening-hours subset: `node --test web-map/test` (run by the e2e crate too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isOpen, isAlwaysOpen, parseOpeningHours } from '../src/hours.js';

// 2026-11-30 is a Monday. Times are given in UTC; the county is UTC+8.
const at = (isoLocal) => new Date(`${isoLocal}+08:00`);

test('24/7 is always open', () => {
  assert.equal(isOpen('24/7', at('2026-11-30T03:00:00')), true);
  assert.equal(isAlwaysOpen('24/7'), true);
  assert.equal(isAlwaysOpen('Mo-Su 08:00-20:00'), false);
});

test('daily spans use county time, not the browser time zone', () => {
  assert.equal(isOpen('Mo-Su 08:00-20:00', at('2026-11-30T08:00:00')), true);
  assert.equal(isOpen('Mo-Su 08:00-20:00', at('2026-11-30T19:59:00')), true);
  assert.equal(isOpen('Mo-Su 08:00-20:00', at('2026-11-30T20:00:00')), false);
  assert.equal(isOpen('Mo-Su 07:30-21:00', at('2026-11-30T07:29:00')), false);
});

test('weekday lists, later rules override, off, and spans past midnight', () => {
  const hours = 'Mo-Fr 09:00-18:00; Sa 10:00-12:00,14:00-16:00; Su off';
  assert.equal(isOpen(hours, at('2026-12-04T17:00:00')), true); // Friday
  assert.equal(isOpen(hours, at('2026-12-05T13:00:00')), false); // Saturday lunch
  assert.equal(isOpen(hours, at('2026-12-05T15:00:00')), true);
  assert.equal(isOpen(hours, at('2026-12-06T11:00:00')), false); // Sunday off
  assert.equal(isOpen('Mo-Su 08:00-20:00; We off', at('2026-12-02T10:00:00')), false);
  assert.equal(isOpen('Fr 22:00-02:00', at('2026-12-05T01:30:00')), true); // Saturday early hours
  assert.equal(isOpen('Fr 22:00-02:00', at('2026-12-05T02:30:00')), false);
  assert.equal(isOpen('Sa-Mo 10:00-11:00', at('2026-11-30T10:30:00')), true); // wraps the week
});

test('unsupported syntax is unknown, not a guess', () => {
  assert.equal(isOpen(''), null);
  assert.equal(isOpen('Mo-Fr 09:00-18:00; PH off'), null);
  assert.equal(isOpen('sunrise-sunset'), null);
  assert.equal(parseOpeningHours('Jan-Mar 08:00-10:00'), null);
});

test("today's hours read as map apps show them, with the next opening when closed", async () => {
  const { todayHours } = await import('../src/hours.js');
  assert.deepEqual(todayHours('Mo-Su 08:00-20:00', at('2026-11-30T07:00:00')), { spans: ['08:00–20:00'], opensAt: '08:00' });
  assert.deepEqual(todayHours('Mo-Su 08:00-20:00', at('2026-11-30T12:00:00')), { spans: ['08:00–20:00'], opensAt: null });
  assert.deepEqual(todayHours('Mo-Fr 08:00-12:00,14:00-18:00', at('2026-11-30T13:00:00')), { spans: ['08:00–12:00', '14:00–18:00'], opensAt: '14:00' });
  assert.deepEqual(todayHours('Mo-Fr 08:00-20:00', at('2026-12-06T10:00:00')), { spans: [], opensAt: null });
  assert.equal(todayHours('sunrise-sunset'), null);
});
