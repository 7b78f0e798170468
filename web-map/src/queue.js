// The rider's offline outbox in IndexedDB. A report is stored here *before* the first attempt to
// send it, with its Idempotency-Key fixed at creation; every retry reuses that key, so however
// often the network drops mid-request the server stores it exactly once (issue 5's contract:
// same key + same payload → the original answer). An item leaves the outbox only when the
// server has answered: 2xx → moved to `sent`; a definite refusal (4xx other than 401/408/429)
// → kept and marked `failed` with the server's message, never silently dropped.

// Other writes ride the same outbox (issue 23: a worker's door-knocking visits): an item with a
// `path` is JSON POSTed there with the session's token and its own key (`sendTo`), whoever flushes.

import { api, ApiError } from './api.js';
import { getSession } from './session.js';
import { refusalText } from './i18n.js';

const DB_NAME = 'gridmap-rider';
const DB_VERSION = 1;

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('outbox')) db.createObjectStore('outbox', { keyPath: 'key' });
      if (!db.objectStoreNames.contains('sent')) db.createObjectStore('sent', { keyPath: 'key' });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(store, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode);
    const s = t.objectStore(store);
    let result;
    Promise.resolve(fn(s)).then((r) => { result = r; });
    t.oncomplete = () => { db.close(); resolve(result); };
    t.onerror = () => { db.close(); reject(t.error); };
    t.onabort = () => { db.close(); reject(t.error); };
  });
}

const all = (store) => tx(store, 'readonly', (s) => new Promise((res) => { const r = s.getAll(); r.onsuccess = () => res(r.result); }));

/** Queue a report: `{report, photos: [Blob]}`; returns the stored item. */
export async function enqueue(report, photos = []) {
  const item = { key: crypto.randomUUID(), report, photos, created_at: new Date().toISOString(), state: 'pending', attempts: 0, last_error: null };
  await tx('outbox', 'readwrite', (s) => s.put(item));
  return item;
}

/** Queue a JSON write to another path (a visit): sent with its own Idempotency-Key by `flush`. */
export async function enqueueTo(path, body) {
  const item = { key: crypto.randomUUID(), path, report: body, photos: [], created_at: new Date().toISOString(), state: 'pending', attempts: 0, last_error: null };
  await tx('outbox', 'readwrite', (s) => s.put(item));
  return item;
}

/** Send a `path` item: JSON with its key and the current login (errors as `send`'s: `status` 0 offline). */
async function sendTo(item) {
  try {
    return await api(item.path, { method: 'POST', body: item.report, headers: { 'Idempotency-Key': item.key }, token: getSession()?.token, expectFailure: true });
  } catch (err) {
    if (err instanceof ApiError) throw Object.assign(err, { message: refusalText(err.body, err.status) });
    throw Object.assign(new Error(err.message), { status: 0 });
  }
}

export const pending = () => all('outbox');
/** The outbox entries still waiting to go (pending, or caught mid-send): the banner's count. */
export const waiting = async () => (await pending()).filter((i) => i.state !== 'failed').length;
export const sent = () => all('sent');
export const remove = (key) => tx('outbox', 'readwrite', (s) => s.delete(key));

let flushing = null;

/**
 * Try to send every pending item, oldest first. `send(item)` resolves to the server's JSON or
 * throws an error carrying `status` (0 for no network). One flush at a time.
 */
export function flush(send, { includeFailed = false, onChange = () => {} } = {}) {
  if (flushing) return flushing;
  flushing = (async () => {
    const results = [];
    const items = (await pending()).sort((a, b) => a.created_at.localeCompare(b.created_at));
    for (const item of items) {
      if (item.state === 'failed' && !includeFailed) continue;
      // Shown as 发送中 while the request is out; a page closed meanwhile leaves `sending` in the
      // store, which the next flush treats as pending (same key: stored once either way).
      item.state = 'sending';
      await tx('outbox', 'readwrite', (s) => s.put(item));
      await onChange();
      try {
        const answer = await (item.path ? sendTo(item) : send(item));
        await tx('sent', 'readwrite', (s) => s.put({ key: item.key, path: item.path, report: item.report, answer, sent_at: new Date().toISOString() }));
        await remove(item.key);
        results.push({ key: item.key, ok: true, answer });
        await onChange();
      } catch (err) {
        const status = err.status ?? 0;
        // 404/405: this server has no reports API yet (the static-file fallback answers); keep waiting.
        const absent = status === 404 || status === 405;
        const retryable = status === 0 || absent || status === 401 || status === 408 || status === 429 || status >= 500;
        item.attempts += 1;
        item.last_error = err.message;
        item.state = retryable ? 'pending' : 'failed';
        await tx('outbox', 'readwrite', (s) => s.put(item));
        results.push({ key: item.key, ok: false, status, error: err.message });
        await onChange();
        // No network (or no reports API yet): the rest would fail the same way; wait for the next trigger.
        if (status === 0 || absent) break;
      }
    }
    return results;
  })().finally(() => {
    flushing = null;
    // How many flushes have ended: a test waits on it instead of sleeping before it checks
    // that a flush sent nothing again.
    window.__outboxFlushes = (window.__outboxFlushes ?? 0) + 1;
  });
  return flushing;
}
