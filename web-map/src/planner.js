// The planner's view (规划): a grid editor on terra-draw (loaded only when this view opens, so the
// resident page does not pay for it), saving through OGC API – Features Part 4 (PATCH with
// If-Match and a reason); the server's validation shown inline — overlaps drawn on the map,
// out-of-county, the households the grid has after the edit against the 300 standard; a 412
// reloads the grid and says who changed it and what; the grid's history with revert; and the
// H3 heatmap of reports by period and category (`GET /api/reports/hexbins`).
import { t, refusalText, warningText } from './i18n.js';
import { h, $, fill } from './dom.js';
import { getSession, hasRole, onSession, loginForm, logout, call } from './session.js';

const ROLES = ['planner', 'admin'];
const STANDARD = 300;
const empty = () => ({ type: 'FeatureCollection', features: [] });

const planner = {
  splitPreview: null,
  editPreview: null, // {households, gaps} | {error}: what saving the shape being drawn would leave // {parts} | {error} | {loading}: the dry-run split of the line drawn
  revertMerge: null, // {version, neighbours} when a revert needs the split-off parts merged back
  grid: null, // the OGC feature as last read or written
  etag: null,
  draftId: null,
  dirty: false,
  history: [],
  message: null, // {kind, text}
  overlaps: [],
  conflict: null,
  draw: null,
  drawLoading: null,
  categories: [],
  mode: null, // null (editing vertices) | 'split' | 'merge'
  splitLine: null,
  mergeWith: null, // {id, code, name, etag}
};

/** The heatmap's classes (ColorBrewer BuPu), lowest count first. */
export const HEX_COLOURS = ['#b3cde3', '#8c96c6', '#8856a7', '#810f7c'];

/**
 * Equal-width classes of reports per cell from 1 to `max` (fewer when `max` is small): each
 * `{lo, hi, colour, cells}`, and every feature gets its class in `bucket`.
 */
export function hexClasses(features) {
  const max = Math.max(1, ...features.map((f) => f.properties.count));
  const n = Math.min(HEX_COLOURS.length, max);
  const classes = Array.from({ length: n }, (_, i) => ({
    lo: Math.floor((max * i) / n) + 1, hi: Math.floor((max * (i + 1)) / n), colour: HEX_COLOURS[HEX_COLOURS.length - n + i], cells: 0,
  }));
  for (const f of features) {
    const i = classes.findIndex((c) => f.properties.count <= c.hi);
    f.properties.bucket = HEX_COLOURS.length - n + i;
    classes[i].cells += 1;
  }
  return { max, classes };
}

const round7 = (ring) => ring.map(([x, y]) => [Math.round(x * 1e7) / 1e7, Math.round(y * 1e7) / 1e7]);

function ensureLayers(map) {
  if (!map || map.getSource('gm-overlap')) return;
  map.addSource('gm-hex', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'gm-hex', type: 'fill', source: 'gm-hex',
    // Its own ramp (light blue to purple), unlike the household choropleth's and the report dots'
    // colours; one colour per class, the classes the legend lists with their counts.
    paint: {
      'fill-color': ['match', ['get', 'bucket'], ...HEX_COLOURS.slice(0, -1).flatMap((c, i) => [i, c]), HEX_COLOURS.at(-1)],
      'fill-opacity': 0.75, 'fill-outline-color': '#ffffff',
    },
  });
  map.addSource('gm-gaps', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'gm-gaps', type: 'fill', source: 'gm-gaps', paint: { 'fill-color': '#f29900', 'fill-opacity': 0.6, 'fill-outline-color': '#8a5300' } });
  map.addSource('gm-mine', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'gm-mine', type: 'line', source: 'gm-mine', paint: { 'line-color': '#f29900', 'line-width': 3, 'line-dasharray': [1, 1] } });
  map.addSource('gm-overlap', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'gm-overlap', type: 'fill', source: 'gm-overlap', paint: { 'fill-color': '#d93025', 'fill-opacity': 0.55 } });
  map.addLayer({ id: 'gm-overlap-line', type: 'line', source: 'gm-overlap', paint: { 'line-color': '#a50e0e', 'line-width': 2 } });
}

