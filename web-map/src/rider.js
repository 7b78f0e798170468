// The rider ("mobile probe") view against issue 5's contract: log in, report a problem with a GPS
// fix (accuracy shown) or a dragged pin, a category, a description and up to 3 photos resized in
// the browser; see possible duplicates first; and never lose a report made in a dead zone — it
// waits in the IndexedDB outbox (queue.js) and is sent, with the same Idempotency-Key, when the
// network is back. Until the reports API is deployed the view says so and keeps queued reports.
import * as maplibregl from 'maplibre-gl';
import { t, getLang, statusLabel, refusalText } from './i18n.js';
import { api, ApiError } from './api.js';
import { h, $ } from './dom.js';
import * as queue from './queue.js';
import { getSession, onSession, login, logout } from './session.js';
import { resize } from './photo.js';

const MAX_PHOTOS = 3;
const POOR_ACCURACY_M = 100; // issue 5 flags fixes worse than this
const DUPLICATE_RADIUS_M = 250; // FixMyStreet's default; a category may say otherwise
// The server's open statuses (workflow::OPEN_STATUSES); it has no `open` shorthand and answers 400 to one.
const OPEN_STATUSES = 'submitted,accepted,dispatched,handling,feedback,verified,rework,parked';

const rider = {
  session: null, // {token, expires_at, role, name}
  available: null, // the reports API answers (null = not checked yet)
  categories: [],
  location: null, // {lon, lat, accuracy_m | null, source: 'gps' | 'pin'}
  photos: [], // resized Blobs
  marker: null,
  current: null, // the idempotency key of the report submitted last: the line under the form is about it
  points: null,
  statuses: {}, // idempotency key → the report as the server shows it now
};

function label(obj) {
  if (!obj) return '';
  const en = getLang() === 'en';
  if (typeof obj.name === 'object' && obj.name) return (en ? obj.name.en : obj.name['zh-CN'] ?? obj.name.zh) ?? Object.values(obj.name)[0];
  return (en ? obj.name_en : obj.name_zh) ?? obj.name ?? obj.code;
}

/** Categories may come flat or grouped ({…, categories|children: […]}); keep the groups. */
function normaliseCategories(body) {
  const list = Array.isArray(body) ? body : body?.categories ?? body?.groups ?? body?.items ?? [];
  return list.map((c) => {
    const kids = c.categories ?? c.children;
    return Array.isArray(kids) ? { group: c, items: kids } : { group: null, items: [c] };
  });
}

async function probe() {
  try {
    rider.categories = normaliseCategories(await api('/api/report-categories', { expectFailure: true }));
    localStorage.setItem('gridmap.categories', JSON.stringify(rider.categories));
    rider.available = true;
  } catch (err) {
    // Only a 404 means this server has no reports API; no network (no status) is just offline.
    rider.available = err.status === 404 ? false : null;
    rider.categories = JSON.parse(localStorage.getItem('gridmap.categories') || '[]');
  }
}

function renderCategories() {
  const select = $('#category');
  const current = select.value;
  select.replaceChildren(h('option', { value: '' }, t('choose_category')));
  for (const { group, items } of rider.categories) {
    const options = items.filter((c) => c.code).map((c) => h('option', { value: c.code }, label(c)));
    select.append(group ? h('optgroup', { label: label(group) }, ...options) : options[0] ?? '');
  }
  select.value = current;
}

function renderLocation() {
  const el = $('#report-location');
  const loc = rider.location;
  if (!loc) { el.textContent = t('no_location'); el.className = 'muted'; return; }
  const parts = [`${loc.lat.toFixed(6)}, ${loc.lon.toFixed(6)}`];
  if (loc.accuracy_m !== null) parts.push(t('accuracy', loc.accuracy_m));
  if (loc.accuracy_m !== null && loc.accuracy_m > POOR_ACCURACY_M) parts.push(t('accuracy_poor'));
  el.textContent = parts.join(' · ');
  el.className = loc.accuracy_m !== null && loc.accuracy_m > POOR_ACCURACY_M ? 'error' : 'muted';
}

