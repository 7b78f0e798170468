// The live feed (`GET /api/reports/stream`, Server-Sent Events, event `report`) for the worker's
// view. `EventSource` cannot send the bearer token, so the stream is read with `fetch` and parsed
// here (the SSE format: blocks separated by a blank line, `id:`/`event:`/`data:` lines). The last
// event id is kept and sent back as `Last-Event-ID` when the connection is made again (after a
// dead zone, a server restart, or a proxy's timeout), so a server that can resume replays what was
// missed; the caller is told of every reconnect too, to re-read its list in case the server
// could not.

/** No byte for this long (two of the server's 15 s keep-alives and some slack): the link is dead. */
const SILENCE_MS = 35_000;

/** Parse SSE text; returns the events found and the unfinished rest of the buffer. */
export function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.replace(/\r\n?/g, '\n').split('\n\n');
  const rest = blocks.pop();
  for (const block of blocks) {
    const event = { id: null, event: 'message', data: [] };
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue; // a comment: the server's keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') event.id = value;
      else if (field === 'event') event.event = value;
      else if (field === 'data') event.data.push(value);
    }
    if (event.data.length || event.id !== null) events.push({ ...event, data: event.data.join('\n') });
  }
  return { events, rest };
}

/**
 * Follow the feed until `stop()` is called: `onEvent(name, data, id)` for each event,
 * `onConnect(count)` each time a connection opens (count 1 is the first), `onDisconnect()` when
 * it drops, `token()` gives the
 * current token (null stops the feed). Reconnects with a growing pause (1 s … 30 s).
 */
export function follow({ path, token, onEvent, onConnect, onDisconnect }) {
  const state = { lastEventId: null, connects: 0, stopped: false, controller: null };
  let pause = 1000;
  let wake = null; // resolves the pause between attempts early (the network came back)
  // A phone in a dead zone often keeps a silent TCP connection rather than a closed one: the
  // browser's offline event, or no byte for longer than two of the server's 15 s keep-alives,
  // ends the stream; the online event connects again at once.
  const onOffline = () => state.controller?.abort();
  const onOnline = () => { pause = 1000; state.controller?.abort(); wake?.(); };
  window.addEventListener('offline', onOffline);
  window.addEventListener('online', onOnline);
  let watchdog = null;
  const feedWatchdog = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => state.controller?.abort(), SILENCE_MS);
  };
  const run = async () => {
    while (!state.stopped) {
      const bearer = token();
      if (!bearer) break;
      state.controller = new AbortController();
      try {
        const headers = { Authorization: `Bearer ${bearer}`, Accept: 'text/event-stream' };
        if (state.lastEventId) headers['Last-Event-ID'] = state.lastEventId;
        const response = await fetch(path, { headers, signal: state.controller.signal, cache: 'no-store', expectFailure: true });
        // 401/403: the login ended or the role cannot follow the feed; retrying will not help.
        if (response.status === 401 || response.status === 403) break;
        if (!response.ok || !response.body) throw new Error(`feed answered ${response.status}`);
        state.connects += 1;
        pause = 1000;
        onConnect?.(state.connects);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        feedWatchdog();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feedWatchdog();
          const parsed = parseEvents(buffer + value);
          buffer = parsed.rest;
          for (const e of parsed.events) {
            if (e.id !== null) state.lastEventId = e.id;
            onEvent(e.event, e.data, e.id);
          }
        }
      } catch {
        // The network dropped or the page stopped the feed: wait and connect again.
      }
      clearTimeout(watchdog);
      if (state.stopped) break;
      onDisconnect?.();
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, navigator.onLine === false ? 30_000 : pause); });
      wake = null;
      pause = Math.min(pause * 2, 30_000);
    }
  };
  run();
  return {
    state,
    stop() {
      state.stopped = true;
      state.controller?.abort();
      clearTimeout(watchdog);
      window.removeEventListener('offline', onOffline);
      window.removeEventListener('online', onOnline);
      wake?.();
    },
  };
}