function setVisible(app, visible) {
  const map = app.map;
  if (!map?.getLayer('gm-overlap')) return;
  for (const id of ['gm-hex', 'gm-gaps', 'gm-mine', 'gm-overlap', 'gm-overlap-line']) map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
  if (planner.draw) {
    if (!visible && planner.draw.enabled) planner.draw.stop();
    else if (visible && !planner.draw.enabled) { planner.draw.start(); planner.draw.setMode('select'); if (planner.grid) showGrid(); }
  }
}

async function ensureDraw(app) {
  if (planner.draw) return planner.draw;
  planner.drawLoading ??= (async () => {
    const [{ TerraDraw, TerraDrawSelectMode, TerraDrawPolygonMode, TerraDrawLineStringMode }, { TerraDrawMapLibreGLAdapter }] = await Promise.all([
      import('terra-draw'), import('terra-draw-maplibre-gl-adapter'),
    ]);
    const draw = new TerraDraw({
      adapter: new TerraDrawMapLibreGLAdapter({ map: app.map }),
      modes: [
        new TerraDrawSelectMode({
          allowManualDeselection: false,
          flags: { polygon: { feature: { coordinates: { draggable: true, midpoints: true, deletable: true } } } },
        }),
        new TerraDrawPolygonMode(),
        new TerraDrawLineStringMode(), // the split line
      ],
    });
    draw.start();
    draw.setMode('select');
    draw.on('change', (ids) => {
      // Selecting fires `change` too: dirty means the coordinates differ from the grid as read.
      if (!planner.draftId || !ids.includes(planner.draftId)) return;
      const now = JSON.stringify(draw.getSnapshotFeature(planner.draftId)?.geometry.coordinates);
      const dirty = now !== planner.loadedCoords;
      if (dirty !== planner.dirty) { planner.dirty = dirty; render(app); }
      if (dirty) schedulePreview(app);
    });
    draw.on('finish', (id, context) => {
      if (planner.mode === 'split' && context?.mode === 'linestring') {
        planner.splitLine = draw.getSnapshotFeature(id)?.geometry ?? null;
        render(app);
        previewSplit(app);
      }
    });
    planner.draw = draw;
    window.__draw = draw;
    return draw;
  })();
  return planner.drawLoading;
}

/** The outer ring and holes of the grid's single polygon, or null for a multi-part grid. */
function editablePolygon(grid) {
  const g = grid.geometry;
  if (g.type === 'Polygon') return g.coordinates.map(round7);
  if (g.type === 'MultiPolygon' && g.coordinates.length === 1) return g.coordinates[0].map(round7);
  return null;
}

function showGrid() {
  const draw = planner.draw;
  draw.clear();
  const rings = editablePolygon(planner.grid);
  planner.draftId = null;
  if (!rings) { planner.message = { kind: 'error', text: t('multipart') }; return; }
  const id = crypto.randomUUID();
  const [result] = draw.addFeatures([{ id, type: 'Feature', geometry: { type: 'Polygon', coordinates: rings }, properties: { mode: 'polygon' } }]);
  if (!result.valid) { planner.message = { kind: 'error', text: `${t('not_editable')}${result.reason ?? ''}` }; return; }
  planner.draftId = id;
  planner.loadedCoords = JSON.stringify(draw.getSnapshotFeature(id)?.geometry.coordinates);
  draw.selectFeature(id);
}

async function loadHistory(id) {
  const r = await call(`/api/grids/${id}/history`);
  planner.history = r.ok ? r.data.versions : [];
}

async function loadGrid(app, id) {
  const r = await call(`/ogc/collections/grids/items/${id}`);
  if (!r.ok) { planner.message = { kind: 'error', text: t('api_error') + refusalText(r.data, r.status) }; render(app); return null; }
  // An offer to merge back belongs to the grid it was made for; a preview to the shape drawn.
  if (planner.grid?.id !== r.data.id) planner.revertMerge = null;
  clearEditPreview(app);
  planner.grid = r.data;
  planner.etag = r.etag;
  planner.dirty = false;
  await ensureDraw(app);
  showGrid();
  await loadHistory(id);
  render(app);
  window.__plannerGrid = { id: r.data.id, etag: r.etag };
  return r.data;
}

function refreshTiles(app) {
  // The server dropped the edited tiles from its cache; ask MapLibre to fetch them again
  // (the browser revalidates with the tiles' ETags).
  const src = app.map?.getSource('gridmap');
  if (src?.setTiles && src.tiles) src.setTiles([...src.tiles]);
}

