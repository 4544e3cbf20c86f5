/**
 * Interrupts (Java's `Thread.interrupt`): a request, kept in the thread's block, that the wait
 * the thread is blocked in, or its next one, end with InterruptedError. The wait site (park,
 * parkAsync) takes the request; this file holds the request word, the waker and the thread's
 * Promise-side watcher.
 *
 * | slot        | field     | meaning                                                          |
 * |-------------|-----------|------------------------------------------------------------------|
 * | W_INTERRUPT | request   | 0: none; WHOLE_THREAD (-1): the thread; a future's offset: only  |
 * |             |           | while the pool task of that future runs (TASK slot holds it)     |
 * | W_NOTICE    | notices   | bumped by every request; the thread's Promise-side watcher       |
 * |             |           | sleeps on it (aborts its signal, rejects its Promise waits)      |
 *
 * Why no interrupt is lost. A sync wait writes its record (W_KIND, a seq-cst store), then reads
 * W_INTERRUPT, then sleeps; an interrupter writes W_INTERRUPT (seq-cst), then reads W_KIND. One
 * of them sees the other: either the sleeper sees the request before it sleeps, or the
 * interrupter sees the wait and notifies its address. That notify can still come just before
 * the sleeper's Atomics.wait (which compares the primitive's word, not ours), so the
 * interrupter notifies again until the sleeper takes the request or its wait ends.
 * A Promise wait registers here before it sleeps; the watcher rejects what is registered.
 */

import { isMainThread } from 'node:worker_threads';
import { InterruptedError } from '../errors.js';
import { heap } from './current.js';
import { futexWaitAsync } from './futex.js';

export const W_INTERRUPT = 20;
export const W_NOTICE = 21;
/** W_INTERRUPT for an interrupt of the thread itself (not of one pool task). */
export const WHOLE_THREAD = -1;
/** The thread block's TASK slot (thread-block.ts): a pool thread's running future, or 0. */
const TASK_SLOT = 10;

/** The calling thread's block (wait-site.ts keeps it in step with the wait record's). */
let myBlock = 0;

export function setInterruptBlock(block: number): void {
  if (block === myBlock) return;
  const old = myBlock;
  myBlock = block;
  controller = undefined;
  wasInterrupted = false;
  lastTaken = 0;
  // Promise waits an ended thread left pending are not the next thread's to end.
  pendingWaits.clear();
  // A watcher of the old block would sleep on it for ever: wake it so it leaves. (A notice
  // nobody else reads; the old block is still this thread's until the caller lets it go.)
  if (watchedBlock === old && old !== 0) {
    watchedBlock = 0;
    Atomics.add(heap().i32, (old >> 2) + W_NOTICE, 1);
    Atomics.notify(heap().i32, (old >> 2) + W_NOTICE);
  }
}

/** Whether the request in `block` is for the thread, or for the task it runs now. */
function pendingIn(i32: Int32Array, base: number): boolean {
  const request = Atomics.load(i32, base + W_INTERRUPT);
  return request !== 0 && (request === WHOLE_THREAD || request === Atomics.load(i32, base + TASK_SLOT));
}

/** True when the calling thread has an interrupt it has not taken (the flag stays set). */
export function interruptPending(): boolean {
  return myBlock !== 0 && pendingIn(heap().i32, myBlock >> 2);
}

/**
 * Takes the calling thread's interrupt: true (and the flag cleared) when there was one. Its
 * signal is aborted too (an interrupt aborts it whoever notices first).
 */
export function takeInterrupt(): boolean {
  if (myBlock === 0) return false;
  const i32 = heap().i32;
  const slot = (myBlock >> 2) + W_INTERRUPT;
  for (;;) {
    if (!pendingIn(i32, myBlock >> 2)) return false;
    const request = Atomics.load(i32, slot);
    // (A compareExchange: a new request that lands meanwhile is taken by the next check.)
    if (Atomics.compareExchange(i32, slot, request, 0) === request) {
      lastTaken = request;
      // The interrupter may sleep on the request until it is taken (wakeSleeper).
      Atomics.notify(i32, slot);
      break;
    }
  }
  wasInterrupted = true;
  abortSignal();
  return true;
}

/** The request takeInterrupt() took last (to put it back: reassertInterrupt). */
let lastTaken = 0;

/**
 * Puts back the interrupt the calling thread took last, for a wait that took it but ends
 * normally all the same (a Barrier that tripped meanwhile: Java sets the flag again too).
 */
export function reassertInterrupt(): void {
  if (myBlock === 0 || lastTaken === 0) return;
  Atomics.compareExchange(heap().i32, (myBlock >> 2) + W_INTERRUPT, 0, lastTaken);
}

/** Clears a request left for a pool task that has ended (the next task starts clean). */
export function clearInterrupt(): void {
  if (myBlock !== 0) Atomics.store(heap().i32, (myBlock >> 2) + W_INTERRUPT, 0);
}

export function interruptedError(what: string): InterruptedError {
  return new InterruptedError(`${what} was interrupted (thread.interrupt(), or the task was cancelled or timed out)`);
}

/** The word `sleep()` sleeps on: the thread's own request word, which an interrupt changes. */
export function sleepWord(): [Int32Array, number] | undefined {
  return myBlock === 0 ? undefined : [heap().i32, (myBlock >> 2) + W_INTERRUPT];
}

// ---- asking ----------------------------------------------------------------------------------

/** The interrupter's wake-up loop: never more than this between two notifies (ms). */
const RENOTIFY_MS = 1;

