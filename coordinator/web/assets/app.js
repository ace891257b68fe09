// The sluice web view: polls the JSON endpoints of docs/web.md and draws the
// current page. Every value from the server goes into the page through
// textContent or attributes set one by one: never innerHTML, so a phase's
// output or an id can never become markup. The admin token lives in this
// tab's sessionStorage only and travels in the Authorization header.
'use strict';

const POLL_MS = 2000;
const TOKEN_KEY = 'sluice-admin-token';
const SVG = 'http://www.w3.org/2000/svg';
const OUTCOME_COLORS = { succeeded: '#1a6b2f', failed: '#a4161a', timed_out: '#8a4b00',
  killed: '#6f2da8', cancelled: '#4a5360', lost: '#0b5cad', start_failed: '#8c2f5a' };
const state = { page: 'overview', params: new URLSearchParams(), runsOffset: 0, fpOffset: 0,
  last: '', timer: null, route: 0 };

// el('td', {className: 'num'}, 'text', child): an element with properties and children.
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'data') Object.assign(e.dataset, v);
    else if (k.startsWith('aria-') || k === 'role' || k === 'scope') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
function clear(id) { const e = document.getElementById(id); e.replaceChildren(); return e; }
function fmt(x, digits) { return x === null || x === undefined ? '—' : Number(x).toFixed(digits); }
function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.round(ms / 1000);
  if (s < 120) return s + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}
function phaseLink(run, phase) {
  return el('a', { href: '#phase?' + new URLSearchParams({ run: run, phase: phase }) },
    run + '/' + phase);
}
function notice(text, isError) {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.className = isError ? 'error' : '';
}
function table(headers, rows, id) {
  const head = el('tr', {}, ...headers.map((h) => el('th', { scope: 'col', className: h.num ? 'num' : '' }, h.label || h)));
  return el('table', { id: id || '' }, el('thead', {}, head), el('tbody', {}, ...rows));
}
function pager(id, page, onMove) {
  const box = clear(id);
  const first = page.total ? page.offset + 1 : 0;
  const last = Math.min(page.offset + page.limit, page.total);
  const prev = el('button', { type: 'button', disabled: page.offset === 0 }, 'Previous');
  const next = el('button', { type: 'button', disabled: last >= page.total }, 'Next');
  prev.addEventListener('click', () => onMove(Math.max(0, page.offset - page.limit)));
  next.addEventListener('click', () => onMove(page.offset + page.limit));
  box.append(prev, el('span', {}, first + '–' + last + ' of ' + page.total), next);
}

// A line chart in SVG: series = [{name, color, points: [[x, y], ...]}].
function lineChart(id, series, xLabel, yLabel, xFormat) {
  const box = clear(id);
  const W = 420, H = 190, L = 48, B = 28, T = 8, R = 10;
  const all = series.flatMap((s) => s.points);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', yLabel + ' against ' + xLabel);
  const x0 = all.length ? Math.min(...all.map((p) => p[0])) : 0;
  let x1 = all.length ? Math.max(...all.map((p) => p[0])) : 1;
  if (!(x1 > x0)) x1 = x0 + 1;
  let y1 = all.length ? Math.max(...all.map((p) => p[1])) : 1;
  if (!(y1 > 0)) y1 = 1;
  const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = (y) => H - B - y / y1 * (H - B - T);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  add('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#4a5360' });
  add('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#4a5360' });
  add('text', { x: 2, y: T + 10 }, fmt(y1, y1 < 10 ? 2 : 0));
  add('text', { x: 2, y: H - B }, '0');
  add('text', { x: L, y: H - 6 }, xFormat(x0));
  add('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, xFormat(x1));
  add('text', { x: (L + W) / 2, y: H - 6, 'text-anchor': 'middle' }, xLabel);
  for (const s of series) {
    if (!s.points.length) continue;
    add('polyline', { fill: 'none', stroke: s.color, 'stroke-width': 2,
      points: s.points.map((p) => sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1)).join(' ') });
  }
  const legend = el('div', { className: 'legend' }, ...series.map((s) =>
    el('span', {}, el('i', { style: 'background:' + s.color }), s.name)));
  box.append(svg, legend);
}

