/**
 * Timelines: `startTrace()` turns every thread's flight recorder on (shm/trace-ring.ts);
 * `stopTrace()` reads the rings and returns a `Trace`, which writes the Chrome Trace Event format
 * (Perfetto, chrome://tracing) or a self-contained HTML page (html.ts).
 *
 * What the JSON holds: a track per thread named as the thread; spans for thread lifetimes,
 * pool tasks and every wait on a threadkit primitive (naming the primitive and, for a Lock or
 * RLock, its holder); a flow arrow from the release, put, set or setResult that woke a waiter to
 * the wait it ended (the wake-up recorded on the same address, latest before the wait's end);
 * counters for each pool's busy threads.
 */

import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { ThreadError } from '../errors.js';
import { heap } from '../shm/current.js';
import { describe } from '../shm/futex.js';
import { S_TRACE, S_TRACE_MAX, S_TRACE_RINGS } from '../shm/heap.js';
import {
  RECORDS_AT,
  RECORD_SLOTS,
  R_CAPACITY,
  R_ENDED,
  R_GEN,
  R_IDENT,
  R_NAME_ID,
  R_NEXT,
  R_WRITTEN,
  TraceType,
  readTraceName,
  traceClock,
  unlinkRing,
  withTraceLock,
} from '../shm/trace-ring.js';
import { WAIT_KIND_NAMES } from '../shm/wait-site.js';
import { currentThread } from '../thread/thread.js';
import { type ChromeEvent, type ChromeTrace, renderTraceHTML } from './html.js';

/** Options of `startTrace`. */
export interface TraceOptions {
  /** Events kept per thread (the last ones: a flight recorder). @default 100_000 */
  maxEvents?: number;
}

const DEFAULT_MAX_EVENTS = 100_000;
const MAX_MAX_EVENTS = 10_000_000;

/** The trace under way in this process, as started here (its generation and start time). */
let started: { gen: number; at: number } | undefined;
let generations = 0;

/**
 * Starts recording every thread's waits, wake-ups, tasks and lifetimes into a ring per thread
 * in shared memory (the last `maxEvents` of each survive).
 * @throws ThreadError when a trace is already under way; RangeError for a bad maxEvents.
 */
export function startTrace(options: TraceOptions = {}): void {
  if (typeof options !== 'object' || options === null) throw new TypeError(`startTrace(options): expected an options object, got ${describe(options)}`);
  const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
  if (typeof maxEvents !== 'number' || !Number.isInteger(maxEvents) || maxEvents < 16 || maxEvents > MAX_MAX_EVENTS) {
    throw new RangeError(`startTrace: maxEvents must be an integer from 16 to ${MAX_MAX_EVENTS}, got ${describe(maxEvents)}`);
  }
  const h = heap();
  currentThread(); // (the calling thread's track gets its name)
  if (Atomics.load(h.i32, S_TRACE) !== 0) throw new ThreadError('startTrace: a trace is already under way (stopTrace() first)');
  // A generation unique in the process (rings of an older trace are recognised and dropped).
  const gen = ((Date.now() & 0x3fffff) << 8) | (++generations & 0xff) || 1;
  Atomics.store(h.i32, S_TRACE_MAX, maxEvents);
  if (Atomics.compareExchange(h.i32, S_TRACE, 0, gen) !== 0) throw new ThreadError('startTrace: a trace is already under way (stopTrace() first)');
  started = { gen, at: traceClock() };
}

/** Whether a trace is under way (started by any thread). */
export function isTracing(): boolean {
  return Atomics.load(heap().i32, S_TRACE) !== 0;
}

/**
 * Stops the trace and reads every thread's ring.
 * @throws ThreadError when no trace is under way.
 */
export function stopTrace(): Trace {
  const h = heap();
  const gen = Atomics.exchange(h.i32, S_TRACE, 0);
  if (gen === 0) throw new ThreadError('stopTrace: no trace is under way (startTrace() first)');
  const begin = started?.gen === gen ? started.at : undefined;
  started = undefined;
  const rings = withTraceLock(() => collectRings(gen));
  return new Trace(rings, begin ?? Math.min(...rings.flatMap((r) => r.records.map((e) => e.ts)), traceClock()), traceClock());
}

/** One recorded event. */
interface RecordedEvent {
  ts: number;
  type: TraceType;
  kind: number;
  object: number;
  a: number;
  b: number;
  c: number;
}

interface RingContent {
  ident: number;
  name: string;
  /** Names by their id in the ring's names area. */
  names: Map<number, string>;
  records: RecordedEvent[];
}

