// Photos in the browser: the rider's report photos and the worker's "after" photos are shrunk
// before they leave the phone, and the worker's card shows a report's photos, which need the
// login (they are never public), so they are fetched with the token and shown as blob URLs.
import { getSession } from './session.js';
import { h } from './dom.js';
import { t } from './i18n.js';

export const PHOTO_MAX_SIDE = 1600; // px: legible for a worker, a few hundred KB on a weak connection
export const MAX_PHOTOS = 3; // the server's limit per report and per feedback step

/** Downscale to at most PHOTO_MAX_SIDE px as JPEG; the canvas copy also drops EXIF (GPS tags). */
export async function resize(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('resize failed'))), 'image/jpeg', 0.8));
}

/**
 * Object URLs of fetched photos, by path: an `<img src>` cannot carry the bearer token, so the
 * bytes come through `fetch` and the image shows a `blob:` URL. Kept while the card is open and
 * revoked when another report's card replaces it.
 */
const urls = new Map();

export function forgetPhotos() {
  for (const url of urls.values()) if (url) URL.revokeObjectURL(url);
  urls.clear();
}

async function photoUrl(path) {
  if (urls.has(path)) return urls.get(path);
  const token = getSession()?.token;
  const response = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {}, expectFailure: true });
  const url = response.ok ? URL.createObjectURL(await response.blob()) : null;
  urls.set(path, url);
  return url;
}

/** A full-screen view of one photo; a tap anywhere, the close button or Escape closes it. */
function showFull(url, label) {
  document.querySelector('#photo-viewer')?.remove();
  const close = () => { viewer.remove(); document.removeEventListener('keydown', onKey); };
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  const viewer = h('div', { id: 'photo-viewer', class: 'photo-viewer', role: 'dialog', 'aria-label': label, onclick: close },
    h('img', { src: url, alt: label }),
    h('button', { type: 'button', class: 'close', 'aria-label': t('close') }, '×'));
  document.addEventListener('keydown', onKey);
  document.body.append(viewer);
}

/**
 * Thumbnails of a report's photos: `count` images at `base/1…count`, each loaded with the token;
 * a tap opens the full-screen view. `kind` names them (`photos_before`, `photos_after`).
 */
export function thumbnails(base, count, kind) {
  if (!count) return null;
  const row = h('div', { class: 'thumbs', dataset: { kind } });
  for (let n = 1; n <= count; n += 1) {
    const label = `${t(kind)} ${n}`;
    const img = h('img', { alt: label, class: 'thumb', dataset: { n } });
    const button = h('button', { type: 'button', class: 'thumb-button', 'aria-label': label, onclick: () => img.src && showFull(img.src, label) }, img);
    photoUrl(`${base}/${n}`).then((url) => {
      if (url) { img.src = url; img.dataset.loaded = 'true'; } else button.classList.add('missing');
    });
    row.append(button);
  }
  return h('div', { class: 'photos' }, h('span', { class: 'muted' }, t(kind)), row);
}