const area = (grid) => grid?.properties?.households;

async function save(app, reason) {
  const id = planner.grid.id;
  const snap = planner.draw.getSnapshotFeature(planner.draftId);
  const geometry = { type: 'MultiPolygon', coordinates: [snap.geometry.coordinates] };
  const before = area(planner.grid);
  const r = await call(`/ogc/collections/grids/items/${id}?reason=${encodeURIComponent(reason)}`, {
    method: 'PATCH', body: { geometry }, headers: { 'If-Match': planner.etag },
  });
  planner.overlaps = [];
  planner.revertMerge = null;
  planner.conflict = null;
  app.map.getSource('gm-overlap').setData(empty());
  app.map.getSource('gm-mine').setData(empty());
  if (r.ok) {
    planner.grid = r.data;
    planner.etag = r.etag;
    planner.dirty = false;
    planner.loadedCoords = JSON.stringify(snap.geometry.coordinates);
    clearEditPreview(app);
    const after = area(r.data);
    const diff = Math.round(((after - STANDARD) / STANDARD) * 100);
    planner.message = { kind: 'ok', text: t('saved', before, after, diff) + (r.data.warnings?.length ? ` · ${r.data.warnings.map(warningText).join('；')}` : '') };
    await loadHistory(id);
    refreshTiles(app);
    window.__plannerSaved = (window.__plannerSaved ?? 0) + 1;
  } else if (r.status === 422) {
    const d = r.data?.details ?? {};
    if (Array.isArray(d.neighbours)) {
      showOverlaps(app, d.neighbours);
      planner.message = { kind: 'error', text: t('overlaps', d.neighbours.length) };
    } else if (d.outside_county_m2 !== undefined) {
      planner.message = { kind: 'error', text: t('outside_county', Math.round(d.outside_county_m2)) };
    } else {
      planner.message = { kind: 'error', text: refusal(r) };
    }
    window.__plannerRefused = r.data;
  } else if (r.status === 412) {
    // Someone saved this grid since we read it: keep our draft visible, load theirs, say what changed.
    const mine = { type: 'Feature', geometry, properties: {} };
    const old = planner.grid;
    await loadGrid(app, id);
    const latest = planner.history[planner.history.length - 1];
    const changes = [];
    if (old.properties.name !== planner.grid.properties.name) changes.push(t('changed_name', old.properties.name, planner.grid.properties.name));
    if (old.properties.code !== planner.grid.properties.code) changes.push(t('changed_code', old.properties.code, planner.grid.properties.code));
    if (JSON.stringify(old.geometry) !== JSON.stringify(planner.grid.geometry)) changes.push(t('changed_boundary'));
    if (area(old) !== area(planner.grid)) changes.push(t('changed_households', area(old), area(planner.grid)));
    planner.conflict = { by: latest?.author, reason: latest?.reason, at: latest?.created_at, version: latest?.version, changes };
    planner.message = { kind: 'error', text: t('conflict', latest?.author ?? '?', latest?.reason || '—') };
    app.map.getSource('gm-mine').setData(mine);
    window.__plannerConflict = planner.conflict;
  } else {
    planner.message = { kind: 'error', text: refusal(r) };
  }
  render(app);
}

/** The overlaps a refused write reported, listed and drawn in red with each neighbour's code. */
function showOverlaps(app, neighbours) {
  planner.overlaps = neighbours;
  app.map.getSource('gm-overlap').setData({
    type: 'FeatureCollection',
    features: neighbours.filter((n) => n.overlap).map((n) => ({ type: 'Feature', geometry: n.overlap, properties: { id: n.id, code: n.code, overlap_m2: n.overlap_m2 } })),
  });
}

/**
 * Revert after a split: the old shape now overlaps the parts split off it, so the server refuses
 * the revert (422 with the overlapping grids). That is not an error to show but a choice to
 * offer: merge those grids back into this one, which is what "undo the split" means.
 */
