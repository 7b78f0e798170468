// The points market (积分超市, issue 24 §3): the points tab. Everyone sees the catalogue (cost,
// stock, where to collect) and the yearly 最美 rankings per group (names masked by the server);
// a logged-in account sees its balance, redeems (one Idempotency-Key per attempt, kept in
// localStorage and sent again on every retry until the server answers, so a lost answer never
// spends twice), and lists its redemptions, cancelling a pending one. Merchants, station hosts,
// grid workers and admins also see the redemptions they hand over and confirm them.
import { t, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, onSession, showLoginForm, logout, call } from './session.js';

const ANY_ROLE = ['resident', 'rider', 'grid_worker', 'planner', 'admin', 'building_leader', 'station_host', 'merchant', 'volunteer'];
const HANDS_OVER = ['merchant', 'station_host', 'grid_worker', 'admin'];
const KINDS = ['goods', 'property_fee_offset', 'merchant_discount', 'free_service'];
/** localStorage: `{item id: Idempotency-Key}` of redemptions sent without a final answer yet. */
const PENDING = 'gridmap.points.pending';

const market = {
  balance: null, items: null, mine: null, handover: null, groups: [], rules: [], group: 'riders', year: null, ranking: null,
  kind: '', message: null, showLogin: false,
};

const loggedIn = () => !!getSession();
const handsOver = () => HANDS_OVER.includes(getSession()?.role);

function pendingKeys() {
  try { return JSON.parse(localStorage.getItem(PENDING) || '{}'); } catch { return {}; }
}

/** The key of the redemption of `itemId` being attempted: the stored one (a retry), else a new one. */
export function keyFor(itemId, store = localStorage) {
  let all;
  try { all = JSON.parse(store.getItem(PENDING) || '{}'); } catch { all = {}; }
  if (!all[itemId]) {
    all[itemId] = crypto.randomUUID();
    store.setItem(PENDING, JSON.stringify(all));
  }
  return all[itemId];
}

function settle(itemId) {
  const all = pendingKeys();
  delete all[itemId];
  localStorage.setItem(PENDING, JSON.stringify(all));
}

async function loadPublic() {
  const [items, rules] = await Promise.all([
    call(`/api/points/catalogue${market.kind ? `?kind=${market.kind}` : ''}`),
    call('/api/points/rules'),
  ]);
  market.items = items.ok ? items.data : [];
  if (rules.ok) { market.groups = rules.data.groups; market.rules = rules.data.rules; }
  await loadRanking();
}

async function loadRanking() {
  const year = market.year ? `&year=${market.year}` : '';
  const r = await call(`/api/points/rankings?group=${encodeURIComponent(market.group)}${year}`);
  market.ranking = r.ok ? r.data : null;
  if (r.ok) market.year = r.data.year;
}

async function loadMine() {
  if (!loggedIn()) { market.balance = null; market.mine = null; market.handover = null; return; }
  const [me, mine, handover] = await Promise.all([
    call('/api/points/me'),
    call('/api/points/redemptions'),
    handsOver() ? call('/api/points/redemptions?view=handover&status=pending') : null,
  ]);
  market.balance = me.ok ? me.data.balance : null;
  market.mine = mine.ok ? mine.data : [];
  market.handover = handover?.ok ? handover.data : null;
}

function errorText(r) {
  const reason = r.data?.reason;
  if (reason && t(`points_refusal_${reason}`) !== `points_refusal_${reason}`) return t(`points_refusal_${reason}`);
  return refusalText(r.data, r.status);
}

async function redeem(item) {
  const key = keyFor(item.id);
  let r;
  try {
    r = await call('/api/points/redemptions', { method: 'POST', body: { item_id: item.id }, headers: { 'Idempotency-Key': key } });
  } catch {
    // No answer: the key stays, so pressing again resends the same redemption.
    market.message = { kind: 'error', text: t('points_retry') };
    render();
    return;
  }
  if (r.status >= 500 || r.status === 429) {
    market.message = { kind: 'error', text: t('points_retry') };
    render();
    return;
  }
  settle(item.id);
  market.message = r.ok
    ? { kind: 'ok', text: t('points_redeemed', r.data.id, item.name, r.data.place) }
    : { kind: 'error', text: errorText(r) };
  await Promise.all([loadMine(), loadPublic()]);
  render();
}