/** Under the trace lock: the content of every ring of `gen`; the rings of ended threads are freed. */
function collectRings(gen: number): RingContent[] {
  const h = heap();
  h.ensureMapped(h.topBytes());
  const out: RingContent[] = [];
  const done: number[] = [];
  for (let ring = h.i32[S_TRACE_RINGS]!; ring !== 0; ring = h.i32[(ring >> 2) + R_NEXT]!) {
    const base = ring >> 2;
    if (h.i32[base + R_GEN] !== gen) continue;
    out.push(readRing(ring));
    if (Atomics.load(h.i32, base + R_ENDED) !== 0) done.push(ring);
  }
  for (const ring of done) {
    unlinkRing(ring);
    h.free(ring);
  }
  return mergeByThread(out);
}

/** A thread may have written more than one ring (a last wake-up after its end): one per thread, in time order. */
function mergeByThread(rings: RingContent[]): RingContent[] {
  const byIdent = new Map<number, RingContent>();
  for (const ring of rings) {
    const known = byIdent.get(ring.ident);
    if (known === undefined) {
      byIdent.set(ring.ident, ring);
      continue;
    }
    // Names are ids into their own ring's area: keep the task names by resolving them now.
    for (const e of ring.records) if (e.type === TraceType.TaskBegin) e.a = internInto(known, ring.names.get(e.a) ?? '');
    known.records.push(...ring.records);
    known.records.sort((x, y) => x.ts - y.ts);
    if (known.name === '' || known.name.startsWith('thread ')) known.name = ring.name || known.name;
  }
  return [...byIdent.values()];
}

function internInto(ring: RingContent, name: string): number {
  for (const [id, known] of ring.names) if (known === name) return id;
  const id = -2 - ring.names.size; // (ids of merged names: never a real offset)
  ring.names.set(id, name);
  return id;
}

function readRing(ring: number): RingContent {
  const h = heap();
  const base = ring >> 2;
  const capacity = h.i32[base + R_CAPACITY]!;
  const written = Atomics.load(h.i32, base + R_WRITTEN);
  const records: RecordedEvent[] = [];
  const names = new Map<number, string>();
  for (let n = Math.max(0, written - capacity); n < written; n++) {
    const at = base + RECORDS_AT + (n % capacity) * RECORD_SLOTS;
    if (Atomics.load(h.i32, at + 7) !== n) continue; // overwritten meanwhile, or being written
    const word = h.i32[at + 2]!;
    const event: RecordedEvent = { ts: h.f64[at >> 1]!, type: word & 0xff, kind: (word >> 8) & 0xff, object: h.i32[at + 3]!, a: h.i32[at + 4]!, b: h.i32[at + 5]!, c: h.i32[at + 6]! };
    if (event.type === TraceType.TaskBegin && !names.has(event.a)) names.set(event.a, readTraceName(ring, event.a));
    records.push(event);
  }
  return { ident: h.i32[base + R_IDENT]!, name: readTraceName(ring, Math.max(0, h.i32[base + R_NAME_ID]!)), names, records };
}

/** Slack for comparing times taken in different threads (ms): a wake-up may be stamped a hair after the wait it ended. */
const CLOCK_SLACK_MS = 0.05;

/** A recorded trace: `toJSON()` (Chrome Trace Event format), `writeJSON(path)`, `writeHTML(path)`. */
export class Trace {
  /** Events recorded (kept in the rings). */
  readonly events: number;
  readonly #json: ChromeTrace;

  /** @internal */
  constructor(rings: RingContent[], begin: number, end: number) {
    this.events = rings.reduce((n, r) => n + r.records.length, 0);
    this.#json = toChrome(rings, begin, end);
  }

  /** The Chrome Trace Event format object (`{ traceEvents, displayTimeUnit, otherData }`). */
  toJSON(): ChromeTrace {
    return this.#json;
  }

