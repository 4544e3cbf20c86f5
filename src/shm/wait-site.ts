/**
 * The one wait site: every blocking call in threadkit sleeps through `park` (the Promise waits
 * through `parkAsync`). Before a thread sleeps, `park` writes into the thread's shared block
 * what it waits on (the kind of wait, the shared object, when it began) and clears it after,
 * so any thread can see who waits on what (thread dumps), and an observer can look at the
 * wait-for graph before the sleep (deadlock detection) or record the stack. The uncontended fast paths never come here.
 *
 * The wait record, in the calling thread's block (thread-block.ts reserves the slots):
 *
 * | slot     | field    | meaning                                                          |
 * |----------|----------|------------------------------------------------------------------|
 * | W_KIND   | kind     | WaitKind of the wait under way (0: none), TIMED bit when bounded |
 * | W_OBJECT | object   | offset of the shared object waited on (0: none)                  |
 * | W_ADDR   | address  | the Int32 index slept on (for a waker that must reach the sleeper)|
 * | W_ASYNC  | async    | Promise waits of this thread now pending                         |
 * | W_SEQ    | sequence | bumped by each recorded wait (names one wait for W_RAISE)        |
 * | W_RAISE  | raise    | the W_SEQ of a wait another thread wants ended with an error      |
 * | W_SINCE  | since    | Date.now() when the wait began (a float64 over two slots)        |
 *
 * Background watchers nobody waits in (an idle isolate waiting for its next thread, the watcher
 * that notices a started thread's end, done-callback watchers) use futex.ts directly.
 *
 * The record is written by its thread only and read by others without a lock: a reader may see
 * a wait that has just ended, never a wait that was not there.
 */

import { WAIT_SPIN_MICROS, type WaitResult, futexWait, futexWaitAsync, spinUntilChanged } from './futex.js';
import { heap } from './current.js';
import { dropReference } from './handles.js';
import { resumeInside, suspendInside } from './kill-guard.js';
import { TraceType, traceEvent, traceGen } from './trace-ring.js';
import { addInterruptibleWait, interruptPending, interruptedError, setInterruptBlock, takeInterrupt } from './interrupts.js';

export const enum WaitKind {
  None = 0,
  Lock = 1,
  RLock = 2,
  Condition = 3,
  Semaphore = 4,
  Event = 5,
  Barrier = 6,
  QueueGet = 7,
  QueuePut = 8,
  QueueJoin = 9,
  Future = 10,
  Join = 11,
  Sleep = 12,
  Wait = 13,
  Internal = 14,
  Work = 15,
}

/** The names dumps print, by WaitKind. */
export const WAIT_KIND_NAMES = ['', 'Lock', 'RLock', 'Condition', 'Semaphore', 'Event', 'Barrier', 'Queue.get', 'Queue.put', 'Queue.join', 'Future', 'join', 'sleep', 'wait', 'internal lock', 'work (an idle pool thread)'];

/** Set in W_KIND for a wait with a deadline (it cannot be part of a deadlock). */
export const TIMED = 0x100;
/** Set in W_KIND for a wait that must not end with an error (a Condition taking its lock back). */
export const NO_RAISE = 0x200;

// Slots of the wait record in a thread block (after the thread's own fields, before its name).
export const W_KIND = 11;
export const W_OBJECT = 12;
export const W_ADDR = 13;
export const W_ASYNC = 14;
export const W_SEQ = 15;
/** Float64 slot index (Int32 slot 16): thread blocks are 512-byte aligned, so it is 8-aligned. */
export const W_SINCE = 16;
export const WAIT_RECORD_END = 18;
/** After the STACK slot (thread-block.ts). */
export const W_RAISE = 19;

/** The calling thread's block (0 until the thread is known: then waits are not recorded). */
let myBlock = 0;

export function setWaitRecordBlock(block: number): void {
  myBlock = block;
  setInterruptBlock(block);
}

/** The names of waits, for an InterruptedError's message. */
const INTERRUPTED_WAIT_NAMES = ['a wait', 'Lock.acquire', 'RLock.acquire', 'Condition.wait', 'Semaphore.acquire', 'Event.wait', 'Barrier.wait', 'Queue.get', 'Queue.put', 'Queue.join', 'Future.result', 'Thread.join', 'sleep', 'wait', 'a wait', 'a wait'];

/**
 * Whether an interrupt ends a wait recorded as `word` (W_KIND): not threadkit's internal waits
 * (short, and inside bookkeeping that must finish), not an idle pool thread's wait for work, not
 * a Condition taking its lock back (NO_RAISE). Those see the interrupt at their next wait.
 */