async function act(path, body) {
  const r = await call(path, { method: 'POST', body });
  market.message = r.ok ? { kind: 'ok', text: t(body ? 'points_cancelled' : 'points_handed_over') } : { kind: 'error', text: errorText(r) };
  await Promise.all([loadMine(), loadPublic()]);
  render();
}

function stockText(item) {
  if (item.stock === null || item.stock === undefined) return t('points_unlimited');
  return item.stock > 0 ? t('points_left', item.stock) : t('points_sold_out');
}

function itemCard(item) {
  const cannot = !loggedIn() || item.stock === 0 || (market.balance ?? 0) < item.cost;
  const button = h('button', { type: 'button', class: 'primary points-redeem', disabled: cannot, dataset: { item: item.id } }, t('points_redeem'));
  button.addEventListener('click', () => redeem(item));
  return h('li', { class: 'points-item', dataset: { item: item.id } },
    h('div', { class: 'name' }, item.name, h('span', { class: 'badge unknown' }, t(`points_kind_${item.kind}`))),
    h('div', { class: 'sub' }, `${t('points_cost', item.cost)} · ${stockText(item)}`),
    h('div', { class: 'sub' }, `${t('points_place')}: ${item.place}`),
    loggedIn() ? button : null);
}

function redemptionLine(r, { handover = false } = {}) {
  const out = h('li', { class: `points-redemption points-${r.status}`, dataset: { id: r.id } },
    h('div', { class: 'name' }, `#${r.id} ${r.item_name}${r.quantity > 1 ? ` × ${r.quantity}` : ''}`,
      h('span', { class: `badge points-status-${r.status}` }, t(`points_status_${r.status}`))),
    h('div', { class: 'sub' }, `${t('points_cost', r.points)} · ${r.place}${handover ? ` · ${r.redeemer}` : ''}`),
    r.status === 'pending' && !handover ? h('div', { class: 'sub' }, t('points_show_number', r.id)) : null,
    r.cancel_reason ? h('div', { class: 'sub' }, r.cancel_reason) : null);
  if (r.status === 'pending' && handover) {
    const b = h('button', { type: 'button', class: 'primary points-confirm' }, t('points_confirm'));
    b.addEventListener('click', () => act(`/api/points/redemptions/${r.id}/handover`));
    out.append(b);
  } else if (r.status === 'pending' && r.mine) {
    const b = h('button', { type: 'button', class: 'link points-cancel' }, t('points_cancel'));
    b.addEventListener('click', () => act(`/api/points/redemptions/${r.id}/cancel`, {}));
    out.append(b);
  }
  return out;
}

/** Admins change what an event earns a group, or switch the rule off (If-Match: the rule's version). */
async function saveRule(rule, points, active) {
  const r = await call(`/api/points/rules/${rule.id}`, {
    method: 'PATCH', body: { points, active }, headers: { 'If-Match': `"${rule.version}"` },
  });
  market.message = r.ok ? { kind: 'ok', text: t('points_rule_saved') } : { kind: 'error', text: errorText(r) };
  await loadPublic();
  render();
}

/** What earns what (public), each group's amount; an admin edits them in place. */
function rulesSection() {
  const admin = getSession()?.role === 'admin';
  const group = (code) => market.groups.find((g) => g.code === code);
  const line = (rule) => {
    const name = `${rule.description || rule.event} · ${group(rule.group_code) ? t('points_group_name', group(rule.group_code)) : rule.group_code}`;
    if (!admin) {
      return h('li', { class: rule.active ? '' : 'muted', dataset: { rule: rule.id } },
        `${name} · ${rule.active ? t('points_cost', rule.points) : t('points_rule_off')}`);
    }
    const points = h('input', { type: 'number', min: 1, max: 10000, value: rule.points, class: 'points-rule-points', 'aria-label': t('points_rule_points') });
    const active = h('input', { type: 'checkbox', checked: rule.active, class: 'points-rule-active', 'aria-label': t('points_rule_active') });
    const save = h('button', { type: 'button', class: 'points-rule-save' }, t('points_rule_save'));
    save.addEventListener('click', () => saveRule(rule, Number(points.value), active.checked));
    return h('li', { dataset: { rule: rule.id } }, h('div', { class: 'sub' }, name),
      h('p', { class: 'row' }, points, h('label', {}, active, t('points_rule_active')), save));
  };
  return [
    h('h2', {}, t('points_rules')),
    h('ul', { class: 'list', id: 'points-rules' }, ...market.rules.map(line)),
  ];
}

