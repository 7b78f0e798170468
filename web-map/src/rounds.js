// The grid worker's door-knocking and sentiment log (issue 23 §2), in the worker view: the
// running round of their grid with its progress (buildings and households), the buildings not
// yet done (tap one on the map or pick it from the list), a visit form with 在家 / 不在家 / 拒访
// and the households, and the grid's sentiment log with add-entry and 转为事件 (to a report).
// A visit goes through the rider's offline outbox (queue.js) with a key made once, so a visit
// recorded offline is sent exactly once when the phone is back online. The coverage tile layer
// (`coverage-fill`, `coverage-label`, hidden in the style) is shown while this view is open.
import { t, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { hasRole, onSession, call } from './session.js';
import * as queue from './queue.js';

const ROLES = ['grid_worker', 'planner', 'admin'];
const OUTCOMES = ['at_home', 'not_home', 'refused'];
const rounds = { round: null, buildings: [], selected: null, entries: [], tags: [], message: null, categories: [] };

function showCoverage(app, visible) {
  for (const id of ['coverage-fill', 'coverage-label']) {
    if (app.map?.getLayer(id)) app.map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
  }
}

async function load() {
  if (!hasRole(ROLES)) return;
  const list = await call('/api/rounds?status=running');
  rounds.round = list.ok && list.data.length ? list.data[0] : null;
  if (rounds.round) {
    const b = await call(`/api/rounds/${rounds.round.id}/buildings`);
    rounds.buildings = b.ok ? b.data : [];
  } else {
    rounds.buildings = [];
  }
  const [entries, tags, categories] = await Promise.all([call('/api/sentiment'), call('/api/sentiment/tags'), call('/api/report-categories')]);
  rounds.entries = entries.ok ? entries.data : [];
  rounds.tags = tags.ok ? tags.data : [];
  rounds.categories = categories.ok ? categories.data : [];
}

function tagLabel(code) {
  const tag = rounds.tags.find((x) => x.code === code);
  if (!tag) return code;
  return document.documentElement.lang.startsWith('zh') ? tag.name_zh : tag.name_en;
}

async function recordVisit(app, outcome, form) {
  const b = rounds.selected;
  const households = Number(form.elements.namedItem('households').value);
  const body = { building_id: b.building_id, households, outcome, visited_at: new Date().toISOString() };
  const item = await queue.enqueueTo(`/api/rounds/${rounds.round.id}/visits`, body);
  window.__lastVisitKey = item.key;
  rounds.message = { kind: 'ok', text: navigator.onLine ? t('visit_sending') : t('visit_queued') };
  // Counted at once on the phone; the server's answer replaces it when it comes.
  b.settled += households;
  b.done = b.settled >= b.households;
  rounds.selected = null;
  render(app);
  if (navigator.onLine) await send(app);
}

async function send(app) {
  // The rider's flush sends reports and visits alike (queue.js dispatches by item).
  const results = app.flushOutbox ? await app.flushOutbox() : [];
  window.__lastVisitFlush = results;
  if (results.some((r) => r.ok)) {
    rounds.message = { kind: 'ok', text: t('visit_sent') };
    await load();
    // The server dropped the round's cached coverage tiles: draw the new progress.
    if (app.map?.getSource('coverage')) app.map.refreshTiles('coverage');
  }
  render(app);
}

async function addEntry(app, form) {
  const body = { grid_id: app.worker?.grids?.[0]?.id ?? rounds.round?.grid_id, body: form.elements.namedItem('body').value, tags: [...form.querySelectorAll('input[name=tag]:checked')].map((i) => i.value) };
  const r = await call('/api/sentiment', { method: 'POST', body });
  rounds.message = r.ok ? { kind: 'ok', text: t('entry_saved') } : { kind: 'error', text: refusalText(r.data, r.status) };
  if (r.ok) await load();
  render(app);
}

async function toReport(app, entry, category) {
  const r = await call(`/api/sentiment/${entry.id}/report`, { method: 'POST', body: category ? { category } : {} });
  rounds.message = r.ok ? { kind: 'ok', text: t('entry_reported', r.data.report.id) } : { kind: 'error', text: refusalText(r.data, r.status) };
  if (r.ok) await load();
  render(app);
}

function suggested(entry) {
  for (const code of entry.tags) {
    const s = rounds.tags.find((x) => x.code === code)?.suggested_category;
    if (s) return s;
  }
  return rounds.categories[0]?.code;
}

function visitForm(app) {
  const b = rounds.selected;
  if (!b) return null;
  const left = Math.max(1, b.households - b.settled);
  return h('form', { class: 'stack card', id: 'visit-form', onsubmit: (e) => e.preventDefault() },
    h('h3', {}, t('visit_title', b.name ?? `#${b.building_id}`)),
    h('label', {}, h('span', {}, t('visit_households')), h('input', { name: 'households', type: 'number', min: 1, max: b.households, value: left })),
    h('div', { class: 'row' }, ...OUTCOMES.map((o) => h('button', { type: 'button', class: o === 'at_home' ? 'primary' : '', dataset: { outcome: o },
      onclick: (e) => recordVisit(app, o, e.target.form) }, t(`outcome_${o}`)))));
}

function render(app) {
  const box = $('#rounds');
  if (!box) return;
  if (!hasRole(ROLES)) { box.hidden = true; return; }
  box.hidden = false;
  const r = rounds.round;
  const p = r?.progress;
  const todo = rounds.buildings.filter((b) => !b.done);
  fill(box,
    h('h2', {}, t('round_title')),
    rounds.message ? h('p', { class: rounds.message.kind === 'error' ? 'error' : 'ok', role: 'status', id: 'rounds-message' }, rounds.message.text) : null,
    r ? h('div', { id: 'round-progress' },
      h('p', {}, r.name),
      h('progress', { max: p.buildings || 1, value: p.buildings_done }),
      h('p', { class: 'muted' }, t('round_progress', p.buildings_done, p.buildings, p.households_settled, p.households)))
      : h('p', { class: 'muted', id: 'round-none' }, t('round_none')),
    r ? h('ul', { class: 'list', id: 'round-buildings' }, ...todo.slice(0, 50).map((b) => h('li', {
      tabindex: 0, dataset: { id: b.building_id }, onclick: () => { rounds.selected = b; render(app); },
    }, h('div', { class: 'name' }, b.name ?? `#${b.building_id}`), h('div', { class: 'sub' }, t('building_left', b.households - b.settled, b.households))))) : null,
    visitForm(app),
    h('h2', {}, t('sentiment_title')),
    h('form', { class: 'stack', id: 'entry-form', onsubmit: (e) => { e.preventDefault(); addEntry(app, e.target); } },
      h('textarea', { name: 'body', rows: 2, maxlength: 2000, required: true, placeholder: t('entry_placeholder') }),
      h('div', { class: 'row' }, ...rounds.tags.map((tag) => h('label', {}, h('input', { type: 'checkbox', name: 'tag', value: tag.code }), tagLabel(tag.code)))),
      h('button', { type: 'submit', class: 'primary' }, t('entry_add'))),
    h('ul', { class: 'list', id: 'entries' }, ...rounds.entries.slice(0, 30).map((e) => h('li', { dataset: { id: e.id } },
      h('div', { class: 'name' }, `${e.entry_date} · ${e.tags.map(tagLabel).join('、')}`),
      h('div', { class: 'sub' }, e.body),
      e.report_id ? h('div', { class: 'sub' }, t('entry_linked', e.report_id))
        : h('button', { type: 'button', class: 'link', onclick: () => toReport(app, e, suggested(e)) }, t('entry_to_report'))))));
}

export function initRounds(app) {
  const refresh = async () => { await load(); render(app); };
  onSession(() => { rounds.round = null; rounds.entries = []; rounds.message = null; if (app.state.tab === 'worker') refresh(); else render(app); });
  window.addEventListener('gridmap:tab', (e) => {
    showCoverage(app, e.detail === 'worker' || e.detail === 'plan');
    if (e.detail === 'worker') refresh();
  });
  window.addEventListener('online', () => send(app));
  const previous = app.onMapClick.worker;
  app.onMapClick.worker = (e) => {
    // A building of the round near the tap (about 30 px): the visit form opens for it.
    if (rounds.round && rounds.buildings.length && app.map) {
      const near = rounds.buildings.map((b) => [b, app.map.project([b.lon, b.lat])])
        .map(([b, pt]) => [b, Math.hypot(pt.x - e.point.x, pt.y - e.point.y)])
        .filter(([, d]) => d < 30).sort((a, b) => a[1] - b[1])[0];
      if (near) { rounds.selected = near[0]; render(app); return; }
    }
    if (previous) previous(e);
  };
  app.rerender.push(() => render(app));
  render(app);
}
