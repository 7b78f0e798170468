// Station visits and the suggestion box (issue 23 §3).
// - The check-in page (#checkin/<station id>, what the station's printed QR code opens): a rider
//   logs in, taps 签到 and the phone's GPS fix goes to the server, which counts the visit within
//   150 m, once an hour; the answer (counted, already counted, too far, fix too coarse) is shown
//   in the page's language. The same page takes a suggestion for the station's box or the
//   county's and lists the rider's own suggestions with their answers.
// - The station host's view (#host, linked under the station list): visits today / this month / per day and month, suggestions to
//   answer, and the card's hours, services and notice, saved through OGC Part 4 with If-Match
//   (the server keeps the history).
import { t, serviceLabel, SERVICES, refusalText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, loginForm, logout, call } from './session.js';

const RIDER = ['rider'];
const HOST = ['station_host'];
const CHECKIN_HASH = /^#checkin\/(\d+)$/;

const st = {
  checkin: null, // station id of the check-in page
  result: null, // {kind: 'ok'|'error', text}
  suggestResult: null,
  mine: [], // the rider's own suggestions
  host: { dashboard: null, suggestions: [], feature: null, etag: null, message: null },
};

/** The busy-ness hint of a station card (the server's `busyness`: quiet, normal, busy). */
export function busynessBadge(station) {
  if (!station?.busyness) return null;
  return h('span', { class: `badge busy-${station.busyness}`, dataset: { busyness: station.busyness } }, t(`busy_${station.busyness}`));
}

/** The host's notice and the station's check-in link, for the station card. */
export function stationCardExtras(station) {
  return [
    station.notice ? h('p', { class: 'notice station-notice' }, station.notice) : null,
    h('p', { class: 'row' },
      h('a', { href: `#checkin/${station.id}`, class: 'button', id: 'card-checkin' }, t('checkin_button')),
      h('a', { href: `/api/stations/${station.id}/qr.svg`, target: '_blank', rel: 'noopener', class: 'link' }, t('checkin_qr'))),
  ];
}

function stationOf(app, id) {
  return app.state.stations.find((s) => s.id === id) ?? null;
}

// ---------------------------------------------------------------------------------------------
// The rider's check-in page

// A result keeps how to say it (`text` is called at each render), so switching the language
// re-words the answer on the screen.
const said = (kind, key, ...args) => ({ kind, text: () => t(key, ...args) });

