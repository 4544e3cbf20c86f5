/**
 * The flight recorder behind `startTrace()` (trace/trace.ts): while tracing is on, each thread
 * writes fixed-size events into a ring of its own in the shared heap (no message passing, no
 * lock on the path); the last `maxEvents` of each thread survive. `stopTrace()` reads every ring.
 *
 * Off, the cost is one load of the root slot S_TRACE where an event would be recorded (slow
 * paths: a sleep, a wake-up, a task's start and end; a queue's put and get).
 *
 * A ring block: a header of RING_HEADER Int32 slots, a names area (NAMES_BYTES: strings the
 * events refer to by their offset in it, the thread's name first), then `capacity` records of
 * RECORD_SLOTS Int32 slots: [time (float64, 2 slots), type | kind << 8, object, a, b, c, seq].
 * `seq` is written last: a reader keeps a record only if its seq is the one it expects there.
 *
 * Rings are linked from S_TRACE_RINGS (under S_TRACE_LOCK). A ring is freed by stopTrace once
 * its thread has ended (ENDED), or by its own thread when it sees that the trace it wrote for is
 * over: no thread ever writes into a freed ring.
 */

import { currentIdent, heap } from './current.js';
import { S_TRACE, S_TRACE_LOCK, S_TRACE_MAX, S_TRACE_RINGS } from './heap.js';
import { enterInternal, leaveInternal } from './kill-guard.js';

export const enum TraceType {
  ThreadBegin = 1,
  ThreadEnd = 2,
  TaskBegin = 3,
  TaskEnd = 4,
  WaitBegin = 5,
  WaitEnd = 6,
  Wake = 7,
  Counter = 8,
  AsyncWaitBegin = 9,
  AsyncWaitEnd = 10,
}

/** Counter events' `a`: what is counted (`b`: its value; `object`: whose). */
export const COUNTER_QUEUE_DEPTH = 1;

/** Ring header slots. */
export const R_NEXT = 0;
export const R_IDENT = 1;
export const R_GEN = 2;
export const R_CAPACITY = 3;
export const R_WRITTEN = 4;
export const R_ENDED = 5;
export const R_NAMES_USED = 6;
/** The id of the thread's name in the names area (0: the first name stored). */
export const R_NAME_ID = 7;
export const RING_HEADER = 8;
export const NAMES_BYTES = 4096;
export const RECORD_SLOTS = 8;
/** Where the records start (Int32 index from the ring's offset >> 2). */
export const RECORDS_AT = RING_HEADER + NAMES_BYTES / 4;

/**
 * The shared clock: milliseconds of process.hrtime (the same in every isolate, unlike
 * performance.now()). Its offset from this isolate's performance.now() is read between two
 * performance.now() calls, the tightest pair of a few: a thread descheduled between the reads
 * (a loaded machine) would otherwise put this isolate's clock off by that long.
 */
const clockOffset = ((): number => {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 5 && best > 0.005; i++) {
    const before = performance.now();
    const shared = Number(process.hrtime.bigint()) / 1e6;
    const after = performance.now();
    if (after - before < best) {
      best = after - before;
      offset = shared - (before + after) / 2;
    }
  }
  return offset;
})();

export function traceClock(): number {
  return performance.now() + clockOffset;
}

/** This thread's ring (0: none), the trace generation and thread it is for, and the names it holds. */
let ring = 0;
let ringGen = 0;
let ringIdent = 0;
const names = new Map<string, number>();
let threadName = '';

/** The generation of the trace under way (0: off). One plain load: the check on every path. */
export function traceGen(): number {
  return heap().i32[S_TRACE]!;
}

/** The calling thread's name, for the ring it makes next (thread.ts sets it when a thread begins). */
export function setTraceThreadName(name: string): void {
  threadName = name;
}

/**
 * Records one event (tracing on). `object`, `a`, `b`, `c` depend on the type (trace/trace.ts
 * reads them).
 */
export function traceEvent(type: TraceType, kind: number, object: number, a = 0, b = 0, c = 0): void {
  const gen = traceGen();
  if (gen === 0) return;
  enterInternal(); // (a kill never lands in the middle of a record)
  try {
    // (A reused isolate runs another thread: each thread writes a ring of its own.)
    if (ringGen !== gen || ringIdent !== currentIdent()) newRing(gen);
    if (ring === 0) return;
    const h = heap();
    const i32 = h.i32;
    const base = ring >> 2;
    const capacity = i32[base + R_CAPACITY]!;
    const n = i32[base + R_WRITTEN]!;
    const at = base + RECORDS_AT + (n % capacity) * RECORD_SLOTS;
    i32[at + 7] = -1; // being written
    h.f64[at >> 1] = traceClock();
    i32[at + 2] = type | (kind << 8);
    i32[at + 3] = object;
    i32[at + 4] = a;
    i32[at + 5] = b;
    i32[at + 6] = c;
    // Last (a release store): a reader that sees this seq sees the record.
    Atomics.store(i32, at + 7, n);
    // Rings are read by stopTrace, which polls them: nobody sleeps on a ring, no wake owed.
    Atomics.store(i32, base + R_WRITTEN, n + 1);
  } finally {
    leaveInternal();
  }
}

/** The offset of `name` in this thread's names area (interned), or -1 when it is full. */
export function traceName(name: string): number {
  if (ring === 0 || ringGen !== traceGen() || ringIdent !== currentIdent()) return -1;
  const known = names.get(name);
  if (known !== undefined) return known;
  const id = storeName(name);
  names.set(name, id);
  return id;
}