async function mergeBack(app) {
  const offer = planner.revertMerge;
  const version = (etag) => Number(String(etag).replaceAll('"', ''));
  const grids = [{ id: planner.grid.id, version: version(planner.etag) }];
  for (const n of offer.neighbours) {
    const g = await call(`/ogc/collections/grids/items/${n.id}`);
    if (!g.ok) { planner.message = { kind: 'error', text: t('api_error') + refusalText(g.data, g.status) }; render(app); return; }
    grids.push({ id: n.id, version: version(g.etag) });
  }
  const codes = offer.neighbours.map((n) => n.code).join('、');
  const r = await call('/api/grids/merge', { method: 'POST', body: { grids, reason: t('merge_back_reason', offer.version) } });
  if (r.ok) {
    planner.revertMerge = null;
    planner.overlaps = [];
    app.map.getSource('gm-overlap')?.setData(empty());
    await loadGrid(app, r.data.grid.id);
    planner.message = { kind: 'ok', text: t('merged_back', codes, r.data.grid.households) };
    refreshTiles(app);
    window.__plannerMerged = r.data;
  } else {
    planner.message = { kind: 'error', text: refusal(r) };
  }
  render(app);
}

async function revert(app, version) {
  const id = planner.grid.id;
  planner.revertMerge = null;
  const r = await call(`/api/grids/${id}/revert`, { method: 'POST', body: { version, reason: t('revert_reason', version) }, headers: { 'If-Match': planner.etag } });
  if (r.status === 422 && Array.isArray(r.data?.details?.neighbours) && r.data.details.neighbours.length) {
    showOverlaps(app, r.data.details.neighbours);
    planner.revertMerge = { version, neighbours: r.data.details.neighbours };
    planner.message = { kind: 'ok', text: t('revert_needs_merge', version, r.data.details.neighbours.map((n) => n.code).join('、')) };
  } else if (r.ok) {
    planner.conflict = null;
    planner.overlaps = [];
    app.map.getSource('gm-mine')?.setData(empty());
    app.map.getSource('gm-overlap')?.setData(empty());
    await loadGrid(app, id);
    planner.message = { kind: 'ok', text: t('reverted', version, area(planner.grid)) };
    refreshTiles(app);
  } else {
    planner.message = { kind: 'error', text: refusal(r) };
  }
  render(app);
}

function setMode(app, mode) {
  planner.mode = mode;
  planner.splitLine = null;
  planner.splitPreview = null;
  planner.mergeWith = null;
  if (planner.draw) {
    if (mode === 'split') planner.draw.setMode('linestring');
    else { planner.draw.setMode('select'); if (planner.grid) showGrid(); }
  }
  render(app);
}

/** Beyond this share from the 300-household standard a part is flagged (a warning, not a refusal). */
const BALANCE_WARNING = 0.15;

let previewTimer = null;

/**
 * While a vertex is dragged: once the shape rests for 400 ms, ask the server what saving it would
 * leave (`POST /api/grids/{id}/preview`: households, and the gaps it would open, drawn in amber).
 */
function schedulePreview(app) {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(async () => {
    const snap = planner.draftId && planner.draw?.getSnapshotFeature(planner.draftId);
    if (!snap || !planner.grid) return;
    const id = planner.grid.id;
    const r = await call(`/api/grids/${id}/preview`, { method: 'POST', body: { geometry: snap.geometry } });
    if (planner.grid?.id !== id || !planner.dirty) return;
    planner.editPreview = r.ok ? r.data : { error: refusal(r) };
    app.map?.getSource('gm-gaps')?.setData(r.ok ? r.data.gaps : empty());
    showEditPreview();
    window.__editPreview = planner.editPreview;
  }, 400);
}

function clearEditPreview(app) {
  clearTimeout(previewTimer);
  planner.editPreview = null;
  app.map?.getSource('gm-gaps')?.setData(empty());
}

/** Fill the preview box in place (a re-render would drop the reason being typed). */
function showEditPreview() {
  const el = document.querySelector('#edit-preview');
  if (!el) return;
  const p = planner.editPreview;
  if (!p) { el.replaceChildren(); return; }
  if (p.error) { el.replaceChildren(h('p', { class: 'error' }, p.error)); return; }
  const deviation = (p.households - STANDARD) / STANDARD;
  const warn = Math.abs(deviation) > BALANCE_WARNING;
  el.replaceChildren(
    h('p', { class: warn ? 'warn' : 'muted', id: 'edit-households', dataset: { households: p.households, warn: String(warn) } },
      t('edit_households', p.households, `${deviation >= 0 ? '+' : ''}${Math.round(deviation * 100)}%`), warn ? ` ⚠ ${t('split_part_warning')}` : ''),
    p.gaps.features.length
      ? h('div', { id: 'edit-gaps' }, h('p', { class: 'warn' }, t('edit_gaps', p.gaps.features.length, Math.round(p.gaps.total_area_m2))),
        h('ul', { class: 'split-parts' }, ...p.gaps.features.map((f) => h('li', { dataset: { area: f.properties.area_m2 } }, t('edit_gap', Math.round(f.properties.area_m2))))))
      : h('p', { class: 'muted', id: 'edit-gaps-none' }, t('edit_no_gaps')));
}

