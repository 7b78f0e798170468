// Red building leaders (红色楼长, 一楼一长, 一年一聘): the leaders' tab. Grid workers, planners and
// admins see the coverage (buildings with households and a current leader, per grid; the
// buildings without one outlined on the map by the tiles' `leader_gaps` layer) and, by clicking
// a building, its leader's term; planners and admins assign, renew (If-Match), replace and end
// terms there. A building leader sees their buildings and the open reports around them.
import { t, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, showLoginForm, logout, call } from './session.js';

const STAFF = ['grid_worker', 'planner', 'admin'];
const MANAGERS = ['planner', 'admin'];
const ROLES = [...STAFF, 'building_leader'];
/** The tabs whose map shows the coverage layers (the style keeps them hidden elsewhere). */
export const COVERAGE_TABS = new Set(['worker', 'plan', 'leaders']);
const COVERAGE_LAYERS = ['leader-gaps', 'leader-coverage'];

const leaders = { coverage: null, building: null, mine: null, message: null };

function setCoverageVisible(map, visible) {
  for (const id of COVERAGE_LAYERS) if (map?.getLayer(id)) map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
}

/** `led / buildings` as a whole percentage, rounded down (99.96% is not 100%). */
export function coveragePercent(c) {
  return c.buildings ? Math.floor((100 * c.led) / c.buildings) : 100;
}

async function loadCoverage() {
  const r = await call('/api/leaders/coverage');
  leaders.coverage = r.ok ? r.data : null;
}

async function loadBuilding(app, id) {
  const r = await call(`/api/buildings/${id}/leaders`);
  leaders.building = r.ok ? r.data : { error: refusalText(r.data, r.status), building_id: id };
  leaders.message = null;
  render(app);
}

async function loadMine() {
  const r = await call('/api/leaders/me');
  leaders.mine = r.ok ? r.data : { buildings: [] };
}

function termLine(term) {
  return h('div', { class: 'sub' },
    `${term.name}${term.unit ? ` · ${t('leader_unit', term.unit)}` : ''} · ${term.term_start} – ${term.term_end} · `,
    h('span', { class: `badge leader-${term.state}` }, t(`leader_state_${term.state}`)),
    term.public_phone ? ` · ${term.public_phone}` : '');
}

function leaderFields(withTerm = true) {
  return [
    h('label', {}, h('span', {}, t('leader_name')), h('input', { name: 'name', required: true, maxlength: 64 })),
    h('label', {}, h('span', {}, t('leader_public_phone')), h('input', { name: 'public_phone', inputmode: 'tel' })),
    h('label', {}, h('span', {}, t('leader_phone')), h('input', { name: 'phone', inputmode: 'tel' })),
    h('label', {}, h('span', {}, t('leader_chosen_by')), h('select', { name: 'chosen_by' },
      ...['residents', 'organisation', 'self'].map((v) => h('option', { value: v }, t(`leader_chosen_${v}`))))),
    withTerm ? h('label', {}, h('span', {}, t('leader_term_end')), h('input', { name: 'term_end', type: 'date' })) : null,
  ];
}

function formBody(form) {
  const body = {};
  for (const k of ['name', 'public_phone', 'phone', 'chosen_by', 'term_end']) {
    const v = form.elements.namedItem(k)?.value?.trim();
    if (v) body[k] = v;
  }
  return body;
}

async function write(app, path, body, etag) {
  const headers = etag ? { 'If-Match': etag } : {};
  const r = await call(path, { method: 'POST', body, headers });
  leaders.message = r.ok ? { kind: 'ok', text: t('leader_saved') }
    : { kind: 'error', text: r.status === 412 ? t('leader_stale') : refusalText(r.data, r.status) };
  const id = leaders.building?.building_id;
  if (id) {
    const msg = leaders.message;
    await loadBuilding(app, id);
    leaders.message = msg;
  }
  await loadCoverage();
  // The server dropped the cached leader tiles there (the base map's stay): fetch them again
  // (the browser revalidates with the tiles' ETags). MapLibre 6's API; a source has no reload().
  if (app.map?.getSource('leaders')) app.map.refreshTiles('leaders');
  render(app);
}

/** The current (or latest) term of the building, with its ETag from GET /api/leaders/{id}. */
async function etagOf(id) {
  const r = await call(`/api/leaders/${id}`);
  return r.etag;
}

