// The resident view: the map (gridmap's own style and tiles), the 48 warm-"new" stations in a
// searchable list and on the map with their cards, the nearest stations to a point, and "which
// grid am I in". The rider view lives in rider.js. Every asset is served by gridmap itself.
import * as maplibregl from 'maplibre-gl';
import { t, setLang, getLang, wantedLang, loadLang, applyStatic, serviceLabel, serviceSearchText, SERVICES } from './i18n.js';
import { isOpen, isAlwaysOpen, todayHours } from './hours.js';
import { navigationLinks } from './coords.js';
import { api } from './api.js';
import { h, $, fill } from './dom.js';
import { initRider } from './rider.js';
import { initStations, busynessBadge, stationCardExtras } from './station.js';

// Start MapLibre's worker now, while the style is read and the map is made, rather than when
// the map asks for it. Its file (119 KiB in brotli) is not preloaded: on a phone network it
// would share the line with MapLibre's main file, which everything waits for; fetched once that
// file has run, and immutable in the HTTP cache (http/static_files.rs), the map was idle 0.45 s
// sooner (bench/web.sh, both builds alternating in one run; bench/RESULTS.md).
maplibregl.prewarm();

// The county seat (沂源县城); the map fits the stations once they are known.
const CENTER = [118.17, 36.185];
const FALLBACK_STYLE = {
  version: 8,
  // No glyphs: MapLibre then draws any label text with the browser's local fonts.
  sources: {},
  layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#eef0ea' } }],
};
const STATIONS_CACHE = 'gridmap.stations';
const STATION_TAP_RADIUS = 22; // px: a 44 px tap target
// The residents' and riders' tabs show the resident map: no household choropleth, report dots or
// legend (those are the workers' and planners' tools), grid labels without household counts.
const RESIDENT_TABS = new Set(['stations', 'nearest', 'grid', 'report', 'checkin', 'host', 'points', 'wishes']);
// The services a station finder filters by (the ones people look for, as in Amap/Baidu's chips).
const FILTER_SERVICES = ['charging', 'water', 'microwave', 'toilet', 'rest'];
// The last view, so the app reopens where the rider was — whose tiles the service worker kept.
const VIEW_KEY = 'gridmap.view';

function savedView() {
  try {
    const v = JSON.parse(localStorage.getItem(VIEW_KEY) || 'null');
    if (v && Number.isFinite(v.lon) && Number.isFinite(v.lat) && Number.isFinite(v.zoom)) return { center: [v.lon, v.lat], zoom: v.zoom };
  } catch { /* a damaged entry: start at the county seat */ }
  return { center: CENTER, zoom: 13 };
}

const state = {
  tab: 'stations',
  stations: [],
  query: '',
  filters: { open: false, services: new Set() },
  selected: null,
  nearest: null, // {lon, lat, stations}
  grid: null, // {lon, lat, card | null}
  status: { key: 'loading', extra: '' },
  mapMessage: null,
};
const app = { state, map: null, balanceClasses: null, onMapClick: {}, rerender: [], maplibregl };
window.__app = app;