/**
 * The consequences before saving: the server runs the split without storing it (`dry_run`) and
 * answers with each part's households, shown against the standard with a warning outside ±15%.
 */
async function previewSplit(app) {
  const line = planner.splitLine;
  planner.splitPreview = { loading: true };
  const r = await call(`/api/grids/${planner.grid.id}/split`, { method: 'POST', body: { line, dry_run: true }, headers: { 'If-Match': planner.etag } });
  if (planner.splitLine !== line) return; // redrawn meanwhile
  planner.splitPreview = r.ok ? { parts: r.data.grids } : { error: refusal(r) };
  render(app);
  window.__splitPreview = planner.splitPreview;
}

function refusal(r) {
  return `${t('refused')}${refusalText(r.data, r.status)}`;
}

function splitPreviewView() {
  const p = planner.splitPreview;
  if (!p || p.loading) return p ? h('p', { class: 'muted' }, t('loading')) : null;
  if (p.error) return h('p', { class: 'error', id: 'split-preview' }, p.error);
  const rows = p.parts.map((g, i) => {
    const deviation = (g.households - STANDARD) / STANDARD;
    const warn = Math.abs(deviation) > BALANCE_WARNING;
    return h('li', { class: warn ? 'warn' : '', dataset: { households: g.households, warn: String(warn) } },
      t('split_part', i + 1, g.households, `${deviation >= 0 ? '+' : ''}${Math.round(deviation * 100)}%`), warn ? ` ⚠ ${t('split_part_warning')}` : '');
  });
  const warned = p.parts.some((g) => Math.abs((g.households - STANDARD) / STANDARD) > BALANCE_WARNING);
  return h('div', { id: 'split-preview' },
    h('ul', { class: 'split-parts' }, ...rows),
    warned ? h('p', { class: 'warn' }, t('split_warning')) : null);
}

async function split(app, reason) {
  const id = planner.grid.id;
  const r = await call(`/api/grids/${id}/split`, { method: 'POST', body: { line: planner.splitLine, reason }, headers: { 'If-Match': planner.etag } });
  if (r.ok) {
    const parts = r.data.grids.map((g) => t('grid_part', g.code, g.households)).join('，');
    setMode(app, null);
    await loadGrid(app, id);
    planner.message = { kind: 'ok', text: t('split_done', r.data.grids.length, parts) };
    refreshTiles(app);
    window.__plannerSplit = r.data.grids;
  } else {
    planner.message = { kind: 'error', text: refusal(r) };
    if (r.status === 412) { setMode(app, null); await loadGrid(app, id); planner.message = { kind: 'error', text: t('conflict_short') }; }
  }
  render(app);
}

async function pickMergeNeighbour(app, id) {
  const r = await call(`/ogc/collections/grids/items/${id}`);
  if (!r.ok) return;
  planner.mergeWith = { id, code: r.data.properties.code, name: r.data.properties.name, etag: r.etag };
  render(app);
}

async function merge(app, reason) {
  const version = (etag) => Number(String(etag).replaceAll('"', ''));
  const other = planner.mergeWith;
  const r = await call('/api/grids/merge', {
    method: 'POST',
    body: { grids: [{ id: planner.grid.id, version: version(planner.etag) }, { id: other.id, version: version(other.etag) }], reason },
  });
  if (r.ok) {
    setMode(app, null);
    await loadGrid(app, r.data.grid.id);
    planner.message = { kind: 'ok', text: t('merge_done', other.code, r.data.grid.code, r.data.grid.households) };
    refreshTiles(app);
    window.__plannerMerged = r.data;
  } else {
    planner.message = { kind: 'error', text: refusal(r) };
  }
  render(app);
}