function setLocation(lon, lat, accuracy_m, source, app) {
  rider.location = { lon, lat, accuracy_m, source };
  if (!rider.marker) {
    rider.marker = new maplibregl.Marker({ draggable: true, color: '#b3261e' }).setLngLat([lon, lat]).addTo(app.map);
    rider.marker.on('dragend', () => {
      const p = rider.marker.getLngLat();
      // A pin moved by hand is the rider's judgement, not a GPS fix: it has no GPS accuracy.
      rider.location = { lon: p.lng, lat: p.lat, accuracy_m: null, source: 'pin' };
      renderLocation();
    });
  } else {
    rider.marker.setLngLat([lon, lat]);
  }
  renderLocation();
}

async function send(item) {
  const headers = { 'Idempotency-Key': item.key };
  let body = item.report;
  if (item.photos.length) {
    body = new FormData();
    body.append('report', new Blob([JSON.stringify(item.report)], { type: 'application/json' }));
    item.photos.forEach((p, i) => body.append('photo', p, `photo-${i + 1}.jpg`)); // the server's part names: `report` and `photo` (×3)
  }
  try {
    return await api('/api/reports', { method: 'POST', body, headers, token: rider.session?.token, expectFailure: true });
  } catch (err) {
    // The outbox shows the refusal in the page's language (from its code), not the server's English.
    if (err instanceof ApiError) throw Object.assign(err, { message: refusalText(err.body, err.status) });
    throw Object.assign(new Error(err.message), { status: 0 }); // no network
  }
}

async function flush(options = {}) {
  const results = await queue.flush(send, { ...options, onChange: renderQueues });
  await renderQueues();
  window.__lastFlush = results;
  return results;
}

function resultLine(answer) {
  if (!answer) return '';
  const parts = [t('sent', answer.id)];
  if (answer.grid_name || answer.grid_code) parts.push(t('assigned', `${answer.grid_name ?? ''} ${answer.grid_code ?? ''}`.trim()));
  return parts.join(' · ');
}

/** One outbox entry's own state, in words: 待发送 / 发送中 / 被拒绝：reason. */
function entryState(item) {
  if (item.state === 'failed') return `${t('pending_state_failed')}：${item.last_error ?? ''}`;
  if (item.state === 'sending') return t('pending_state_sending');
  return item.attempts ? t('pending_state_retry', item.attempts) : t('pending_state_pending');
}

/** The report's current status (refreshed from the server when online) and its latest step. */
function statusLine(r) {
  const now = rider.statuses[r.key];
  const status = now?.status ?? r.answer?.status;
  if (!status) return [];
  const last = now?.history?.[now.history.length - 1];
  return [h('span', { class: 'report-status', dataset: { status } }, ` · ${t('status')}: ${statusLabel(status)}`),
    last?.note ? ` · ${last.note}` : ''];
}

/** Ask the server how the rider's recent reports are doing (public view: status and history). */
async function refreshStatuses() {
  if (!navigator.onLine || !rider.session) return;
  const sent = (await queue.sent()).filter((r) => !r.path).sort((a, b) => b.sent_at.localeCompare(a.sent_at)).slice(0, 20);
  for (const r of sent) {
    if (!r.answer?.id) continue;
    try { rider.statuses[r.key] = await api(`/api/reports/${r.answer.id}`, { token: rider.session.token, expectFailure: true }); } catch { /* offline: keep what we know */ }
  }
  await renderQueues();
}

// The outbox also carries a grid worker's door-knocking visits (rounds.js: items with a `path`).
function itemTitle(item) {
  return item.path ? t('outbox_visit', item.report.building_id) : item.report.description.slice(0, 40);
}

