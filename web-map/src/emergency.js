// Emergency mode (平急融合, "一键启动", issue 24 §2; docs/emergency.md): the emergency tab.
// Anyone sees the active episodes and their counts; an admin switches a community into
// emergency mode with one button and ends an episode (If-Match); a grid worker sees their
// grid's volunteers with their check-ins and the task list, records check-ins, adds and
// finishes tasks; a registered member sees their grid's tasks and checks in. The live feed's
// `emergency` events (live.js) reload the view and the map's `emergency` tiles, so a worker's
// open page sees volunteers check in. While an episode is active the map shows the coverage
// choropleth (volunteers per 100 households) and the grids without anyone checked in.
import { t, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, loginForm, logout, call } from './session.js';
import { follow } from './live.js';

const ROLES = ['admin', 'planner', 'grid_worker', 'volunteer', 'resident', 'rider', 'building_leader'];
const STAFF = ['admin', 'planner', 'grid_worker'];
/** The tabs whose map shows the emergency layers while an episode is active. */
const MAP_TABS = new Set(['emergency', 'worker', 'plan']);
const LAYERS = ['emergency-fill', 'emergency-none', 'emergency-label'];

const em = { episodes: null, areas: null, grids: [], mine: null, message: null, feed: null, gen: 0 };

function setLayersVisible(map, visible) {
  for (const id of LAYERS) if (map?.getLayer(id)) map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
}

function showLayers(app) {
  const active = (em.episodes ?? []).length > 0;
  setLayersVisible(app.map, active && MAP_TABS.has(app.state.tab));
}

async function load(app) {
  // Loads overlap (a burst of live events): only the latest one's answers are kept.
  const gen = (em.gen = (em.gen ?? 0) + 1);
  const r = await call('/api/emergency?active=true');
  const episodes = r.ok ? r.data : [];
  let areas = em.areas;
  if (hasRole(['admin'])) {
    const a = await call('/api/emergency/areas');
    areas = a.ok ? a.data : [];
  }
  const grids = [];
  if (hasRole(STAFF)) {
    const mine = new Set(getSession()?.grid_ids ?? []);
    for (const e of episodes) {
      const one = await call(`/api/emergency/${e.id}`);
      for (const g of (one.data?.grid_counts ?? []).filter((x) => mine.has(x.grid_id))) {
        const v = await call(`/api/emergency/${e.id}/grids/${g.grid_id}`);
        if (v.ok) grids.push({ episode: e, view: v.data });
      }
    }
  }
  let own = null;
  if (getSession()) {
    const m = await call('/api/emergency/mine');
    own = m.ok ? m.data : null;
  }
  if (gen !== em.gen) return;
  Object.assign(em, { episodes, areas, grids, mine: own });
  showLayers(app);
  if (app.map?.getSource('emergency')) app.map.refreshTiles('emergency');
  render(app);
}

async function act(app, path, body, headers) {
  const r = await call(path, { method: 'POST', body, headers });
  em.message = r.ok ? { kind: 'ok', text: t('emergency_saved') }
    : { kind: 'error', text: r.status === 412 ? t('emergency_stale') : refusalText(r.data, r.status) };
  await load(app);
  return r;
}

function counts(e) {
  return t('emergency_counts', e.checked_in, e.members, e.grids, e.open_tasks, e.grids_without_check_in);
}

function episodeCard(app, e) {
  const card = h('article', { class: 'card emergency-episode', dataset: { id: e.id } },
    h('h3', {}, `${t('emergency_active')} · ${e.area_name}`),
    h('p', { class: 'sub' }, `${e.reason} · ${new Date(e.started_at).toLocaleString()}`),
    h('p', { class: 'emergency-counts' }, counts(e)));
  if (hasRole(['admin'])) {
    const form = h('form', { class: 'row emergency-end' },
      h('input', { name: 'reason', required: true, maxlength: 200, placeholder: t('emergency_end_reason') }),
      h('button', { type: 'submit' }, t('emergency_end')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(app, `/api/emergency/${e.id}/end`, { reason: form.elements.namedItem('reason').value.trim() }, { 'If-Match': `"${e.version}"` });
    });
    card.append(form);
  }
  return card;
}

function startForm(app) {
  const free = (em.areas ?? []).filter((a) => a.kind === 'community' && a.active_episode == null);
  const form = h('form', { class: 'stack card', id: 'emergency-start' },
    h('h3', {}, t('emergency_start_title')),
    h('label', {}, h('span', {}, t('emergency_community')),
      h('select', { name: 'area_id', id: 'emergency-community' }, ...free.map((a) => h('option', { value: a.id }, a.name)))),
    h('label', {}, h('span', {}, t('emergency_reason')),
      h('input', { name: 'reason', id: 'emergency-reason', required: true, maxlength: 200 })),
    h('button', { type: 'submit', class: 'primary danger', id: 'emergency-start-button' }, t('emergency_start')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    act(app, '/api/emergency', {
      area_kind: 'community',
      area_id: Number(form.elements.namedItem('area_id').value),
      reason: form.elements.namedItem('reason').value.trim(),
    });
  });
  return form;
}

function volunteerItem(app, episode, v) {
  const checked = v.state === 'checked_in';
  const item = h('li', { class: `volunteer ${checked ? 'checked-in' : 'waiting'}`, dataset: { member: v.member_id } },
    h('div', { class: 'name' }, v.name, v.squad ? h('span', { class: 'muted' }, ` · ${v.squad}`) : null),
    h('div', { class: 'sub' },
      h('span', { class: `badge ${checked ? 'ok' : 'warn'}` }, checked ? t('emergency_checked_in') : t('emergency_not_checked_in')),
      ` ${v.phone ?? ''} ${(v.skills ?? []).join(', ')}`));
  if (!checked && episode.active) {
    const b = h('button', { type: 'button', class: 'link record-checkin' }, t('emergency_record_checkin'));
    b.addEventListener('click', () => act(app, `/api/emergency/${episode.id}/checkins`, { member_id: v.member_id }));
    item.append(b);
  }
  return item;
}