function managerActions(app, b) {
  const open = b.terms.find((x) => x.state === 'current' || x.state === 'expired');
  const out = [];
  if (!open) {
    const form = h('form', { class: 'stack leader-assign' }, h('h3', {}, t('leader_assign')), ...leaderFields(),
      h('button', { type: 'submit', class: 'primary' }, t('leader_assign')));
    form.addEventListener('submit', (e) => { e.preventDefault(); write(app, `/api/buildings/${b.building_id}/leaders`, formBody(form)); });
    out.push(form);
    return out;
  }
  const renew = h('button', { type: 'button', class: 'primary leader-renew' }, t('leader_renew'));
  renew.addEventListener('click', async () => write(app, `/api/leaders/${open.id}/renew`, {}, await etagOf(open.id)));
  const end = h('button', { type: 'button', class: 'link leader-end' }, t('leader_end'));
  end.addEventListener('click', async () => write(app, `/api/leaders/${open.id}/end`, undefined, await etagOf(open.id)));
  const replace = h('form', { class: 'stack leader-replace' }, h('h3', {}, t('leader_replace')), ...leaderFields(),
    h('button', { type: 'submit' }, t('leader_replace')));
  replace.addEventListener('submit', async (e) => {
    e.preventDefault();
    write(app, `/api/leaders/${open.id}/replace`, formBody(replace), await etagOf(open.id));
  });
  out.push(h('p', { class: 'row' }, renew, end), replace);
  return out;
}

function renderStaff(app) {
  const c = leaders.coverage;
  const gaps = (c?.grids ?? []).filter((g) => g.led < g.buildings).slice(0, 20);
  const b = leaders.building;
  return [
    h('h2', {}, t('leader_coverage_title')),
    c ? h('p', { id: 'leader-coverage-total' }, t('leader_coverage_total', c.total.led, c.total.buildings, coveragePercent(c.total))) : h('p', { class: 'muted' }, t('loading')),
    h('ul', { class: 'list', id: 'leader-gap-grids' }, ...gaps.map((g) => h('li', {},
      h('div', { class: 'name' }, `${g.name} (${g.code})`),
      h('div', { class: 'sub' }, t('leader_grid_gaps', g.led, g.buildings, g.expired, g.none))))),
    h('p', { class: 'muted' }, t('leader_click_hint')),
    b ? h('article', { class: 'card', id: 'leader-card' },
      h('h3', {}, t('leader_building', b.building_id)),
      b.error ? h('p', { class: 'error' }, b.error) : null,
      b.terms ? h('p', {}, h('span', { class: `badge leader-${b.state}` }, t(`leader_state_${b.state}`))) : null,
      ...(b.terms ?? []).slice(0, 5).map(termLine),
      leaders.message ? h('p', { class: leaders.message.kind, role: 'status' }, leaders.message.text) : null,
      ...(b.terms && hasRole(MANAGERS) ? managerActions(app, b) : [])) : null,
  ];
}

function renderLeader() {
  const mine = leaders.mine?.buildings ?? [];
  if (!leaders.mine) return [h('p', { class: 'muted' }, t('loading'))];
  if (!mine.length) return [h('p', { class: 'muted' }, t('leader_no_buildings'))];
  return mine.map((b) => h('article', { class: 'card leader-building' },
    h('h3', {}, b.building_name ?? t('leader_building', b.building_id)),
    h('p', { class: 'sub' }, `${b.unit ? `${t('leader_unit', b.unit)} · ` : ''}${b.term_start} – ${b.term_end}`),
    h('h4', {}, t('leader_open_reports', b.open_reports.length)),
    h('ul', { class: 'list' }, ...b.open_reports.map((r) => h('li', {}, `#${r.id} ${r.category} · ${Math.round(r.distance_m)} m`)))));
}

function render(app) {
  const slot = $('#view-leaders .login-slot');
  const body = $('#leaders');
  if (!hasRole(ROLES)) {
    showLoginForm(slot, 'leaders_login', ROLES);
    body.hidden = true;
    return;
  }
  fill(slot);
  body.hidden = false;
  $('#leaders-who').textContent = getSession()?.name ?? '';
  fill($('#leaders-content'), ...(hasRole(STAFF) ? renderStaff(app) : renderLeader()));
}

export function initLeaders(app) {
  app.leaders = leaders;
  const open = async () => {
    render(app);
    if (hasRole(STAFF)) await loadCoverage();
    else if (hasRole(['building_leader'])) await loadMine();
    render(app);
  };
  // Shown for staff on their tabs: decided again on every tab change and every log-in or
  // log-out (logging in on the leaders tab itself must show them at once).
  const showLayers = () => setCoverageVisible(app.map, COVERAGE_TABS.has(app.state.tab) && hasRole(STAFF));
  onSession(() => {
    leaders.coverage = null; leaders.building = null; leaders.mine = null;
    showLayers();
    if (app.state.tab === 'leaders') open(); else render(app);
  });
  window.addEventListener('gridmap:tab', (e) => {
    showLayers();
    if (e.detail === 'leaders') open();
  });
  $('#leaders-logout').addEventListener('click', () => logout());
  app.onMapClick.leaders = (e) => {
    if (!hasRole(STAFF) || !app.map.getLayer('buildings')) return;
    const hit = app.map.queryRenderedFeatures(e.point, { layers: ['buildings'] })[0];
    if (hit?.id != null) loadBuilding(app, hit.id);
  };
  app.rerender.push(() => render(app));
  render(app);
}