export function isInterruptibleWait(word: number): boolean {
  const kind = word & 0xff;
  return (word & NO_RAISE) === 0 && kind !== WaitKind.None && kind !== WaitKind.Internal && kind !== WaitKind.Work;
}

/** Throws the InterruptedError of a wait of `kind` (the calling thread took the interrupt). */
function throwInterrupted(kind: WaitKind): never {
  throw interruptedError(INTERRUPTED_WAIT_NAMES[kind] ?? 'a wait');
}

export function waitRecordBlock(): number {
  return myBlock;
}

/**
 * Watches every recorded wait (thread/deadlock.ts registers it): `beforeSleep` runs once the
 * record is written, before the sleep, and may throw (a DeadlockError: the wait then ends with
 * that error, its record cleared); `afterWake` runs after the sleep, before the record clears.
 */
export interface ParkObserver {
  beforeSleep(kind: WaitKind, object: number, forever: boolean): void;
  afterWake(): void;
  /** Another thread asked this wait to end with an error (W_RAISE): throws it. */
  raiseAsked(kind: WaitKind, object: number): never;
}
let observer: ParkObserver | undefined;

export function setParkObserver(o: ParkObserver | undefined): void {
  observer = o;
}

/**
 * A clock this thread keeps for others while it waits (futures/task-stopper.ts: the timeouts and
 * kills of the pool tasks it owns): its waits end at `due()` to `run()` it, and after a wake-up
 * it may look whether anyone asked (`woken()`). Only waits an interrupt may end run it (never
 * threadkit's internal ones: the service takes internal locks itself).
 */
export interface ParkService {
  /** performance.now() ms of the next deadline, or Infinity. */
  due(): number;
  run(): void;
  woken(): void;
}
let service: ParkService | undefined;

export function setParkService(s: ParkService): void {
  service = s;
}

/** futexWait that wakes at the service's deadlines to run it, and sleeps on until the caller's. */
function sleepServing(i32: Int32Array, index: number, expected: number, deadline: number, spinMicros: number): WaitResult {
  const serving = service;
  // Killable while asleep in a user-level wait, even inside a kill-safe section (kill-guard.ts).
  const inside = suspendInside();
  try {
    if (serving === undefined) return futexWait(i32, index, expected, deadline, spinMicros);
    for (;;) {
      serving.woken(); // (asked before this sleep began: the deadline below includes it)
      const due = serving.due();
      const result = futexWait(i32, index, expected, due < deadline ? due : deadline, spinMicros);
      // The service's deadline, not the caller's: act, then sleep on (the word is compared
      // again, so a change meanwhile ends the sleep at once).
      if (result === 'timed-out' && due < deadline) {
        serving.run();
        continue;
      }
      serving.woken();
      return result;
    }
  } finally {
    resumeInside(inside);
  }
}

/**
 * When the blocking call under way began (0: none): a call that parks several times (woken
 * without its condition, or sleeping in slices) is one wait, and its sinceMs counts from here.
 */
let callSince = 0;
/** Whether a wait may end with an error from the observer (false while a Condition takes its lock back). */
let mayRaise = true;

/**
 * Marks the start of one blocking call that may park several times; returns what `endWait`
 * needs (a call inside another keeps the outer start). Sync waits only: Promise waits are not
 * recorded.
 */
export function beginWait(): number {
  const outer = callSince;
  if (outer === 0) callSince = Date.now();
  return outer;
}

export function endWait(outer: number): void {
  callSince = outer;
}

/**
 * Runs `body` with errors from the observer turned off (a wait that must not end with one:
 * a Condition taking its lock back, which its caller's `finally { release() }` relies on).
 */
export function withoutRaising<T>(body: () => T): T {
  const outer = mayRaise;
  mayRaise = false;
  try {
    return body();
  } finally {
    mayRaise = outer;
  }
}

export function waitMayRaise(): boolean {
  return mayRaise;
}

/** Clears the calling thread's wait record now (a wait about to end with an error). */
export function clearWaitRecord(): void {
  if (myBlock !== 0) clear();
}

function record(kind: WaitKind, object: number, index: number, forever: boolean): void {
  const h = heap();
  const base = myBlock >> 2;
  h.f64[(myBlock >> 3) + (W_SINCE >> 1)] = callSince === 0 ? Date.now() : callSince;
  h.i32[base + W_OBJECT] = object;
  h.i32[base + W_ADDR] = index;
  Atomics.store(h.i32, base + W_SEQ, ((h.i32[base + W_SEQ]! + 1) | 0) || 1); // never 0: W_RAISE's 'none'
  // The kind last: a reader that sees it sees the rest (a release store).
  Atomics.store(h.i32, base + W_KIND, (forever ? kind : kind | TIMED) | (mayRaise ? 0 : NO_RAISE));
}

