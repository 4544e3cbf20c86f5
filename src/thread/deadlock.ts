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
import { S_DEADLOCK_MODE } from '../shm/heap.js';
import { type WaitKind, setParkObserver, waitRecordBlock } from '../shm/wait-site.js';
import { forgetStack, recordStack, snapshotOf, threadLine, waitLine, waitStacksWanted } from './dump.js';
import { type Holders, holdersOf, readWait, withLiveThreads } from './wait-graph.js';

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

/** Cycles already printed by 'warn' in this thread (by their idents). */
const warned = new Set<string>();
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
    if (!forever) return;
    const mode = Atomics.load(h.i32, S_DEADLOCK_MODE);
    if (mode === 0) return;
    const found = findCycleThrough(h, me, kind, object);
    if (found === undefined) return;
    if (mode === 1) warnOnce(found.text, found.key);
    else throw found.error();
  },
  afterWake(): void {
    if (!stackRecorded) return;
    stackRecorded = false;
    forgetStack(heap(), waitRecordBlock());
  },
});

interface Found {
  text: string;
  key: string;
  error(): DeadlockError;
}

/** The cycle that `me`'s wait (recorded already) would close, if any. */
function findCycleThrough(h: Heap, me: number, kind: WaitKind, object: number): Found | undefined {
  return withLiveThreads((blocks) => {
    const first = holdersOf(h, blocks, kind, object);
    if (first.blocks.length === 0) return undefined;
    const cycle = leadsBack(h, blocks, first, [me]);
    if (cycle === undefined) return undefined;
    const snapshots = cycle.map((block) => snapshotOf(h, block, blocks, undefined));
    const lines = snapshots.map((t) => `  ${threadLine(t)}: ${waitLine(t)}`);
    const text = `deadlock: this wait would never end; the threads wait on each other:\n${lines.join('\n')}`;
    return {
      text,
      key: snapshots.map((t) => t.ident).sort((a, b) => a - b).join(','),
      error: () => new DeadlockError(text, snapshots),
    };
  });
}

/**
 * Whether every way out of a wait (its holders) leads back to `path[0]`: the path of threads
 * to it, or undefined. A holder already on the path counts as stuck when all holders must be
 * (a pool whose threads all wait on its own queued tasks); else only `path[0]` closes a cycle.
 */
function leadsBack(h: Heap, blocks: number[], holders: Holders, path: number[]): number[] | undefined {
  if (holders.all) {
    let cycle: number[] | undefined;
    for (const block of holders.blocks) {
      const found = stuckOn(h, blocks, block, path, true);
      if (found === undefined) return undefined;
      cycle ??= found;
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

function warnOnce(text: string, key: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  writeSync(2, `threadkit warning: ${text}\n  (deadlockDetection: 'warn': the thread goes on waiting)\n`);
}