async function api(path, options) {
  const res = await fetch(path, Object.assign({ cache: 'no-store' }, options || {}));
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) {
    const err = new Error(body.error || res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}
async function action(path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  try {
    const out = await api(path, { method: 'POST', headers: headers, body: JSON.stringify(body) });
    state.last = '';
    await refresh();
    return out;
  } catch (e) {
    notice('Refused (' + e.status + '): ' + e.message, true);
    return null;
  }
}

function card(label, value, id, raw) {
  return el('div', {}, el('dt', {}, label), el('dd', { id: id, data: { value: String(raw) } }, value));
}
function renderOverview(o) {
  const p = o.phases;
  const pct = p.total ? Math.round(p.done * 100 / p.total) : 0;
  clear('ov-cards').append(
    card('Done / total', p.done + ' / ' + p.total, 'ov-done', p.done),
    card('Succeeded', p.succeeded, 'ov-succeeded', p.succeeded),
    card('Failed for good', p.failed, 'ov-failed', p.failed),
    card('Pending / leased', p.pending + ' / ' + p.leased, 'ov-pending', p.pending),
    card('Rate (phases/min)', fmt(o.done_per_minute, 1), 'ov-rate', o.done_per_minute),
    card('ETA', o.eta_seconds === null ? '—' : duration(o.eta_seconds * 1000), 'ov-eta', o.eta_seconds),
    card('Yield (events/worker-min)', fmt(o.yield_per_minute, 2), 'ov-yield', o.yield_per_minute),
    card('Attempts', o.attempts, 'ov-attempts', o.attempts),
    card('Telemetry events', o.telemetry_events, 'ov-events', o.telemetry_events),
    card('Worker-minutes', fmt(o.worker_minutes, 1), 'ov-worker-minutes', o.worker_minutes),
    card('Workers / leases', o.workers + ' / ' + o.active_leases, 'ov-workers', o.workers));
  document.getElementById('ov-done').dataset.total = String(p.total);
  const bar = document.getElementById('ov-progress');
  bar.setAttribute('aria-valuenow', String(pct));
  document.getElementById('ov-progress-bar').style.width = pct + '%';
  const banner = clear('ov-banner');
  if (o.pause) banner.append(el('p', { className: 'banner' }, 'Leasing is paused: ' + o.pause.reason + ' (see Workers to resume)'));
  for (const w of o.telemetry_warnings) banner.append(el('p', { className: 'banner' }, 'Telemetry alarm: ' + w.message));
  const h = o.history;
  const t = (ms) => new Date(ms).toLocaleTimeString();
  lineChart('chart-outcomes', Object.keys(OUTCOME_COLORS).map((k) => ({ name: k, color: OUTCOME_COLORS[k],
    points: h.map((s) => [s.at_ms, s.outcomes[k] || 0]) })), 'time', 'attempts', t);
  lineChart('chart-yield', [{ name: 'yield', color: '#0b5cad',
    points: h.map((s) => [s.at_ms, s.yield_per_minute]) }], 'time', 'events per worker-minute', t);
  lineChart('chart-curve', [{ name: 'events', color: '#1a6b2f',
    points: h.map((s) => [s.run_ms / 60000, s.telemetry_events]) }], 'worker-minutes', 'events',
  (x) => fmt(x, 1));
  const box = clear('ov-session');
  if (!o.session) { box.append(el('p', {}, 'No session yet.')); return; }
  const s = o.session;
  const rows = [['Session', s.session_id], ['State', s.state], ['Finished attempts', s.finished_attempts],
    ['Ends because', s.end_reason || (s.done ? 'done: nothing left to lease' : 'still running')]];
  for (const [k, v] of Object.entries(s.settings)) rows.push([k, Array.isArray(v) ? v.join(', ') : v]);
  box.append(table(['Setting', 'Value'], rows.map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k),
    el('td', {}, String(v)))), 'ov-session-table'));
}

