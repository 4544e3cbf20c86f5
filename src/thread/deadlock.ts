/**
 * Deadlock detection (`configureThreads({ deadlockDetection })`): the park observer. When a
 * thread is about to sleep in a wait with no deadline, it follows the wait-for graph from what
 * it waits on (thread/wait-graph.ts); if that leads back to itself, its wait would never end:
 * with 'raise' the wait throws DeadlockError instead of sleeping, with 'warn' the cycle is
 * printed to stderr once and the thread sleeps. The thread that closes a cycle is always the
 * one that detects it: every other thread in it was already asleep, its record written.
 *
 * A queued task is waited on through its pool: if the pool cannot start another thread, the
 * wait is stuck only when every one of the pool's threads is (CPython's documented pool
 * deadlocks: a task waiting for a task queued behind it).
 *
 * Off (the default), a park pays one load of the mode word. The observer also records the
 * thread's stack at each wait while stacks are asked for (thread/dump.ts).
 */

import { writeSync } from 'node:fs';
import { DeadlockError } from '../errors.js';
import { heap } from '../shm/current.js';
import type { Heap } from '../shm/heap.js';
import { S_DEADLOCK_MODE, S_DETECTING, S_LAST_WARNED } from '../shm/heap.js';
import { internalLock, internalUnlock } from '../shm/mutex.js';
import { NO_RAISE, TIMED, WaitKind, W_ADDR, W_KIND, W_RAISE, W_SEQ, clearWaitRecord, setParkObserver, waitMayRaise, waitRecordBlock } from '../shm/wait-site.js';
import { forgetStack, recordStack, snapshotOf, threadLine, waitLine, waitStacksWanted } from './dump.js';
import { type Holders, holdersOf, locksHeld, readWait, withLiveThreads } from './wait-graph.js';

export type DeadlockDetection = 'off' | 'warn' | 'raise';
const MODES: DeadlockDetection[] = ['off', 'warn', 'raise'];

/** Sets deadlock detection for every thread of the process. */
export function setDeadlockDetection(mode: unknown): void {
  const index = MODES.indexOf(mode as DeadlockDetection);
  if (index < 0) throw new TypeError(`configureThreads: deadlockDetection must be 'off', 'warn' or 'raise', got ${typeof mode === 'string' ? JSON.stringify(mode) : String(mode)}`);
  // Read by every park from then on; a thread already asleep is checked by the next sleeper.
  Atomics.store(heap().i32, S_DEADLOCK_MODE, index);
}

export function deadlockDetection(): DeadlockDetection {
  return MODES[Atomics.load(heap().i32, S_DEADLOCK_MODE)] ?? 'off';
}

/** Whether this thread's current wait recorded a stack (afterWake forgets it). */
let stackRecorded = false;

setParkObserver({
  beforeSleep(kind: WaitKind, object: number, forever: boolean): void {
    const h = heap();
    const me = waitRecordBlock();
    if (waitStacksWanted(h)) {
      recordStack(h, me);
      stackRecorded = true;
    }
    // Every sleep looks, a wait's later ones too (woken early, or sleeping in slices): a cycle
    // may have closed while it was awake. The detection mutex keeps two lookers from both
    // acting on one cycle.
    if (!forever) return;
    const mode = Atomics.load(h.i32, S_DEADLOCK_MODE);
    if (mode !== 0) detect(h, me, kind, object, mode);
  },
  afterWake(): void {
    if (!stackRecorded) return;
    stackRecorded = false;
    forgetStack(heap(), waitRecordBlock());
  },
  raiseAsked(kind: WaitKind, object: number): never {
    const h = heap();
    const me = waitRecordBlock();
    internalLock(h.i32, S_DETECTING);
    let found: Found | undefined;
    try {
      found = findCycleThrough(h, me, kind, object);
      clearWaitRecord();
    } finally {
      internalUnlock(h.i32, S_DETECTING);
    }
    throw found?.error() ?? new DeadlockError('deadlock: this wait was part of a cycle of threads waiting on each other, found by the thread that closed it (the cycle changed before this thread could describe it)');
  },
});