function clear(): void {
  // Nobody sleeps on a wait record (readers poll it): no wake is owed.
  Atomics.store(heap().i32, (myBlock >> 2) + W_KIND, 0);
}

/**
 * Sleeps while `i32[index] === expected`, until woken or `deadline`, as `futexWait` does
 * (spurious 'ok' possible, 'timed-out' only once the deadline has passed), recording the wait
 * in the thread's block meanwhile. `forever`: the caller's own wait has no deadline (a wait in
 * slices passes a slice as `deadline`). The caller's protocol decides why no wake-up is lost
 * (it read `expected` after announcing itself); park adds nothing between its read and the
 * sleep that could miss a change: Atomics.wait compares the word itself.
 */
export function park(
  i32: Int32Array,
  index: number,
  expected: number,
  deadline: number,
  kind: WaitKind,
  object: number,
  forever = deadline === Infinity,
  spinMicros?: number,
): WaitResult {
  if (myBlock === 0) return futexWait(i32, index, expected, deadline, spinMicros);
  // A nested park (a wait inside a wait's bookkeeping) keeps the outer record.
  const outer = Atomics.load(heap().i32, (myBlock >> 2) + W_KIND) !== 0;
  if (outer) return futexWait(i32, index, expected, deadline, spinMicros);
  const interruptible = mayRaise && kind !== WaitKind.Internal && kind !== WaitKind.Work;
  // An interrupt that came while the thread was not waiting ends this wait at once.
  if (interruptible && takeInterrupt()) throwInterrupted(kind);
  // The spin first, unrecorded: a wake that comes within microseconds (a busy hand-off) costs
  // no bookkeeping; only a thread about to sleep records its wait. (Only reads: nothing is owed.)
  if (spinUntilChanged(i32, index, expected, Math.min(spinMicros ?? WAIT_SPIN_MICROS, (deadline - performance.now()) * 1000))) return 'not-equal';
  spinMicros = 0;
  record(kind, object, index, forever);
  const traced = traceGen() !== 0;
  // (A Lock's or RLock's word names its holder.)
  if (traced) traceEvent(TraceType.WaitBegin, kind, object, index, kind === WaitKind.Lock || kind === WaitKind.RLock ? expected >>> 1 : 0);
  let outcome = 2; // WaitEnd's result: 0 woken, 1 timed out, 2 an error
  try {
    // After the record (a seq-cst store), before the sleep: an interrupter that wrote its request
    // before we wrote the record is seen here; one that wrote it after sees our record and
    // notifies our address (interrupts.ts), until we take it.
    if (interruptible && interruptPending()) {
      if (takeInterrupt()) throwInterrupted(kind);
    }
    const watching = observer;
    if (watching === undefined) {
      const result = interruptible ? sleepServing(i32, index, expected, deadline, spinMicros) : futexWait(i32, index, expected, deadline, spinMicros);
      if (interruptible && interruptPending()) leaveInterrupted(i32, index, kind);
      outcome = result === 'timed-out' ? 1 : 0;
      return result;
    }
    try {
      watching.beforeSleep(kind, object, forever);
      const result = interruptible ? sleepServing(i32, index, expected, deadline, spinMicros) : futexWait(i32, index, expected, deadline, spinMicros);
      // Woken to end with an error? (The asker notifies our W_ADDR until we take its request.)
      const h = heap();
      const seq = Atomics.load(h.i32, (myBlock >> 2) + W_SEQ);
      if (Atomics.load(h.i32, (myBlock >> 2) + W_RAISE) === seq && Atomics.compareExchange(h.i32, (myBlock >> 2) + W_RAISE, seq, 0) === seq) {
        // The wake may have been a real one (an unlock wakes one sleeper): pass it on, since
        // this thread leaves without taking what it was woken for.
        Atomics.notify(i32, index, 1);
        watching.raiseAsked(kind, object);
      }
      if (interruptible && interruptPending()) leaveInterrupted(i32, index, kind);
      outcome = result === 'timed-out' ? 1 : 0;
      return result;
    } finally {
      watching.afterWake();
    }
  } finally {
    if (traced) traceEvent(TraceType.WaitEnd, kind, object, index, outcome);
    clear();
  }
}

/**
 * Woken with an interrupt pending: takes it and throws. The wake may have been a real one (an
 * unlock or a release wakes one sleeper): it is passed on, since this thread leaves without
 * taking what it was woken for.
 */
