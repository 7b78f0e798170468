// "Open now" from OSM opening_hours, for the subset the station data uses: `24/7`, weekday lists
// and ranges (`Mo-Fr,Su`), time spans (`08:00-20:00`, also past midnight `22:00-02:00`), several
// spans per rule, several rules separated by `;` (a later rule replaces earlier ones for its days,
// as in the OSM spec), and `off`/`closed`. Anything else (PH, months, weeks) makes the answer
// `null` — unknown — rather than a guess.
//
// Time is the county's local time (Asia/Shanghai), wherever the browser thinks it is.

const DAYS = ['Mo', 'Tu', 'We', 'Th', 'Fr', 'Sa', 'Su'];

/** Parse into per-weekday spans [[startMin, endMin], …] (index 0 = Monday), or null if unsupported. */
export function parseOpeningHours(text) {
  const src = (text ?? '').trim();
  if (!src) return null;
  const week = DAYS.map(() => []);
  for (const raw of src.split(';')) {
    const rule = raw.trim();
    if (!rule) continue;
    if (rule === '24/7') {
      for (let d = 0; d < 7; d++) week[d] = [[0, 1440]];
      continue;
    }
    const m = /^(?:([A-Za-z]{2}(?:-[A-Za-z]{2})?(?:,[A-Za-z]{2}(?:-[A-Za-z]{2})?)*)\s+)?(.+)$/.exec(rule);
    if (!m) return null;
    let days;
    let rest = m[2].trim();
    if (m[1]) {
      days = parseDays(m[1]);
      if (!days) return null;
    } else if (/^[A-Za-z]{2}(?:-[A-Za-z]{2})?(?:,[A-Za-z]{2}(?:-[A-Za-z]{2})?)*$/.test(rest)) {
      // "Mo-Fr" alone means open all day on those days.
      days = parseDays(rest);
      if (!days) return null;
      rest = '00:00-24:00';
    } else {
      days = [0, 1, 2, 3, 4, 5, 6];
    }
    let spans;
    if (rest === 'off' || rest === 'closed') {
      spans = [];
    } else {
      spans = parseSpans(rest);
      if (!spans) return null;
    }
    for (const d of days) week[d] = spans;
  }
  return week;
}

function parseDays(text) {
  const out = new Set();
  for (const part of text.split(',')) {
    const [a, b] = part.split('-');
    const from = DAYS.indexOf(cap(a));
    const to = b === undefined ? from : DAYS.indexOf(cap(b));
    if (from < 0 || to < 0) return null;
    // Ranges may wrap the week: "Sa-Mo".
    for (let d = from; ; d = (d + 1) % 7) {
      out.add(d);
      if (d === to) break;
    }
  }
  return [...out];
}

function cap(s) {
  return s ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s;
}

function parseSpans(text) {
  const spans = [];
  for (const part of text.split(',')) {
    const m = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(part.trim());
    if (!m) return null;
    const start = Number(m[1]) * 60 + Number(m[2]);
    let end = Number(m[3]) * 60 + Number(m[4]);
    if (start > 1440 || end > 48 * 60) return null;
    if (end <= start) end += 1440; // past midnight
    spans.push([start, end]);
  }
  return spans;
}

/** The county's weekday (0 = Monday) and minute of day at `date`. */
export function countyClock(date = new Date()) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: 'Asia/Shanghai', weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(date);
  const get = (type) => parts.find((p) => p.type === type)?.value;
  const day = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(get('weekday'));
  return { day, minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

/** true / false, or null when the text is empty or outside the supported subset. */
export function isOpen(text, date = new Date()) {
  const week = parseOpeningHours(text);
  if (!week) return null;
  const { day, minute } = countyClock(date);
  if (week[day].some(([s, e]) => minute >= s && minute < e)) return true;
  const yesterday = (day + 6) % 7;
  return week[yesterday].some(([, e]) => e > 1440 && minute + 1440 < e);
}

/** True when every day is open around the clock (shown as "24 hours" instead of the raw text). */
export function isAlwaysOpen(text) {
  const week = parseOpeningHours(text);
  return !!week && week.every((spans) => spans.some(([s, e]) => s === 0 && e >= 1440));
}

const hhmm = (m) => `${String(Math.floor(m / 60) % 24).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/**
 * Today's hours in the county, as map apps show them: `{ spans: ['08:00–20:00'], opensAt }` where
 * `opensAt` is the next opening today ('08:00') when the station is closed now, or null; null
 * when the text is outside the supported subset.
 */
export function todayHours(text, date = new Date()) {
  const week = parseOpeningHours(text);
  if (!week) return null;
  const { day, minute } = countyClock(date);
  const spans = week[day].map(([s, e]) => `${hhmm(s)}–${e >= 1440 && s === 0 ? '24:00' : hhmm(e)}`);
  const next = week[day].map(([s]) => s).filter((s) => s > minute).sort((a, b) => a - b)[0];
  return { spans, opensAt: isOpen(text, date) === false && next !== undefined ? hhmm(next) : null };
}
