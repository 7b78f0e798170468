// Build web-map/dist: our own sources plus the vendor files from node_modules, so that gridmap
// serves every asset itself and nothing is fetched from the internet at run time.
import { cpSync, mkdirSync, rmSync, existsSync, readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { createHash } from 'node:crypto';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { icons } from './icons.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
cpSync(join(here, 'src'), dist, { recursive: true });

// The page's own modules, minified by esbuild: app.js with what the resident's first map needs,
// and the other views (workers', planners', leaders', points, wishes, emergency, counties) and the
// English strings as chunks that app.js imports once the map is idle (dist/chunks/, names with a
// content hash). On a phone network (150 ms a round trip, 1.6 Mbit/s) sixteen separate modules
// cost a waterfall of requests; one bundle of everything was 41 KiB in brotli sharing the line
// with MapLibre's main file, which the map waits for (bench/web.sh). The code app.js shares with
// the chunks is a chunk app.js imports statically: index.html preloads it (below), so it is not
// found only once app.js has arrived. MapLibre and the planner's editor stay files of their own
// (import map in index.html). The bundled modules are removed from dist (the source maps lead a
// debugger back to them).
const bundled = await build({
  entryPoints: [join(here, 'src', 'app.js')],
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  external: ['maplibre-gl', 'terra-draw', 'terra-draw-maplibre-gl-adapter'],
  outdir: dist,
  entryNames: '[name]',
  chunkNames: 'chunks/[name]-[hash]',
  allowOverwrite: true,
  metafile: true,
  logLevel: 'warning',
});
const inBundle = new Set(Object.values(bundled.metafile.outputs).flatMap((output) => Object.keys(output.inputs))
  .map((input) => `/${relative(join(here, 'src'), join(here, input)).split(sep).join('/')}`)
  .filter((path) => path !== '/app.js'));
// The chunks app.js imports statically, for index.html's modulepreload.
const appOutput = Object.entries(bundled.metafile.outputs).find(([, output]) => output.entryPoint === 'src/app.js');
if (!appOutput) throw new Error('esbuild: no output for src/app.js');
const eagerChunks = appOutput[1].imports.filter((i) => i.kind === 'import-statement' && !i.external)
  .map((i) => `/${relative(dist, join(here, i.path)).split(sep).join('/')}`);
for (const path of inBundle) rmSync(join(dist, path));

const vendor = [
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
// The vendor files are asked for with their npm version (`?v=6.17.0`): index.html's VERSION(name)
// placeholders become the versions, and vendor/versions.json tells gridmap which URLs name bytes
// that never change (served immutable, server/src/http/static_files.rs). MapLibre asks for its
// worker as `maplibre-gl-worker.mjs?v=<its version>` (checked below), which is thus immutable too.
const versions = Object.fromEntries(
  ['maplibre-gl', 'terra-draw', 'terra-draw-maplibre-gl-adapter']
    .map((name) => [name, JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8')).version]),
);

// MapLibre, built here from the TypeScript sources its npm package ships, with esbuild, into
// three files instead of its two: its dist files (maplibre-gl.mjs for the page,
// maplibre-gl-worker.mjs for the web worker) each carry their own copy of the code both sides
// run (style spec, expressions, tile parsing, geometry): 237 + 119 KiB in brotli, the worker's
// 119 KiB downloaded only after the main file has run. Split, the page's file is 136 KiB, the
// shared chunk 133 KiB and the worker's own file 6 KiB: 80 KiB less on the line before a first
// map, 0.4 s at 1.6 Mbit/s (bench/web.sh, bench/RESULTS.md). The worker is a module worker
// (MapLibre's default), so it imports the shared chunk, which the page has already fetched and
// the HTTP cache holds (the chunk's URL carries the version: immutable, http/static_files.rs).
// The worker's file keeps its name: MapLibre asks for `maplibre-gl-worker.mjs?v=<version>`
// next to the module that asks (checked below).
const maplibreDir = join(here, 'node_modules', 'maplibre-gl');
const maplibreOut = join(dist, 'vendor', 'maplibre-gl');
const maplibreVersion = versions['maplibre-gl'];
const maplibre = await build({
  entryPoints: {
    'maplibre-gl': join(maplibreDir, 'src', 'index.ts'),
    'maplibre-gl-worker': join(maplibreDir, 'src', 'source', 'worker.ts'),
  },
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2022',
  minify: !process.env.MAPLIBRE_DEBUG, // MAPLIBRE_DEBUG=1 node build.mjs: readable, for a stack trace
  legalComments: 'none',
  banner: { js: `/**\n* MapLibre GL JS\n* @license 3-Clause BSD. Full text of license: https://github.com/maplibre/maplibre-gl-js/blob/v${maplibreVersion}/LICENSE.txt\n*/` },
  outdir: maplibreOut,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'maplibre-gl-shared-[hash]',
  // As MapLibre's own tsconfig: a declared-only field (`uint8;` in its struct arrays) must not
  // be defined as `undefined` after the base constructor has set it (ES2022 class fields would).
  tsconfigRaw: { compilerOptions: { useDefineForClassFields: false } },
  metafile: true,
  logLevel: 'warning',
  // MapLibre imports its package.json for the version alone; the whole file (its dev
  // dependencies and scripts) would otherwise be bundled.
  plugins: [{
    name: 'maplibre-version',
    setup(b) {
      b.onLoad({ filter: /maplibre-gl[\\/]package\.json$/ }, () => ({
        contents: JSON.stringify({ version: maplibreVersion }),
        loader: 'json',
      }));
    },
  }],
});
const maplibreFiles = Object.keys(maplibre.metafile.outputs).map((path) => relative(maplibreOut, resolve(path)));
const sharedChunks = maplibreFiles.filter((name) => name.startsWith('maplibre-gl-shared-'));
if (sharedChunks.length !== 1 || maplibreFiles.length !== 3) {
  throw new Error(`MapLibre built into ${maplibreFiles.join(', ')}: expected the page's file, the worker's and one shared chunk`);
}
// The chunk is imported with the version in its URL, as every vendor URL is, so that the worker's
// import of it is served from the HTTP cache without a round trip.
const sharedChunk = sharedChunks[0];
for (const name of ['maplibre-gl.mjs', 'maplibre-gl-worker.mjs']) {
  const path = join(maplibreOut, name);
  const code = readFileSync(path, 'utf8');
  const versioned = code.replaceAll(`"./${sharedChunk}"`, `"./${sharedChunk}?v=${maplibreVersion}"`);
  if (versioned === code) throw new Error(`${name} does not import ./${sharedChunk}: update build.mjs`);
  writeFileSync(path, versioned);
}
writeFileSync(join(dist, 'vendor', 'versions.json'), `${JSON.stringify(versions, null, 2)}\n`);
const indexPath = join(dist, 'index.html');
const indexHtml = readFileSync(indexPath, 'utf8')
  .replace(/VERSION\(([a-z-]+)\)/g, (_, name) => {
    if (!versions[name]) throw new Error(`index.html: no vendor package ${name}`);
    return versions[name];
  });
if (!indexHtml.includes(`maplibre-gl.mjs?v=${versions['maplibre-gl']}`)) throw new Error('index.html: MapLibre is no longer asked for with its version; update build.mjs');
if (!indexHtml.includes('<!-- APP CHUNKS -->')) throw new Error('index.html: the APP CHUNKS placeholder moved; update build.mjs');
if (!indexHtml.includes('<!-- MAPLIBRE SHARED -->')) throw new Error('index.html: the MAPLIBRE SHARED placeholder moved; update build.mjs');
writeFileSync(indexPath, indexHtml
  .replace('<!-- MAPLIBRE SHARED -->',
    `<link rel="modulepreload" href="/vendor/maplibre-gl/${sharedChunk}?v=${maplibreVersion}">`)
  .replace('<!-- APP CHUNKS -->',
    eagerChunks.map((path) => `<link rel="modulepreload" href="${path}">`).join('\n  ')));
if (!maplibreFiles.some((name) => readFileSync(join(maplibreOut, name), 'utf8').includes('maplibre-gl-worker.mjs'))) {
  throw new Error('MapLibre no longer names maplibre-gl-worker.mjs: check that its worker is still asked for with ?v= (http/static_files.rs)');
}
mkdirSync(join(dist, 'icons'), { recursive: true });
for (const [name, bytes] of Object.entries(icons())) writeFileSync(join(dist, 'icons', name), bytes);

// The service worker's precache: every file of the app shell (not the planner's editor, which is
// desktop-only and loaded on demand), and a hash of their contents, so each build that changes a
// byte is a new service worker that replaces the old cache (src/sw.js).
function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}
const shell = files(dist)
  .map((path) => `/${relative(dist, path).split(sep).join('/')}`)
  .filter((path) => path !== '/sw.js' && !path.startsWith('/vendor/terra-draw') && !path.endsWith('.map'))
  .sort();
const hash = createHash('sha256');
for (const path of shell) hash.update(path).update(readFileSync(join(dist, path)));
const swPath = join(dist, 'sw.js');
const sw = readFileSync(swPath, 'utf8')
  .replace("const VERSION = 'dev';", `const VERSION = '${hash.digest('hex').slice(0, 16)}';`)
  .replace('const PRECACHE = [];', `const PRECACHE = ${JSON.stringify(['/', ...shell])};`);
if (!sw.includes('const PRECACHE = ["/"')) throw new Error('sw.js: the precache placeholder moved; update build.mjs');
writeFileSync(swPath, sw);

// A gzip and a brotli copy beside every text asset; gridmap serves the smaller one the browser
// accepts (ServeDir::precompressed_br / _gzip), which matters on a rider's weak connection:
// brotli at quality 11 makes MapLibre's two files 364 KiB instead of 434 KiB with gzip -9, 0.35 s
// less at 1.6 Mbit/s (bench/web.sh). Quality 11 is slow (~2 s for MapLibre) but runs once per build.
function compressTree(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) compressTree(path);
    else if (/\.(m?js|css|html|json|svg|webmanifest)$/.test(name)) {
      const bytes = readFileSync(path);
      writeFileSync(`${path}.gz`, gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION }));
      writeFileSync(`${path}.br`, brotliCompressSync(bytes, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
          [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
          [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
        },
      }));
    }
  }
}
compressTree(dist);
console.log(`web-map built into ${dist}`);