function leaveInterrupted(i32: Int32Array, index: number, kind: WaitKind): void {
  if (!takeInterrupt()) return;
  Atomics.notify(i32, index, 1);
  throwInterrupted(kind);
}

/**
 * The Promise twin of `park`: `futexWaitAsync`, counted in the thread's W_ASYNC while pending
 * (a Promise wait does not block its thread, so it is counted, not recorded as the wait).
 */
export async function parkAsync(
  i32: Int32Array,
  index: number,
  expected: number,
  deadline: number,
  signal?: AbortSignal,
  interruptible = true,
): Promise<WaitResult> {
  if (myBlock === 0) return futexWaitAsync(i32, index, expected, deadline, signal);
  if (interruptible && takeInterrupt()) throw interruptedError('this wait');
  // The thread may end before the wait settles (a Promise it left behind): the block must
  // not be freed (and reused) under the count, so the wait holds a reference on it.
  const block = myBlock;
  const slot = (block >> 2) + W_ASYNC;
  heap().retain(block);
  // A count dumps read; nobody sleeps on it.
  Atomics.add(heap().i32, slot, 1);
  const traced = traceGen() !== 0;
  if (traced) traceEvent(TraceType.AsyncWaitBegin, 0, 0, index);
  let outcome = 2;
  try {
    const waiting = futexWaitAsync(i32, index, expected, deadline, signal);
    const result = await (interruptible ? interruptibly(waiting, i32, index) : waiting);
    outcome = result === 'timed-out' ? 1 : 0;
    return result;
  } finally {
    if (traced) traceEvent(TraceType.AsyncWaitEnd, 0, 0, index, outcome);
    Atomics.sub(heap().i32, slot, 1);
    dropReference(block);
  }
}

/**
 * `waiting`, or InterruptedError when this thread is interrupted first (its watcher rejects
 * registered waits). The abandoned waiter is flushed by waking every waiter on the word, so it
 * cannot swallow a single-waiter notify meant for someone else (as an abort, futex.ts).
 */
function interruptibly(waiting: Promise<WaitResult>, i32: Int32Array, index: number): Promise<WaitResult> {
  return new Promise((resolve, reject) => {
    const remove = addInterruptibleWait((error) => {
      reject(error);
      Atomics.notify(i32, index);
    });
    waiting.then(
      (result) => {
        remove();
        resolve(result);
      },
      (error: unknown) => {
        remove();
        reject(error);
      },
    );
  });
}

// ---- one slow path for a wait and its Promise twin -------------------------------------------

/** `WaitLoop.prepare`'s answer when the wait is over. */
export const READY = 0x100000000;

/**
 * One wait, described once for its sync and async forms: the loop (register, prepare, sleep,
 * again) is `parkUntil` / `parkUntilAsync`'s, the wait's own rule is here.
 */
export interface WaitLoop {
  i32: Int32Array;
  /** Slot of the count of registered waiters (wakers notify only when it is non-zero), or -1. */
  waiters: number;
  /** The futex word slept on. */
  word: number;
  kind: WaitKind;
  object: number;
  /**
   * Reads the futex word, then re-checks the condition (in that order: a change after the read
   * makes the sleep return at once). Returns READY when the wait is over, else the value read.
   */
  prepare(): number;
}

/**
 * Registers, then prepares and sleeps until `loop` is READY (true) or `deadline` passes (false,
 * after a last prepare: READY then still counts).
 */
export function parkUntil(loop: WaitLoop, deadline: number): boolean {
  const { i32, waiters } = loop;
  const outer = beginWait();
  if (waiters >= 0) Atomics.add(i32, waiters, 1);
  try {
    for (;;) {
      const expected = loop.prepare();
      if (expected === READY) return true;
      if (park(i32, loop.word, expected, deadline, loop.kind, loop.object) === 'timed-out') return loop.prepare() === READY;
    }
  } finally {
    // Deregistering late costs at most one needless wake (the woken thread re-checks).
    if (waiters >= 0) Atomics.sub(i32, waiters, 1);
    endWait(outer);
  }
}

/** The Promise twin of `parkUntil` (an abort rejects with the signal's reason). */
export async function parkUntilAsync(loop: WaitLoop, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
  const { i32, waiters } = loop;
  if (waiters >= 0) Atomics.add(i32, waiters, 1);
  try {
    for (;;) {
      const expected = loop.prepare();
      if (expected === READY) return true;
      if ((await parkAsync(i32, loop.word, expected, deadline, signal)) === 'timed-out') return loop.prepare() === READY;
    }
  } finally {
    if (waiters >= 0) Atomics.sub(i32, waiters, 1);
  }
}