function modeTools(app) {
  const reason = h('input', { name: 'reason', required: true, maxlength: 500, placeholder: t('reason_placeholder') });
  if (planner.mode === 'split') {
    return h('form', { class: 'stack', id: 'split-form', onsubmit: (e) => { e.preventDefault(); split(app, reason.value.trim()); } },
      h('p', { class: 'muted' }, planner.splitLine ? t('split_ready') : t('split_hint')),
      planner.splitLine ? splitPreviewView() : null,
      planner.splitLine ? h('label', {}, h('span', {}, t('reason')), reason) : null,
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', disabled: !planner.splitLine }, t('split_confirm')),
        h('button', { type: 'button', onclick: () => setMode(app, null) }, t('cancel'))));
  }
  if (planner.mode === 'merge') {
    const m = planner.mergeWith;
    return h('form', { class: 'stack', id: 'merge-form', onsubmit: (e) => { e.preventDefault(); merge(app, reason.value.trim()); } },
      h('p', { class: 'muted' }, m ? t('merge_ready', m.name, m.code) : t('merge_hint')),
      m ? h('label', {}, h('span', {}, t('reason')), reason) : null,
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', disabled: !m }, t('merge_confirm')),
        h('button', { type: 'button', onclick: () => setMode(app, null) }, t('cancel'))));
  }
  return h('div', { class: 'row' },
    h('button', { type: 'button', id: 'start-split', disabled: planner.dirty, onclick: () => setMode(app, 'split') }, t('split')),
    h('button', { type: 'button', id: 'start-merge', disabled: planner.dirty, onclick: () => setMode(app, 'merge') }, t('merge')));
}

function fmtTime(iso) {
  return iso ? new Date(iso).toLocaleString(document.documentElement.lang, { timeZone: 'Asia/Shanghai', hour12: false }) : '—';
}

function renderEditor(app) {
  const el = $('#editor');
  const g = planner.grid;
  if (!g) { el.hidden = true; return; }
  el.hidden = false;
  const p = g.properties;
  const current = Number(String(planner.etag).replaceAll('"', ''));
  const reasonInput = h('input', { name: 'reason', required: true, maxlength: 500, placeholder: t('reason_placeholder') });
  const balance = Math.round(((p.households - STANDARD) / STANDARD) * 100);
  fill(el,
    h('h2', {}, `${p.name} `, h('span', { class: 'muted grid-code' }, p.code)),
    h('p', { class: 'muted' }, t('households_vs_standard', p.households, balance), ' · ', t('version_n', current)),
    planner.message ? h('p', { id: 'editor-message', class: planner.message.kind === 'error' ? 'error' : 'ok', role: 'status' }, planner.message.text) : null,
    planner.overlaps.length ? h('ul', { class: 'overlaps' }, ...planner.overlaps.map((n) => h('li', { dataset: { id: n.id } }, t('overlap_item', n.code, n.overlap_m2)))) : null,
    planner.revertMerge ? h('p', { class: 'row' },
      h('button', { type: 'button', class: 'primary', id: 'revert-merge', onclick: () => mergeBack(app) },
        t('merge_back', planner.revertMerge.neighbours.map((n) => n.code).join('、'))),
      h('button', { type: 'button', onclick: () => { planner.revertMerge = null; planner.overlaps = []; app.map.getSource('gm-overlap')?.setData(empty()); planner.message = null; render(app); } }, t('cancel'))) : null,
    planner.conflict ? h('div', { id: 'conflict', class: 'notice' },
      h('p', {}, t('conflict_detail', planner.conflict.by ?? '?', fmtTime(planner.conflict.at), planner.conflict.version)),
      h('ul', {}, ...planner.conflict.changes.map((c) => h('li', {}, c))),
      h('p', { class: 'muted' }, t('conflict_hint'))) : null,
    modeTools(app),
    planner.mode ? null : h('form', { class: 'stack', id: 'save-form', onsubmit: (e) => { e.preventDefault(); save(app, reasonInput.value.trim()); } },
      h('label', {}, h('span', {}, t('reason')), reasonInput),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', disabled: !planner.draftId }, t('save')),
        h('button', { type: 'button', onclick: () => loadGrid(app, g.id) }, t('discard')),
        planner.dirty ? h('span', { class: 'muted', id: 'dirty' }, t('unsaved')) : null),
      planner.dirty ? h('div', { id: 'edit-preview' }) : null),
    h('h3', {}, t('grid_history')),
    h('ol', { class: 'history', id: 'grid-history' }, ...[...planner.history].reverse().map((v) => h('li', { dataset: { version: v.version } },
      `v${v.version} · ${fmtTime(v.created_at)} · ${v.author}`, v.reason ? ` · ${v.reason}` : '', ` · ${Math.round(v.area_m2).toLocaleString()} m²`,
      v.version < current && v.op !== 'delete' ? h('button', { type: 'button', class: 'link', onclick: () => revert(app, v.version) }, t('revert')) : null))),
  );
}