function storeName(name: string): number {
  const h = heap();
  const base = ring >> 2;
  const used = h.i32[base + R_NAMES_USED]!;
  const bytes = Buffer.from(name.slice(0, 200), 'utf8');
  if (used + 2 + bytes.length > NAMES_BYTES) return -1;
  const at = ring + RING_HEADER * 4 + used;
  h.buf.writeUInt16LE(bytes.length, at);
  bytes.copy(h.buf, at + 2);
  Atomics.store(h.i32, base + R_NAMES_USED, used + 2 + bytes.length);
  return used;
}

/** Reads the name at `id` in the ring at `ringOffset` ('' when unknown). */
export function readTraceName(ringOffset: number, id: number): string {
  if (id < 0) return '';
  const h = heap();
  const used = h.i32[(ringOffset >> 2) + R_NAMES_USED]!;
  if (id + 2 > used) return '';
  const at = ringOffset + RING_HEADER * 4 + id;
  const length = h.buf.readUInt16LE(at);
  return h.buf.toString('utf8', at + 2, at + 2 + length);
}

/** A new ring for generation `gen` (the old one, of an ended trace, is freed: only we write it). */
function newRing(gen: number): void {
  const h = heap();
  if (ring !== 0) {
    // Of an ended trace: nobody reads it any more. Of an ended thread: stopTrace frees it.
    if (ringGen !== gen) dropRing(ring);
    else Atomics.store(h.i32, (ring >> 2) + R_ENDED, 1);
  }
  ring = 0;
  ringGen = gen;
  ringIdent = currentIdent();
  names.clear();
  const capacity = Math.max(16, h.i32[S_TRACE_MAX]!);
  const block = h.alloc((RECORDS_AT + capacity * RECORD_SLOTS) * 4, 8);
  const base = block >> 2;
  h.i32.fill(0, base, base + RECORDS_AT);
  h.i32[base + R_IDENT] = currentIdent();
  h.i32[base + R_GEN] = gen;
  h.i32[base + R_CAPACITY] = capacity;
  ring = block;
  storeName(threadName || `thread ${currentIdent()}`); // id 0: the thread's name
  withTraceLock(() => {
    h.i32[base + R_NEXT] = h.i32[S_TRACE_RINGS]!;
    // Under the trace lock (its release orders it); the list is only walked, never slept on.
    Atomics.store(h.i32, S_TRACE_RINGS, block);
  });
}

/** Unlinks and frees a ring (its thread no longer writes it). */
function dropRing(block: number): void {
  const h = heap();
  withTraceLock(() => unlinkRing(block));
  h.free(block);
}

/** Under S_TRACE_LOCK: takes `block` off the list (no-op when stopTrace took it already). */
export function unlinkRing(block: number): void {
  const i32 = heap().i32;
  let slot = S_TRACE_RINGS;
  for (let at = i32[slot]!; at !== 0; at = i32[(at >> 2) + R_NEXT]!) {
    if (at === block) {
      i32[slot] = i32[(at >> 2) + R_NEXT]!;
      return;
    }
    slot = (at >> 2) + R_NEXT;
  }
}

export function withTraceLock<T>(body: () => T): T {
  const i32 = heap().i32;
  // A spin lock (held for a few list steps, by threads that are tracing).
  enterInternal();
  while (Atomics.compareExchange(i32, S_TRACE_LOCK, 0, 1) !== 0) Atomics.wait(i32, S_TRACE_LOCK, 1, 1);
  try {
    return body();
  } finally {
    // Waiters sleep at most 1 ms between tries (nobody is owed a wake); notify anyway to be prompt.
    Atomics.store(i32, S_TRACE_LOCK, 0);
    Atomics.notify(i32, S_TRACE_LOCK, 1);
    leaveInternal();
  }
}

/**
 * The thread begins (its name known by now): a ThreadBegin naming it (events it recorded
 * before, while it was being set up, may have made its ring under a placeholder name).
 */
export function traceThreadBegin(block: number, parent: number, name: string): void {
  threadName = name;
  traceEvent(TraceType.ThreadBegin, 0, block, parent, 0);
  const id = traceName(name);
  // (Read by the exporter when it names tracks; nobody waits on it.)
  if (ring !== 0) Atomics.store(heap().i32, (ring >> 2) + R_NAME_ID, id);
}

/**
 * The thread ends: its ring stays for stopTrace to read (ENDED tells it may free it), or is
 * freed now if its trace is over.
 */
export function traceThreadEnded(): void {
  if (ring === 0) return;
  const h = heap();
  if (ringGen !== traceGen()) dropRing(ring);
  else Atomics.store(h.i32, (ring >> 2) + R_ENDED, 1);
  ring = 0;
  ringGen = 0;
  ringIdent = 0;
  names.clear();
}

/**
 * Wakes up to `count` sleepers on `i32[index]`, and records the wake-up while tracing (the flow
 * arrows of a trace). Recorded even when it woke nobody: callers notify only when a waiter
 * announced itself, and one between its announcement and its sleep returns at once without
 * being woken (the word changed), so it was this wake-up that ended its wait.
 */
export function wake(i32: Int32Array, index: number, count = Infinity, kind = 0, object = 0): number {
  const woken = Atomics.notify(i32, index, count);
  if (heap().i32[S_TRACE] !== 0) traceEvent(TraceType.Wake, kind, object, index, woken);
  return woken;
}
