/**
 * Stopping running pool tasks: `future.cancel({ interrupt, killAfter })` and `submitWith`'s
 * `timeout` / `killAfter`.
 *
 * An interrupt can be sent from any thread (shm/interrupts.ts). A deadline needs a clock that
 * runs while the task does not (a CPU loop never looks at one), and a kill needs the one isolate
 * that may terminate the task's worker: the isolate that started that pool thread (its owner).
 * So a deadline is written into the pool thread's block (KILL_AT, KILL_TASK, KILL_KIND) and its
 * owner is told (its notice word, and the address of the blocking wait it is in); the owner keeps
 * the clock: from its event loop (a timer), or while it waits in any blocking call that an
 * interrupt could end (its waits end at the next deadline: wait-site.ts ParkService). An owner
 * busy in code that never waits keeps it only when it next waits or yields.
 *
 * KILL_TASK is a future's offset while a deadline stands for that task, and its negative once
 * the owner has decided to terminate it; the owner terminates it only outside threadkit's
 * internal locked sections (shm/kill-guard.ts), so no internal lock is left held. The pool thread clears it at the task's end with a
 * compareExchange F → 0: if it finds -F instead, the kill won the race, and the thread waits
 * for it without settling anything (the owner's death handling settles the future).
 */

import { ThreadError, TimeoutError } from '../errors.js';
import { heap } from '../shm/current.js';
import { tryWrapperFor, dropReference } from '../shm/handles.js';
import { futexWaitAsync } from '../shm/futex.js';
import { notice, requestInterrupt } from '../shm/interrupts.js';
import { isInside } from '../shm/kill-guard.js';
import { isInterruptibleWait, setParkService, W_ADDR, W_KIND } from '../shm/wait-site.js';
import * as B from '../thread/thread-block.js';
import { liveThreadBlocks } from '../thread/registry.js';
import type { Thread } from '../thread/thread.js';
import { Future, RUNNING, STOP_INTERRUPT, STOP_TIMED_OUT, onStalledWait, setRunningTaskStopper } from './future.js';

/** KILL_KIND values. */
const TIMEOUT = 1;
const KILL = 2;

/** Epoch milliseconds: deadlines are compared across isolates (performance.now() is per isolate). */
function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

// ---- asking (any thread) ------------------------------------------------------------------

setRunningTaskStopper({
  stop(future, killAfter) {
    const runner = findRunner(future._offset);
    // Not taken yet by its pool thread (it sees STOP at its start); a future no pool runs
    // (RUNNER 0: an executor of the user's own) has nobody to interrupt.
    if (runner === 0) return future._state() === RUNNING && future._runner() !== 0;
    try {
      requestInterrupt(runner, future._offset, isInterruptibleWait);
      if (killAfter >= 0) scheduleDeadline(runner, future._offset, epochNow() + killAfter, KILL);
    } finally {
      dropReference(runner);
    }
    return true;
  },
});

/**
 * How often an owner's blocking wait looks for requests it may not have been woken for (ms): a
 * request is announced by a notify that can come just before the owner's sleep.
 */
const OWNER_POLL_MS = 50;

// The owner's blocking waits keep the clock too: they end at the next deadline to act on it.
setParkService({
  due: () => (owned.size === 0 ? Infinity : Math.min(nextDeadline - performance.timeOrigin, performance.now() + OWNER_POLL_MS)),
  run: () => serviceDeadlines(),
  woken: () => serviceIfNoticed(),
});

/** The block of the thread whose TASK is `future` (one reference added), or 0. */
function findRunner(future: number): number {
  const h = heap();
  let found = 0;
  for (const block of liveThreadBlocks()) {
    if (found === 0 && Atomics.load(h.i32, (block >> 2) + B.TASK) === future) found = block;
    else dropReference(block);
  }
  return found;
}

/**
 * Records a deadline for the task `future` running on the pool thread at `block`, and tells the
 * thread that started it (its owner keeps the clock).
 */
function scheduleDeadline(block: number, future: number, at: number, kind: number): void {
  const h = heap();
  const base = block >> 2;
  h.f64[(block >> 3) + B.KILL_AT_F64] = at;
  h.i32[base + B.KILL_KIND] = kind;
  // KILL_TASK last (a seq-cst store): the owner that sees it sees the deadline.
  Atomics.store(h.i32, base + B.KILL_TASK, future);
  tellOwner(block);
}

