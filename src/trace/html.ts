/**
 * `Trace#writeHTML` (API.md, "Timelines"): one self-contained HTML page that draws a Chrome
 * Trace Event format trace (the one `writeJSON` writes) with no network at all: the trace is
 * embedded as JSON, the drawing code and styles are inline, and a Content-Security-Policy
 * forbids any fetch.
 *
 * The page (canvas): a track per thread, labelled with its name and ordered by its
 * thread_sort_index; 'X' spans as rectangles colored by category (waits by the kind of
 * primitive), nested spans stacked in lanes; the hand-off flows (s → f) as arrows from the
 * waker's span to the wait it ended; counters as step charts at the bottom; a time axis; a
 * tooltip on hover (name, category, thread, start, duration, args, who woke whom); zoom (wheel,
 * +/- buttons and keys), pan (drag, arrow keys), a legend.
 *
 * Only the lanes' visible spans are visited per frame (binary search on a running max of span
 * ends), and spans narrower than a pixel that fall on pixels already painted are skipped, so
 * tens of thousands of spans redraw in a few milliseconds.
 *
 * Spans are bound to lanes when the page loads: a span goes one lane deeper than every span of
 * its thread still open when it starts; a flow's end binds to the deepest span enclosing its time
 * on its thread (`bp: 'e'`, threadkit's 'f'), or else to the next span starting there. A wait's
 * color is its kind (`args.kind`, else the primitive its name or `args.object` starts with:
 * Lock, RLock, Condition, Semaphore, Event, Barrier, Queue.get/put/join, Future, join, sleep…).
 *
 * For tests, once drawn: `document.body.dataset` has `tracks` (thread tracks), `counters`,
 * `spans`, `arrows` (flows bound to their two ends), `drawn`, `drawMs` (the first draw) and,
 * after every draw, `arrowsDrawn` and `lastDrawMs`; `window.traceView` has `view()` (the time
 * range shown, µs), `findSpan(name)` (client coordinates of a visible span's middle) and
 * `zoom(factor)`.
 */

/** The category of an 'X' span threadkit writes. */
export type SpanCategory = 'thread' | 'task' | 'wait' | 'wake' | 'async';

export interface MetadataEvent {
  ph: 'M';
  name: 'thread_name' | 'thread_sort_index' | 'process_name' | 'process_sort_index';
  pid: number;
  tid?: number;
  args: { name?: string; sort_index?: number };
}

/** A complete span: `ts` and `dur` in microseconds. */
export interface CompleteEvent {
  ph: 'X';
  name: string;
  cat: SpanCategory | (string & {});
  pid: number;
  tid: number;
  ts: number;
  dur: number;
  args?: Record<string, unknown>;
}

/** One end of a flow arrow ('s': its start, 'f': its end; `bp: 'e'` binds it to the enclosing span). */
export interface FlowEvent {
  ph: 's' | 'f';
  id: number | string;
  name: string;
  cat: string;
  pid: number;
  tid: number;
  ts: number;
  bp?: 'e';
  args?: Record<string, unknown>;
}

export interface CounterEvent {
  ph: 'C';
  name: string;
  pid: number;
  tid?: number;
  ts: number;
  args: Record<string, number>;
}

export type ChromeEvent = MetadataEvent | CompleteEvent | FlowEvent | CounterEvent;

export interface ChromeTrace {
  traceEvents: ChromeEvent[];
  displayTimeUnit?: 'ms' | 'ns';
  otherData?: Record<string, unknown>;
}

/**
 * The JSON of `value`, safe inside a `<script type="application/json">` element: every `<` is
 * written `\u003c` (so no `</script` or `<!--` can appear), and U+2028/U+2029 are escaped too.
 * `JSON.parse` of the element's text gives `value` back.
 */
