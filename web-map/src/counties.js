// The county statistics card of the planner's and the grid worker's views (issue 22): the
// published report metrics of `GET /api/stats` — reports, closure rate (结案率), on-time closure
// rate (按期结案率), rework rate (返工率), median time to close. When the database holds more than
// one county (`GET /api/counties`) the card offers a county picker: the metrics follow it
// (`/api/stats?county=CODE`) and the map flies to the county's extent. A county-scoped account
// (its login's `county_id`, e.g. a county planner) starts on its own county.
import { t, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, call } from './session.js';

const SLOTS = { plan: ['#county-stats-plan', ['planner', 'admin']], worker: ['#county-stats-worker', ['grid_worker', 'admin']] };

// `code`: the county shown ('' for all counties; undefined until chosen for this login).
const counties = { list: null, code: undefined, stats: null, error: null, asked: 0 };
window.__counties = counties;

const percent = (rate) => (rate == null ? '–' : `${Math.round(rate * 1000) / 10}%`);
const hours = (x) => (x == null ? '–' : t('stats_hours', Math.round(x * 10) / 10));

/** The county this login starts on: its own county, else all of them. */
function startingCode() {
  const own = getSession()?.county_id;
  return counties.list.find((c) => c.id === own)?.code ?? '';
}

function flyTo(app, code, { onlyIfAway = false } = {}) {
  const bbox = counties.list?.find((c) => c.code === code)?.bbox;
  const map = app.map;
  if (!map || !Array.isArray(bbox) || bbox.length !== 4) return;
  if (onlyIfAway) {
    const { lng, lat } = map.getCenter();
    if (lng >= bbox[0] && lng <= bbox[2] && lat >= bbox[1] && lat <= bbox[3]) return;
  }
  map.fitBounds([[bbox[0], bbox[1]], [bbox[2], bbox[3]]], { padding: 40, duration: 800 });
  window.__countyFlown = code;
}

async function loadStats(app) {
  const asked = ++counties.asked;
  const r = await call(counties.code ? `/api/stats?county=${encodeURIComponent(counties.code)}` : '/api/stats');
  if (asked !== counties.asked) return; // a later choice's answer is the one to show
  counties.stats = r.ok ? r.data : null;
  // The error's stable code in the page's language, never the server's English message.
  counties.error = r.ok ? null : { body: r.data, status: r.status };
  render(app);
  window.__countyStats = { code: counties.code, reports: counties.stats?.reports ?? null };
}

/** Read the counties once, pick this login's starting county, then its statistics. */
async function open(app, tab) {
  const [, roles] = SLOTS[tab];
  if (!hasRole(roles)) { render(app); return; }
  if (!counties.list) {
    const r = await call('/api/counties');
    counties.list = r.ok ? r.data : [];
  }
  if (counties.code === undefined) {
    counties.code = startingCode();
    if (counties.code) flyTo(app, counties.code, { onlyIfAway: true });
  }
  await loadStats(app);
}

function choose(app, code) {
  counties.code = code;
  counties.stats = null;
  render(app);
  if (code) flyTo(app, code);
  loadStats(app);
}

function card(app) {
  const s = counties.stats;
  const several = (counties.list?.length ?? 0) > 1;
  const picker = several ? h('label', { class: 'row' }, h('span', {}, t('county')),
    h('select', { class: 'county-select', name: 'county', onchange: (e) => choose(app, e.target.value) },
      h('option', { value: '', selected: counties.code === '' }, t('all_counties')),
      ...counties.list.map((c) => h('option', { value: c.code, selected: counties.code === c.code }, `${c.name} (${c.code})`)))) : null;
  return [
    h('h2', {}, t('stats_title')),
    picker,
    counties.error ? h('p', { class: 'error' }, refusalText(counties.error.body, counties.error.status)) : null,
    s ? h('dl', { class: 'county-metrics', dataset: { county: counties.code ?? '' } },
      h('dt', {}, t('stats_reports')), h('dd', { class: 'stats-reports' }, String(s.reports)),
      h('dt', {}, t('stats_closure')), h('dd', {}, percent(s.closure_rate)),
      h('dt', {}, t('stats_on_time')), h('dd', {}, percent(s.on_time_closure_rate)),
      h('dt', {}, t('stats_rework')), h('dd', {}, percent(s.rework_rate)),
      h('dt', {}, t('stats_median')), h('dd', {}, hours(s.median_hours_to_close)))
      : counties.error ? null : h('p', { class: 'muted' }, t('loading')),
  ];
}

function render(app) {
  for (const [slot, roles] of Object.values(SLOTS)) {
    const el = $(slot);
    if (!el) continue;
    el.hidden = !hasRole(roles) || !counties.list;
    if (!el.hidden) fill(el, ...card(app));
  }
}

export function initCounties(app) {
  onSession(() => {
    counties.code = undefined;
    counties.stats = null;
    counties.error = null;
    if (SLOTS[app.state.tab]) open(app, app.state.tab); else render(app);
  });
  window.addEventListener('gridmap:tab', (e) => { if (SLOTS[e.detail]) open(app, e.detail); });
  app.rerender.push(() => render(app));
  if (SLOTS[app.state.tab]) open(app, app.state.tab);
}
