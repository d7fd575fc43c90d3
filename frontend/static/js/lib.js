// lib.js: small helpers shared by every page: the html tag, reading the
// room id and key from the URL, REST calls, preferences kept in
// localStorage, copying and downloading, level names and colours.

import { h, render } from '../vendor/preact.module.js';
import htm from '../vendor/htm.module.js';
import { signal, effect } from '../vendor/signals.module.js';

// html is htm bound to Preact: tagged templates instead of JSX, no build
// step. Interpolated strings always become text nodes, never markup.
export const html = htm.bind(h);
export { render };

// roomIdFromPath reads the room id from /room/{id}, /team/{id} and so on.
export function roomIdFromPath(path = location.pathname) {
  const parts = path.split('/').filter(Boolean);
  return parts.length >= 2 ? decodeURIComponent(parts[1]) : '';
}

// hashParams reads the fragment (#key=...&presenter=...). Keys travel in
// the fragment so they never reach server or proxy logs.
export function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}

// ApiError is a REST error as PROTOCOL.md describes it.
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// api calls the REST API and answers the decoded JSON body, or throws an
// ApiError. key, when given, goes in an Authorization: Bearer header.
export async function api(method, path, body, key) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (key) headers.Authorization = 'Bearer ' + key;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'unavailable', 'The server cannot be reached. Check your connection and try again.');
  }
  if (res.ok) {
    const type = res.headers.get('Content-Type') || '';
    return type.includes('json') ? res.json() : res;
  }
  throw await apiError(res);
}

async function apiError(res) {
  let code = 'internal';
  let message = res.statusText || 'request failed';
  let retryAfter;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      retryAfter = body.error.retryAfter;
    }
  } catch (_) {
    // not JSON: keep the status text
  }
  return new ApiError(res.status, code, message, retryAfter);
}

// randomId is a short random string for command ids. crypto.randomUUID
// needs a secure context (https); getRandomValues works everywhere.
export function randomId(bytes = 9) {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(36).padStart(2, '0')).join('');
}

// stored is a signal mirrored in localStorage under name.
export function stored(name, initial) {
  let start = initial;
  try {
    const raw = localStorage.getItem(name);
    if (raw !== null) start = JSON.parse(raw);
  } catch (_) {
    // private mode or bad JSON: use the default
  }
  const s = signal(start);
  effect(() => {
    try {
      localStorage.setItem(name, JSON.stringify(s.value));
    } catch (_) {
      // storage full or disabled: the preference lasts for this page only
    }
  });
  return s;
}

// prefs are this device's display preferences, shared by every page.
export const prefs = {
  // names shows level names instead of numbers.
  names: stored('workshop:levelNames', false),
  // muted silences the sound at the end of a speaking turn.
  muted: stored('workshop:muted', false),
};

// copyText copies text to the clipboard. navigator.clipboard needs a
// secure context; over plain http the textarea fallback does the job.
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) {
    // fall back below
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'offscreen';
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch (_) {
    ok = false;
  }
  ta.remove();
  return ok;
}

// saveBlob offers blob to the user as a download named filename.
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// filenameFrom reads the file name of a Content-Disposition header.
export function filenameFrom(disposition, fallback) {
  if (!disposition) return fallback;
  const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(disposition);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''));
    } catch (_) {
      // fall through
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1] : fallback;
}

// exportResults fetches the facilitator export in format (csv, json, md)
// with the key in an Authorization header and downloads it.
export async function exportResults(roomId, format, key, title) {
  const res = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/export?format=${format}`, {
    headers: { Authorization: 'Bearer ' + key },
    cache: 'no-store',
  });
  if (!res.ok) throw await apiError(res);
  const blob = await res.blob();
  const ext = { csv: 'csv', json: 'json', md: 'md' }[format] || format;
  const base = (title || 'workshop').replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-|-$/g, '').toLowerCase() || 'workshop';
  saveBlob(blob, filenameFrom(res.headers.get('Content-Disposition'), `${base}-results.${ext}`));
}

// fmtClock formats milliseconds as m:ss (negative: -m:ss).
export function fmtClock(ms) {
  const neg = ms <= -1000;
  const total = neg ? Math.floor(-ms / 1000) : Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return (neg ? '−' : '') + m + ':' + String(s).padStart(2, '0');
}

// fmtTime formats an RFC 3339 time as a local hh:mm.
export function fmtTime(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// plural is "1 team" or "3 teams".
export function plural(n, one, many = one + 's') {
  return `${n} ${n === 1 ? one : many}`;
}

// aspectOf finds an aspect of the model by id.
export function aspectOf(model, id) {
  return (model && model.aspects || []).find((a) => a.id === id);
}

// teamName is the name of a team id, or the id itself.
export function teamName(room, id) {
  const t = (room && room.teams || []).find((x) => x.id === id);
  return t ? t.name : id;
}

// levelInfo describes level (1-based) of an aspect: the model's level name,
// the aspect's cell label and description. null for level 0 or out of range.
export function levelInfo(model, aspectId, level) {
  if (!model || !level || level < 1 || level > model.levels.length) return null;
  const lv = model.levels[level - 1] || {};
  const a = aspectOf(model, aspectId);
  const cell = (a && a.cells && a.cells[level - 1]) || {};
  return {
    level,
    name: lv.name || String(level),
    levelDescription: lv.description || '',
    label: cell.label || '',
    description: cell.description || '',
  };
}

// levelText is how a level reads in the current numbers/names mode.
export function levelText(model, level) {
  if (!level) return '';
  if (prefs.names.value && model && model.levels[level - 1]) return model.levels[level - 1].name;
  return String(level);
}

// levelColors answers the background and text colour of a heatmap cell for
// level out of n: a light-to-dark blue ramp whose text keeps WCAG AA
// contrast (dark text on light cells, white on dark ones).
export function levelColors(level, n) {
  const t = n > 1 ? (level - 1) / (n - 1) : 1;
  let light = 93 - t * 65; // 93% .. 28%
  // Between about 45% and 56% neither black nor white text reaches 4.5:1
  // on this hue; step out of that band.
  if (light > 45 && light < 56) light = light >= 50.5 ? 56 : 45;
  const bg = `hsl(210, 60%, ${light.toFixed(1)}%)`;
  const fg = light >= 56 ? '#0b1620' : '#ffffff';
  return { bg, fg };
}

// serverNow is the server's clock in ms given the client's offset.
export function serverNow(offset) {
  return Date.now() + (offset || 0);
}

// byQuestionId orders question ids q1, q2, ... numerically.
export function questionNumber(id) {
  const n = parseInt(String(id).replace(/^q/, ''), 10);
  return isNaN(n) ? 0 : n;
}

// mount renders the page's root component into #app.
export function mount(component) {
  const root = document.getElementById('app');
  root.textContent = '';
  render(component, root);
}
