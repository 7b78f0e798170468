// The grid worker's view (网格员): their grid's open reports on the map and in a list, nearest
// deadline first, with the SLA deadline highlighted (overdue in red, due within 24 h in amber);
// a report's card offers exactly the transitions the server's workflow allows from its status
// (server/src/reports/workflow.rs), each sent with `If-Match` on the report's version. A 412 means
// someone else acted first: the card reloads and says so.
import { t, statusLabel, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, loginForm, logout, call } from './session.js';

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

const worker = { grids: [], reports: [], selected: null, message: null, loaded: false };

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

function ensureLayers(map) {
  if (!map || map.getSource('gm-work')) return;
  map.addSource('gm-work-grid', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'gm-work-grid', type: 'line', source: 'gm-work-grid', paint: { 'line-color': '#0b8043', 'line-width': 3, 'line-dasharray': [2, 1] } });
  map.addSource('gm-work', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({
    id: 'gm-work', type: 'circle', source: 'gm-work',
    paint: {
      'circle-radius': ['case', ['get', 'selected'], 10, 7],
      'circle-color': ['match', ['get', 'deadline'], 'overdue', '#d93025', 'soon', '#f29900', '#1a73e8'],
      'circle-stroke-color': ['case', ['get', 'selected'], '#202124', '#ffffff'], 'circle-stroke-width': 2,
    },
  });
}

function setVisible(app, visible) {
  const map = app.map;
  if (!map?.getLayer('gm-work')) return;
  for (const id of ['gm-work', 'gm-work-grid']) map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
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
  const rank = { overdue: 0, soon: 1, ok: 2, none: 3 };
  all.sort((a, b) => rank[deadlineState(a)] - rank[deadlineState(b)] || (a.due_at ?? '').localeCompare(b.due_at ?? '') || b.id - a.id);
  worker.reports = all;
  worker.loaded = true;
  ensureLayers(app.map);
  app.map?.getSource('gm-work')?.setData(features());
  render(app);
  window.__workerLoaded = (window.__workerLoaded ?? 0) + 1;
}

async function openReport(app, id, { fly = true } = {}) {
  const r = await call(`/api/reports/${id}`);
  if (!r.ok) { worker.message = { kind: 'error', text: t('api_error') + refusalText(r.data, r.status) }; render(app); return; }
  worker.selected = { ...r.data, etag: r.etag };
  worker.message = null;
  app.map?.getSource('gm-work')?.setData(features());
  if (fly && r.data.location) app.map?.easeTo({ center: [r.data.location.lon, r.data.location.lat], zoom: Math.max(app.map.getZoom(), 16) });
  render(app);
}

async function act(app, to, form) {
  const report = worker.selected;
  const body = { to };
  const note = form.elements.namedItem('note').value.trim();
  if (note) body.note = note;
  if (to === 'cancelled') {
    body.reason = form.elements.namedItem('reason').value;
    if (body.reason === 'duplicate') body.duplicate_of = Number(form.elements.namedItem('duplicate_of').value);
  }
  const r = await call(`/api/reports/${report.id}/transitions`, { method: 'POST', body, headers: { 'If-Match': report.etag ?? `"${report.version}"` } });
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
    next.includes('cancelled') ? h('label', {}, h('span', {}, t('cancel_reason')),
      h('select', { name: 'reason', onchange: (e) => { e.target.form.querySelector('.duplicate-of').hidden = e.target.value !== 'duplicate'; } },
        ...CANCEL_REASONS.map((c) => h('option', { value: c }, t(`cancel_${c}`))))) : null,
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
    next.length ? form : h('p', { class: 'muted', id: 'report-waiting' }, r.waiting_for ? t(`waiting_${r.waiting_for}`) : t('no_actions')),
    h('h3', {}, t('history')),
    h('ol', { class: 'history' }, ...(r.history ?? []).map((e) => h('li', {},
      `${fmtTime(e.created_at)} · ${statusLabel(e.to_status)}`, e.actor ? ` · ${e.actor}` : '', e.note ? ` · ${e.note}` : ''))),
    h('p', { class: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => { worker.selected = null; worker.message = null; app.map?.getSource('gm-work')?.setData(features()); render(app); } }, t('back'))),
  );
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
  $('#worker-list').replaceChildren(...(worker.reports.length ? worker.reports.map((r) => h('li', {
    tabindex: 0, dataset: { id: r.id, status: r.status, deadline: deadlineState(r) }, class: `deadline-${deadlineState(r)}`,
    onclick: () => openReport(app, r.id),
  },
  h('div', { class: 'name' }, `#${r.id} ${r.category_name}`, h('span', { class: `badge status-${r.status}` }, statusLabel(r.status))),
  h('div', { class: 'sub' }, (r.description || '').slice(0, 60)),
  h('div', { class: `sub deadline deadline-${deadlineState(r)}` }, deadlineText(r))))
    : [h('li', { class: 'muted' }, worker.loaded ? t('no_open_reports') : t('loading'))]));
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
  onSession(() => { worker.reports = []; worker.selected = null; worker.loaded = false; if (app.state.tab === 'worker') refresh(); else render(app); });
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
