// The one login of this browser: `POST /api/auth/login {name, password}` → `{token, expires_at,
// role, grid_ids, county_id?}`, kept in localStorage until it expires. The rider, grid-worker and planner
// views share it; each says which roles it needs and offers its own login form otherwise.
import { t, getLang } from './i18n.js';
import { api } from './api.js';
import { h, fill } from './dom.js';

const KEY = 'gridmap.session';
const listeners = [];
let current = load();

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || 'null');
    if (s && (!s.expires_at || Date.parse(s.expires_at) > Date.now())) return s;
  } catch { /* corrupt: log in again */ }
  return null;
}

export function getSession() { return current; }

export function setSession(s) {
  current = s;
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
  for (const f of listeners) f(s);
}

/** Call `f(session)` whenever someone logs in or out. */
export function onSession(f) { listeners.push(f); }

export const hasRole = (roles) => !!current && roles.includes(current.role);

export async function login(name, password) {
  const body = await api('/api/auth/login', { method: 'POST', body: { name, password }, expectFailure: true });
  setSession({ ...body, name });
  return body;
}

export function logout() {
  // Revoke the token on the server too; offline, forgetting it locally is all we can do.
  const token = current?.token;
  if (token) api('/api/auth/logout', { method: 'POST', token, expectFailure: true }).catch(() => {});
  setSession(null);
}

/**
 * A login form (class `login`) for a view that needs one of `roles`; `titleKey` names it.
 * A login with another role is refused here (the session is kept for the other views).
 */
/**
 * Show `loginForm(titleKey, roles)` in `slot`, or keep the one already there (same form, same
 * language, same session): a view renders again when its data arrives, and a form built anew
 * under the person's fingers loses what they typed (the browser tests met it as a stale element).
 */
export function showLoginForm(slot, titleKey, roles) {
  const key = `${titleKey}|${getLang()}|${current?.name ?? ''}`;
  if (slot.dataset.formKey === key && slot.querySelector('form.login')) return;
  fill(slot, loginForm(titleKey, roles));
  slot.dataset.formKey = key;
}

export function loginForm(titleKey, roles) {
  const error = h('p', { class: 'error login-error', role: 'alert' });
  const form = h('form', { class: 'stack login' },
    h('h2', {}, t(titleKey)),
    current && !roles.includes(current.role) ? h('p', { class: 'muted' }, t('wrong_role', current.name)) : null,
    h('label', {}, h('span', {}, t('login_name')), h('input', { name: 'name', autocomplete: 'username', required: true })),
    h('label', {}, h('span', {}, t('login_password')), h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit', class: 'primary' }, t('login_button')),
    error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const name = form.elements.namedItem('name').value.trim();
    try {
      const body = await login(name, form.elements.namedItem('password').value);
      if (!roles.includes(body.role)) error.textContent = t('wrong_role', name);
    } catch (err) {
      error.textContent = err.status === 401 || err.status === 400 ? t('login_failed') : t('api_error') + err.message;
    }
  });
  return form;
}

/** `fetch` + JSON with the session's token, returning `{status, data, etag}` (never throws on HTTP errors). */
export async function call(path, { method = 'GET', body, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, expectFailure: true };
  if (current?.token) init.headers.Authorization = `Bearer ${current.token}`;
  if (body instanceof FormData) {
    init.body = body; // the browser writes the multipart Content-Type with its boundary
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; }
  }
  if (response.status === 401 && current) setSession(null);
  return { status: response.status, ok: response.ok, data, etag: response.headers.get('ETag') };
}
