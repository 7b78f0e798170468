// Talking to gridmap's JSON API. Every error body is `{code, message, field?}` (server/src/http/error.rs).

import { refusalText } from './i18n.js';

export class ApiError extends Error {
  constructor(status, body, url) {
    // The page shows the refusal in its own language, from the body's stable code (never the
    // server's English `message`: issue 20).
    super(body && (body.code || body.reason) ? refusalText(body, status) : `HTTP ${status} ${url}`);
    this.status = status;
    this.body = body;
  }
}

/**
 * fetch + JSON. `expectFailure` marks probes whose 404 is an answer (an API not deployed yet), so
 * the page's error log (hooks.js) does not count them as failures.
 */
export async function api(path, { method = 'GET', body, headers = {}, token, expectFailure = false, signal } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, expectFailure, signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; }
  }
  if (!response.ok) throw new ApiError(response.status, data, path);
  return data;
}
