// The web map's service worker (issue 20 item 1): a rider in a dead zone can still open the app —
// reload it, or start it from the home screen — and file a report into the outbox.
//
// - The app shell (page, scripts, style sheet, MapLibre and its worker, manifest, icons) is
//   precached at install; build.mjs writes the file list and a hash of their contents below, so a
//   new build is a new service worker with a new cache, and the old cache is dropped on activate.
//   The shell is served cache-first: it opens instantly on a weak connection.
// - Public data the page needs offline (the style and TileJSON documents, the stations list, the
//   report categories) is network-first with the last good answer as fallback.
// - Vector tiles the rider has seen are network-first too (a planner's edit must show at once),
//   kept in a cache bounded to TILE_LIMIT entries, the oldest dropped first.
// - Nothing else is touched: POSTs (the outbox sends its own, with its Idempotency-Key), anything
//   with credentials or private data (reports, photos, logins) goes straight to the network.
// Hand-written rather than Workbox: these three strategies are ~100 lines; Workbox's runtime is
// several times that on the rider's first load.

const VERSION = 'dev'; // build.mjs: a hash of every precached file
const PRECACHE = []; // build.mjs: the app shell's paths
const SHELL = `gridmap-shell-${VERSION}`;
const DATA = 'gridmap-data';
const TILES = 'gridmap-tiles';
const WARM = ['/tiles/style.json', '/api/stations', '/api/report-categories'];
const TILE_LIMIT = 1500; // ~15 MB at ~10 KB a tile: a rider's whole day in the county seat

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL);
    // `reload`: past the HTTP cache, so the shell is exactly this build's files.
    await cache.addAll(PRECACHE.map((path) => new Request(path, { cache: 'reload' })));
    // The page asked for these before we were there to keep them: fetch them once now, so the very
    // first visit is enough to open offline. Best effort: a missing one must not stop the install.
    const data = await caches.open(DATA);
    await Promise.all(WARM.map((path) => data.add(path).catch(() => {})));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('gridmap-shell-') && name !== SHELL) await caches.delete(name);
    }
    // Control the page that installed us, so the tiles it loads from now on are kept.
    await self.clients.claim();
  })());
});

const isTile = (path) => /^\/tiles\/[^/]+\/\d+\/\d+\/\d+\.(mvt|pbf)$/.test(path);
const isData = (path) =>
  /^\/tiles\/[^/]+\.json$/.test(path) || path === '/api/stations' || path === '/api/report-categories';

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  // Private answers are never stored on the device.
  if (request.headers.has('Authorization')) return;
  if (request.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html')) {
    event.respondWith(shellFirst(new Request('/'), request));
  } else if (PRECACHE.includes(url.pathname)) {
    event.respondWith(shellFirst(request, request));
  } else if (isTile(url.pathname)) {
    event.respondWith(networkFirst(event, TILES, true));
  } else if (isData(url.pathname) && !url.search) {
    event.respondWith(networkFirst(event, DATA, false));
  }
});

/** The precached copy (MapLibre asks for its worker with `?v=`, hence ignoreSearch), else the network. */
async function shellFirst(key, request) {
  const cached = await caches.match(key, { cacheName: SHELL, ignoreSearch: true });
  return cached ?? fetch(request);
}

let tilePuts = 0;

/** The network's answer, kept for next time; the last kept answer when the network fails. */
async function networkFirst(event, cacheName, bounded) {
  const request = event.request;
  try {
    const response = await fetch(request);
    if (response.ok) {
      const copy = response.clone();
      // Stored while the page already reads the answer; trimmed every 25 tiles, not on each one
      // (`keys()` of a full cache is the costly part).
      event.waitUntil((async () => {
        const cache = await caches.open(cacheName);
        await cache.put(request, copy);
        if (bounded && ++tilePuts % 25 === 0) await trim(cache);
      })());
    }
    return response;
  } catch (err) {
    const cached = await caches.match(request, { cacheName });
    if (cached) return cached;
    throw err;
  }
}

/**
 * Keep the newest TILE_LIMIT tiles. A put replaces an entry by removing it and appending the new
 * one (Cache API, "batch cache operations"), so `keys()` is oldest-seen first.
 */
async function trim(cache) {
  const keys = await cache.keys();
  for (const key of keys.slice(0, Math.max(0, keys.length - TILE_LIMIT))) await cache.delete(key);
}
