// Every machine code the server can answer with — the error classes of server/src/http/error.rs,
// the workflow refusal reasons and `waiting_for` values of server/src/reports/status.rs — has its
// own text in both languages, so no refusal falls back to a raw code or to the server's English
// message. Read from the Rust sources, so a new code added there fails here until translated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { strings as chinese } from '../src/i18n.js';
import { en } from '../src/i18n-en.js';

const strings = { ...chinese, en };

const server = new URL('../../server/src/', import.meta.url);
const read = (path) => readFileSync(new URL(path, server), 'utf8');

/** The string literals after `=>` in the body of `fn name` (a match of enum variants to codes). */
function arms(source, fn, after = '') {
  const start = source.indexOf(`fn ${fn}(`, source.indexOf(after));
  assert.ok(start >= 0, `fn ${fn} in the source`);
  const body = source.slice(start, source.indexOf('\n    }\n', start));
  return [...new Set([...body.matchAll(/"([a-z_]+)"\)?,?\s*$/gm)].map((m) => m[1]))];
}

const languages = ['zh-CN', 'en'];
const status = read('reports/status.rs');

test('every workflow refusal reason has a text in each language', () => {
  const reasons = arms(status, 'as_str', 'impl Refusal');
  assert.ok(reasons.includes('own_report') && reasons.includes('four_eyes'), reasons.join());
  for (const lang of languages) for (const r of reasons) assert.ok(strings[lang][`refusal_${r}`], `${lang}: refusal_${r}`);
});

test('every error class has a text in each language', () => {
  const codes = arms(read('http/error.rs'), 'status_and_code');
  assert.ok(codes.includes('not_found') && codes.includes('unsupported_media_type'), codes.join());
  for (const lang of languages) for (const c of codes) assert.ok(strings[lang][`error_${c}`], `${lang}: error_${c}`);
});

test('every waiting_for value has a text in each language', () => {
  const start = status.indexOf('pub enum WaitingFor');
  const variants = [...status.slice(start, status.indexOf('}', start)).matchAll(/^\s+([A-Z]\w+),/gm)]
    .map((m) => m[1].replace(/[A-Z]/g, (ch, i) => (i ? '_' : '') + ch.toLowerCase()));
  assert.deepEqual(variants, ['other_verifier', 'grid_worker', 'admin']);
  for (const lang of languages) for (const v of [...variants, 'own_report']) assert.ok(strings[lang][`waiting_${v}`], `${lang}: waiting_${v}`);
});

test('the warnings a grid save writes are shown in the page language, and the server still writes those two', async () => {
  const { warningText } = await import('../src/i18n.js');
  const edit = read('ogc/edit.rs');
  assert.ok(edit.includes('"the geometry was invalid ({reason}) and was repaired (ST_MakeValid)"'), 'ogc/edit.rs: the repair warning');
  assert.ok(edit.includes('"clipped {} neighbouring grid(s): {}"'), 'ogc/edit.rs: the clipping warning');
  assert.equal((edit.match(/warnings\.push\(/g) ?? []).length, 2, 'ogc/edit.rs writes two warnings: a new one needs its text in i18n.js warningText');
  assert.equal(warningText('the geometry was invalid (Self-intersection[118.1 36.1]) and was repaired (ST_MakeValid)'), '边界无效，已自动修复');
  assert.equal(warningText('clipped 2 neighbouring grid(s): LS-001, LS-002'), '已裁剪 2 个相邻网格：LS-001, LS-002');
  assert.equal(warningText('something new'), '服务器有一条提示');
});