function rankingSection() {
  const select = h('select', { id: 'points-group', 'aria-label': t('points_group') },
    ...market.groups.map((g) => h('option', { value: g.code, selected: g.code === market.group }, t('points_group_name', g))));
  select.addEventListener('change', async () => { market.group = select.value; await loadRanking(); render(); });
  const year = h('input', { id: 'points-year', type: 'number', min: 2000, max: 2100, value: market.year ?? '', 'aria-label': t('points_year') });
  year.addEventListener('change', async () => { market.year = Number(year.value) || null; await loadRanking(); render(); });
  const rows = market.ranking?.rows ?? [];
  return [
    h('h2', {}, t('points_rankings')),
    h('p', { class: 'row' }, select, year),
    rows.length
      ? h('ol', { class: 'list', id: 'points-ranking' }, ...rows.map((row) => h('li', {}, `${row.display_name} · ${t('points_cost', row.points)}`)))
      : h('p', { class: 'muted' }, t('points_no_ranking')),
  ];
}

function render() {
  const slot = $('#view-points .login-slot');
  const who = $('#points-who');
  if (loggedIn()) {
    fill(slot);
    who.hidden = false;
    $('#points-name').textContent = getSession().name;
  } else {
    who.hidden = true;
    const open = h('button', { type: 'button', class: 'link', id: 'points-login-open' }, t('points_login_hint'));
    open.addEventListener('click', () => { market.showLogin = true; render(); });
    if (market.showLogin) showLoginForm(slot, 'points_login', ANY_ROLE);
    else fill(slot, open);
  }
  const kind = h('select', { id: 'points-kind', 'aria-label': t('points_kind') },
    h('option', { value: '' }, t('points_kind_all')),
    ...KINDS.map((k) => h('option', { value: k, selected: k === market.kind }, t(`points_kind_${k}`))));
  kind.addEventListener('change', async () => { market.kind = kind.value; await loadPublic(); render(); });
  fill($('#points-content'),
    loggedIn() ? h('p', { class: 'points-balance', id: 'points-balance' }, t('points_balance', market.balance ?? '…')) : null,
    market.message ? h('p', { class: market.message.kind, role: 'status', id: 'points-message' }, market.message.text) : null,
    market.handover ? [
      h('h2', {}, t('points_handover_title')),
      market.handover.length
        ? h('ul', { class: 'list', id: 'points-handover' }, ...market.handover.map((r) => redemptionLine(r, { handover: true })))
        : h('p', { class: 'muted' }, t('points_handover_none'))] : null,
    h('h2', {}, t('points_market')),
    h('p', {}, kind),
    market.items
      ? h('ul', { class: 'list', id: 'points-catalogue' }, ...market.items.map(itemCard))
      : h('p', { class: 'muted' }, t('loading')),
    market.mine ? [
      h('h2', {}, t('points_mine')),
      market.mine.length
        ? h('ul', { class: 'list', id: 'points-mine' }, ...market.mine.map((r) => redemptionLine(r)))
        : h('p', { class: 'muted' }, t('points_mine_none'))] : null,
    ...rankingSection(),
    ...rulesSection());
}

export function initPoints(app) {
  app.points = market;
  const open = async () => {
    render();
    await Promise.all([loadPublic(), loadMine()]);
    render();
  };
  onSession(() => {
    market.message = null; market.showLogin = false;
    if (app.state.tab === 'points') open(); else render();
  });
  window.addEventListener('gridmap:tab', (e) => { if (e.detail === 'points') open(); });
  $('#points-logout').addEventListener('click', () => logout());
  app.rerender.push(render);
  render();
}