async function renderQueues() {
  const [outbox, sent] = await Promise.all([queue.pending(), queue.sent()]);
  $('#outbox').replaceChildren(...(outbox.length ? outbox.map((item) => h('li', { dataset: { key: item.key, state: item.state } },
    h('div', { class: 'name' }, itemTitle(item)),
    h('div', { class: `sub state-${item.state}` },
      h('span', { class: 'entry-state' }, entryState(item)),
      ' ', item.state === 'sending' ? null : h('button', { type: 'button', class: 'link', onclick: () => flush({ includeFailed: true }) }, t('retry_now')),
      item.state === 'failed' ? h('button', { type: 'button', class: 'link', onclick: async () => { await queue.remove(item.key); renderQueues(); } }, t('remove')) : null)))
    : [h('li', { class: 'muted' }, t('pending_none'))]));
  $('#sent').replaceChildren(...sent.sort((a, b) => b.sent_at.localeCompare(a.sent_at)).map((r) => h('li', { dataset: { key: r.key, state: 'sent' } },
    h('div', { class: 'name' }, itemTitle(r)),
    h('div', { class: 'sub' }, resultLine(r.answer), ...statusLine(r)))));
  // The line under the form speaks of the report just submitted, never of an earlier one: a
  // report queued offline says it waits, even when the previous one was delivered.
  const result = $('#report-result');
  const key = rider.current;
  const mine = key && outbox.find((i) => i.key === key);
  const done = key && sent.find((r) => r.key === key);
  if (mine) {
    result.textContent = mine.state === 'failed' ? `${t('send_failed')}${mine.last_error ?? ''}` : mine.state === 'sending' ? t('sending') : t('queued');
    result.className = mine.state === 'failed' ? 'error' : '';
    result.dataset.state = mine.state;
  } else if (done) {
    result.textContent = resultLine(done.answer);
    result.className = 'ok';
    result.dataset.state = 'sent';
  }
  // The banner, on every tab: how many reports still wait to go.
  const waiting = outbox.filter((i) => i.state !== 'failed').length;
  const banner = $('#outbox-banner');
  banner.hidden = waiting === 0;
  banner.textContent = t('outbox_waiting', waiting);
  banner.dataset.count = String(waiting);
  window.__outbox = outbox.map((i) => ({ key: i.key, state: i.state }));
}

/** Open reports of the same category near the point, if the reports API can list them. */
async function possibleDuplicates(category, loc) {
  const dLat = DUPLICATE_RADIUS_M / 111_320;
  const dLon = dLat / Math.cos((loc.lat * Math.PI) / 180);
  const bbox = [loc.lon - dLon, loc.lat - dLat, loc.lon + dLon, loc.lat + dLat].map((v) => v.toFixed(6)).join(',');
  try {
    const body = await api(`/api/reports?category=${encodeURIComponent(category)}&status=${OPEN_STATUSES}&bbox=${bbox}&limit=5`, {
      token: rider.session?.token, expectFailure: true,
    });
    const list = Array.isArray(body) ? body : body?.items ?? body?.reports ?? body?.features?.map((f) => ({ id: f.id, ...f.properties })) ?? [];
    return list.slice(0, 5);
  } catch {
    return []; // offline or not listable: the server still returns possible_duplicates on intake
  }
}

function askDuplicates(list) {
  const box = $('#duplicates');
  return new Promise((resolve) => {
    box.hidden = false;
    box.replaceChildren(
      h('p', {}, t('dup_title')),
      h('ul', {}, ...list.map((r) => h('li', {}, `#${r.id} ${r.description ?? r.category ?? ''}`.slice(0, 60)))),
      h('p', { class: 'row' },
        h('button', { type: 'button', class: 'primary', onclick: () => { box.hidden = true; resolve(true); } }, t('dup_continue')),
        h('button', { type: 'button', onclick: () => { box.hidden = true; resolve(false); } }, t('dup_cancel'))),
    );
    box.scrollIntoView?.({ block: 'nearest' });
  });
}

async function submit(e, app) {
  e.preventDefault();
  const form = e.target;
  const result = $('#report-result');
  const category = form.category.value;
  const description = form.description.value.trim();
  const missing = !category ? 'need_category' : !description ? 'need_description' : !rider.location ? 'need_location' : null;
  if (missing) { result.textContent = t(missing); result.className = 'error'; return; }
  // The server refuses a GPS fix worse than 100 m (issue 5): ask for the pin instead of queueing a report it will reject.
  if (rider.location.accuracy_m !== null && rider.location.accuracy_m > POOR_ACCURACY_M) { result.textContent = t('accuracy_poor'); result.className = 'error'; return; }
  result.className = '';
  const loc = rider.location;
  const location = { lon: Number(loc.lon.toFixed(7)), lat: Number(loc.lat.toFixed(7)), crs: 'wgs84' };
  if (loc.accuracy_m !== null) location.accuracy_m = Math.round(loc.accuracy_m * 10) / 10;
  const report = { category, description, location };
  if (navigator.onLine) {
    const dups = await possibleDuplicates(category, loc);
    if (dups.length && !(await askDuplicates(dups))) return;
  }
  const item = await queue.enqueue(report, rider.photos);
  rider.current = item.key;
  form.reset();
  rider.photos = [];
  $('#photo-previews').replaceChildren();
  await renderQueues();
  if (navigator.onLine) await flush();
  app.map?.triggerRepaint();
}

