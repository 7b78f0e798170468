// Talking to gridmap's JSON API. Every error body is `{code, message, field?}` (server/src/http/error.rs).

export class ApiError extends Error {
  constructor(status, body, url) {
    super((body && body.message) || `HTTP ${status} ${url}`);
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
