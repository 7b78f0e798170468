// The grid worker's view (网格员): their grid's open reports on the map and in a list, nearest
// deadline first, with the SLA deadline highlighted (overdue in red, due within 24 h in amber);
// a report's card offers exactly the transitions the server's workflow allows from its status
// (server/src/reports/workflow.rs), each sent with `If-Match` on the report's version. A 412 means
// someone else acted first: the card reloads and says so.
import { t, statusLabel, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, loginForm, logout, call } from './session.js';
import { resize, thumbnails, forgetPhotos, MAX_PHOTOS } from './photo.js';
import { follow } from './live.js';

const ROLES = ['grid_worker', 'admin'];
const OPEN = ['submitted', 'accepted', 'dispatched', 'handling', 'feedback', 'verified', 'rework', 'parked'];
/** The server's workflow (workflow::next_statuses). */
export const NEXT = {
  submitted: ['accepted', 'cancelled'],
  accepted: ['dispatched', 'cancelled', 'parked'],
  dispatched: ['handling', 'cancelled', 'parked'],
  handling: ['feedback', 'parked'],
  feedback: ['verified', 'rework'],
  rework: ['handling'],
  verified: ['closed'],
  parked: ['handling', 'cancelled'],
};
const CANCEL_REASONS = ['invalid', 'out_of_remit', 'duplicate', 'other'];
const SOON_MS = 24 * 3600 * 1000;

const worker = { grids: [], reports: [], selected: null, message: null, loaded: false, feed: null, live: false, fresh: new Set() };

/** `overdue`, `soon`, `ok` or `none` (not dispatched yet: the SLA clock has not started). */
export function deadlineState(report, now = Date.now()) {
  if (!report.due_at || report.status === 'closed' || report.status === 'cancelled') return 'none';
  const left = Date.parse(report.due_at) - now;
  if (left < 0) return 'overdue';
  return left < SOON_MS ? 'soon' : 'ok';
}

function deadlineText(report) {
  const s = deadlineState(report);
  if (s === 'none') return t('sla_not_started');
  const hours = Math.round(Math.abs(Date.parse(report.due_at) - Date.now()) / 3600_000);
  return s === 'overdue' ? t('sla_overdue', hours) : t('sla_due_in', hours);
}

function features() {
  return {
    type: 'FeatureCollection',
    features: worker.reports.filter((r) => r.location).map((r) => ({
      type: 'Feature', id: r.id, geometry: { type: 'Point', coordinates: [r.location.lon, r.location.lat] },
      properties: { id: r.id, status: r.status, deadline: deadlineState(r), selected: r.id === worker.selected?.id },
    })),
  };
}

/**
 * The report dots' colours: the style's own `reports` layer (open red, in hand amber, done
 * green), whose colours the legend shows — so the worker's dots follow the legend. The deadline
 * is the ring: red when overdue, amber within 24 h.
 */
const STATUS_COLOURS = ['match', ['get', 'status'], ['submitted', 'accepted', 'rework'], '#c0392b', ['dispatched', 'handling', 'feedback', 'parked'], '#e6a100', '#2e8b57'];