function setStatus(key, extra = '') {
  state.status = { key, extra };
  const text = key ? t(key) + extra : extra;
  $('#status').textContent = [text, state.mapMessage && t(state.mapMessage)].filter(Boolean).join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Map

async function loadStyle() {
  try {
    // The server serves the style (/tiles/style.json). Offline with nothing cached, or while the
    // server is unreachable, the page shows a plain background and its own station layer
    // rather than a blank screen.
    const response = await fetch('/tiles/style.json', { expectFailure: true });
    if (response.ok) return await response.json();
  } catch { /* offline: fall through */ }
  state.mapMessage = 'map_no_style';
  return FALLBACK_STYLE;
}

function emptyCollection() {
  return { type: 'FeatureCollection', features: [] };
}

/**
 * The page's own sources and layers, and the mode's visibility, written into the style before
 * the map is made — not added once it has loaded — so the first view is drawn in one pass: on a
 * phone network, adding them on `load` cost a second round through MapLibre's worker before the
 * first `idle` (bench/web.sh).
 */
function composeStyle(style) {
  const layers = style.layers ?? [];
  // The style draws the stations from the tiles too; our own layer (below) carries the
  // selection and "nearest" highlighting and works from the cached list offline, so the style's
  // circles would only draw every station twice. Its labels (from z14) stay.
  const composed = { ...style, sources: { ...style.sources }, layers: layers.filter((l) => l.id !== 'stations') };
  const expert = !isResidentMode();
  for (const layer of composed.layers) {
    if (layer.id === 'grids-fill' || layer.id === 'reports') layer.layout = { ...layer.layout, visibility: expert ? 'visible' : 'none' };
    if (layer.id === 'grid-labels') layer.layout = { ...layer.layout, 'text-field': gridLabel(expert) };
  }
  Object.assign(composed.sources, {
    'gm-grid': { type: 'geojson', data: emptyCollection() },
    'gm-stations': { type: 'geojson', data: stationFeatures(), promoteId: 'id' },
    'gm-point': { type: 'geojson', data: emptyCollection() },
  });
  drawnStations = JSON.stringify(composed.sources['gm-stations'].data);
  composed.layers.push(
    // "Which grid am I in": the grid filled and outlined strongly enough to read over the base map.
    { id: 'gm-grid-fill', type: 'fill', source: 'gm-grid', paint: { 'fill-color': '#1a73e8', 'fill-opacity': 0.22 } },
    { id: 'gm-grid-casing', type: 'line', source: 'gm-grid', paint: { 'line-color': '#ffffff', 'line-width': 8 } },
    { id: 'gm-grid-line', type: 'line', source: 'gm-grid', paint: { 'line-color': '#1a73e8', 'line-width': 4 } },
    // The tap target: an invisible 22 px radius circle (44 px across, the size a thumb hits), which
    // the station taps query; the visible symbol is smaller.
    {
      id: 'gm-stations-hit', type: 'circle', source: 'gm-stations',
      paint: { 'circle-radius': STATION_TAP_RADIUS, 'circle-opacity': 0, 'circle-stroke-width': 0 },
    },
    // Stations are large violet discs with a thick white ring — unlike the small red/amber/green
    // report dots of the workers' and planners' map.
    {
      id: 'gm-stations', type: 'circle', source: 'gm-stations',
      paint: {
        'circle-radius': ['interpolate', ['linear'], ['zoom'], 11, 6, 16, 11],
        'circle-color': ['case', ['boolean', ['feature-state', 'near'], false], '#f29900', '#6a1b9a'],
        'circle-stroke-color': '#fff', 'circle-stroke-width': 3,
      },
    },
    {
      id: 'gm-stations-selected', type: 'circle', source: 'gm-stations', filter: ['==', ['get', 'id'], -1],
      paint: { 'circle-radius': 12, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': '#b3261e', 'circle-stroke-width': 3 },
    },
    {
      id: 'gm-point', type: 'circle', source: 'gm-point',
      paint: { 'circle-radius': 7, 'circle-color': '#1a73e8', 'circle-stroke-color': '#fff', 'circle-stroke-width': 3 },
    },
  );
  return composed;
}

// Grid labels: the name for residents; name and households (in the page's language) for the others.
function gridLabel(expert) {
  return expert
    ? ['format', ['get', 'name'], {}, '\n', {}, ['concat', ['to-string', ['get', 'households']], t('households_suffix')], { 'font-scale': 0.8 }]
    : ['get', 'name'];
}

function stationFeatures() {
  return {
    type: 'FeatureCollection',
    features: state.stations.filter(passesFilters).map((s) => ({
      type: 'Feature', id: s.id, geometry: { type: 'Point', coordinates: [s.lon, s.lat] },
      properties: { id: s.id, name: s.name },
    })),
  };
}

// The station data the map holds (as JSON): setting the same again would only make MapLibre's
// worker cut the same tiles again.
let drawnStations = null;

function updateStationLayer() {
  const map = app.map;
  if (!map || !map.getSource('gm-stations')) return;
  const data = stationFeatures();
  const json = JSON.stringify(data);
  if (json !== drawnStations) {
    map.getSource('gm-stations').setData(data);
    drawnStations = json;
  }
  map.setFilter('gm-stations-selected', ['==', ['get', 'id'], state.selected ?? -1]);
  const near = new Set((state.nearest?.stations ?? []).map((s) => s.id));
  for (const s of state.stations) map.setFeatureState({ source: 'gm-stations', id: s.id }, { near: near.has(s.id) });
}

function setPoint(lon, lat) {
  app.map?.getSource('gm-point')?.setData(
    lon === null ? emptyCollection() : { type: 'Feature', geometry: { type: 'Point', coordinates: [lon, lat] }, properties: {} },
  );
}

async function initMap() {
  const style = await loadStyle();
  // The balance classes' household ranges, for the legend (getStyle() would re-serialise the
  // whole style for each legend drawn).
  app.balanceClasses = style.metadata?.['gridmap:balance_classes'] ?? null;
  performance.mark('gridmap-style');
  const map = new maplibregl.Map({ container: 'map', style: composeStyle(style), ...savedView(), attributionControl: { compact: true } });
  map.on('moveend', () => {
    const c = map.getCenter();
    try { localStorage.setItem(VIEW_KEY, JSON.stringify({ lon: c.lng, lat: c.lat, zoom: map.getZoom() })); } catch { /* storage full */ }
  });
  app.map = map;
  window.__map = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  map.on('error', (e) => {
    // Offline, a tile the service worker never saw cannot load: that is the offline state, not a fault.
    if (!navigator.onLine) { setStatus('offline'); return; }
    console.error(`map: ${e.error?.message ?? e}`);
    setStatus('map_error', e.error?.message ?? '');
  });
  map.on('load', () => {
    performance.mark('gridmap-map-load');
    map.addControl(new LocateControl(), 'top-right');
    applyMode();
    updateStationLayer();
    map.once('idle', () => {
      // Map with every layer drawn, measured from navigation start (Performance API).
      window.__firstPaint = Math.round(performance.now());
      window.__mapIdle = true;
      performance.mark('gridmap-map-idle');
    });
  });
  map.on('click', (e) => {
    const handler = app.onMapClick[state.tab];
    if (handler) handler(e);
  });
  map.on('mouseenter', 'gm-stations-hit', () => { map.getCanvas().style.cursor = 'pointer'; });
  map.on('mouseleave', 'gm-stations-hit', () => { map.getCanvas().style.cursor = ''; });
  setStatus(null);
}

/** Resident map or the workers'/planners' map, by the tab shown (RESIDENT_TABS). */
function isResidentMode() {
  return RESIDENT_TABS.has(state.tab);
}

function applyMode() {
  document.body.dataset.mode = isResidentMode() ? 'resident' : 'expert';
  const map = app.map;
  if (!map?.getLayer('gm-stations')) return;
  const expert = !isResidentMode();
  for (const id of ['grids-fill', 'reports']) if (map.getLayer(id)) map.setLayoutProperty(id, 'visibility', expert ? 'visible' : 'none');
  // The planner's heatmap replaces the household colouring while it is on.
  if (map.getLayer('grids-fill') && heatmapShown()) map.setLayoutProperty('grids-fill', 'visibility', 'none');
  if (map.getLayer('grid-labels')) map.setLayoutProperty('grid-labels', 'text-field', gridLabel(expert));
  renderLegend();
}

// The legend of the household-balance choropleth, read from the style's own `grids-fill` colours
// (a `match` on the tiles' balance_class) and the household range of each class (the style's
// metadata), so legend and map can never disagree; and of the report heatmap.
let hexLegend = null; // {max, classes: [{lo, hi, colour, cells}]} while the planner's heatmap is on
const heatmapShown = () => hexLegend !== null && state.tab === 'plan';
function balanceStops() {
  const colour = app.map?.getLayer('grids-fill') ? app.map.getPaintProperty('grids-fill', 'fill-color') : null;
  const classes = app.balanceClasses;
  if (!Array.isArray(colour) || colour[0] !== 'match' || !Array.isArray(classes)) return [];
  const colours = new Map();
  for (let i = 2; i + 1 < colour.length; i += 2) for (const name of [colour[i]].flat()) colours.set(name, colour[i + 1]);
  return classes.filter((c) => colours.has(c.class)).map((c, i, all) => {
    const next = all[i + 1]?.from_households;
    const label = c.from_households === 0 ? `<${next}` : next === undefined ? `≥${c.from_households}` : `${c.from_households}–${next - 1}`;
    return { from: c.from_households, label, colour: colours.get(c.class) };
  });
}
function renderLegend() {
  const el = $('#legend');
  const stops = balanceStops();
  // Report dots (the style's `reports` layer, from z14): colours read from its status match.
  const dots = app.map?.getLayer('reports') ? app.map.getPaintProperty('reports', 'circle-color') : null;
  const reportStops = Array.isArray(dots) && dots[0] === 'match' && dots.length === 7
    ? [['legend_report_open', dots[3]], ['legend_report_in_hand', dots[5]], ['legend_report_done', dots[6]]] : [];
  if (isResidentMode() || (!stops.length && !heatmapShown() && !reportStops.length)) { el.hidden = true; return; }
  el.hidden = false;
  fill(el,
    stops.length && !heatmapShown() ? h('div', { class: 'legend-block', id: 'legend-balance' },
      h('div', { class: 'legend-title' }, t('legend_title')),
      h('div', { class: 'legend-ramp' }, ...stops.map((s) => h('span', { class: 'legend-stop', dataset: { households: s.from } },
        h('i', { style: `background:${s.colour}` }), s.label)))) : null,
    heatmapShown() ? h('div', { class: 'legend-block', id: 'legend-hex' },
      h('div', { class: 'legend-title' }, t('legend_hex', hexLegend.max)),
      h('ul', { class: 'legend-classes' }, ...hexLegend.classes.map((c) => h('li', { class: 'legend-class', dataset: { lo: c.lo, hi: c.hi, cells: c.cells } },
        h('i', { style: `background:${c.colour}` }), t('hex_class', c.lo, c.hi, c.cells)))))
      : null,
    reportStops.length ? h('div', { class: 'legend-block', id: 'legend-reports' },
      h('div', { class: 'legend-title' }, t('legend_reports')),
      h('div', { class: 'legend-ramp' }, ...reportStops.map(([key, c]) =>
        h('span', { class: 'legend-stop' }, h('i', { style: `background:${c};border-radius:50%` }), t(key)))))
      : null);
}
app.showHexLegend = (legend) => { hexLegend = legend; applyMode(); };

// ---------------------------------------------------------------------------------------------
// Stations: list, search, card

function hoursBadge(hours) {
  const open = isOpen(hours);
  if (open === null) return h('span', { class: 'badge unknown' }, t('hours_unknown'));
  return h('span', { class: `badge ${open ? 'open' : 'closed'}`, dataset: { open: String(open) } }, t(open ? 'open_now' : 'closed_now'));
}

function matches(station, q) {
  if (!q) return true;
  const hay = [station.name, station.address, station.host_org, ...station.services.map(serviceSearchText)].join(' ').toLowerCase();
  return q.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

/** The 营业中 and service chips. */
function passesFilters(station) {
  if (state.filters.open && isOpen(station.opening_hours) !== true) return false;
  for (const code of state.filters.services) if (!station.services.includes(code)) return false;
  return true;
}

function renderFilters() {
  const toggle = (apply) => () => { apply(); renderStations(); updateStationLayer(); };
  const chip = (key, label, pressed, onclick, icon) => h('button', {
    type: 'button', class: 'chip', dataset: { filter: key }, 'aria-pressed': String(pressed), onclick,
  }, icon ? h('span', { 'aria-hidden': 'true' }, icon) : null, icon ? ' ' : null, label);
  fill($('#station-filters'),
    chip('open', t('filter_open_now'), state.filters.open, toggle(() => { state.filters.open = !state.filters.open; })),
    ...FILTER_SERVICES.map((code) => chip(code, serviceLabel(code), state.filters.services.has(code), toggle(() => {
      if (state.filters.services.has(code)) state.filters.services.delete(code); else state.filters.services.add(code);
    }), SERVICES[code]?.icon)));
  $('#station-filters').setAttribute('aria-label', t('filters'));
}

function renderStations() {
  const list = $('#station-list');
  renderFilters();
  const shown = state.stations.filter((s) => matches(s, state.query) && passesFilters(s));
  const filtered = state.query || state.filters.open || state.filters.services.size;
  $('#stations-count').textContent = filtered ? `${shown.length} / ${state.stations.length}` : t('stations_count', state.stations.length);
  list.replaceChildren(
    ...shown.map((s) => h('li', { tabindex: 0, dataset: { id: s.id }, onclick: () => selectStation(s.id), onkeydown: (e) => { if (e.key === 'Enter') selectStation(s.id); } },
      h('div', { class: 'name' }, s.name, hoursBadge(s.opening_hours)),
      h('div', { class: 'sub' }, s.address))),
  );
  if (!shown.length) list.append(h('li', { class: 'muted' }, t('no_match')));
  renderStationCard();
}

/** "今天 08:00–20:00", "今天 08:00–20:00 · 08:00 开门" before opening, "今天休息"; the raw text when unparsed. */
function hoursToday(text) {
  const today = todayHours(text);
  if (!today) return text || '—';
  if (!today.spans.length) return t('closed_today');
  return [t('today_hours', today.spans.join('，')), today.opensAt ? t('opens_at', today.opensAt) : null].filter(Boolean).join(' · ');
}

function renderStationCard() {
  const card = $('#station-card');
  const s = state.stations.find((x) => x.id === state.selected);
  if (!s) { card.hidden = true; return; }
  card.hidden = false;
  const hours = isAlwaysOpen(s.opening_hours) ? t('open_24_7') : hoursToday(s.opening_hours);
  const nav = navigationLinks(s.lon, s.lat, s.name);
  // Walking distance when the station came up in "nearest" (the server's distance on the ellipsoid).
  const near = state.nearest?.stations?.find((x) => x.id === s.id);
  const WALK_M_PER_MIN = 80; // ~4.8 km/h
  fill(card,
    h('h2', {}, s.name, hoursBadge(s.opening_hours), busynessBadge(s)),
    stationCardExtras(s),
    h('dl', {},
      h('dt', {}, t('address')), h('dd', {}, s.address),
      h('dt', {}, t('hours')), h('dd', { class: 'hours' }, hours,
        s.opening_hours && !isAlwaysOpen(s.opening_hours) ? h('div', { class: 'sub' }, s.opening_hours) : null),
      near ? [h('dt', {}, t('distance')), h('dd', { class: 'walk' }, t('walk', Math.max(1, Math.round(near.distance_m / WALK_M_PER_MIN)), near.distance_m))] : null,
      h('dt', {}, t('services')), h('dd', {}, h('ul', { class: 'services' },
        ...s.services.map((code) => h('li', { dataset: { service: code } },
          h('span', { 'aria-hidden': 'true' }, SERVICES[code]?.icon ?? '•'), ' ', serviceLabel(code))))),
      h('dt', {}, t('host')), h('dd', {}, s.host_org),
      s.phone ? [h('dt', {}, t('phone')), h('dd', {}, h('a', { href: `tel:${s.phone}` }, s.phone))] : null,
      // Each app gets the datum it expects (coords.js): Amap GCJ-02, Baidu BD-09, Apple WGS84.
      h('dt', {}, t('navigate')), h('dd', { class: 'row nav-links' },
        ...['amap', 'baidu', 'apple'].map((app) => h('a', { href: nav[app], target: '_blank', rel: 'noopener', class: 'nav', dataset: { app } }, t(`nav_${app}`))))),
    h('p', { class: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => { state.selected = null; renderStationCard(); updateStationLayer(); } }, t('back'))),
  );
}

function selectStation(id, { fly = true } = {}) {
  state.selected = id;
  const s = state.stations.find((x) => x.id === id);
  if (state.tab !== 'stations') showTab('stations');
  renderStationCard();
  updateStationLayer();
  if (s && fly && app.map) app.map.easeTo({ center: [s.lon, s.lat], zoom: Math.max(app.map.getZoom(), 15) });
  $('#station-card').scrollIntoView?.({ block: 'nearest' });
}

async function loadStations() {
  try {
    const body = await api('/api/stations');
    state.stations = body.stations;
    try { localStorage.setItem(STATIONS_CACHE, JSON.stringify(body.stations)); } catch { /* storage full: fine */ }
  } catch (err) {
    // A rider on a dead connection still gets the list from the last visit.
    const cached = JSON.parse(localStorage.getItem(STATIONS_CACHE) || '[]');
    state.stations = cached;
    setStatus('api_error', err.message);
  }
  renderStations();
  updateStationLayer();
  window.__stationsLoaded = state.stations.length;
}

// ---------------------------------------------------------------------------------------------
// Nearest stations and which grid

function locate(then) {
  if (!navigator.geolocation) { setStatus('geo_denied'); return; }
  setStatus('locating');
  navigator.geolocation.getCurrentPosition(
    (pos) => { setStatus(null); then(pos.coords.longitude, pos.coords.latitude, pos.coords.accuracy); },
    () => setStatus('geo_denied'),
    { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 },
  );
}

/** Move the map so that every point (me and the results) is in sight, above the phone's panel. */
function showOnMap(points) {
  const map = app.map;
  if (!map || !points.length) return;
  const xs = points.map((p) => p[0]); const ys = points.map((p) => p[1]);
  const bounds = [[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]];
  map.fitBounds(bounds, { padding: 48, maxZoom: 17, duration: 600 });
}

/** A map button that finds the user and runs the lookup of the tab shown (nearest stations by default). */
class LocateControl {
  onAdd() {
    this.el = h('div', { class: 'maplibregl-ctrl maplibregl-ctrl-group' },
      h('button', { type: 'button', class: 'locate-button', 'aria-label': t('locate_me'), title: t('locate_me'), onclick: () => locateMe() }, '◎'));
    return this.el;
  }

  onRemove() { this.el.remove(); }
}

function locateMe() {
  locate((lon, lat) => {
    if (state.tab === 'grid') gridAt(lon, lat);
    else {
      if (state.tab !== 'nearest') showTab('nearest');
      nearestAt(lon, lat);
    }
  });
}

async function nearestAt(lon, lat) {
  setPoint(lon, lat);
  try {
    const body = await api(`/api/stations/nearest?lon=${lon}&lat=${lat}&limit=5`);
    state.nearest = { lon, lat, stations: body.stations };
  } catch (err) {
    setStatus('api_error', err.message);
    state.nearest = { lon, lat, stations: [], error: err.message };
  }
  renderNearest();
  updateStationLayer();
  showOnMap([[lon, lat], ...state.nearest.stations.map((st) => [st.lon, st.lat])]);
  return state.nearest;
}

function renderNearest() {
  const n = state.nearest;
  $('#nearest-from').textContent = n ? t('nearest_from', n.lon, n.lat) : '';
  $('#nearest-list').replaceChildren(...(n?.stations ?? []).map((s) => h('li', { tabindex: 0, dataset: { id: s.id }, onclick: () => selectStation(s.id) },
    h('span', { class: 'dist' }, t('metres', s.distance_m)),
    h('span', { class: 'name' }, s.name), hoursBadge(s.opening_hours),
    h('div', { class: 'sub' }, s.address))));
}

async function gridAt(lon, lat) {
  setPoint(lon, lat);
  let card = null;
  try {
    card = await api(`/api/grids/at?lon=${lon}&lat=${lat}`, { expectFailure: true });
  } catch (err) {
    if (err.status !== 404) setStatus('api_error', err.message);
  }
  state.grid = { lon, lat, card };
  renderGrid();
  app.map?.getSource('gm-grid')?.setData(card ? { type: 'Feature', geometry: card.geometry, properties: {} } : emptyCollection());
  showOnMap([[lon, lat], ...(card ? card.geometry.coordinates.flat(card.geometry.type === 'MultiPolygon' ? 2 : 1) : [])]);
  return card;
}

function renderGrid() {
  const el = $('#grid-card');
  const g = state.grid;
  if (!g) { el.hidden = true; return; }
  el.hidden = false;
  if (!g.card) { el.replaceChildren(h('p', { class: 'muted' }, t('grid_none'))); return; }
  const c = g.card;
  el.replaceChildren(
    h('h2', {}, c.name),
    h('dl', {},
      h('dt', {}, t('grid_code')), h('dd', { class: 'grid-code' }, c.code),
      h('dt', {}, t('community')), h('dd', {}, c.community ?? '—'),
      h('dt', {}, t('subdistrict')), h('dd', {}, c.subdistrict ?? '—'),
      h('dt', {}, t('households')), h('dd', {}, t('households_n', c.households)),
      h('dt', {}, t('workers')), h('dd', {},
        c.workers.length
          ? h('ul', { class: 'workers list' }, ...c.workers.map((w) => h('li', {}, w.name, ' ',
            w.public_phone ? h('a', { href: `tel:${w.public_phone}` }, w.public_phone) : h('span', { class: 'muted' }, `（${t('phone_unpublished')}）`))))
          : t('no_workers')),
      // Whom to contact: the workers' published phones, else the community's service centre.
      c.service_centre && !c.workers.some((w) => w.public_phone) ? [
        h('dt', {}, t('contact')), h('dd', { class: 'service-centre' },
          h('div', {}, c.service_centre.name),
          c.service_centre.address ? h('div', { class: 'sub' }, c.service_centre.address) : null,
          c.service_centre.phone ? h('a', { href: `tel:${c.service_centre.phone}` }, c.service_centre.phone) : null)] : null),
  );
}

// ---------------------------------------------------------------------------------------------
// Tabs, language, wiring

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('#tabs button')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${tab}`;
  applyMode();
  window.dispatchEvent(new CustomEvent('gridmap:tab', { detail: tab }));
  // A tab whose view is not loaded yet: load it now (it opens itself for the tab shown).
  if (!FIRST_TABS.has(tab)) loadViews();
}

/**
 * The views a resident's first map does not need — the grid workers', planners', building
 * leaders', points, wishes, emergency and county views, and the English strings — as chunks of
 * their own (build.mjs: esbuild splitting), fetched once the map is idle or a tab asks for one,
 * whichever comes first. In one bundle they were about half of app.js's 41 KiB (brotli), which
 * shared the phone line with MapLibre's main file that the map waits for (bench/web.sh).
 * Offline, the service worker has them with the rest of the app shell.
 */
let views = null;
// The tabs app.js, rider.js and station.js draw themselves (no chunk needed).
const FIRST_TABS = new Set(['stations', 'nearest', 'grid', 'report', 'checkin', 'host']);
function loadViews() {
  views ??= Promise.all([
    import('./worker.js'), import('./rounds.js'), import('./planner.js'), import('./leaders.js'),
    import('./points.js'), import('./wishes.js'), import('./emergency.js'), import('./counties.js'),
    loadLang('en'),
  ]).then(([worker, rounds, planner, leaders, points, wishes, emergency, counties]) => {
    worker.initWorker(app);
    rounds.initRounds(app);
    planner.initPlanner(app);
    leaders.initLeaders(app);
    points.initPoints(app);
    wishes.initWishes(app);
    emergency.initEmergency(app);
    counties.initCounties(app);
    renderAll();
    // The tab shown before they were here: each view opens itself on this event.
    window.dispatchEvent(new CustomEvent('gridmap:tab', { detail: state.tab }));
  }).catch((err) => {
    // Not fetched (a network gone before the service worker had them): the next tab tries again.
    views = null;
    console.error(`views: ${err.message}`);
  });
  return views;
}

function renderAll() {
  document.title = `${t('title')} · gridmap`;
  applyStatic();
  setStatus(state.status.key, state.status.extra);
  renderStations();
  renderNearest();
  renderGrid();
  applyMode();
  for (const f of app.rerender) f();
}

function wire() {
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('#lang').addEventListener('click', async () => { await setLang(getLang() === 'en' ? 'zh-CN' : 'en'); renderAll(); });
  $('#search').addEventListener('input', (e) => { state.query = e.target.value.trim(); renderStations(); });
  $('#locate-nearest').addEventListener('click', () => locate((lon, lat) => nearestAt(lon, lat)));
  $('#locate-grid').addEventListener('click', () => locate((lon, lat) => gridAt(lon, lat)));
  app.onMapClick.stations = (e) => {
    const hit = app.map.queryRenderedFeatures(e.point, { layers: ['gm-stations-hit'] })[0];
    if (hit) selectStation(hit.properties.id, { fly: false });
  };
  app.onMapClick.nearest = (e) => nearestAt(e.lngLat.lng, e.lngLat.lat);
  app.onMapClick.grid = (e) => gridAt(e.lngLat.lng, e.lngLat.lat);
  window.addEventListener('offline', () => setStatus('offline'));
  window.addEventListener('online', () => setStatus(null));
}

/**
 * The offline app shell (sw.js). Registered once the map has drawn, so installing the cache does
 * not compete with the first view on a weak connection. Browsers without service workers, and
 * plain-http origins other than localhost (not a secure context), simply work online only.
 */
function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  const register = () => navigator.serviceWorker.register('/sw.js').catch((err) => console.warn(`service worker: ${err.message}`));
  if (window.__mapIdle || !app.map) register();
  else app.map.once('idle', register);
}

Object.assign(app, { nearestAt, gridAt, selectStation, showTab, setStatus, renderAll });

await setLang(wantedLang());
wire();
renderAll();
await Promise.all([initMap(), loadStations()]);
initRider(app);
initStations(app);
renderAll();
// The other views once the map has drawn (or at once if a tab or link asked for one already).
// (A map that never settles, say offline with tiles never seen, waits no longer than 8 s.)
if (app.map && !window.__mapIdle) await new Promise((resolve) => { app.map.once('idle', resolve); setTimeout(resolve, 8000); });
await loadViews();
window.__appReady = true;
registerServiceWorker();
