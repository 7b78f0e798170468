// The map page: MapLibre draws gridmap's own style (grids, buildings, stations) from gridmap's tiles.
import * as maplibregl from '/vendor/maplibre-gl/maplibre-gl.mjs';

const status = document.getElementById('status');
const map = new maplibregl.Map({
  container: 'map',
  style: '/tiles/style.json',
  center: [118.17, 36.18],
  zoom: 13,
  hash: true,
});
map.addControl(new maplibregl.NavigationControl(), 'top-right');
map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
map.on('error', (e) => { status.textContent = `地图错误: ${e.error?.message ?? e}`; });
map.once('idle', () => {
  status.textContent = '';
  window.__mapReady = true;
});
window.__map = map;