/**
 * Interrupts the thread whose block is `block`: the whole thread (WHOLE_THREAD), or only the
 * pool task of the future at `task` (ignored once that task has ended). Wakes a sync wait
 * it is blocked in and its Promise-side watcher. Returns once the sleeper took it (or has no wait
 * to wake).
 */
export function requestInterrupt(block: number, task: number, kindOf: (word: number) => boolean): void {
  const i32 = heap().i32;
  const base = block >> 2;
  for (;;) {
    const request = Atomics.load(i32, base + W_INTERRUPT);
    if (request === WHOLE_THREAD || request === task) break;
    if (Atomics.compareExchange(i32, base + W_INTERRUPT, request, task) === request) break;
  }
  notice(block);
  if (block === myBlock) {
    // Ourselves: not asleep. The next wait takes it; the signal aborts now.
    abortSignal();
    return;
  }
  wakeSleeper(i32, base, kindOf);
}

/** Wakes the thread's Promise-side watcher (it looks at requests and anything a hook reads). */
export function notice(block: number): void {
  Atomics.add(heap().i32, (block >> 2) + W_NOTICE, 1);
  Atomics.notify(heap().i32, (block >> 2) + W_NOTICE);
}

// The record's slots (wait-site.ts owns them; repeated here to keep the import one way).
const W_KIND = 11;
const W_ADDR = 13;
const W_SEQ = 15;

/**
 * Notifies the address of the sync wait the thread sleeps in until it takes the request, its
 * wait ends, or it waits where an interrupt does not reach (`kindOf` false: internal waits,
 * a Condition taking its lock back); those see the request at their next wait.
 */
function wakeSleeper(i32: Int32Array, base: number, kindOf: (word: number) => boolean): void {
  for (let round = 0; ; round++) {
    const word = Atomics.load(i32, base + W_KIND);
    if (word === 0 || !kindOf(word)) return;
    const request = Atomics.load(i32, base + W_INTERRUPT);
    if (!pendingIn(i32, base)) return;
    const seq = Atomics.load(i32, base + W_SEQ);
    // Every sleeper on that word wakes (we cannot pick ours); the others re-check and sleep on.
    Atomics.notify(i32, Atomics.load(i32, base + W_ADDR));
    // The sleeper takes it within microseconds once it was asleep; only a wake that came just
    // before its sleep needs another (rarely: between its check and its Atomics.wait).
    if (round === 0) {
      const until = performance.now() + 0.02;
      do {
        if (!pendingIn(i32, base) || Atomics.load(i32, base + W_SEQ) !== seq || Atomics.load(i32, base + W_KIND) === 0) return;
      } while (performance.now() < until);
    }
    // Then sleep on the request itself: the taker notifies it (takeInterrupt), so this returns as
    // soon as it is taken; the timeout bounds a wake that came before the sleeper's sleep.
    Atomics.wait(i32, base + W_INTERRUPT, request, RENOTIFY_MS);
  }
}

// ---- the Promise side: the thread's signal and its pending Promise waits -----------------------

let controller: AbortController | undefined;
const pendingWaits = new Set<(error: InterruptedError) => void>();
let watchedBlock = 0;

/** Hooks that run in this thread when its notices change (a pool owner's kill service). */
const noticeHooks: (() => void)[] = [];

export function onNotice(hook: () => void): void {
  noticeHooks.push(hook);
}

/** `currentThread().signal`: aborted when the thread (or its running task) is interrupted. */
export function threadSignal(): AbortSignal {
  controller ??= new AbortController();
  watchNotices();
  // (An interrupt a wait already took, before the signal was first read, counts too.)
  if (wasInterrupted || interruptPending()) abortSignal();
  return controller.signal;
}

/** Whether this thread (or its task) was interrupted since it began: its signal's state. */
let wasInterrupted = false;

/** A pool thread's next task gets a fresh signal. */
export function resetThreadSignal(): void {
  controller = undefined;
  wasInterrupted = false;
}

function abortSignal(): void {
  wasInterrupted = true;
  if (controller !== undefined && !controller.signal.aborted) controller.abort(interruptedError('the thread'));
}

/**
 * Registers a pending Promise wait: an interrupt of this thread calls `reject`. Returns the
 * function that removes it (call it when the wait settles).
 */
export function addInterruptibleWait(reject: (error: InterruptedError) => void): () => void {
  // Added before the watcher is armed: its first look (at once, when it starts) must see it.
  pendingWaits.add(reject);
  watchNotices();
  return () => pendingWaits.delete(reject);
}

/** Arms this thread's watcher of W_NOTICE (once per thread; it never holds the event loop). */
export function watchNotices(): void {
  if (myBlock === 0 || watchedBlock === myBlock) return;
  watchedBlock = myBlock;
  void watch(myBlock);
}

async function watch(block: number): Promise<void> {
  const i32 = heap().i32;
  const slot = (block >> 2) + W_NOTICE;
  // Read before a check: a notice after this read makes the wait return at once.
  let seen = Atomics.load(i32, slot);
  onNotices();
  while (watchedBlock === block) {
    // In a thread, it holds the isolate's event loop: a task awaiting only its signal must not
    // see its isolate exit under it. (The main thread's liveness is thread.ts's business.)
    await futexWaitAsync(i32, slot, seen, Infinity, undefined, !isMainThread);
    if (watchedBlock !== block) return;
    seen = Atomics.load(i32, slot);
    onNotices();
  }
}

function onNotices(): void {
  if (interruptPending()) {
    abortSignal();
    if (pendingWaits.size > 0 && takeInterrupt()) {
      const waits = [...pendingWaits];
      pendingWaits.clear();
      for (const reject of waits) reject(interruptedError('this wait'));
    }
  }
  for (const hook of noticeHooks) hook();
}