function runsQuery() {
  const q = new URLSearchParams({ offset: state.runsOffset, limit: 50 });
  const v = (id) => document.getElementById(id).value;
  if (v('runs-group')) q.set('group', v('runs-group'));
  if (v('runs-q')) q.set('q', v('runs-q'));
  if (v('runs-state')) q.set('state', v('runs-state'));
  q.set('sort', v('runs-sort'));
  q.set('order', v('runs-order'));
  return q;
}
// A family's runs often share one reason: one line each, with how many runs.
function skipLines(skips, byFamily) {
  const lines = new Map();
  for (const k of skips) {
    const key = byFamily ? k.kind + '\n' + k.code + '\n' + k.reason : lines.size;
    const line = lines.get(key) || { k: k, runs: 0 };
    line.runs += 1;
    lines.set(key, line);
  }
  return [...lines.values()].map(({ k, runs }) => el('div', { data: { code: k.code } },
    k.kind + ': ' + k.reason + (runs > 1 ? ' (' + runs + ' runs)' : '')));
}
function renderRuns(r) {
  const byFamily = document.getElementById('runs-group').value === 'family';
  // Families, the family sort and the skipped filter come from a snapshot of
  // every run that the coordinator takes in the background (docs/web.md).
  document.getElementById('runs-asof').textContent = r.loading
    ? 'Reading every run for this view (the first time since the coordinator started)…'
    : (r.as_of_ms === null ? '' : 'Every run as of ' + new Date(r.as_of_ms).toLocaleTimeString()
      + ', refreshed in the background while this page is open.');
  const rows = r.rows.map((x) => el('tr', {},
    el('td', {}, byFamily ? x.family : x.run_id),
    el('td', {}, byFamily ? x.runs : x.family),
    el('td', { className: 'num' }, x.phases.pending + x.phases.leased),
    el('td', { className: 'num' }, x.phases.succeeded),
    el('td', { className: 'num' }, x.phases.failed),
    el('td', { className: 'num' }, x.attempts),
    el('td', { className: 'num' }, x.successes),
    el('td', { className: 'num' }, x.telemetry_events),
    el('td', { className: 'num' }, fmt(x.yield_per_minute, 2)),
    el('td', {}, ...skipLines(x.skips, byFamily))));
  clear('runs-table').append(table([byFamily ? 'Family' : 'Run', byFamily ? 'Runs' : 'Family',
    { label: 'Open', num: 1 }, { label: 'Succeeded', num: 1 }, { label: 'Failed', num: 1 },
    { label: 'Attempts', num: 1 }, { label: 'Successes', num: 1 }, { label: 'Events', num: 1 },
    { label: 'Yield', num: 1 }, 'Why not leased'], rows, 'runs'));
  pager('runs-pager', r.page, (off) => { state.runsOffset = off; state.last = ''; refresh(); });
}

function renderFingerprints(f) {
  document.getElementById('fp-rule').textContent = f.max_fingerprint_repeats > 0
    ? 'A fingerprint seen ' + f.max_fingerprint_repeats + ' times blocks its runs until it is unblocked.'
    : 'The repeat rule is off: no fingerprint blocks its runs.';
  const rows = f.rows.map((x) => {
    const button = el('button', { type: 'button', className: 'unblock', data: { fingerprint: x.id } },
      'Unblock');
    button.setAttribute('aria-label', 'Unblock ' + x.id);
    button.addEventListener('click', async () => {
      const out = await action('/api/unblock', { fingerprint: x.id });
      if (out) notice('Unblocked ' + out.unblocked + ': its runs are leased again.', false);
    });
    return el('tr', { data: { fingerprint: x.id } },
      el('td', {}, x.id),
      el('td', {}, el('code', {}, x.fingerprint), x.example_error ? el('pre', {}, x.example_error) : null),
      el('td', { className: 'num' }, x.count),
      el('td', {}, x.runs.length + ' runs: ' + x.runs.slice(0, 5).join(', ') + (x.runs.length > 5 ? ', …' : '')),
      el('td', { className: x.blocked ? 'blocked' : '' }, x.blocked ? 'blocks its runs' : 'no'),
      el('td', {}, button));
  });
  clear('fp-table').append(table(['Id', 'Normalised text', { label: 'Count', num: 1 }, 'Runs hit', 'Blocking', 'Action'],
    rows, 'fingerprints'));
  pager('fp-pager', f.page, (off) => { state.fpOffset = off; state.last = ''; refresh(); });
}

function renderWorkers(w) {
  const banner = clear('wk-banner');
  banner.append(el('p', { className: w.coordinator_serving ? 'ok' : 'error' },
    'Coordinator ' + (w.coordinator_serving ? 'serving' : 'not serving')));
  if (w.pause) {
    const resume = el('button', { type: 'button', id: 'resume' }, 'Resume leasing');
    resume.addEventListener('click', async () => {
      const out = await action('/api/resume', {});
      if (out) notice('Leasing resumed for ' + out.session_id + '.', false);
    });
    banner.append(el('div', { className: 'banner' }, 'Leasing is paused: ' + w.pause.reason + ' ', resume));
  }
  for (const a of w.telemetry_warnings) banner.append(el('p', { className: 'banner' }, 'Telemetry alarm: ' + a.message));
  const rows = w.rows.map((x) => el('tr', {},
    el('td', {}, x.worker_id),
    el('td', {}, x.host),
    el('td', {}, x.labels.join(', ')),
    el('td', { className: 'num' }, x.slots_in_use + ' / ' + x.slots),
    el('td', {}, ...x.current.map((c) => el('div', {}, phaseLink(c.run_id, c.phase_id),
      ' ' + duration(c.elapsed_ms) + ' of ' + c.timeout_seconds + ' s'))),
    el('td', {}, x.since_last_heartbeat_ms === null ? 'idle: polling for work'
      : duration(x.since_last_heartbeat_ms) + ' ago'),
    el('td', { className: x.health }, x.health)));
  clear('wk-table').append(table(['Worker', 'Host', 'Labels', { label: 'Slots in use', num: 1 },
    'Current phases (elapsed of timeout)', 'Last heartbeat', 'Health'], rows, 'workers'));
}