export function embedJSON(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function escapeHTML(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The page: one self-contained HTML document drawing `trace`. */
export function renderTraceHTML(trace: ChromeTrace, title = 'threadkit trace'): string {
  const safeTitle = escapeHTML(title);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${safeTitle}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <div class="head">
    <h1>${safeTitle}</h1>
    <span id="summary"></span>
    <span class="spacer"></span>
    <button id="zoom-in" title="Zoom in (+, w)">+</button>
    <button id="zoom-out" title="Zoom out (-, s)">&minus;</button>
    <button id="zoom-fit" title="Show everything (0)">fit</button>
  </div>
  <div class="head">
    <div id="legend"></div>
    <span class="spacer"></span>
    <span class="hint">wheel: zoom &middot; drag: pan &middot; shift+wheel: scroll &middot; 0: fit</span>
  </div>
</header>
<div id="axis-row"><div id="corner"></div><canvas id="axis"></canvas></div>
<div id="scroller"><div id="content"><div id="labels"></div><canvas id="main"></canvas></div></div>
<div id="tooltip" role="tooltip"></div>
<script type="application/json" id="trace-data">${embedJSON(trace)}</script>
<script>${CLIENT}</script>
</body>
</html>
`;
}

const STYLE = `
*{box-sizing:border-box}
html,body{margin:0;height:100%}
body{display:flex;flex-direction:column;font:12px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;background:#fff;overflow:hidden}
header{flex:none;padding:6px 10px 4px;border-bottom:1px solid #d5d9e2;background:#f4f6fa}
.head{display:flex;align-items:center;gap:8px;min-height:24px;flex-wrap:wrap}
h1{font-size:14px;margin:0;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:40vw}
#summary{color:#5a6275}
.spacer{flex:1}
.hint{color:#7a8194;font-size:11px}
button{font:inherit;min-width:28px;height:22px;border:1px solid #b9c0cf;border-radius:4px;background:#fff;cursor:pointer;padding:0 6px}
button:hover{background:#e8ecf4}
#legend{display:flex;flex-wrap:wrap;gap:4px 12px}
.item{display:inline-flex;align-items:center;gap:4px;white-space:nowrap}
.swatch{display:inline-block;width:12px;height:10px;border-radius:2px;border:1px solid rgba(0,0,0,.15)}
.swatch.arrow{width:18px;height:0;border:0;border-top:2px solid #333;border-radius:0;position:relative}
.swatch.arrow:after{content:"";position:absolute;right:-2px;top:-5px;border:4px solid transparent;border-left:6px solid #333}
#axis-row{flex:none;display:flex;height:24px;border-bottom:1px solid #d5d9e2;background:#fafbfd}
#corner{flex:none;width:var(--label-w);border-right:1px solid #d5d9e2;font-size:11px;color:#7a8194;padding:5px 8px}
#axis{display:block;height:24px;flex:1;min-width:0}
#scroller{flex:1;overflow-y:auto;overflow-x:hidden;position:relative;min-height:0}
#content{position:relative}
#labels{position:absolute;left:0;top:0;width:var(--label-w);border-right:1px solid #d5d9e2}
.track-label,.counter-label{position:absolute;left:0;right:0;padding:3px 8px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;border-bottom:1px solid #eceef3}
.track-label{font-weight:600}
.counter-label{color:#3b4356;font-style:italic}
.track-label .sub,.counter-label .sub{display:block;font-weight:400;font-style:normal;color:#8a90a0;font-size:10px}
#main{position:sticky;top:0;display:block;margin-left:var(--label-w);cursor:default}
#main.dragging{cursor:grabbing}
#tooltip{position:fixed;display:none;z-index:10;pointer-events:none;max-width:460px;background:#1d2330;color:#f3f5f9;border-radius:5px;padding:6px 9px;box-shadow:0 3px 12px rgba(0,0,0,.25);font-size:12px}
#tooltip.visible{display:block}
#tooltip .t-name{font-weight:600;font-size:13px;word-break:break-all}
#tooltip table{border-collapse:collapse;margin-top:3px}
#tooltip td{padding:0 8px 0 0;vertical-align:top;word-break:break-all}
#tooltip td.k{color:#9aa3b8;white-space:nowrap;word-break:normal}
#empty{padding:30px;color:#7a8194}
`;

/**
 * The page's script (plain browser JavaScript, no template substitutions: written without
 * backquotes or dollar-brace, and with no closing script tag).
 */
const CLIENT = String.raw`
(function () {
'use strict';
var LANE = 18, PAD = 3, COUNTER_H = 46, LABEL_W = 190, MIN_PX_PER_LABEL = 90;
document.documentElement.style.setProperty('--label-w', LABEL_W + 'px');

var CAT_COLORS = { thread: '#dbe2ee', task: '#6fbf73', wake: '#f0a030', async: '#b49ad8', wait: '#e06666' };
var CAT_LABELS = { thread: 'thread', task: 'task', wake: 'wake (release/put/set)', async: 'Promise wait' };
var WAIT_KINDS = [
  ['Queue.get', '#3fa7a0'], ['Queue.put', '#2a7d8c'], ['Queue.join', '#6cc3cf'],
  ['RLock', '#c9486f'], ['Lock', '#e0584f'], ['Condition', '#f28e2b'], ['Semaphore', '#cfa21a'],
  ['Event', '#9467bd'], ['Barrier', '#8c6d31'], ['Future', '#4e79c4'], ['join', '#7b8594'],
  ['sleep', '#b5b9c4'], ['wait', '#a05195'], ['internal', '#9aa0a8'], ['work', '#c8ccd4']
];
var KIND_ALIASES = { 'BoundedSemaphore': 'Semaphore', 'Thread.join': 'join', 'Queue': 'Queue.get', 'SimpleQueue': 'Queue.get',
  'LifoQueue': 'Queue.get', 'PriorityQueue': 'Queue.get', 'Future.result': 'Future', 'Lock.acquire': 'Lock',
  'RLock.acquire': 'RLock', 'Semaphore.acquire': 'Semaphore', 'Condition.wait': 'Condition', 'Event.wait': 'Event', 'Barrier.wait': 'Barrier' };
var KIND_COLOR = {};
WAIT_KINDS.forEach(function (k) { KIND_COLOR[k[0]] = k[1]; });

function hashColor(s) {
  var h = 0;
  for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return 'hsl(' + (((h % 360) + 360) % 360) + ',55%,58%)';
}

/** The kind of a wait (the primitive), from args.kind, the span's name or args.object. */
function waitKind(name, args) {
  if (args && typeof args.kind === 'string' && args.kind) return normalizeKind(args.kind);
  var k = matchKind(name);
  if (k === null && args && typeof args.object === 'string') k = matchKind(args.object);
  if (k !== null) return k;
  var m = /^[^\s.#:(\[]+/.exec(name || '');
  return m ? m[0] : 'wait';
}
function normalizeKind(k) {
  if (KIND_ALIASES[k]) return KIND_ALIASES[k];
  return matchKind(k) || k;
}
function matchKind(text) {
  if (!text) return null;
  var s = String(text).replace(/^(wait|waits?\s+on|blocked\s+on)[:\s]+/i, '');
  var best = null, bestLen = 0;
  Object.keys(KIND_ALIASES).concat(WAIT_KINDS.map(function (k) { return k[0]; })).forEach(function (k) {
    if (k.length > bestLen && s.slice(0, k.length).toLowerCase() === k.toLowerCase()) {
      var next = s.charAt(k.length);
      if (next === '' || !/[A-Za-z0-9_]/.test(next)) { best = k; bestLen = k.length; }
    }
  });
  return best === null ? null : (KIND_ALIASES[best] || best);
}
function textColorFor(color) {
  var r, g, b, m = /^#([0-9a-f]{6})$/i.exec(color);
  if (m) { var n = parseInt(m[1], 16); r = n >> 16; g = (n >> 8) & 255; b = n & 255; }
  else return '#111';
  return (0.299 * r + 0.587 * g + 0.114 * b) > 150 ? '#1d2330' : '#ffffff';
}

// ---------------------------------------------------------------- model
var raw = JSON.parse(document.getElementById('trace-data').textContent);
var events = Array.isArray(raw) ? raw : (raw && Array.isArray(raw.traceEvents) ? raw.traceEvents : []);
var otherData = (raw && raw.otherData) || {};
var trackMap = new Map();
var spans = [];
var flowEnds = [];
var counterMap = new Map();
var tMin = Infinity, tMax = -Infinity;

function trackFor(pid, tid) {
  var key = pid + ':' + tid;
  var t = trackMap.get(key);
  if (!t) {
    t = { key: key, pid: pid, tid: tid, name: null, sort: null, spans: [], lanes: [], open: [], y: 0, h: 0, label: null };
    trackMap.set(key, t);
  }
  return t;
}
function see(ts) { if (ts < tMin) tMin = ts; if (ts > tMax) tMax = ts; }
function addSpan(track, e, ts, dur, args) {
  var cat = e.cat == null ? '' : String(e.cat);
  var name = e.name == null ? '' : String(e.name);
  var kind = null, color;
  if (cat === 'wait') { kind = waitKind(name, args); color = KIND_COLOR[kind] || hashColor(kind); }
  else color = CAT_COLORS[cat] || hashColor(cat || name);
  var s = { name: name, cat: cat, kind: kind, ts: ts, dur: dur, end: ts + dur, args: args || null, track: track,
    depth: 0, color: color, text: textColorFor(color), flowsIn: [], flowsOut: [], index: spans.length };
  spans.push(s);
  track.spans.push(s);
  see(ts); see(ts + dur);
}

for (var ei = 0; ei < events.length; ei++) {
  var e = events[ei];
  if (!e || typeof e !== 'object') continue;
  var ph = e.ph;
  if (ph === 'M') {
    if (e.name === 'thread_name' && e.tid != null) trackFor(e.pid, e.tid).name = String(e.args && e.args.name);
    else if (e.name === 'thread_sort_index' && e.tid != null) trackFor(e.pid, e.tid).sort = Number(e.args && e.args.sort_index);
    continue;
  }
  var ts = Number(e.ts);
  if (!isFinite(ts)) continue;
  if (ph === 'X') addSpan(trackFor(e.pid, e.tid), e, ts, Math.max(0, Number(e.dur) || 0), e.args);
  else if (ph === 'B') trackFor(e.pid, e.tid).open.push(e);
  else if (ph === 'E') {
    var tb = trackFor(e.pid, e.tid), b = tb.open.pop();
    if (b) addSpan(tb, b, Number(b.ts), Math.max(0, ts - Number(b.ts)), Object.assign({}, b.args || {}, e.args || {}));
  } else if (ph === 'i' || ph === 'I') addSpan(trackFor(e.pid, e.tid), e, ts, 0, e.args);
  else if (ph === 's' || ph === 't' || ph === 'f') {
    trackFor(e.pid, e.tid);
    flowEnds.push({ ph: ph, id: String(e.cat) + '\u0000' + String(e.id != null ? e.id : (e.id2 && (e.id2.global || e.id2.local))),
      ts: ts, pid: e.pid, tid: e.tid, bp: e.bp, name: e.name, order: ei });
    see(ts);
  } else if (ph === 'C') {
    var ckey = e.pid + ':' + e.name + (e.id != null ? ':' + e.id : '');
    var c = counterMap.get(ckey);
    if (!c) { c = { key: ckey, name: String(e.name), series: new Map(), max: 0, y: 0, h: COUNTER_H, label: null }; counterMap.set(ckey, c); }
    var a = e.args || {};
    for (var sk in a) {
      var v = Number(a[sk]);
      if (!isFinite(v)) continue;
      var ser = c.series.get(sk);
      if (!ser) { ser = { name: sk, points: [], color: null }; c.series.set(sk, ser); }
      ser.points.push([ts, v]);
      if (v > c.max) c.max = v;
    }
    see(ts);
  }
}
// Spans left open end where the trace does.
trackMap.forEach(function (t) {
  while (t.open.length) { var b = t.open.pop(); var bts = Number(b.ts); if (isFinite(bts)) addSpan(t, b, bts, Math.max(0, tMax - bts), b.args); }
});
if (!isFinite(tMin)) { tMin = 0; tMax = 1; }
if (tMax <= tMin) tMax = tMin + 1;

var CAT_ORDER = { thread: 0, task: 1, async: 2, wait: 3, wake: 4 };
var tracks = Array.from(trackMap.values());
tracks.sort(function (a, b) {
  var sa = a.sort == null || !isFinite(a.sort) ? Infinity : a.sort, sb = b.sort == null || !isFinite(b.sort) ? Infinity : b.sort;
  if (sa !== sb) return sa < sb ? -1 : 1;
  if (a.pid !== b.pid) return Number(a.pid) - Number(b.pid);
  return Number(a.tid) - Number(b.tid);
});

// Lanes: a span goes one deeper than every span still open when it starts.
tracks.forEach(function (t) {
  t.spans.sort(function (a, b) {
    return a.ts - b.ts || b.dur - a.dur || (CAT_ORDER[a.cat] == null ? 9 : CAT_ORDER[a.cat]) - (CAT_ORDER[b.cat] == null ? 9 : CAT_ORDER[b.cat]) || a.index - b.index;
  });
  var stack = [];
  t.spans.forEach(function (s) {
    while (stack.length && stack[stack.length - 1].end <= s.ts) stack.pop();
    s.depth = stack.length;
    stack.push(s);
    if (!t.lanes[s.depth]) t.lanes[s.depth] = { spans: [], maxEnd: [] };
    t.lanes[s.depth].spans.push(s);
  });
  t.lanes.forEach(function (lane) {
    var m = -Infinity;
    for (var i = 0; i < lane.spans.length; i++) { if (lane.spans[i].end > m) m = lane.spans[i].end; lane.maxEnd.push(m); }
  });
});

// The first span of a lane that may reach t (its running max of ends is >= t).
function firstReaching(lane, t) {
  var lo = 0, hi = lane.maxEnd.length;
  while (lo < hi) { var mid = (lo + hi) >> 1; if (lane.maxEnd[mid] < t) lo = mid + 1; else hi = mid; }
  return lo;
}
// The deepest span of a track that contains t, or null.
function enclosing(track, t) {
  for (var d = track.lanes.length - 1; d >= 0; d--) {
    var lane = track.lanes[d], best = null;
    for (var i = firstReaching(lane, t); i < lane.spans.length; i++) {
      var s = lane.spans[i];
      if (s.ts > t) break;
      if (s.end >= t) best = s;
    }
    if (best) return best;
  }
  return null;
}
// The first span of a track that starts at or after t (the default binding of a flow's end).
function nextStarting(track, t) {
  var found = null;
  track.lanes.forEach(function (lane) {
    var lo = 0, hi = lane.spans.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (lane.spans[mid].ts < t) lo = mid + 1; else hi = mid; }
    var s = lane.spans[lo];
    if (s && (!found || s.ts < found.ts || (s.ts === found.ts && s.depth > found.depth))) found = s;
  });
  return found;
}

// Flows: each 's' joins the next 't'/'f' of the same id (in time order).
flowEnds.sort(function (a, b) { return a.ts - b.ts || a.order - b.order; });
var pending = new Map();
var flows = [];
flowEnds.forEach(function (f) {
  var track = trackMap.get(f.pid + ':' + f.tid);
  var span = null;
  if (f.ph === 'f' && f.bp !== 'e') span = nextStarting(track, f.ts) || enclosing(track, f.ts);
  else span = enclosing(track, f.ts);
  f.track = track; f.span = span;
  if (f.ph !== 's') {
    var from = pending.get(f.id);
    if (from) {
      var flow = { from: from, to: f, name: f.name || from.name || '' };
      flows.push(flow);
      if (from.span) from.span.flowsOut.push(flow);
      if (span) span.flowsIn.push(flow);
    }
    if (f.ph === 'f') pending.delete(f.id);
  }
  if (f.ph !== 'f') pending.set(f.id, f);
});

// Counters: points in time order, a color per series.
var counters = Array.from(counterMap.values());
counters.sort(function (a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; });
var SERIES_COLORS = ['#4e79a7', '#b07aa1', '#76b7b2', '#9c755f', '#edc948', '#bab0ac'];
counters.forEach(function (c, n) {
  var i = n;
  c.series.forEach(function (s) { s.points.sort(function (a, b) { return a[0] - b[0]; }); s.color = SERIES_COLORS[i++ % SERIES_COLORS.length]; });
  c.seriesList = Array.from(c.series.values());
});

// Layout (content coordinates: y from the top of the first track).
var totalH = 0;
tracks.forEach(function (t) { t.y = totalH; t.h = PAD * 2 + Math.max(1, t.lanes.length) * LANE; totalH += t.h; });
counters.forEach(function (c) { c.y = totalH; totalH += c.h; });

// ---------------------------------------------------------------- DOM
var scroller = document.getElementById('scroller');
var content = document.getElementById('content');
var labels = document.getElementById('labels');
var canvas = document.getElementById('main');
var axis = document.getElementById('axis');
var tooltip = document.getElementById('tooltip');
var ctx = canvas.getContext('2d');
var actx = axis.getContext('2d');

function el(tag, cls, text) {
  var n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text != null) n.textContent = text;
  return n;
}

tracks.forEach(function (t, i) {
  var name = t.name != null ? t.name : 'thread ' + t.tid;
  var d = el('div', 'track-label', name);
  d.dataset.tid = String(t.tid);
  d.title = name + ' (tid ' + t.tid + ')';
  d.style.top = t.y + 'px';
  d.style.height = t.h + 'px';
  d.style.background = i % 2 ? '#f6f7fa' : '#ffffff';
  labels.appendChild(d);
  t.label = name;
});
counters.forEach(function (c) {
  var d = el('div', 'counter-label', c.name);
  d.appendChild(el('span', 'sub', 'max ' + fmtNum(c.max) + (c.seriesList.length > 1 ? ' \u00b7 ' + c.seriesList.map(function (s) { return s.name; }).join(', ') : '')));
  d.style.top = c.y + 'px';
  d.style.height = c.h + 'px';
  d.style.background = '#fbfaf5';
  labels.appendChild(d);
});
labels.style.height = totalH + 'px';

// Summary and legend.
var summary = tracks.length + ' threads \u00b7 ' + spans.length + ' spans \u00b7 ' + flows.length + ' hand-offs \u00b7 ' + fmtDur(tMax - tMin);
var dropped = otherData.droppedEvents != null ? otherData.droppedEvents : otherData.dropped;
if (dropped) summary += ' \u00b7 ' + dropped + ' events dropped';
document.getElementById('summary').textContent = summary;
(function legend() {
  var box = document.getElementById('legend');
  var cats = new Set(), kinds = new Set();
  spans.forEach(function (s) { if (s.cat === 'wait') kinds.add(s.kind); else cats.add(s.cat); });
  function item(color, label, cls) {
    var it = el('span', 'item');
    var sw = el('span', 'swatch' + (cls ? ' ' + cls : ''));
    if (!cls) sw.style.background = color;
    it.appendChild(sw); it.appendChild(el('span', null, label));
    box.appendChild(it);
  }
  ['thread', 'task'].forEach(function (c) { if (cats.has(c)) { item(CAT_COLORS[c], CAT_LABELS[c]); cats.delete(c); } });
  var known = WAIT_KINDS.map(function (k) { return k[0]; });
  known.forEach(function (k) { if (kinds.has(k)) { item(KIND_COLOR[k], 'wait: ' + k); kinds.delete(k); } });
  kinds.forEach(function (k) { item(hashColor(k), 'wait: ' + k); });
  ['async', 'wake'].forEach(function (c) { if (cats.has(c)) { item(CAT_COLORS[c], CAT_LABELS[c]); cats.delete(c); } });
  cats.forEach(function (c) { item(CAT_COLORS[c] || hashColor(c), c || '(no category)'); });
  if (flows.length) item(null, 'hand-off (who woke whom)', 'arrow');
  if (counters.length) item('#4e79a7', 'counter');
})();

if (tracks.length === 0 && counters.length === 0) {
  var empty = el('div', null, 'This trace has no events.');
  empty.id = 'empty';
  content.appendChild(empty);
}

// ---------------------------------------------------------------- formatting
function fmtNum(v) { return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(Math.round(v * 1000) / 1000); }
function trim(x, digits) { return String(parseFloat(x.toFixed(digits))); }
function fmtDur(us) {
  var a = Math.abs(us);
  if (a >= 1e6) return trim(us / 1e6, 3) + ' s';
  if (a >= 1e3) return trim(us / 1e3, 3) + ' ms';
  if (a >= 1) return trim(us, 3) + ' \u00b5s';
  if (a === 0) return '0';
  return trim(us * 1e3, 1) + ' ns';
}
function fmtTick(us, step) {
  if (step >= 1e6) return trim(us / 1e6, 6) + ' s';
  if (step >= 1e3) return trim(us / 1e3, 3) + ' ms';
  if (step >= 1) return trim(us, 3) + ' \u00b5s';
  return trim(us * 1e3, 0) + ' ns';
}
function fmtValue(v) {
  if (v == null) return String(v);
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  try { return JSON.stringify(v); } catch (err) { return String(v); }
}

// ---------------------------------------------------------------- view
var W = 0, H = 0, AW = 0, dpr = 1;
var view = { start: tMin, scale: 1 };
var hovered = null, hoveredCounter = null, drag = null, first = true;

function fit() {
  var range = tMax - tMin;
  view.scale = W > 0 ? W / (range * 1.04) : 1;
  view.start = tMin - range * 0.02;
}
function clampView() {
  var range = tMax - tMin;
  var minScale = W / (range * 20), maxScale = 5000; // at most 5 px per ns
  if (view.scale < minScale) view.scale = minScale;
  if (view.scale > maxScale) view.scale = maxScale;
  var span = W / view.scale;
  if (view.start < tMin - span * 0.9) view.start = tMin - span * 0.9;
  if (view.start > tMax - span * 0.1) view.start = tMax - span * 0.1;
}
function zoomAt(factor, x) {
  var t = view.start + x / view.scale;
  view.scale *= factor;
  clampView();
  view.start = t - x / view.scale;
  clampView();
  schedule();
}
function resize() {
  dpr = window.devicePixelRatio || 1;
  W = Math.max(50, scroller.clientWidth - LABEL_W);
  H = Math.max(50, scroller.clientHeight);
  AW = Math.max(50, axis.clientWidth);
  content.style.height = Math.max(totalH, H) + 'px';
  canvas.style.width = W + 'px'; canvas.style.height = H + 'px';
  canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  axis.width = Math.round(AW * dpr); axis.height = Math.round(24 * dpr);
  if (first) fit();
  clampView();
}

var frame = 0;
function schedule() { if (!frame) frame = requestAnimationFrame(function () { frame = 0; draw(); }); }

function tickStep() {
  var target = MIN_PX_PER_LABEL / view.scale;
  var p = Math.pow(10, Math.floor(Math.log10(target)));
  var steps = [1, 2, 5, 10];
  for (var i = 0; i < steps.length; i++) if (steps[i] * p >= target) return steps[i] * p;
  return 10 * p;
}

function laneY(track, depth) { return track.y + PAD + depth * LANE; }

function draw() {
  var started = performance.now();
  var top = scroller.scrollTop;
  var t0 = view.start, scale = view.scale, t1 = t0 + W / scale;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  ctx.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';
  ctx.textBaseline = 'middle';

  // Rows.
  tracks.forEach(function (t, i) {
    if (t.y + t.h < top || t.y > top + H) return;
    ctx.fillStyle = i % 2 ? '#f6f7fa' : '#ffffff';
    ctx.fillRect(0, t.y - top, W, t.h);
  });
  counters.forEach(function (c) {
    if (c.y + c.h < top || c.y > top + H) return;
    ctx.fillStyle = '#fbfaf5';
    ctx.fillRect(0, c.y - top, W, c.h);
  });

  // Grid.
  var step = tickStep();
  ctx.strokeStyle = 'rgba(40,50,80,0.08)';
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (var g = Math.ceil((t0 - tMin) / step) * step + tMin; g <= t1; g += step) {
    var gx = Math.round((g - t0) * scale) + 0.5;
    ctx.moveTo(gx, 0); ctx.lineTo(gx, H);
  }
  ctx.stroke();

  // Spans.
  tracks.forEach(function (t) {
    if (t.y + t.h < top || t.y > top + H) return;
    ctx.strokeStyle = '#eceef3';
    ctx.beginPath(); ctx.moveTo(0, t.y + t.h - top - 0.5); ctx.lineTo(W, t.y + t.h - top - 0.5); ctx.stroke();
    for (var d = 0; d < t.lanes.length; d++) {
      var lane = t.lanes[d], y = laneY(t, d) - top;
      if (y + LANE < 0 || y > H) continue;
      var list = lane.spans, lastRight = -Infinity;
      for (var i = firstReaching(lane, t0); i < list.length; i++) {
        var s = list[i];
        if (s.ts > t1) break;
        var x = (s.ts - t0) * scale, right = (s.end - t0) * scale;
        if (right < 0) continue;
        if (right - x < 1) right = x + 1;
        if (right <= lastRight) continue; // on pixels painted already
        if (x < lastRight) x = lastRight;
        if (x < -1) x = -1;
        if (right > W + 1) right = W + 1;
        var w = right - x;
        ctx.fillStyle = s.color;
        ctx.fillRect(x, y, w > 3 ? w - 1 : w, LANE - 1);
        lastRight = right;
        if (w > 24) {
          var tx = Math.max(x, 0) + 4, room = right - tx - 3;
          var n = Math.floor(room / 6.3);
          if (n >= 2) {
            var label = s.name.length > n ? s.name.slice(0, n - 1) + '\u2026' : s.name;
            ctx.fillStyle = s.text;
            ctx.fillText(label, tx, y + LANE / 2);
          }
        }
      }
    }
  });

  // Hovered span outline.
  if (hovered) {
    var hx = Math.max(-2, (hovered.ts - t0) * scale), hr = Math.min(W + 2, Math.max((hovered.end - t0) * scale, (hovered.ts - t0) * scale + 1));
    ctx.strokeStyle = '#1d2330'; ctx.lineWidth = 2;
    ctx.strokeRect(hx, laneY(hovered.track, hovered.depth) - top, hr - hx, LANE - 1);
  }

  // Counters.
  counters.forEach(function (c) {
    if (c.y + c.h < top || c.y > top + H) return;
    var base = c.y + c.h - 4 - top, hgt = c.h - 10, max = c.max > 0 ? c.max : 1;
    ctx.strokeStyle = '#e2e0d6'; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(0, c.y + c.h - top - 0.5); ctx.lineTo(W, c.y + c.h - top - 0.5); ctx.stroke();
    c.seriesList.forEach(function (ser) {
      var pts = ser.points;
      if (!pts.length) return;
      var lo = 0, hi = pts.length;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (pts[mid][0] <= t0) lo = mid + 1; else hi = mid; }
      var i = Math.max(0, lo - 1);
      var px = Math.max(-1, (pts[i][0] - t0) * scale), py = base - pts[i][1] / max * hgt;
      ctx.beginPath();
      ctx.moveTo(px, base); ctx.lineTo(px, py);
      for (i = i + 1; i < pts.length; i++) {
        var x = (pts[i][0] - t0) * scale;
        if (x > W + 1) { x = W + 1; ctx.lineTo(x, py); px = x; break; }
        var y = base - pts[i][1] / max * hgt;
        ctx.lineTo(x, py); ctx.lineTo(x, y);
        px = x; py = y;
      }
      var endX = Math.min(W + 1, (tMax - t0) * scale);
      if (i >= pts.length && endX > px) { ctx.lineTo(endX, py); px = endX; }
      ctx.lineTo(px, base);
      ctx.closePath();
      ctx.globalAlpha = 0.25; ctx.fillStyle = ser.color; ctx.fill();
      ctx.globalAlpha = 1; ctx.strokeStyle = ser.color; ctx.lineWidth = 1.2; ctx.stroke();
    });
    if (hoveredCounter && hoveredCounter.counter === c) {
      var cx = (hoveredCounter.t - t0) * scale;
      ctx.strokeStyle = 'rgba(29,35,48,0.6)'; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(cx, c.y - top); ctx.lineTo(cx, c.y + c.h - top); ctx.stroke();
    }
  });

  // Hand-off arrows (those of the hovered span in red, on top). Many at once (zoomed out) are
  // drawn as straight lines, one pixel-identical arrow once: curves cost much more to fill.
  var related = hovered ? new Set(hovered.flowsIn.concat(hovered.flowsOut)) : null;
  var visible = [], hotOnes = [], seen = new Set();
  for (var fi = 0; fi < flows.length; fi++) {
    var f = flows[fi];
    var x1 = (f.from.ts - t0) * scale, x2 = (f.to.ts - t0) * scale;
    if ((x1 < -50 && x2 < -50) || (x1 > W + 50 && x2 > W + 50)) continue;
    var y1 = endY(f.from) - top, y2 = endY(f.to) - top;
    if ((y1 < 0 && y2 < 0) || (y1 > H && y2 > H)) continue;
    if (related !== null && related.has(f)) { hotOnes.push(x1, y1, x2, y2); continue; }
    var key = Math.round(x1) + ',' + Math.round(y1) + ',' + Math.round(x2) + ',' + Math.round(y2);
    if (seen.has(key)) continue;
    seen.add(key);
    visible.push(x1, y1, x2, y2);
  }
  var dense = visible.length / 4 > 1500;
  drawArrows(visible, dense ? 'rgba(29,35,48,0.45)' : 'rgba(29,35,48,0.72)', dense ? 1 : 1.3, dense, 6.5, 2.2);
  drawArrows(hotOnes, '#d62728', 2.2, false, 8, 2.8);
  var drawn = (visible.length + hotOnes.length) / 4;

  drawAxis(step);

  if (first) {
    first = false;
    var b = document.body.dataset;
    b.tracks = String(tracks.length);
    b.counters = String(counters.length);
    b.spans = String(spans.length);
    b.arrows = String(flows.length);
    b.drawMs = String(Math.round((performance.now() - started) * 10) / 10);
    b.drawn = 'true';
  }
  document.body.dataset.arrowsDrawn = String(drawn);
  document.body.dataset.lastDrawMs = String(Math.round((performance.now() - started) * 10) / 10);
}

function endY(f) {
  if (!f.track) return 0;
  var depth = f.span ? f.span.depth : 0;
  return laneY(f.track, depth) + LANE / 2;
}
/**
 * Draws arrows (x1, y1, x2, y2 in a flat list): curves leaving and entering horizontally (straight
 * lines when dense), a head pointing right at the end, a dot at the start. Paths of 64 arrows.
 */
function drawArrows(list, color, width, dense, len, dot) {
  if (!list.length) return;
  ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = width;
  var i, hx = len * Math.cos(0.45), hy = len * Math.sin(0.45);
  ctx.beginPath();
  for (i = 0; i < list.length; i += 4) {
    var x1 = list[i], y1 = list[i + 1], x2 = list[i + 2], y2 = list[i + 3];
    ctx.moveTo(x1, y1);
    if (dense) ctx.lineTo(x2, y2);
    else {
      var c = Math.max(14, Math.min(70, Math.abs(x2 - x1) / 2 + Math.abs(y2 - y1) / 4));
      ctx.bezierCurveTo(x1 + c, y1, x2 - c, y2, x2, y2);
    }
    if (i % 256 === 252) { ctx.stroke(); ctx.beginPath(); }
  }
  ctx.stroke();
  ctx.beginPath();
  for (i = 0; i < list.length; i += 4) {
    var ex = list[i + 2], ey = list[i + 3];
    ctx.moveTo(ex, ey); ctx.lineTo(ex - hx, ey - hy); ctx.lineTo(ex - hx, ey + hy); ctx.closePath();
    if (!dense) { ctx.moveTo(list[i] + dot, list[i + 1]); ctx.arc(list[i], list[i + 1], dot, 0, Math.PI * 2); }
    if (i % 256 === 252) { ctx.fill(); ctx.beginPath(); }
  }
  ctx.fill();
}
function drawAxis(step) {
  actx.setTransform(dpr, 0, 0, dpr, 0, 0);
  actx.clearRect(0, 0, AW, 24);
  actx.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';
  actx.textBaseline = 'middle';
  actx.fillStyle = '#3b4356';
  actx.strokeStyle = '#9aa0ae';
  actx.lineWidth = 1;
  var t0 = view.start, t1 = t0 + AW / view.scale;
  actx.beginPath();
  for (var g = Math.ceil((t0 - tMin) / step) * step + tMin; g <= t1; g += step) {
    var x = Math.round((g - t0) * view.scale) + 0.5;
    actx.moveTo(x, 16); actx.lineTo(x, 24);
    actx.fillText(fmtTick(g - tMin, step), x + 3, 9);
  }
  actx.stroke();
}

// ---------------------------------------------------------------- hover
function hitSpan(x, y) {
  var cy = y + scroller.scrollTop;
  var lo = 0, hi = tracks.length - 1, t = null;
  while (lo <= hi) {
    var mid = (lo + hi) >> 1, m = tracks[mid];
    if (cy < m.y) hi = mid - 1; else if (cy >= m.y + m.h) lo = mid + 1; else { t = m; break; }
  }
  if (!t) return null;
  var d = Math.floor((cy - t.y - PAD) / LANE);
  if (d < 0 || d >= t.lanes.length) return null;
  var lane = t.lanes[d], tt = view.start + x / view.scale, slack = 3 / view.scale;
  var best = null, bestDist = Infinity;
  for (var i = firstReaching(lane, tt - slack); i < lane.spans.length; i++) {
    var s = lane.spans[i];
    if (s.ts > tt + slack) break;
    var dist = tt < s.ts ? s.ts - tt : tt > s.end ? tt - s.end : 0;
    if (dist <= slack && (dist < bestDist || (dist === bestDist && best && s.dur < best.dur))) { best = s; bestDist = dist; }
  }
  return best;
}
function hitCounter(x, y) {
  var cy = y + scroller.scrollTop;
  for (var i = 0; i < counters.length; i++) {
    var c = counters[i];
    if (cy >= c.y && cy < c.y + c.h) return { counter: c, t: view.start + x / view.scale };
  }
  return null;
}
function valueAt(points, t) {
  var lo = 0, hi = points.length;
  while (lo < hi) { var mid = (lo + hi) >> 1; if (points[mid][0] <= t) lo = mid + 1; else hi = mid; }
  return lo === 0 ? null : points[lo - 1][1];
}
function row(table, k, v) {
  var tr = el('tr');
  tr.appendChild(el('td', 'k', k));
  tr.appendChild(el('td', null, v));
  table.appendChild(tr);
}
function flowText(f, other) {
  var who = other.track ? other.track.label : '?';
  var what = other.span ? other.span.name : (f.name || 'hand-off');
  return who + ' \u2014 ' + what + ' @ ' + fmtDur(other.ts - tMin);
}
function showTooltip(clientX, clientY) {
  tooltip.textContent = '';
  var table = el('table');
  if (hovered) {
    var s = hovered;
    tooltip.appendChild(el('div', 't-name', s.name || '(unnamed)'));
    row(table, 'category', s.cat + (s.kind ? ' \u00b7 ' + s.kind : ''));
    row(table, 'thread', s.track.label);
    row(table, 'start', '+' + fmtDur(s.ts - tMin));
    row(table, 'duration', fmtDur(s.dur));
    if (s.args) for (var k in s.args) row(table, k, fmtValue(s.args[k]));
    s.flowsIn.forEach(function (f) { row(table, s.cat === 'wait' ? 'woken by' : 'from', flowText(f, f.from)); });
    s.flowsOut.forEach(function (f) { row(table, s.cat === 'wake' ? 'woke' : 'to', flowText(f, f.to)); });
  } else if (hoveredCounter) {
    var c = hoveredCounter.counter;
    tooltip.appendChild(el('div', 't-name', c.name));
    row(table, 'at', '+' + fmtDur(hoveredCounter.t - tMin));
    c.seriesList.forEach(function (ser) { var v = valueAt(ser.points, hoveredCounter.t); row(table, ser.name, v == null ? '\u2014' : fmtNum(v)); });
  } else { hideTooltip(); return; }
  tooltip.appendChild(table);
  tooltip.classList.add('visible');
  var r = tooltip.getBoundingClientRect();
  var left = clientX + 14, topY = clientY + 16;
  if (left + r.width > window.innerWidth - 4) left = Math.max(4, clientX - r.width - 14);
  if (topY + r.height > window.innerHeight - 4) topY = Math.max(4, clientY - r.height - 12);
  tooltip.style.left = left + 'px';
  tooltip.style.top = topY + 'px';
}
function hideTooltip() { tooltip.classList.remove('visible'); }

canvas.addEventListener('mousemove', function (ev) {
  if (drag) return;
  var r = canvas.getBoundingClientRect();
  var x = ev.clientX - r.left, y = ev.clientY - r.top;
  var s = hitSpan(x, y), c = s ? null : hitCounter(x, y);
  var changed = s !== hovered || (c && (!hoveredCounter || c.counter !== hoveredCounter.counter || c.t !== hoveredCounter.t)) || (!c && hoveredCounter);
  hovered = s; hoveredCounter = c;
  canvas.style.cursor = s ? 'pointer' : 'default';
  if (s || c) showTooltip(ev.clientX, ev.clientY); else hideTooltip();
  if (changed) schedule();
});
canvas.addEventListener('mouseleave', function () {
  if (drag) return;
  hideTooltip();
  if (hovered || hoveredCounter) { hovered = null; hoveredCounter = null; schedule(); }
});

// ---------------------------------------------------------------- zoom and pan
scroller.addEventListener('wheel', function (ev) {
  var unit = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? H : 1;
  var dy = ev.deltaY * unit, dx = ev.deltaX * unit;
  if (ev.shiftKey) return; // the browser scrolls (vertically) as usual
  ev.preventDefault();
  var r = canvas.getBoundingClientRect();
  if (Math.abs(dx) > Math.abs(dy)) { view.start += dx / view.scale; clampView(); schedule(); return; }
  zoomAt(Math.exp(-dy * 0.0018), Math.max(0, Math.min(W, ev.clientX - r.left)));
  hideTooltip();
}, { passive: false });
scroller.addEventListener('scroll', function () { hideTooltip(); schedule(); });
canvas.addEventListener('mousedown', function (ev) {
  if (ev.button !== 0) return;
  drag = { x: ev.clientX, y: ev.clientY, start: view.start, scrollTop: scroller.scrollTop, moved: false };
  canvas.classList.add('dragging');
  hideTooltip();
  ev.preventDefault();
});
window.addEventListener('mousemove', function (ev) {
  if (!drag) return;
  var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
  view.start = drag.start - dx / view.scale;
  clampView();
  scroller.scrollTop = drag.scrollTop - dy;
  schedule();
});
window.addEventListener('mouseup', function () {
  if (!drag) return;
  drag = null;
  canvas.classList.remove('dragging');
});
function zoomCenter(f) { zoomAt(f, W / 2); }
document.getElementById('zoom-in').addEventListener('click', function () { zoomCenter(1.6); });
document.getElementById('zoom-out').addEventListener('click', function () { zoomCenter(1 / 1.6); });
document.getElementById('zoom-fit').addEventListener('click', function () { fit(); clampView(); schedule(); });
window.addEventListener('keydown', function (ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  var k = ev.key;
  if (k === '+' || k === '=' || k === 'w') zoomCenter(1.4);
  else if (k === '-' || k === '_' || k === 's') zoomCenter(1 / 1.4);
  else if (k === '0') { fit(); clampView(); schedule(); }
  else if (k === 'ArrowLeft' || k === 'a') { view.start -= W * 0.15 / view.scale; clampView(); schedule(); }
  else if (k === 'ArrowRight' || k === 'd') { view.start += W * 0.15 / view.scale; clampView(); schedule(); }
  else return;
  ev.preventDefault();
});
window.addEventListener('resize', function () { resize(); schedule(); });

// ---------------------------------------------------------------- for tests
window.traceView = {
  view: function () { return { start: view.start, end: view.start + W / view.scale, scale: view.scale }; },
  zoom: zoomCenter,
  /** Client coordinates of the middle of the first visible span named name (scrolled into view), or null. */
  findSpan: function (name) {
    var t0 = view.start, t1 = t0 + W / view.scale;
    for (var i = 0; i < spans.length; i++) {
      var s = spans[i];
      if (s.name !== name || s.end < t0 || s.ts > t1) continue;
      var y = laneY(s.track, s.depth);
      if (y < scroller.scrollTop || y + LANE > scroller.scrollTop + H) { scroller.scrollTop = y - H / 2; draw(); }
      var r = canvas.getBoundingClientRect();
      var x1 = Math.max(0, (s.ts - t0) * view.scale), x2 = Math.min(W, (s.end - t0) * view.scale);
      return { x: r.left + (x1 + Math.max(x1 + 1, x2)) / 2, y: r.top + y - scroller.scrollTop + LANE / 2 };
    }
    return null;
  }
};

resize();
draw();
})();
`;