/**
 * Looks for the cycle `me`'s wait would close, one thread at a time in the process (a mutex
 * in the heap): two threads that close the same cycle at the same moment both have their
 * records written, and without it both would find it. The one that raises clears its record
 * before it lets the next look, so the next sees it no longer waiting. When the closing wait
 * must not raise (a Condition taking its lock back), another thread of the cycle whose wait
 * may is asked to (askToRaise); with none, the cycle is printed as 'warn' does.
 */
function detect(h: Heap, me: number, kind: WaitKind, object: number, mode: number): void {
  if (!HOLDABLE.has(kind)) return;
  const raise = mode === 2;
  const mayRaise = waitMayRaise();
  internalLock(h.i32, S_DETECTING);
  let found: Found | undefined;
  let asked: Asked | undefined;
  try {
    found = findCycleThrough(h, me, kind, object);
    if (found === undefined) return;
    if (raise && mayRaise) clearWaitRecord();
    else if (raise) asked = askToRaise(h, found.cycle.slice(1));
    if (!raise || (!mayRaise && asked === undefined)) warnOnce(h, found.text, found.key);
  } finally {
    internalUnlock(h.i32, S_DETECTING);
  }
  if (raise && mayRaise) throw found.error();
  if (asked !== undefined) wakeUntilTaken(h, asked);
}

interface Asked {
  block: number;
  seq: number;
  address: number;
}

/** Marks the first of `others` whose wait may end with an error (W_RAISE := its W_SEQ). */
function askToRaise(h: Heap, others: number[]): Asked | undefined {
  for (const block of others) {
    const base = block >> 2;
    const seq = Atomics.load(h.i32, base + W_SEQ);
    const word = Atomics.load(h.i32, base + W_KIND);
    if (word === 0 || (word & (TIMED | NO_RAISE)) !== 0) continue;
    // The asked thread may already sleep: wakeUntilTaken notifies its W_ADDR until it takes this.
    Atomics.store(h.i32, base + W_RAISE, seq);
    return { block, seq, address: Atomics.load(h.i32, base + W_ADDR) };
  }
  return undefined;
}

/**
 * Wakes the asked thread until it takes the request (it clears W_RAISE) or its wait ends: it
 * may be between its own look and its sleep, where one notify would be missed (Atomics.wait
 * compares its word, not W_RAISE), so the wake is repeated every millisecond.
 */
function wakeUntilTaken(h: Heap, asked: Asked): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const base = asked.block >> 2;
  while (Atomics.load(h.i32, base + W_RAISE) === asked.seq && Atomics.load(h.i32, base + W_SEQ) === asked.seq && Atomics.load(h.i32, base + W_KIND) !== 0) {
    // Every sleeper on the word wakes; the others look again and sleep on.
    Atomics.notify(h.i32, asked.address);
    Atomics.wait(nap, 0, 0, 1); // nobody notifies this word: a plain 1 ms sleep
  }
}

interface Found {
  /** The threads' blocks, the one that closed it first. */
  cycle: number[];
  text: string;
  key: string;
  error(): DeadlockError;
}

/** The waits that can have a holder (the others cannot be part of a cycle). */
const HOLDABLE = new Set<WaitKind>([WaitKind.Lock, WaitKind.RLock, WaitKind.Join, WaitKind.Future, WaitKind.Wait]);

/** The cycle that `me`'s wait (recorded already) would close, if any. */
function findCycleThrough(h: Heap, me: number, kind: WaitKind, object: number): Found | undefined {
  return withLiveThreads((blocks) => {
    const first = holdersOf(h, blocks, kind, object);
    if (first.blocks.length === 0) return undefined;
    const cycle = leadsBack(h, blocks, first, [me]);
    if (cycle === undefined || !heldStill(h, blocks, cycle)) return undefined;
    // A thread that waits for a plain Lock it took itself is using it as a signal (Python's
    // Lock may be released by any thread): not counted. (An RLock it holds never waits.)
    if (cycle.length === 1 && kind === WaitKind.Lock) return undefined;
    // (A heap walk for the locks each holds: only once a cycle is found.)
    const held = locksHeld();
    const snapshots = cycle.map((block) => snapshotOf(h, block, blocks, held));
    const lines = snapshots.map((t) => `  ${threadLine(t)}: ${waitLine(t)}`);
    const text = `deadlock: this wait would never end; the threads wait on each other:\n${lines.join('\n')}`;
    return {
      cycle,
      text,
      key: snapshots.map((t) => t.ident).sort((a, b) => a - b).join(','),
      error: () => new DeadlockError(text, snapshots),
    };
  });
}