/** Reports at one spot (within about a metre) are one cluster: `[lon, lat, reports]` for two or more. */
export function clusters(reports) {
  const groups = new Map();
  for (const r of reports) {
    if (!r.location) continue;
    const key = `${r.location.lon.toFixed(5)},${r.location.lat.toFixed(5)}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  return [...groups.values()].filter((g) => g.length > 1).map((g) => [g[0].location.lon, g[0].location.lat, g]);
}

const markers = [];

/** A count badge over each cluster (HTML markers: the style has no glyphs for map text). */
function renderClusters(app) {
  for (const m of markers.splice(0)) m.remove();
  const map = app.map;
  if (!map || app.state.tab !== 'worker' || !hasRole(ROLES)) return;
  const Marker = app.maplibregl?.Marker;
  if (!Marker) return;
  for (const [lon, lat, group] of clusters(worker.reports)) {
    const el = h('button', {
      type: 'button', class: 'report-cluster', dataset: { count: group.length, ids: group.map((r) => r.id).join(',') },
      'aria-label': t('cluster_label', group.length),
      onclick: (e) => { e.stopPropagation(); openReport(app, group[0].id, { fly: false }); },
    }, String(group.length));
    markers.push(new Marker({ element: el }).setLngLat([lon, lat]).addTo(map));
  }
}

function ensureLayers(map) {
  if (!map || map.getSource('gm-work')) return;
  map.addSource('gm-work-grid', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'gm-work-grid', type: 'line', source: 'gm-work-grid', paint: { 'line-color': '#0b8043', 'line-width': 3, 'line-dasharray': [2, 1] } });
  map.addSource('gm-work', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({
    id: 'gm-work', type: 'circle', source: 'gm-work',
    paint: {
      'circle-radius': ['case', ['get', 'selected'], 10, 7],
      'circle-color': map.getLayer('reports') ? map.getPaintProperty('reports', 'circle-color') : STATUS_COLOURS,
      'circle-stroke-color': ['case', ['get', 'selected'], '#202124',
        ['match', ['get', 'deadline'], 'overdue', '#d93025', 'soon', '#f29900', '#ffffff']],
      'circle-stroke-width': ['match', ['get', 'deadline'], 'overdue', 4, 'soon', 3, 2],
    },
  });
}

function setVisible(app, visible) {
  const map = app.map;
  if (!map?.getLayer('gm-work')) return;
  for (const id of ['gm-work', 'gm-work-grid']) map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
  renderClusters(app);
}

async function loadGrids(app) {
  const ids = getSession()?.grid_ids ?? [];
  const grids = [];
  for (const id of ids) {
    const r = await call(`/ogc/collections/grids/items/${id}`);
    if (r.ok) grids.push(r.data);
  }
  worker.grids = grids;
  ensureLayers(app.map);
  app.map?.getSource('gm-work-grid')?.setData({ type: 'FeatureCollection', features: grids });
}

export async function loadReports(app) {
  const ids = getSession()?.grid_ids ?? [];
  // A worker sees their grids; an admin without grids sees every open report.
  const queries = ids.length ? ids.map((g) => `grid=${g}&`) : [''];
  const all = [];
  for (const q of queries) {
    const r = await call(`/api/reports?${q}status=${OPEN.join(',')}&limit=500`);
    if (!r.ok) { worker.message = { kind: 'error', text: t('api_error') + refusalText(r.data, r.status) }; break; }
    all.push(...r.data.items);
  }
  worker.reports = sorted(all);
  worker.loaded = true;
  startFeed(app);
  ensureLayers(app.map);
  app.map?.getSource('gm-work')?.setData(features());
  render(app);
  window.__workerLoaded = (window.__workerLoaded ?? 0) + 1;
}

/** Overdue first, then the nearest deadline, then the newest. */
function sorted(reports) {
  const rank = { overdue: 0, soon: 1, ok: 2, none: 3 };
  return reports.sort((a, b) => rank[deadlineState(a)] - rank[deadlineState(b)] || (a.due_at ?? '').localeCompare(b.due_at ?? '') || b.id - a.id);
}

/**
 * Follow the live feed while a worker (or admin) is logged in: new reports of their grids appear,
 * moved ones (a step, a grid re-drawn) change or leave the list, without a reload. The server
 * sends a worker the events of their own grids, and a move to the grid left and the grid entered.
 */
function startFeed(app) {
  if (worker.feed || !hasRole(ROLES)) return;
  worker.feed = follow({
    path: '/api/reports/stream',
    token: () => (hasRole(ROLES) ? getSession()?.token : null),
    onEvent: (name, data) => { if (name === 'report') applyChange(app, JSON.parse(data)); },
    // After a gap, re-read the list too: what the server could not replay is not lost.
    onConnect: (n) => { worker.live = true; if (n > 1) loadReports(app); else render(app); },
    onDisconnect: () => { worker.live = false; render(app); },
  });
  window.__workerFeed = worker.feed.state;
}

function stopFeed() {
  worker.feed?.stop();
  worker.feed = null;
  worker.live = false;
}

/** One feed event (`ReportChange`: kind, id, status, grid_id, previous_grid_id, lon, lat, version). */
async function applyChange(app, change) {
  const ids = getSession()?.grid_ids ?? [];
  const mine = ids.length ? ids.includes(change.grid_id) : true;
  const known = worker.reports.find((r) => r.id === change.id);
  if (mine && OPEN.includes(change.status)) {
    if (known?.version === change.version) return; // our own step, already shown
    const r = await call(`/api/reports/${change.id}`);
    if (!r.ok) return;
    worker.reports = sorted([...worker.reports.filter((x) => x.id !== change.id), r.data]);
    worker.fresh.add(change.id);
  } else {
    if (!known) return;
    worker.reports = worker.reports.filter((x) => x.id !== change.id);
  }
  // The open card changed behind the worker's back: show it as it is now, and say so.
  if (worker.selected?.id === change.id && worker.selected.version !== change.version) {
    await openReport(app, change.id, { fly: false });
    worker.message = { kind: 'ok', text: t('report_updated_live', statusLabel(change.status)) };
  }
  app.map?.getSource('gm-work')?.setData(features());
  render(app);
  window.__liveApplied = (window.__liveApplied ?? 0) + 1;
}

async function openReport(app, id, { fly = true } = {}) {
  const r = await call(`/api/reports/${id}`);
  if (!r.ok) { worker.message = { kind: 'error', text: t('api_error') + refusalText(r.data, r.status) }; render(app); return; }
  if (worker.selected?.id !== id) forgetPhotos();
  worker.selected = { ...r.data, etag: r.etag };
  worker.message = null;
  app.map?.getSource('gm-work')?.setData(features());
  if (fly && r.data.location) app.map?.easeTo({ center: [r.data.location.lon, r.data.location.lat], zoom: Math.max(app.map.getZoom(), 16) });
  render(app);
}

async function act(app, to, form) {
  const report = worker.selected;
  const reason = form.querySelector('.cancel-reason');
  if (to === 'cancelled' && reason?.hidden) {
    // First tap on 注销: ask why; the button now confirms.
    reason.hidden = false;
    form.querySelector('.duplicate-of').hidden = form.elements.namedItem('reason').value !== 'duplicate';
    form.querySelector('[data-to=cancelled]').textContent = t('confirm_cancel');
    return;
  }
  const body = { to };
  const note = form.elements.namedItem('note').value.trim();
  if (note) body.note = note;
  if (to === 'cancelled') {
    body.reason = form.elements.namedItem('reason').value;
    if (body.reason === 'duplicate') body.duplicate_of = Number(form.elements.namedItem('duplicate_of').value);
  }
  // Feedback may carry "after" photos: then the step goes as multipart (a `transition` JSON part
  // and `photo` parts, shrunk on the phone like the rider's), stored with the step or not at all.
  const files = to === 'feedback' ? [...(form.elements.namedItem('after_photo')?.files ?? [])].slice(0, MAX_PHOTOS) : [];
  let payload = body;
  if (files.length) {
    payload = new FormData();
    payload.append('transition', new Blob([JSON.stringify(body)], { type: 'application/json' }));
    for (const [i, blob] of (await Promise.all(files.map(resize))).entries()) payload.append('photo', blob, `after-${i + 1}.jpg`);
  }
  const r = await call(`/api/reports/${report.id}/transitions`, { method: 'POST', body: payload, headers: { 'If-Match': report.etag ?? `"${report.version}"` } });
  if (r.ok) {
    worker.message = { kind: 'ok', text: t('transition_done', statusLabel(to)) };
    worker.selected = { ...r.data, etag: r.etag };
    await loadReports(app);
    return;
  }
  if (r.status === 412) {
    // Someone else moved it first: show the report as it is now.
    await openReport(app, report.id, { fly: false });
    worker.message = { kind: 'error', text: t('report_conflict', statusLabel(worker.selected?.status)) };
    await loadReports(app);
    return;
  }
  worker.message = { kind: 'error', text: `${t('transition_refused')}${refusalText(r.data, r.status)}` };
  render(app);
}

function fmtTime(iso) {
  return iso ? new Date(iso).toLocaleString(document.documentElement.lang, { timeZone: 'Asia/Shanghai', hour12: false }) : '—';
}

function renderCard(app) {
  const card = $('#report-card');
  const r = worker.selected;
  if (!r) { card.hidden = true; return; }
  card.hidden = false;
  // The server says what this viewer may do now (`allowed_next`: role, grid, four eyes); the
  // status table is only the fallback for a server that does not send it yet.
  const next = Array.isArray(r.allowed_next) ? r.allowed_next : NEXT[r.status] ?? [];
  const form = h('form', { class: 'stack actions', onsubmit: (e) => e.preventDefault() },
    h('label', {}, h('span', {}, t('note')), h('textarea', { name: 'note', rows: 2, maxlength: 2000 })),
    // The reason (and a duplicate's original) only once the worker has chosen 注销.
    next.includes('cancelled') ? h('label', { class: 'cancel-reason', hidden: true }, h('span', {}, t('cancel_reason')),
      h('select', { name: 'reason', onchange: (e) => { e.target.form.querySelector('.duplicate-of').hidden = e.target.value !== 'duplicate'; } },
        ...CANCEL_REASONS.map((c) => h('option', { value: c }, t(`cancel_${c}`))))) : null,
    next.includes('feedback') ? h('label', {}, h('span', {}, t('after_photo')),
      h('input', { name: 'after_photo', type: 'file', accept: 'image/*', capture: 'environment', multiple: true })) : null,
    // Only a duplicate names the report it duplicates.
    next.includes('cancelled') ? h('label', { class: 'duplicate-of', hidden: CANCEL_REASONS[0] !== 'duplicate' },
      h('span', {}, t('duplicate_of')), h('input', { name: 'duplicate_of', type: 'number', min: 1 })) : null,
    h('div', { class: 'row' }, ...next.map((to) => h('button', {
      type: 'button', class: to === 'cancelled' || to === 'rework' ? '' : 'primary', dataset: { to },
      onclick: (e) => act(app, to, e.target.form),
    }, t(`action_${to}`)))));
  fill(card,
    h('h2', {}, `#${r.id} ${r.category_name}`, h('span', { class: `badge status-${r.status}` }, statusLabel(r.status))),
    worker.message ? h('p', { class: worker.message.kind === 'error' ? 'error' : 'ok', role: 'status', id: 'report-message' }, worker.message.text) : null,
    h('dl', {},
      h('dt', {}, t('description')), h('dd', {}, r.description || '—'),
      h('dt', {}, t('sla')), h('dd', { class: `deadline deadline-${deadlineState(r)}` }, deadlineText(r), r.due_at ? ` (${fmtTime(r.due_at)})` : ''),
      h('dt', {}, t('reported_at')), h('dd', {}, fmtTime(r.created_at)),
      h('dt', {}, t('reporter')), h('dd', {}, r.reporter?.display_name ?? r.reporter?.name ?? '—'),
      h('dt', {}, t('grid_code')), h('dd', {}, r.grid_code ?? t('unassigned'))),
    sameSpot(app, r),
    thumbnails(`/api/reports/${r.id}/photos`, r.photo_count, 'photos_before'),
    thumbnails(`/api/reports/${r.id}/feedback-photos`, r.feedback_photo_count, 'photos_after'),
    next.length ? form : null,
    // Some steps may be someone else's even when others are offered (one's own report: 注销 is
    // offered, 受理 waits for a colleague), so the reason shows beside the offered steps.
    r.waiting_for || !next.length ? h('p', { class: 'muted', id: 'report-waiting' }, r.waiting_for ? t(waitingKey(r)) : t('no_actions')) : null,
    h('h3', {}, t('history')),
    h('ol', { class: 'history' }, ...(r.history ?? []).map((e) => h('li', {},
      `${fmtTime(e.created_at)} · ${statusLabel(e.to_status)}`, e.actor ? ` · ${e.actor}` : '', e.note ? ` · ${e.note}` : ''))),
    h('p', { class: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => { worker.selected = null; worker.message = null; app.map?.getSource('gm-work')?.setData(features()); render(app); } }, t('back'))),
  );
}

