// Loaded first, as a classic script: record every error and failed request the page meets, so
// the browser tests (and a curious operator, via the console) can see them: window.__errors.
(function () {
  const errors = [];
  window.__errors = errors;
  const push = (kind, detail) => errors.push({ kind, detail: String(detail).slice(0, 500), at: Math.round(performance.now()) });
  window.addEventListener('error', (e) => {
    // Resource errors (img, script, link) arrive here with a target and no message.
    if (e.target && e.target !== window) push('resource', e.target.src || e.target.href || e.target.tagName);
    else push('error', e.message);
  }, true);
  // Anything the Content-Security-Policy blocked (server/src/http/security_headers.rs): the page
  // must load with none, so the browser tests fail on the first.
  document.addEventListener('securitypolicyviolation', (e) => push('csp', `${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile || ''}:${e.lineNumber || 0}`));
  window.addEventListener('unhandledrejection', (e) => push('rejection', e.reason && (e.reason.stack || e.reason.message || e.reason)));
  const consoleError = console.error.bind(console);
  console.error = (...args) => { push('console', args.map((a) => (a && a.message) || a).join(' ')); consoleError(...args); };
  // Requests the page expects to fail (probing an optional API) mark themselves as expected.
  const originalFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url;
    try {
      const response = await originalFetch(input, init);
      if (!response.ok && !(init && init.expectFailure)) push('http', `${response.status} ${url}`);
      return response;
    } catch (err) {
      if (!(init && init.expectFailure)) push('network', `${url}: ${err.message}`);
      throw err;
    }
  };
})();