/**
 * The walk read each thread's wait and each holder at a different moment: a thread may have
 * released a lock and begun another wait in between, making a cycle that never existed at any
 * one moment. So every wait of the cycle is read again between two reads of the threads' wait
 * sequence numbers: if none changed, each thread was in the same wait the whole time, and a
 * blocked thread releases nothing, so the holders read then are the holders now. A pool's
 * other threads (all must be stuck) are held to the same: in a wait with no deadline throughout.
 */
function heldStill(h: Heap, blocks: number[], cycle: number[]): boolean {
  // Every thread involved: the cycle's, and a pool's other threads where all must be stuck.
  const involved = new Set(cycle);
  for (const block of cycle) {
    const wait = readWait(h, block);
    if (wait === undefined) return false;
    const holders = holdersOf(h, blocks, wait.kind, wait.object);
    if (holders.all) for (const other of holders.blocks) involved.add(other);
  }
  const threads = [...involved];
  const seqs = threads.map((block) => Atomics.load(h.i32, (block >> 2) + W_SEQ));
  for (const block of threads) {
    const wait = readWait(h, block);
    if (wait === undefined || !wait.forever) return false;
  }
  for (let i = 0; i < cycle.length; i++) {
    const wait = readWait(h, cycle[i]!);
    if (wait === undefined) return false;
    const holders = holdersOf(h, blocks, wait.kind, wait.object);
    // Each waits on the next; the last on one before it (the first, or for a pool's threads,
    // any of them on the path: the others were checked stuck).
    const onward = i < cycle.length - 1 ? holders.blocks.includes(cycle[i + 1]!) : holders.blocks.some((block) => cycle.includes(block));
    if (!onward) return false;
  }
  return threads.every((block, i) => Atomics.load(h.i32, (block >> 2) + W_SEQ) === seqs[i]);
}

/**
 * Whether every way out of a wait (its holders) leads back to `path[0]`: the path of threads
 * to it, or undefined. A holder already on the path counts as stuck when all holders must be
 * (a pool whose threads all wait on its own queued tasks); else only `path[0]` closes a cycle.
 */
function leadsBack(h: Heap, blocks: number[], holders: Holders, path: number[]): number[] | undefined {
  if (holders.all) {
    // Every holder must be stuck; the longest way back names the most threads of the cycle.
    let cycle: number[] | undefined;
    for (const block of holders.blocks) {
      const found = stuckOn(h, blocks, block, path, true);
      if (found === undefined) return undefined;
      if (cycle === undefined || found.length > cycle.length) cycle = found;
    }
    return cycle;
  }
  for (const block of holders.blocks) {
    const found = stuckOn(h, blocks, block, path, false);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Longest chain followed (a longer one would be a graph read mid-change). */
const MAX_CHAIN = 256;

function stuckOn(h: Heap, blocks: number[], block: number, path: number[], onPathIsStuck: boolean): number[] | undefined {
  if (block === path[0]) return path;
  if (path.includes(block)) return onPathIsStuck ? path : undefined;
  if (path.length >= MAX_CHAIN) return undefined;
  const wait = readWait(h, block);
  if (wait === undefined || !wait.forever) return undefined;
  return leadsBack(h, blocks, holdersOf(h, blocks, wait.kind, wait.object), [...path, block]);
}

/**
 * Prints a cycle to stderr, once: every thread in it may find it again, so the last cycle
 * printed is remembered process-wide (a hash of its idents in the heap; the caller holds the
 * detection mutex).
 */
function warnOnce(h: Heap, text: string, key: string): void {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  hash |= 1; // never 0 (nothing printed yet)
  if (Atomics.exchange(h.i32, S_LAST_WARNED, hash) === hash) return;
  writeSync(2, `threadkit warning: ${text}\n  (deadlockDetection: 'warn': the thread goes on waiting)\n`);
}