/** The other open reports at this report's spot (a cluster), each a tap away. */
function sameSpot(app, r) {
  const group = clusters(worker.reports).find(([, , g]) => g.some((x) => x.id === r.id))?.[2];
  if (!group) return null;
  return h('p', { class: 'same-spot' }, t('same_spot', group.length), ' ',
    ...group.filter((x) => x.id !== r.id).map((x) => h('button', { type: 'button', class: 'link', dataset: { id: x.id }, onclick: () => openReport(app, x.id, { fly: false }) }, `#${x.id}`)));
}

/**
 * The server says `other_verifier` both for the four-eyes rule (one's own feedback) and for one's
 * own report (nobody accepts, verifies or closes what they filed): only a report in `feedback`
 * waits for the four eyes, so any other status is the own-report case.
 */
function waitingKey(r) {
  if (r.waiting_for === 'other_verifier' && r.status !== 'feedback') return 'waiting_own_report';
  return `waiting_${r.waiting_for}`;
}

function render(app) {
  const view = $('#view-worker');
  const allowed = hasRole(ROLES);
  const slot = view.querySelector('.login-slot');
  slot.replaceChildren(...(allowed ? [] : [loginForm('worker_login_title', ROLES)]));
  $('#worker').hidden = !allowed;
  if (!allowed) return;
  const s = getSession();
  $('#worker-who').textContent = t('logged_in_as', s.name);
  const overdue = worker.reports.filter((r) => deadlineState(r) === 'overdue').length;
  $('#worker-summary').textContent = worker.loaded
    ? t('worker_summary', worker.grids.map((g) => g.properties?.name ?? g.id).join('、') || '—', worker.reports.length, overdue)
    : t('loading');
  $('#worker-summary').append(h('span', { class: `live ${worker.live ? 'on' : 'off'}`, id: 'worker-live' }, t(worker.live ? 'live_on' : 'live_off')));
  $('#worker-list').replaceChildren(...(worker.reports.length ? worker.reports.map((r) => h('li', {
    tabindex: 0, dataset: { id: r.id, status: r.status, deadline: deadlineState(r) },
    class: `deadline-${deadlineState(r)}${worker.fresh.has(r.id) ? ' live-new' : ''}`,
    onclick: () => openReport(app, r.id),
  },
  h('div', { class: 'name' }, `#${r.id} ${r.category_name}`, h('span', { class: `badge status-${r.status}` }, statusLabel(r.status))),
  h('div', { class: 'sub' }, (r.description || '').slice(0, 60)),
  h('div', { class: `sub deadline deadline-${deadlineState(r)}` }, deadlineText(r))))
    : [h('li', { class: 'muted' }, worker.loaded ? t('no_open_reports') : t('loading'))]));
  renderClusters(app);
  renderCard(app);
}