  /** Writes the Chrome Trace Event JSON (open it in https://ui.perfetto.dev or chrome://tracing). */
  writeJSON(path: string): void {
    writeFileSync(path, JSON.stringify(this.#json));
  }

  /** Writes one self-contained HTML page drawing the timeline (no network needed). */
  writeHTML(path: string, title = 'threadkit trace'): void {
    writeFileSync(path, renderTraceHTML(this.#json, title));
  }
}

interface OpenSpan {
  event: RecordedEvent;
}

function toChrome(rings: RingContent[], begin: number, end: number): ChromeTrace {
  const us = (ms: number): number => Math.round((ms - begin) * 1000 * 1000) / 1000;
  const events: ChromeEvent[] = [];
  const threadNames = new Map<number, string>();
  for (const ring of rings) threadNames.set(ring.ident, ring.name);
  const nameOf = (ident: number): string => threadNames.get(ident) ?? `thread ${ident}`;
  // Tracks: the main thread first, then by ident (start order).
  const idents = [...threadNames.keys()].sort((x, y) => x - y);
  idents.forEach((ident, i) => {
    events.push({ ph: 'M', name: 'thread_name', pid: 1, tid: ident, args: { name: nameOf(ident) } });
    events.push({ ph: 'M', name: 'thread_sort_index', pid: 1, tid: ident, args: { sort_index: i } });
  });
  const wakes = new Map<number, { ts: number; tid: number }[]>();
  const waitEnds: WaitEnd[] = [];
  const poolChanges: { pool: number; ts: number; delta: number }[] = [];
  const counters: { name: string; ts: number; value: number }[] = [];
  /** Adds a span (clipped to the trace); returns its [start, end] in µs. */
  const span = (tid: number, name: string, cat: string, from: number, to: number, args?: Record<string, unknown>): [number, number] => {
    const ts = us(Math.max(from, begin));
    const dur = Math.max(0, us(Math.min(to, end)) - ts);
    events.push({ ph: 'X', name, cat, pid: 1, tid, ts, dur, ...(args === undefined ? {} : { args }) });
    return [ts, ts + dur];
  };
  for (const ring of rings) {
    const tid = ring.ident;
    const stack: OpenSpan[] = [];
    const asyncOpen = new Map<number, RecordedEvent[]>();
    let threadBegan: number | undefined;
    let threadEnded: number | undefined;
    for (const e of ring.records) {
      switch (e.type) {
        case TraceType.ThreadBegin:
          threadBegan = e.ts;
          break;
        case TraceType.ThreadEnd:
          threadEnded = e.ts;
          break;
        case TraceType.TaskBegin:
        case TraceType.WaitBegin:
          stack.push({ event: e });
          break;
        case TraceType.TaskEnd:
        case TraceType.WaitEnd: {
          const opening = e.type === TraceType.TaskEnd ? TraceType.TaskBegin : TraceType.WaitBegin;
          // Its begin may have been overwritten (the ring keeps the last events): then skip it.
          let at = stack.length - 1;
          while (at >= 0 && stack[at]!.event.type !== opening) at--;
          if (at < 0) break;
          const open = stack.splice(at)[0]!.event;
          if (e.type === TraceType.TaskEnd) {
            span(tid, ring.names.get(open.a) || 'task', 'task', open.ts, e.ts, { future: hex(open.object), outcome: ['returned', 'raised', 'interrupted'][e.a] ?? 'ended' });
            poolChanges.push({ pool: open.b, ts: open.ts, delta: 1 }, { pool: open.b, ts: e.ts, delta: -1 });
          } else {
            const args: Record<string, unknown> = { object: objectName(open.kind, open.object), result: ['woken', 'timed out', 'ended by an error'][e.b] ?? '' };
            if (open.b !== 0) args.holder = nameOf(open.b);
            const drawn = span(tid, waitName(open.kind), 'wait', open.ts, e.ts, args);
            if (e.b === 0) waitEnds.push({ address: open.a, ts: e.ts, beganAt: open.ts, tid, drawn });
          }
          break;
        }
        case TraceType.AsyncWaitBegin: {
          const list = asyncOpen.get(e.a) ?? [];
          list.push(e);
          asyncOpen.set(e.a, list);
          break;
        }
        case TraceType.AsyncWaitEnd: {
          const open = asyncOpen.get(e.a)?.shift();
          if (open === undefined) break;
          const drawn = span(tid, 'await', 'async', open.ts, e.ts, { result: ['woken', 'timed out', 'ended by an error'][e.b] ?? '' });
          if (e.b === 0) waitEnds.push({ address: e.a, ts: e.ts, beganAt: open.ts, tid, drawn });
          break;
        }
        case TraceType.Counter:
          counters.push({ name: `queue at ${hex(e.object)} depth`, ts: e.ts, value: e.b });
          break;
        case TraceType.Wake: {
          const list = wakes.get(e.a) ?? [];
          list.push({ ts: e.ts, tid });
          wakes.set(e.a, list);
          break;
        }
        default:
          break;
      }
    }
    // Spans still open when the trace stopped end there.
    for (const { event } of stack) {
      if (event.type === TraceType.TaskBegin) span(tid, ring.names.get(event.a) || 'task', 'task', event.ts, end, { future: hex(event.object), outcome: 'running' });
      else span(tid, waitName(event.kind), 'wait', event.ts, end, { object: objectName(event.kind, event.object), result: 'still waiting' });
    }
    if (threadBegan !== undefined || threadEnded !== undefined) span(tid, nameOf(tid), 'thread', threadBegan ?? begin, threadEnded ?? end);
  }
  counters.sort((x, y) => x.ts - y.ts);
  for (const c of counters) events.push({ ph: 'C', name: c.name, pid: 1, ts: us(c.ts), args: { value: c.value } });
  addFlows(events, wakes, waitEnds, us);
  addPoolCounters(events, poolChanges, us);
  return { traceEvents: events, displayTimeUnit: 'ms', otherData: { producer: 'threadkit', threads: idents.length } };
}

/** Arrows: each wait woken links to the latest wake-up on its address before it ended (after it began). */
/** A wait that a wake-up ended: its address, its times (ms), its thread, its span as drawn (µs). */
interface WaitEnd {
  address: number;
  ts: number;
  beganAt: number;
  tid: number;
  drawn: [number, number];
}

function addFlows(events: ChromeEvent[], wakes: Map<number, { ts: number; tid: number }[]>, waitEnds: WaitEnd[], us: (ms: number) => number): void {
  for (const list of wakes.values()) list.sort((x, y) => x.ts - y.ts);
  let id = 0;
  for (const end of waitEnds) {
    const list = wakes.get(end.address);
    if (list === undefined) continue;
    let lo = 0;
    let hi = list.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.ts <= end.ts + CLOCK_SLACK_MS) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found < 0) continue;
    const waker = list[found]!;
    if (waker.ts < end.beganAt - CLOCK_SLACK_MS) continue;
    // The arrow ends just inside the wait's span, and never starts after that (the two
    // threads' clocks may differ by a hair: the wake-up is then drawn at the wait's end).
    const into = Math.max(end.drawn[0], end.drawn[1] - 0.001);
    const at = Math.min(us(waker.ts), into);
    id++;
    events.push({ ph: 'X', name: 'wake', cat: 'wake', pid: 1, tid: waker.tid, ts: at, dur: 1 });
    events.push({ ph: 's', id, name: 'hand-off', cat: 'handoff', pid: 1, tid: waker.tid, ts: at });
    events.push({ ph: 'f', bp: 'e', id, name: 'hand-off', cat: 'handoff', pid: 1, tid: end.tid, ts: into });
  }
}

function addPoolCounters(events: ChromeEvent[], changes: { pool: number; ts: number; delta: number }[], us: (ms: number) => number): void {
  changes.sort((x, y) => x.ts - y.ts);
  const busy = new Map<number, number>();
  for (const change of changes) {
    const value = Math.max(0, (busy.get(change.pool) ?? 0) + change.delta);
    busy.set(change.pool, value);
    events.push({ ph: 'C', name: `pool ${hex(change.pool)} busy threads`, pid: 1, ts: us(change.ts), args: { value } });
  }
}

function waitName(kind: number): string {
  return WAIT_KIND_NAMES[kind] ? `${WAIT_KIND_NAMES[kind]}` : 'wait';
}

function objectName(kind: number, object: number): string {
  if (object === 0) return '';
  return `${WAIT_KIND_NAMES[kind]?.split('.')[0] || 'object'} at ${hex(object)}`;
}

function hex(offset: number): string {
  return `0x${offset.toString(16)}`;
}


/**
 * `THREADKIT_TRACE=out node app.js`: the main thread starts a trace when threadkit loads, and
 * `out.json` and `out.html` are written when the process exits (or by the hang watchdog of
 * `dumpThreadsLater`, when it fires, for a program that never exits).
 */
export function traceFromEnvironment(): void {
  const out = process.env.THREADKIT_TRACE;
  if (!isMainThread || out === undefined || out === '') return;
  startTrace();
  process.on('exit', () => {
    writeTraceFromEnvironment();
  });
}

/** Stops the trace THREADKIT_TRACE started and writes its files (false when none is under way). */
export function writeTraceFromEnvironment(): boolean {
  const out = process.env.THREADKIT_TRACE;
  if (out === undefined || out === '' || !isTracing()) return false;
  let trace: Trace;
  try {
    trace = stopTrace();
  } catch {
    return false; // (stopped by another thread meanwhile)
  }
  trace.writeJSON(`${out}.json`);
  trace.writeHTML(`${out}.html`);
  process.stderr.write(`threadkit: trace of ${trace.events} events written to ${out}.json and ${out}.html\n`);
  return true;
}