async function loadPoints() {
  if (!rider.session || !navigator.onLine) return;
  try {
    const body = await api('/api/points/me', { token: rider.session.token, expectFailure: true });
    rider.points = body?.points ?? body?.total ?? body?.balance ?? null;
  } catch { rider.points = null; }
}

function render() {
  renderCategories();
  renderLocation();
  const loggedIn = !!rider.session;
  $('#report-unavailable').hidden = rider.available !== false;
  $('#login-form').hidden = loggedIn;
  $('#rider').hidden = !loggedIn;
  if (loggedIn) {
    $('#rider-who').textContent = t('logged_in_as', rider.session.name);
    $('#rider-points').textContent = rider.points === null ? '' : t('points', rider.points);
  }
  renderQueues();
}

export function initRider(app) {
  rider.session = getSession();
  onSession((s) => { rider.session = s; render(); });
  app.rider = rider;
  app.rerender.push(render);
  app.flushOutbox = flush;

  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = e.target;
    const error = $('#login-error');
    error.textContent = '';
    try {
      await login(form.elements.namedItem('name').value.trim(), form.elements.namedItem('password').value);
      form.reset();
      await loadPoints();
      render();
      flush();
    } catch (err) {
      if (err.status === 404) { rider.available = false; render(); }
      error.textContent = err.status === 401 || err.status === 400 ? t('login_failed') : t('api_error') + err.message;
    }
  });
  $('#logout').addEventListener('click', () => logout());
  $('#use-gps').addEventListener('click', () => {
    if (!navigator.geolocation) return;
    $('#report-location').textContent = t('locating');
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        setLocation(pos.coords.longitude, pos.coords.latitude, pos.coords.accuracy, 'gps', app);
        app.map.easeTo({ center: [pos.coords.longitude, pos.coords.latitude], zoom: Math.max(app.map.getZoom(), 16) });
      },
      () => { $('#report-location').textContent = t('geo_denied'); },
      { enableHighAccuracy: true, timeout: 20000, maximumAge: 0 },
    );
  });
  $('#use-pin').addEventListener('click', () => {
    const c = app.map.getCenter();
    setLocation(c.lng, c.lat, null, 'pin', app);
  });
  app.onMapClick.report = (e) => { if (rider.session) setLocation(e.lngLat.lng, e.lngLat.lat, null, 'pin', app); };
  $('#photos').addEventListener('change', async (e) => {
    const files = [...e.target.files];
    const result = $('#report-result');
    if (files.length > MAX_PHOTOS) result.textContent = t('photos_too_many');
    rider.photos = await Promise.all(files.slice(0, MAX_PHOTOS).map(resize));
    $('#photo-previews').replaceChildren(...rider.photos.map((b) => h('img', { src: URL.createObjectURL(b), alt: '' })));
  });
  $('#report-form').addEventListener('submit', (e) => submit(e, app));
  // Back online, or every 30 s while something waits: send the outbox (same keys as before).
  window.addEventListener('online', () => flush());
  setInterval(async () => { if (navigator.onLine && (await queue.waiting()) > 0) flush(); }, 30_000);
  $('#outbox-banner').addEventListener('click', () => app.showTab('report'));
  window.addEventListener('gridmap:tab', (e) => {
    if (e.detail === 'report' && rider.marker === null && rider.session) render();
    if (e.detail === 'report') refreshStatuses();
  });

  render();
  probe().then(async () => { await loadPoints(); render(); if (rider.session && navigator.onLine) flush(); });
}