function render(app) {
  const view = $('#view-plan');
  const allowed = hasRole(ROLES);
  view.querySelector('.login-slot').replaceChildren(...(allowed ? [] : [loginForm('planner_login_title', ROLES)]));
  $('#planner').hidden = !allowed;
  if (!allowed) return;
  $('#planner-who').textContent = t('logged_in_as', getSession().name);
  const select = $('#heatmap-form').elements.namedItem('category');
  const chosen = select.value;
  select.replaceChildren(h('option', { value: '' }, t('all_categories')),
    ...planner.categories.map((c) => h('option', { value: c.code }, document.documentElement.lang === 'en' ? c.name_en : c.name_zh)));
  select.value = chosen;
  renderEditor(app);
  showEditPreview();
}

async function heatmap(app, form) {
  const days = form.elements.namedItem('period').value;
  const category = form.elements.namedItem('category').value;
  const params = new URLSearchParams({ res: '8' });
  if (days) params.set('from', new Date(Date.now() - Number(days) * 86_400_000).toISOString());
  if (category) params.set('category', category);
  const r = await call(`/api/reports/hexbins?${params}`);
  const out = $('#heatmap-result');
  if (!r.ok) { out.textContent = t('api_error') + refusalText(r.data, r.status); return; }
  const { max, classes } = hexClasses(r.data.features);
  const total = r.data.features.reduce((s, f) => s + f.properties.count, 0);
  ensureLayers(app.map);
  app.map.getSource('gm-hex').setData(r.data);
  out.textContent = t('heatmap_result', r.data.features.length, total, max);
  // While the heatmap is on, the household colouring is hidden (two colourings would mix).
  app.showHexLegend?.(r.data.features.length ? { max, classes } : null);
  window.__heatmap = { cells: r.data.features.length, total, max };
}

export function initPlanner(app) {
  app.planner = planner;
  const open = async () => {
    render(app);
    if (!hasRole(ROLES)) return;
    ensureLayers(app.map);
    setVisible(app, true);
    if (!planner.categories.length) {
      const r = await call('/api/report-categories');
      if (r.ok) planner.categories = r.data;
      render(app);
    }
    await ensureDraw(app);
    window.__plannerReady = true;
  };
  onSession(() => { if (app.state.tab === 'plan') open(); else render(app); });
  window.addEventListener('gridmap:tab', (e) => {
    if (e.detail === 'plan') open();
    else setVisible(app, false);
  });
  $('#planner-logout').addEventListener('click', () => logout());
  $('#heatmap-form').addEventListener('submit', (e) => { e.preventDefault(); heatmap(app, e.target); });
  $('#heatmap-clear').addEventListener('click', () => { app.map?.getSource('gm-hex')?.setData(empty()); $('#heatmap-result').textContent = ''; app.showHexLegend?.(null); });
  app.onMapClick.plan = async (e) => {
    if (!hasRole(ROLES) || planner.dirty || planner.mode === 'split') return; // finish or discard the edit before choosing another grid
    const at = await call(`/api/grids/at?lon=${e.lngLat.lng}&lat=${e.lngLat.lat}`);
    if (planner.mode === 'merge') {
      if (at.ok && at.data.id !== planner.grid?.id) await pickMergeNeighbour(app, at.data.id);
      return;
    }
    if (at.ok && at.data.id !== planner.grid?.id) {
      planner.message = null; planner.conflict = null; planner.overlaps = [];
      app.map.getSource('gm-overlap')?.setData(empty());
      app.map.getSource('gm-mine')?.setData(empty());
      await loadGrid(app, at.data.id);
    }
  };
  app.planner.loadGrid = (id) => loadGrid(app, id);
  app.rerender.push(() => render(app));
  render(app);
}

