// Build web-map/dist: our own sources plus the vendor files from node_modules, so that gridmap
// serves every asset itself and nothing is fetched from the internet at run time.
import { cpSync, mkdirSync, rmSync, existsSync, readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { gzipSync, constants } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
cpSync(join(here, 'src'), dist, { recursive: true });

const vendor = [
  ['maplibre-gl/dist/maplibre-gl.mjs', 'maplibre-gl/maplibre-gl.mjs'],
  ['maplibre-gl/dist/maplibre-gl-worker.mjs', 'maplibre-gl/maplibre-gl-worker.mjs'],
  ['maplibre-gl/dist/maplibre-gl.css', 'maplibre-gl/maplibre-gl.css'],
  // The planner's grid editor; ES modules, loaded by the planner view only (import map in index.html).
  ['terra-draw/dist/terra-draw.modern.js', 'terra-draw/terra-draw.modern.js'],
  ['terra-draw-maplibre-gl-adapter/dist/terra-draw-maplibre-gl-adapter.modern.js', 'terra-draw-maplibre-gl-adapter/terra-draw-maplibre-gl-adapter.modern.js'],
];
for (const [from, to] of vendor) {
  const src = join(here, 'node_modules', from);
  if (!existsSync(src)) {
    throw new Error(`missing ${src}: run npm ci in web-map/`);
  }
  const dest = join(dist, 'vendor', to);
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(src, dest);
}
// A gzip copy beside every text asset; gridmap serves it to browsers that accept gzip
// (ServeDir::precompressed_gzip), which matters on a rider's weak connection.
function gzipTree(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) gzipTree(path);
    else if (/\.(m?js|css|html|json|svg)$/.test(name)) {
      writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: constants.Z_BEST_COMPRESSION }));
    }
  }
}
gzipTree(dist);
console.log(`web-map built into ${dist}`);
