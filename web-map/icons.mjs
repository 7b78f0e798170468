// The app icons (web app manifest, home screen), drawn here rather than committed as binaries: a
// red square with a white 3×3 grid and a location dot. `maskable` keeps the drawing inside the
// central 80 % safe zone that launchers may crop to a circle.
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** An RGB PNG of `size`×`size` pixels; `pixel(x, y)` (0–1 coordinates) returns [r, g, b]. */
function png(size, pixel) {
  const rows = Buffer.alloc(size * (1 + size * 3));
  for (let y = 0; y < size; y++) {
    const row = y * (1 + size * 3); // filter byte 0 (none), then the pixels
    for (let x = 0; x < size; x++) rows.set(pixel((x + 0.5) / size, (y + 0.5) / size), row + 1 + x * 3);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(rows, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

const RED = [0xb3, 0x26, 0x1e];
const WHITE = [0xff, 0xff, 0xff];

/** The drawing, scaled into the centre `inset`..1-`inset` of the square. */
function drawing(inset) {
  return (x, y) => {
    const u = (x - inset) / (1 - 2 * inset);
    const v = (y - inset) / (1 - 2 * inset);
    if (u < 0 || u > 1 || v < 0 || v > 1) return RED;
    const line = 0.035;
    const onGrid = [0.1, 0.4, 0.7].some((g) => Math.abs(u - g) < line / 2 || Math.abs(v - g) < line / 2) && u > 0.08 && u < 0.72 && v > 0.08 && v < 0.72;
    const dot = Math.hypot(u - 0.72, v - 0.72) < 0.17;
    const ring = Math.hypot(u - 0.72, v - 0.72) < 0.24;
    if (dot) return WHITE;
    if (ring) return RED;
    return onGrid ? WHITE : RED;
  };
}

export function icons() {
  return {
    'icon-192.png': png(192, drawing(0.12)),
    'icon-512.png': png(512, drawing(0.12)),
    'maskable-512.png': png(512, drawing(0.22)),
  };
}
