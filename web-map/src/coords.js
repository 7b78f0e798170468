// Coordinates for Chinese map apps (issue 20 item 9): Amap (高德) expects GCJ-02 and Baidu BD-09;
// a WGS84 point handed over as-is lands ~500 m off in this county — a street or two away. The
// forward transform is the published one (the Rust copy is server/src/reports/gcj02.rs, tested
// against the same reference pair as test/coords.test.mjs). Apple Maps in mainland China also
// draws GCJ-02 but takes WGS84 in its links and converts itself.

const A = 6378245.0;
const EE = 0.006693421622965943;
const X_PI = (Math.PI * 3000.0) / 180.0;

/** GCJ-02 applies inside mainland China only (the usual rough box). */
function outsideChina(lon, lat) {
  return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271;
}

function transformLat(x, y) {
  let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320.0 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
  return r;
}

function transformLon(x, y) {
  let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
  return r;
}

/** WGS84 → GCJ-02, `[lon, lat]` in degrees. */
export function wgs84ToGcj02(lon, lat) {
  if (outsideChina(lon, lat)) return [lon, lat];
  const radLat = (lat / 180.0) * Math.PI;
  const magic = 1 - EE * Math.sin(radLat) * Math.sin(radLat);
  const sqrtMagic = Math.sqrt(magic);
  const dLat = (transformLat(lon - 105.0, lat - 35.0) * 180.0) / (((A * (1 - EE)) / (magic * sqrtMagic)) * Math.PI);
  const dLon = (transformLon(lon - 105.0, lat - 35.0) * 180.0) / ((A / sqrtMagic) * Math.cos(radLat) * Math.PI);
  return [lon + dLon, lat + dLat];
}

/** GCJ-02 → BD-09 (Baidu's further offset of GCJ-02). */
export function gcj02ToBd09(lon, lat) {
  const z = Math.sqrt(lon * lon + lat * lat) + 0.00002 * Math.sin(lat * X_PI);
  const theta = Math.atan2(lat, lon) + 0.000003 * Math.cos(lon * X_PI);
  return [z * Math.cos(theta) + 0.0065, z * Math.sin(theta) + 0.006];
}

export const wgs84ToBd09 = (lon, lat) => gcj02ToBd09(...wgs84ToGcj02(lon, lat));

/**
 * Walking directions to `(lon, lat)` (WGS84) named `name` in each app, with the coordinates each
 * expects: Amap's URI API (GCJ-02), Baidu's (BD-09, `coord_type=bd09ll`), Apple Maps (WGS84).
 */
export function navigationLinks(lon, lat, name) {
  const [gLon, gLat] = wgs84ToGcj02(lon, lat);
  const [bLon, bLat] = wgs84ToBd09(lon, lat);
  const n = encodeURIComponent(name);
  const f = (v) => v.toFixed(6);
  return {
    amap: `https://uri.amap.com/navigation?to=${f(gLon)},${f(gLat)},${n}&mode=walk&coordinate=gaode&callnative=1`,
    baidu: `https://api.map.baidu.com/direction?destination=latlng:${f(bLat)},${f(bLon)}|name:${n}&mode=walking&coord_type=bd09ll&output=html&src=gridmap`,
    apple: `https://maps.apple.com/?daddr=${f(lat)},${f(lon)}&dirflg=w&q=${n}`,
  };
}
