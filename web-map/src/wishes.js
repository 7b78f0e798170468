// Micro-wishes (微心愿, issue 24 §1): the wishes tab. Everyone sees the board (open wishes with
// their grid and community only) and, on the map, the open wishes per grid (a circle with the
// count at a point inside the grid: never a building). A resident publishes a wish for their
// home building and confirms or withdraws their own; a volunteer claims one (then sees where
// and whom to call), completes it or releases it; a grid worker enters a wish on a resident's
// behalf (tap the building on the map), confirms, withdraws, and sees the metrics, as planners
// do (also in the worker's and planner's views). Every step sends `If-Match` with the wish's
// version and offers only the server's `allowed_next`.
import { t, getLang, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, showLoginForm, logout, call } from './session.js';

const ROLES = ['resident', 'volunteer', 'grid_worker', 'planner', 'admin'];
const PUBLISHERS = ['resident', 'grid_worker', 'admin'];
const STAFF = ['grid_worker', 'planner', 'admin'];
const LAYERS = ['gm-wishes', 'gm-wishes-label'];

const wishes = { board: [], mine: [], categories: [], stats: null, building: null, message: null, busy: false };

const empty = () => ({ type: 'FeatureCollection', features: [] });

function ensureLayers(map) {
  if (!map || map.getSource('gm-wishes')) return;
  map.addSource('gm-wishes', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'gm-wishes', type: 'circle', source: 'gm-wishes', layout: { visibility: 'none' },
    paint: {
      'circle-color': '#e8710a', 'circle-opacity': 0.85, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2,
      'circle-radius': ['interpolate', ['linear'], ['get', 'open'], 1, 9, 10, 16, 40, 24],
    },
  });
  map.addLayer({
    id: 'gm-wishes-label', type: 'symbol', source: 'gm-wishes', layout: {
      visibility: 'none', 'text-field': ['to-string', ['get', 'open']], 'text-font': ['sans-serif'], 'text-size': 12,
      'text-allow-overlap': true,
    },
    paint: { 'text-color': '#ffffff' },
  });
}

function setVisible(app, visible) {
  for (const id of LAYERS) if (app.map?.getLayer(id)) app.map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
}

async function loadCounts(app) {
  ensureLayers(app.map);
  const r = await call('/api/wishes/open-counts');
  if (r.ok) app.map?.getSource('gm-wishes')?.setData(r.data);
  setVisible(app, app.state.tab === 'wishes');
}

async function load(app) {
  const tasks = [call('/api/wishes?limit=200'), call('/api/wishes/categories')];
  if (getSession()) tasks.push(call('/api/wishes/mine'));
  const [board, categories, mine] = await Promise.all(tasks);
  wishes.board = board.ok ? board.data : [];
  wishes.categories = categories.ok ? categories.data : [];
  wishes.mine = mine?.ok ? mine.data : [];
  if (hasRole(STAFF)) {
    const s = await call('/api/wishes/stats');
    wishes.stats = s.ok ? s.data : null;
  }
  renderMetrics();
  render(app);
  loadCounts(app);
}

export function categoryLabel(id) {
  const c = wishes.categories.find((x) => x.id === id);
  if (!c) return id;
  return getLang() === 'en' ? c.name_en : c.name_zh;
}

const percent = (rate) => (rate == null ? '–' : `${Math.floor(rate * 1000) / 10}%`);
const hours = (x) => (x == null ? '–' : x < 48 ? t('wish_hours', Math.round(x * 10) / 10) : t('wish_days', Math.round(x / 2.4) / 10));

function metricsLine(s) {
  return t('wish_metrics', s.published, s.claimed, s.completed, percent(s.completion_rate), hours(s.median_hours_to_claim));
}

/** The metrics in the wishes tab, and the same block in the worker's and planner's views. */
function metricsBlock(id) {
  const s = wishes.stats;
  if (!s) return null;
  const mine = getSession()?.grid_ids ?? [];
  const grids = hasRole(['grid_worker']) ? s.grids.filter((g) => mine.includes(g.id)) : [];
  return h('section', { class: 'stack wish-metrics', id },
    h('h3', {}, t('wish_metrics_title')),
    h('p', {}, `${t('wish_total')}: ${metricsLine(s.total)}`),
    ...grids.map((g) => h('p', { class: 'sub' }, `${g.name} (${g.code}): ${metricsLine(g)}`)),
    hasRole(['planner', 'admin']) ? h('ul', { class: 'list' }, ...s.communities.slice(0, 30).map((c) => h('li', {},
      h('div', { class: 'name' }, c.name), h('div', { class: 'sub' }, metricsLine(c))))) : null);
}

function renderMetrics() {
  for (const [view, id] of [['#view-worker', 'wish-metrics-worker'], ['#view-plan', 'wish-metrics-plan']]) {
    const host = $(view);
    if (!host) continue;
    document.getElementById(id)?.remove();
    const block = hasRole(STAFF) ? metricsBlock(id) : null;
    if (block) host.append(block);
  }
}

async function act(app, wish, to, reason) {
  if (wishes.busy) return;
  wishes.busy = true;
  const body = reason ? { to, reason } : { to };
  const r = await call(`/api/wishes/${wish.id}/transitions`, { method: 'POST', body, headers: { 'If-Match': `"${wish.version}"` } });
  wishes.busy = false;
  wishes.message = r.ok ? { kind: 'ok', text: t(`wish_done_${to}`) } : { kind: 'error', text: refusalText(r.data, r.status) };
  await load(app);
}