/** Wakes the owner's notice watcher, and its blocking wait if it is in one (it looks then too). */
function tellOwner(poolThread: number): void {
  const h = heap();
  // Ourselves (our isolate started it): look now (this also sets the clock our waits end at).
  const word = Atomics.load(h.i32, (poolThread >> 2) + B.OWNER_WORD);
  if (word === 0) return; // (not a pool thread of ours: set before a pool thread starts)
  if (word === serviceWord) return serviceDeadlines();
  // The owner isolate's watcher (its event loop), whichever of its threads runs now. It sleeps
  // only while the word holds what it read: the bump before the notify either is seen by its
  // check or ends its sleep, so the request is never missed.
  Atomics.add(h.i32, word >> 2, 1);
  Atomics.notify(h.i32, word >> 2);
  const ident = Atomics.load(h.i32, (poolThread >> 2) + B.PARENT);
  for (const block of liveThreadBlocks()) {
    if (Atomics.load(h.i32, (block >> 2) + B.IDENT) === ident) {
      notice(block);
      // A blocking wait for a future looks at its notices when woken (serviceIfNoticed); a
      // wake is harmless to any other wait (they re-check and sleep again).
      if (Atomics.load(h.i32, (block >> 2) + W_KIND) !== 0) Atomics.notify(h.i32, Atomics.load(h.i32, (block >> 2) + W_ADDR));
    }
    dropReference(block);
  }
}

// ---- the pool thread's side -----------------------------------------------------------------

/**
 * A pool thread starts the task of `future` (its TASK slot holds it, its old requests are
 * cleared): a cancel({ interrupt }) that came before reaches it now, and its timeout starts.
 */
export function taskStarting(block: number, future: Future): void {
  const flags = future._stopFlags();
  const { timeout, killAfter } = future._limits();
  if ((flags & STOP_INTERRUPT) !== 0) {
    requestInterrupt(block, future._offset, isInterruptibleWait);
    if (killAfter >= 0) scheduleDeadline(block, future._offset, epochNow() + killAfter, KILL);
  } else if (timeout > 0) {
    scheduleDeadline(block, future._offset, epochNow() + timeout, TIMEOUT);
  }
}

/**
 * The task of `future` has ended: its deadline is withdrawn. False when its owner has already
 * decided to terminate this isolate (the caller must then settle nothing and wait to be killed).
 */
export function taskEnding(block: number, future: number): boolean {
  const i32 = heap().i32;
  const slot = (block >> 2) + B.KILL_TASK;
  const standing = Atomics.load(i32, slot);
  if (standing === 0) return true;
  if (standing === -future) return false;
  return Atomics.compareExchange(i32, slot, standing, 0) !== -future;
}

// ---- the owner's side: the clock and the kill -------------------------------------------------

/** Pool threads this isolate started (only their owner can terminate their isolates), with what replaces one that was killed. */
const owned = new Map<Thread, () => void>();
/** Kills decided while the thread was inside an internal section (by thread: its task). */
const killing = new Map<Thread, number>();
/** How soon a kill deferred by an internal section is tried again (ms). */
const KILL_RETRY_MS = 1;
let timer: ReturnType<typeof setTimeout> | undefined;
let timerAt = Infinity;
let lastNotices = -1;

export function ownPoolThread(thread: Thread, afterKill: () => void): void {
  owned.set(thread, afterKill);
  // Requesters find this isolate by its service word (the starting thread may end before).
  // Before the thread starts: any deadline its tasks ask for finds it (a polled slot, no wake owed).
  Atomics.store(heap().i32, (thread._offset >> 2) + B.OWNER_WORD, ensureServiceWord());
}

/** This isolate's service word (a heap block of its own, for its life), watched from its event loop. */
let serviceWord = 0;

function ensureServiceWord(): number {
  if (serviceWord !== 0) return serviceWord;
  serviceWord = heap().alloc(8, 8); // Kind.Bytes; kept for the isolate's life
  void watchServiceWord(serviceWord);
  return serviceWord;
}

async function watchServiceWord(word: number): Promise<void> {
  const i32 = heap().i32;
  for (;;) {
    const seen = Atomics.load(i32, word >> 2);
    serviceDeadlines();
    // Never holds the event loop: the pool's work does, while it has tasks.
    await futexWaitAsync(i32, word >> 2, seen, Infinity, undefined, false);
  }
}

export function disownPoolThread(thread: Thread): void {
  owned.delete(thread);
  killing.delete(thread);
}

onStalledWait(() => serviceDeadlines());

/** When the next deadline of a task this isolate owns falls (epoch ms), Infinity for none. */
let nextDeadline = Infinity;

/**
 * For a blocking wait of the owner: after a wake, looks at the deadlines if anybody asked since
 * the last look (a cheap read otherwise).
 */