function renderPhase(p) {
  clear('phase-info').append(table(['Field', 'Value'], [['Run', p.run_id], ['Phase', p.phase_id],
    ['Family', p.family], ['State', p.state], ['Attempts', p.attempts], ['Requeues', p.requeues],
    ['Telemetry events', p.telemetry_events], ['Labels', p.labels.join(', ')]]
    .map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, String(v)))), 'phase-fields'));
  const rows = p.rows.map((a) => el('tr', {},
    el('td', { className: 'num' }, a.attempt),
    el('td', {}, a.outcome),
    el('td', { className: 'num' }, duration(a.duration_ms)),
    el('td', {}, a.worker_id),
    el('td', {}, el('code', {}, a.fingerprint)),
    el('td', { className: 'num' }, a.telemetry_events === null ? 'unknown' : a.telemetry_events),
    el('td', {}, el('pre', { className: 'stdout' }, a.stdout_tail), el('pre', { className: 'stderr' }, a.stderr_tail))));
  clear('phase-attempts').append(table([{ label: 'Attempt', num: 1 }, 'Outcome', { label: 'Duration', num: 1 },
    'Worker', 'Fingerprint', { label: 'Events', num: 1 }, 'stdout / stderr tails'], rows, 'attempts'));
}

function endpoint() {
  switch (state.page) {
    case 'overview': return ['/api/overview', renderOverview];
    case 'runs': return ['/api/runs?' + runsQuery(), renderRuns];
    case 'fingerprints': return ['/api/fingerprints?' + new URLSearchParams({ offset: state.fpOffset, limit: 50 }), renderFingerprints];
    case 'workers': return ['/api/workers', renderWorkers];
    case 'phase': {
      const run = state.params.get('run'), phase = state.params.get('phase');
      if (!run || !phase) return null;
      return ['/api/phase?' + new URLSearchParams({ run: run, phase: phase }), renderPhase];
    }
  }
  return null;
}

async function refresh() {
  const target = endpoint();
  if (!target) return;
  // A poll still in flight when the page changes must not mark the new page
  // loaded (nor redraw or warn for it): only the latest route's answer counts.
  const route = state.route;
  try {
    const body = await api(target[0]);
    if (route !== state.route) return;
    // Only redraw on change, so focus and selection survive the polling.
    const text = JSON.stringify(Object.assign({}, body, { now_ms: 0 }));
    if (text !== state.last) { state.last = text; target[1](body); }
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    document.body.dataset.loaded = state.page;
  } catch (e) {
    if (route !== state.route) return;
    notice('Could not load ' + state.page + ': ' + e.message, true);
  }
}

function route() {
  const hash = location.hash.replace(/^#/, '');
  const [name, query] = hash.split('?');
  state.page = ['overview', 'runs', 'fingerprints', 'workers', 'phase'].includes(name) ? name : 'overview';
  state.params = new URLSearchParams(query || '');
  state.route += 1;  // answers to the previous route are stale from here
  state.last = '';
  delete document.body.dataset.loaded;
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== 'page-' + state.page;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.id === 'nav-' + state.page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (state.page === 'phase') {
    document.getElementById('phase-run').value = state.params.get('run') || '';
    document.getElementById('phase-id').value = state.params.get('phase') || '';
  }
  notice('', false);
  refresh();
}

function showTokenState() {
  document.getElementById('token-state').textContent =
    sessionStorage.getItem(TOKEN_KEY) ? 'token set (this tab only)' : 'read-only';
}

document.getElementById('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('token');
  if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = '';
  showTokenState();
});
document.getElementById('token-forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
});
document.getElementById('runs-form').addEventListener('change', () => { state.runsOffset = 0; state.last = ''; refresh(); });
document.getElementById('runs-form').addEventListener('submit', (ev) => ev.preventDefault());
document.getElementById('phase-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  location.hash = 'phase?' + new URLSearchParams({ run: document.getElementById('phase-run').value,
    phase: document.getElementById('phase-id').value });
});
// The hash names the page, so the skip link moves focus instead of navigating.
document.querySelector('.skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  document.getElementById('main').focus();
});
window.addEventListener('hashchange', route);
showTokenState();
route();
state.timer = setInterval(refresh, POLL_MS);