function checkinMessage(status, data) {
  if (status === 201) return said('ok', 'checkin_done', Math.round(data.distance_m));
  if (status === 200 && data?.repeat) {
    const until = new Date(data.counted_until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return said('ok', 'checkin_repeat', until);
  }
  if (status === 422 && data?.reason === 'too_far') return said('error', 'checkin_too_far', Math.round(data.details.distance_m), data.details.radius_m);
  if (status === 422 && data?.reason === 'inaccurate_fix') return said('error', 'checkin_inaccurate', Math.round(data.details.accuracy_m));
  return { kind: 'error', text: () => refusalText(data, status) };
}

function checkIn(app) {
  const id = st.checkin;
  if (!navigator.geolocation) { st.result = said('error', 'geo_denied'); renderCheckin(app); return; }
  st.result = said('pending', 'locating');
  renderCheckin(app);
  navigator.geolocation.getCurrentPosition(async (pos) => {
    const body = { lon: pos.coords.longitude, lat: pos.coords.latitude, accuracy_m: Math.round(pos.coords.accuracy ?? 0) };
    try {
      const reply = await call(`/api/stations/${id}/visits`, { method: 'POST', body });
      st.result = checkinMessage(reply.status, reply.data);
    } catch {
      st.result = said('error', 'checkin_offline');
    }
    renderCheckin(app);
  }, () => { st.result = said('error', 'geo_denied'); renderCheckin(app); },
  { enableHighAccuracy: true, timeout: 15000, maximumAge: 0 });
}

async function loadMine(app) {
  if (!getSession()) return;
  const reply = await call('/api/suggestions').catch(() => null);
  st.mine = reply?.ok ? reply.data : [];
  renderCheckin(app);
}

async function suggest(app, form) {
  const text = form.elements.namedItem('body').value.trim();
  if (!text) return;
  const county = form.elements.namedItem('county').checked;
  const reply = await call('/api/suggestions', { method: 'POST', body: county ? { body: text } : { station_id: st.checkin, body: text } })
    .catch(() => ({ status: 0, data: null }));
  if (reply.status === 201) { form.reset(); st.suggestResult = said('ok', 'suggest_done'); }
  else st.suggestResult = reply.status ? { kind: 'error', text: () => refusalText(reply.data, reply.status) } : said('error', 'checkin_offline');
  await loadMine(app);
}

function suggestionItem(g, extra = null) {
  return h('li', { dataset: { id: g.id, status: g.status } },
    h('div', { class: 'name' }, g.body, h('span', { class: `badge suggestion-${g.status}` }, t(`suggestion_${g.status}`))),
    h('div', { class: 'sub' }, g.station_id === null ? t('suggest_county_box') : '', ' ', new Date(g.created_at).toLocaleDateString()),
    g.answer ? h('div', { class: 'answer' }, t('suggestion_answer', g.answer)) : null,
    extra);
}

function renderCheckin(app) {
  const view = $('#view-checkin');
  if (!view || st.checkin === null) return;
  const s = stationOf(app, st.checkin);
  const allowed = hasRole(RIDER);
  const resultLine = (r, id) => h('p', { id, role: 'status', class: r ? `result-${r.kind}` : '' }, r ? r.text() : '');
  const form = h('form', { class: 'stack', id: 'suggest-form' },
    h('h3', {}, t('suggest_title')),
    h('textarea', { name: 'body', rows: 3, maxlength: 1000, placeholder: t('suggest_placeholder') }),
    h('label', { class: 'row' }, h('input', { type: 'checkbox', name: 'county' }), t('suggest_county_box')),
    h('button', { type: 'submit' }, t('suggest_send')),
    resultLine(st.suggestResult, 'suggest-result'));
  form.addEventListener('submit', (e) => { e.preventDefault(); suggest(app, form); });
  fill(view,
    h('h2', {}, s ? s.name : t('checkin_station', st.checkin), s ? busynessBadge(s) : null),
    s?.notice ? h('p', { class: 'notice station-notice' }, s.notice) : null,
    h('p', { class: 'muted' }, t('checkin_hint')),
    allowed
      ? h('div', { class: 'stack' },
        h('p', { class: 'row' }, h('span', {}, t('logged_in_as', getSession().name)),
          h('button', { type: 'button', class: 'link', onclick: () => logout() }, t('logout'))),
        h('button', { type: 'button', class: 'primary', id: 'checkin-button', onclick: () => checkIn(app) }, t('checkin_button')),
        resultLine(st.result, 'checkin-result'),
        form,
        st.mine.length ? h('h3', {}, t('suggest_mine')) : null,
        h('ul', { class: 'list', id: 'my-suggestions' }, ...st.mine.map((g) => suggestionItem(g))))
      : loginForm('checkin_login_title', RIDER),
    h('p', {}, h('a', { href: '#', class: 'link', onclick: (e) => { e.preventDefault(); leaveCheckin(app); } }, t('back'))),
  );
}

function leaveCheckin(app) {
  st.checkin = null;
  history.replaceState(null, '', location.pathname + location.search);
  app.showTab('stations');
}

// Leaving #checkin/… or #host by a tab: forget the hash, so the link works again next time.
function clearHash(tab) {
  if ((tab !== 'checkin' && CHECKIN_HASH.test(location.hash)) || (tab !== 'host' && location.hash === '#host')) {
    history.replaceState(null, '', location.pathname + location.search);
  }
}

function route(app) {
  if (location.hash === '#host') { app.showTab('host'); return; }
  const m = CHECKIN_HASH.exec(location.hash);
  if (!m) return;
  st.checkin = Number(m[1]);
  st.result = null;
  st.suggestResult = null;
  app.showTab('checkin');
  renderCheckin(app);
  loadMine(app);
}

// ---------------------------------------------------------------------------------------------
// The station host's tab

async function loadHost(app) {
  const id = getSession()?.station_id;
  if (!hasRole(HOST) || !id) { renderHost(app); return; }
  const [dash, sugg, item] = await Promise.all([
    call(`/api/stations/${id}/visits`),
    call(`/api/suggestions?box=${id}`),
    call(`/ogc/collections/stations/items/${id}`),
  ]);
  st.host.dashboard = dash.ok ? dash.data : null;
  st.host.suggestions = sugg.ok ? sugg.data : [];
  st.host.feature = item.ok ? item.data : null;
  st.host.etag = item.etag;
  renderHost(app);
}

async function answer(app, id, input) {
  const text = input.value.trim();
  if (!text) return;
  const reply = await call(`/api/suggestions/${id}/answer`, { method: 'POST', body: { answer: text } });
  st.host.message = reply.ok ? t('answer_done') : refusalText(reply.data, reply.status);
  await loadHost(app);
}

async function saveCard(app, form) {
  const id = getSession()?.station_id;
  const services = [...form.querySelectorAll('input[name=service]:checked')].map((i) => i.value);
  const properties = {
    opening_hours: form.elements.namedItem('opening_hours').value.trim(),
    services,
    notice: form.elements.namedItem('notice').value.trim(),
  };
  const reply = await call(`/ogc/collections/stations/items/${id}`, {
    method: 'PATCH', body: { properties }, headers: { 'If-Match': st.host.etag ?? '' },
  });
  if (reply.ok) st.host.message = t('card_saved');
  else if (reply.status === 412) st.host.message = t('card_conflict');
  else st.host.message = refusalText(reply.data, reply.status);
  await loadHost(app);
}

function bars(days) {
  const max = Math.max(1, ...days.map((d) => d.visits));
  return h('div', { class: 'bars', id: 'host-days', 'aria-label': t('host_per_day') },
    ...days.map((d) => h('span', { class: 'bar', title: `${d.day}: ${d.visits}`, dataset: { day: d.day, visits: d.visits },
      style: `height:${Math.round((d.visits / max) * 100)}%` })));
}

function renderHost(app) {
  const view = $('#view-host');
  if (!view) return;
  const allowed = hasRole(HOST);
  view.querySelector('.login-slot').replaceChildren(...(allowed ? [] : [loginForm('host_login_title', HOST)]));
  const body = $('#host');
  body.hidden = !allowed;
  if (!allowed) return;
  const d = st.host.dashboard;
  const p = st.host.feature?.properties ?? {};
  const form = h('form', { class: 'stack', id: 'card-form' },
    h('h3', {}, t('card_title')),
    h('label', {}, h('span', {}, t('hours')), h('input', { name: 'opening_hours', value: p.opening_hours ?? '', placeholder: 'Mo-Su 08:00-20:00' })),
    h('fieldset', {}, h('legend', {}, t('services')),
      ...Object.keys(SERVICES).map((code) => h('label', { class: 'chip' },
        h('input', { type: 'checkbox', name: 'service', value: code, checked: (p.services ?? []).includes(code) }), ' ', serviceLabel(code)))),
    h('label', {}, h('span', {}, t('card_notice')), h('textarea', { name: 'notice', rows: 2, maxlength: 500 }, p.notice ?? '')),
    h('button', { type: 'submit', class: 'primary' }, t('card_save')));
  form.addEventListener('submit', (e) => { e.preventDefault(); saveCard(app, form); });
  fill(body,
    h('p', { class: 'row' }, h('span', {}, t('logged_in_as', getSession().name)),
      h('button', { type: 'button', class: 'link', onclick: () => loadHost(app) }, t('refresh')),
      h('button', { type: 'button', class: 'link', onclick: () => logout() }, t('logout'))),
    st.host.message ? h('p', { role: 'status', id: 'host-message' }, st.host.message) : null,
    d ? h('div', { class: 'stack', id: 'host-dashboard' },
      h('h2', {}, d.name, busynessBadge(d)),
      h('p', { id: 'host-counts' }, t('host_counts', d.today, d.this_month, d.total)),
      h('h3', {}, t('host_per_day')), bars(d.by_day),
      h('h3', {}, t('host_per_month')),
      h('ul', { class: 'months' }, ...d.by_month.map((m) => h('li', {}, `${m.month}: ${m.visits}`))),
      h('h3', {}, t('host_suggestions', d.suggestions_open, d.suggestions_answered)),
      h('ul', { class: 'list', id: 'host-suggestions' }, ...st.host.suggestions.map((g) => {
        const input = h('input', { name: 'answer', placeholder: t('answer_placeholder'), value: g.answer ?? '' });
        return suggestionItem(g, h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); answer(app, g.id, input); } },
          input, h('button', { type: 'submit' }, t(g.answer ? 'answer_edit' : 'answer_send'))));
      })))
      : h('p', { class: 'muted' }, getSession()?.station_id ? t('loading') : t('host_no_station')),
    st.host.feature ? form : null);
}

export function initStations(app) {
  onSession(() => {
    st.host = { dashboard: null, suggestions: [], feature: null, etag: null, message: null };
    st.mine = [];
    if (app.state.tab === 'host') loadHost(app); else renderHost(app);
    if (app.state.tab === 'checkin') { renderCheckin(app); loadMine(app); }
  });
  window.addEventListener('gridmap:tab', (e) => {
    clearHash(e.detail);
    if (e.detail === 'host') loadHost(app);
  });
  window.addEventListener('hashchange', () => route(app));
  app.rerender.push(() => { renderCheckin(app); renderHost(app); });
  renderHost(app);
  route(app);
}