export function serviceIfNoticed(): void {
  if (owned.size === 0 || serviceWord === 0) return;
  const notices = Atomics.load(heap().i32, serviceWord >> 2);
  if (notices !== lastNotices || epochNow() >= nextDeadline) {
    lastNotices = notices;
    serviceDeadlines();
  }
}

/** Acts on every deadline that has passed; arms a timer for the next one. */
export function serviceDeadlines(): void {
  if (owned.size === 0) return;
  const h = heap();
  let next = Infinity;
  const now = epochNow();
  // Decided kills of threads that were inside an internal section: again, once they are out.
  for (const [thread, task] of killing) {
    if (!tryKill(thread, task)) next = Math.min(next, now + KILL_RETRY_MS);
  }
  for (const thread of owned.keys()) {
    const block = thread._offset;
    const base = block >> 2;
    const task = Atomics.load(h.i32, base + B.KILL_TASK);
    if (task <= 0) continue;
    const at = h.f64[(block >> 3) + B.KILL_AT_F64]!;
    if (now < at) {
      next = Math.min(next, at);
      continue;
    }
    if (Atomics.load(h.i32, base + B.TASK) !== task) {
      Atomics.compareExchange(h.i32, base + B.KILL_TASK, task, 0); // it ended meanwhile
      continue;
    }
    if (h.i32[base + B.KILL_KIND] === TIMEOUT) {
      const again = timeOut(block, task);
      if (again !== undefined) next = Math.min(next, again);
    } else if (Atomics.compareExchange(h.i32, base + B.KILL_TASK, task, -task) === task) {
      // Decided (a seq-cst exchange, then the read of INSIDE: kill-guard.ts).
      if (!tryKill(thread, task)) next = Math.min(next, now + KILL_RETRY_MS);
    }
  }
  nextDeadline = next;
  armTimer(next);
}

/**
 * Terminates the pool thread's isolate under the task `task`. The pool thread will not settle
 * it (it found -task in KILL_TASK, or never ends it), so the future ends cancelled here, at
 * once, if a cancel asked for it (a timed-out one is settled already); the pool's death
 * handling replaces the thread and releases what it held for the task.
 */
function tryKill(thread: Thread, task: number): boolean {
  if (isInside(thread._offset)) {
    killing.set(thread, task); // it waits for us when it leaves; we look again shortly
    return false;
  }
  killing.delete(thread);
  thread._expectDeath();
  void thread._terminateIsolate().catch(() => {});
  const future = tryWrapperFor(task);
  if (future instanceof Future && (future._stopFlags() & STOP_INTERRUPT) !== 0) future._cancelRunning();
  // Ended now for its pool (it runs nothing of ours again: it is in user code, or waits to be
  // terminated), so the pool replaces it at once, even while this thread is blocked.
  thread._markDead(new ThreadError(`the pool thread ${thread.name} was terminated: its task ran past killAfter`));
  owned.get(thread)?.();
  return true;
}

/**
 * The task's timeout passed: its future fails with TimeoutError now, the task is interrupted,
 * and its kill is scheduled if the future asks for one. Returns the kill's deadline, if any.
 */
function timeOut(block: number, task: number): number | undefined {
  // (A wrapper of our own: it holds its reference until collected.)
  const future = tryWrapperFor(task);
  if (!(future instanceof Future)) return undefined;
  {
    const { timeout, killAfter } = future._limits();
    future._markStopped(STOP_TIMED_OUT);
    try {
      future.setException(new TimeoutError(`the task ran longer than its timeout (${timeout} ms) and was interrupted`));
    } catch {
      // it finished meanwhile
    }
    requestInterrupt(block, task, isInterruptibleWait);
    if (killAfter < 0) {
      // Withdrawn only if still ours (the pool thread may have cleared it at the task's end); polled, no wake owed.
      Atomics.compareExchange(heap().i32, (block >> 2) + B.KILL_TASK, task, 0);
      return undefined;
    }
    const at = epochNow() + killAfter;
    const h = heap();
    h.f64[(block >> 3) + B.KILL_AT_F64] = at;
    // Read only by this isolate's next look at its deadlines (armed below): no wake owed.
    Atomics.store(h.i32, (block >> 2) + B.KILL_KIND, KILL);
    return at;
  }
}

function armTimer(at: number): void {
  if (at === timerAt) return;
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  timerAt = at;
  if (at === Infinity) return;
  // Unref'd: the task's pool holds the process while it runs.
  timer = setTimeout(() => {
    timer = undefined;
    timerAt = Infinity;
    serviceDeadlines();
  }, Math.max(0, at - epochNow()));
  timer.unref();
}