export function initWorker(app) {
  app.worker = worker;
  const refresh = async () => {
    if (!hasRole(ROLES)) { render(app); return; }
    await loadGrids(app);
    await loadReports(app);
    const g = worker.grids[0];
    if (g && app.map) {
      const coords = g.geometry.coordinates.flat(2);
      const xs = coords.map((c) => c[0]); const ys = coords.map((c) => c[1]);
      app.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: 40, duration: 0 });
    }
  };
  onSession(() => {
    stopFeed();
    worker.reports = []; worker.selected = null; worker.loaded = false; worker.fresh.clear();
    if (app.state.tab === 'worker') refresh(); else render(app);
  });
  window.addEventListener('gridmap:tab', (e) => {
    setVisible(app, e.detail === 'worker');
    if (e.detail === 'worker') refresh();
  });
  $('#worker-refresh').addEventListener('click', () => loadReports(app));
  $('#worker-logout').addEventListener('click', () => logout());
  app.onMapClick.worker = (e) => {
    if (!app.map.getLayer('gm-work')) return;
    const hit = app.map.queryRenderedFeatures(e.point, { layers: ['gm-work'] })[0];
    if (hit) openReport(app, hit.properties.id, { fly: false });
  };
  app.rerender.push(() => render(app));
  render(app);
}