function taskList(app, episodeId, tasks, editable) {
  return h('ul', { class: 'list emergency-tasks' }, ...tasks.map((task) => {
    const li = h('li', { class: task.done ? 'done' : 'open', dataset: { task: task.id } },
      h('span', {}, task.done ? '✓ ' : '○ ', task.title));
    if (editable && !task.done) {
      const b = h('button', { type: 'button', class: 'link' }, t('emergency_task_done'));
      b.addEventListener('click', () => act(app, `/api/emergency/${episodeId}/tasks/${task.id}/done`));
      li.append(' ', b);
    }
    return li;
  }));
}

function gridCard(app, { episode, view }) {
  const c = view.counts;
  const add = h('form', { class: 'row emergency-add-task' },
    h('input', { name: 'title', required: true, maxlength: 200, placeholder: t('emergency_new_task') }),
    h('button', { type: 'submit' }, t('emergency_add_task')));
  add.addEventListener('submit', (ev) => {
    ev.preventDefault();
    act(app, `/api/emergency/${episode.id}/grids/${c.grid_id}/tasks`, { title: add.elements.namedItem('title').value.trim() });
  });
  const editable = hasRole(['grid_worker', 'admin']);
  return h('article', { class: 'card emergency-grid', dataset: { grid: c.grid_id } },
    h('h3', {}, `${c.name} (${c.code})`),
    h('p', { class: 'emergency-grid-counts' },
      t('emergency_grid_counts', c.checked_in, c.members, c.households, c.per_100_households ?? '–')),
    h('h4', {}, t('emergency_volunteers')),
    h('ul', { class: 'list emergency-volunteers' }, ...view.volunteers.map((v) => volunteerItem(app, { id: episode.id, active: view.active }, v))),
    h('h4', {}, t('emergency_tasks')),
    taskList(app, episode.id, view.tasks, editable && view.active),
    editable && view.active ? add : null);
}

function myCard(app, m) {
  const checked = m.state === 'checked_in';
  const card = h('article', { class: 'card emergency-mine' },
    h('h3', {}, t('emergency_my_grid', m.grid_name)),
    h('p', {}, `${m.episode.area_name} · ${m.episode.reason}`),
    h('p', {}, h('span', { class: `badge ${checked ? 'ok' : 'warn'}` }, checked ? t('emergency_checked_in') : t('emergency_not_checked_in'))),
    taskList(app, m.episode.id, m.tasks, false));
  if (!checked) {
    const b = h('button', { type: 'button', class: 'primary', id: 'emergency-self-checkin' }, t('emergency_check_in'));
    b.addEventListener('click', () => act(app, `/api/emergency/${m.episode.id}/checkins`, {}));
    card.append(b);
  }
  return card;
}

function render(app) {
  const slot = $('#view-emergency .login-slot');
  const who = $('#emergency-who');
  who.hidden = !getSession();
  $('#emergency-name').textContent = getSession()?.name ?? '';
  fill(slot, getSession() ? null : loginForm('emergency_login', ROLES));
  const episodes = em.episodes;
  const parts = [];
  if (em.message) parts.push(h('p', { class: em.message.kind, role: 'status' }, em.message.text));
  if (episodes === null) parts.push(h('p', { class: 'muted' }, t('loading')));
  else if (!episodes.length) parts.push(h('p', { class: 'muted', id: 'emergency-normal' }, t('emergency_normal')));
  else parts.push(...episodes.map((e) => episodeCard(app, e)));
  if (hasRole(['admin']) && em.areas) parts.push(startForm(app));
  for (const m of em.mine?.episodes ?? []) parts.push(myCard(app, m));
  for (const g of em.grids) parts.push(gridCard(app, g));
  if (episodes?.length) parts.push(h('p', { class: 'muted legend' }, t('emergency_legend')));
  fill($('#emergency-content'), ...parts);
}

/** Follow the live feed while the tab is open for staff: an `emergency` event reloads. */
function startFeed(app) {
  if (em.feed || !hasRole(STAFF)) return;
  let timer = null;
  em.feed = follow({
    path: '/api/reports/stream',
    token: () => getSession()?.token ?? null,
    onConnect: (n) => { if (n > 1) load(app); },
    onEvent: (name) => {
      if (name !== 'emergency') return;
      // A burst of check-ins is one reload.
      clearTimeout(timer);
      timer = setTimeout(() => load(app), 150);
    },
  });
}

function stopFeed() {
  em.feed?.stop();
  em.feed = null;
}

export function initEmergency(app) {
  app.emergency = em;
  const open = () => { startFeed(app); load(app); };
  onSession(() => {
    em.grids = []; em.mine = null; em.areas = null; em.message = null;
    stopFeed();
    if (app.state.tab === 'emergency') open(); else render(app);
  });
  window.addEventListener('gridmap:tab', (e) => {
    if (e.detail === 'emergency') open();
    else stopFeed();
    showLayers(app);
  });
  $('#emergency-logout').addEventListener('click', () => logout());
  app.rerender.push(() => render(app));
  render(app);
  // Whether an episode is active decides the map's layers on every tab.
  call('/api/emergency?active=true').then((r) => { em.episodes = r.ok ? r.data : []; showLayers(app); render(app); });
}
