// Known answers for the GCJ-02 / BD-09 conversions behind the station finder's 导航 links.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { wgs84ToGcj02, gcj02ToBd09, navigationLinks } from '../src/coords.js';

test('WGS84 to GCJ-02 matches the published Beijing reference pair', () => {
  // wandergis/coordtransform and eviltransform; the same pair as server/src/reports/gcj02.rs.
  const [lon, lat] = wgs84ToGcj02(116.404, 39.915);
  assert.ok(Math.abs(lon - 116.41024449916938) < 1e-12, String(lon));
  assert.ok(Math.abs(lat - 39.91640428150164) < 1e-12, String(lat));
});

test('GCJ-02 to BD-09 matches the published pairs', () => {
  // coordtransform's README: gcj02tobd09(116.404, 39.915) = [116.41036949371029, 39.92133699351021].
  const [lon, lat] = gcj02ToBd09(116.404, 39.915);
  assert.ok(Math.abs(lon - 116.41036949371029) < 1e-12, String(lon));
  assert.ok(Math.abs(lat - 39.92133699351021) < 1e-12, String(lat));
  // Beijing railway station, GCJ-02 (39.90245, 116.42703) → BD-09 (39.90851, 116.43351), 5 decimals.
  const [sLon, sLat] = gcj02ToBd09(116.42703, 39.90245);
  assert.equal(sLon.toFixed(5), '116.43351');
  assert.equal(sLat.toFixed(5), '39.90850');
});

test('outside China nothing moves', () => {
  assert.deepEqual(wgs84ToGcj02(2.35, 48.85), [2.35, 48.85]);
});

test('navigation links carry each app its own datum, about 500 m apart in Yiyuan', () => {
  const links = navigationLinks(118.17, 36.18, '驿站');
  const amap = links.amap.match(/to=([\d.]+),([\d.]+)/).slice(1).map(Number);
  const [gLon, gLat] = wgs84ToGcj02(118.17, 36.18);
  assert.deepEqual(amap, [Number(gLon.toFixed(6)), Number(gLat.toFixed(6))]);
  const metres = Math.hypot((amap[0] - 118.17) * 111320 * Math.cos((36.18 * Math.PI) / 180), (amap[1] - 36.18) * 111320);
  assert.ok(metres > 400 && metres < 700, `shift ${metres} m`);
  assert.match(links.baidu, /coord_type=bd09ll/);
  assert.match(links.apple, /daddr=36\.180000,118\.170000/);
});