function actions(app, wish) {
  return h('div', { class: 'row wish-actions' }, ...wish.allowed_next.map((to) => {
    const button = h('button', { type: 'button', class: `${to === 'claimed' || to === 'confirmed' || to === 'completed' ? 'primary ' : ''}wish-${to}` }, t(`wish_to_${to}`));
    button.addEventListener('click', () => {
      let reason;
      if (to === 'withdrawn' || to === 'failed') {
        reason = window.prompt(t('wish_reason_prompt'));
        if (!reason || !reason.trim()) return;
      }
      act(app, wish, to, reason);
    });
    return button;
  }));
}

function wishItem(app, wish) {
  return h('li', { class: `wish wish-state-${wish.state}`, dataset: { id: wish.id } },
    h('div', { class: 'name' }, `${categoryLabel(wish.category)} · ${wish.body}`),
    h('div', { class: 'sub' }, `${t(`wish_state_${wish.state}`)} · ${wish.community_name ?? ''} ${wish.grid_name ?? ''} · ${t('wish_desired', wish.desired_on)}`),
    wish.building ? h('div', { class: 'sub wish-building' }, t('wish_building', wish.building.name ?? `#${wish.building.id}`)) : null,
    wish.contact ? h('div', { class: 'wish-contact' }, t('wish_contact'), ' ', wish.contact.name ?? '', ' ',
      wish.contact.phone ? h('a', { href: `tel:${wish.contact.phone}` }, wish.contact.phone) : null) : null,
    wish.claimant ? h('div', { class: 'sub' }, t('wish_claimant', wish.claimant)) : null,
    wish.end_reason ? h('div', { class: 'sub' }, t('wish_end_reason', wish.end_reason)) : null,
    actions(app, wish));
}

function publishForm(app) {
  const onBehalf = !hasRole(['resident']);
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  const form = h('form', { class: 'stack', id: 'wish-form' },
    h('h3', {}, onBehalf ? t('wish_publish_for') : t('wish_publish')),
    onBehalf ? h('p', { class: 'muted', id: 'wish-building' }, wishes.building ? t('wish_building', wishes.building) : t('wish_pick_building')) : null,
    h('label', {}, h('span', {}, t('wish_category')), h('select', { name: 'category' },
      ...wishes.categories.map((c) => h('option', { value: c.id }, categoryLabel(c.id))))),
    h('label', {}, h('span', {}, t('wish_text')), h('textarea', { name: 'body', maxlength: 500, required: true, rows: 3 })),
    h('label', {}, h('span', {}, t('wish_desired_on')), h('input', { name: 'desired_on', type: 'date', value: tomorrow, required: true })),
    onBehalf ? h('label', {}, h('span', {}, t('wish_resident_name')), h('input', { name: 'resident_name', maxlength: 64, required: true })) : null,
    onBehalf ? h('label', {}, h('span', {}, t('wish_resident_phone')), h('input', { name: 'resident_phone', inputmode: 'tel', required: true })) : null,
    h('button', { type: 'submit', class: 'primary' }, t('wish_publish_button')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = (k) => form.elements.namedItem(k)?.value?.trim();
    const body = { category: value('category'), body: value('body'), desired_on: value('desired_on') };
    if (onBehalf) {
      if (!wishes.building) { wishes.message = { kind: 'error', text: t('wish_pick_building') }; render(app); return; }
      Object.assign(body, { building_id: wishes.building, resident_name: value('resident_name'), resident_phone: value('resident_phone') });
    }
    const r = await call('/api/wishes', { method: 'POST', body });
    wishes.message = r.ok ? { kind: 'ok', text: t('wish_published') } : { kind: 'error', text: refusalText(r.data, r.status) };
    await load(app);
  });
  return form;
}

function render(app) {
  const slot = $('#view-wishes .login-slot');
  const content = $('#wishes-content');
  if (!slot || !content) return;
  $('#wishes-who').textContent = getSession()?.name ?? '';
  $('#wishes-logout').hidden = !getSession();
  // The board arrives after the tab opens and renders again: a login form already shown stays.
  if (hasRole(ROLES)) fill(slot);
  else showLoginForm(slot, 'wishes_login', ROLES);
  const open = wishes.board.filter((w) => w.state === 'published');
  fill(content,
    wishes.message ? h('p', { class: wishes.message.kind, role: 'status', id: 'wish-message' }, wishes.message.text) : null,
    hasRole(PUBLISHERS) ? publishForm(app) : null,
    wishes.mine.length ? h('h3', {}, t('wish_mine')) : null,
    wishes.mine.length ? h('ul', { class: 'list', id: 'wish-mine' }, ...wishes.mine.map((w) => wishItem(app, w))) : null,
    hasRole(STAFF) ? metricsBlock('wish-metrics') : null,
    h('h3', {}, t('wish_board', open.length)),
    open.length ? h('ul', { class: 'list', id: 'wish-board' }, ...open.map((w) => wishItem(app, w))) : h('p', { class: 'muted' }, t('wish_board_empty')));
}

export function initWishes(app) {
  app.wishes = wishes;
  onSession(() => {
    wishes.mine = []; wishes.stats = null; wishes.message = null; wishes.building = null;
    renderMetrics();
    if (app.state.tab === 'wishes') load(app); else render(app);
  });
  window.addEventListener('gridmap:tab', (e) => {
    setVisible(app, e.detail === 'wishes');
    if (e.detail === 'wishes') { wishes.message = null; load(app); }
    if ((e.detail === 'worker' || e.detail === 'plan') && hasRole(STAFF) && !wishes.stats) load(app);
  });
  $('#wishes-logout').addEventListener('click', () => logout());
  app.onMapClick.wishes = (e) => {
    if (!hasRole(['grid_worker', 'admin']) || !app.map.getLayer('buildings')) return;
    const hit = app.map.queryRenderedFeatures(e.point, { layers: ['buildings'] })[0];
    if (hit?.id == null) return;
    wishes.building = hit.id;
    render(app);
  };
  app.rerender.push(() => render(app));
  render(app);
}
