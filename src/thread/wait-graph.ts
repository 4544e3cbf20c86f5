/**
 * The wait-for graph, read from shared memory: which thread each live thread waits on (from the
 * wait records park writes, shm/wait-site.ts), and snapshots of threads for dumps and
 * DeadlockError. Everything here reads other threads' records without a lock: a snapshot may
 * show a wait that has just ended, and every offset read is checked before it is followed.
 *
 * Who holds what a thread waits on:
 * - Lock, RLock (and a Condition's lock, taken again after a wait): the ident in the mutex word;
 * - join: the thread joined;
 * - a Future (and futures' wait() or asCompleted() with one future left): the pool thread
 *   running its task (its TASK slot), or, while the task is queued,
 *   every thread of its pool when the pool cannot start another (all of them must be stuck);
 * - Condition, Event, Semaphore, Barrier, queues, sleep: nobody in particular (no edge).
 */

import { heap } from '../shm/current.js';
import { Kind } from '../shm/handles.js';
import type { Heap } from '../shm/heap.js';
import { mutexOwner } from '../shm/mutex.js';
import { TIMED, WAIT_KIND_NAMES, WaitKind, W_KIND, W_OBJECT, W_SINCE } from '../shm/wait-site.js';
import * as B from './thread-block.js';
import { liveThreadBlocks } from './registry.js';
import { dropReference } from '../shm/handles.js';

/** A thread's wait, as read from its record. */
export interface WaitRecord {
  kind: WaitKind;
  forever: boolean;
  object: number;
  since: number;
}

/** The threads that could end a wait: `all` means every one of them must be stuck for the wait to be. */
export interface Holders {
  blocks: number[];
  all: boolean;
}

/** Every live thread's block (a snapshot of the registry; the blocks stay valid while `body` runs). */
export function withLiveThreads<T>(body: (blocks: number[]) => T): T {
  const blocks = liveThreadBlocks();
  try {
    return body(blocks);
  } finally {
    for (const block of blocks) dropReference(block);
  }
}

export function readWait(h: Heap, block: number): WaitRecord | undefined {
  const word = Atomics.load(h.i32, (block >> 2) + W_KIND);
  if (word === 0) return undefined;
  return {
    kind: (word & 0xff) as WaitKind,
    forever: (word & TIMED) === 0,
    object: Atomics.load(h.i32, (block >> 2) + W_OBJECT),
    since: h.f64[(block >> 3) + (W_SINCE >> 1)]!,
  };
}

export function identOf(h: Heap, block: number): number {
  return Atomics.load(h.i32, (block >> 2) + B.IDENT);
}

function blockOfIdent(h: Heap, blocks: number[], ident: number): number {
  for (const block of blocks) if (identOf(h, block) === ident) return block;
  return 0;
}

/** True when `offset` is a live block of `kind` (an offset read racily may be stale). */
function isLive(h: Heap, offset: number, kind: Kind): boolean {
  if (offset <= 0 || offset >= h.topBytes() || (offset & 7) !== 0) return false;
  return h.kindOf(offset) === kind && h.refCount(offset) > 0;
}

/** The ident that holds a Lock or RLock (0: free or unknown). */
export function lockHolder(h: Heap, offset: number): number {
  if (!isLive(h, offset, Kind.Lock) && !isLive(h, offset, Kind.RLock)) return 0;
  return mutexOwner(Atomics.load(h.i32, offset >> 2));
}

// Future and pool fields read here (futures/future.ts, futures/thread-pool.ts keep them).
const FUTURE_STATE = 0;
const FUTURE_RUNNER = 4;
const PENDING = 0;
const RUNNING = 1;

/** The threads that could end a wait of `kind` on `object` (no blocks: nobody in particular). */
export function holdersOf(h: Heap, blocks: number[], kind: WaitKind, object: number): Holders {
  switch (kind) {
    case WaitKind.Lock:
    case WaitKind.RLock: {
      const block = blockOfIdent(h, blocks, lockHolder(h, object));
      return { blocks: block === 0 ? [] : [block], all: false };
    }
    case WaitKind.Join:
      return { blocks: blocks.includes(object) ? [object] : [], all: false };
    case WaitKind.Future:
    case WaitKind.Wait: // (futures' wait() and asCompleted() record a future when one is left)
      return object === 0 ? { blocks: [], all: false } : futureHolders(h, blocks, object);
    default:
      return { blocks: [], all: false };
  }
}

function futureHolders(h: Heap, blocks: number[], future: number): Holders {
  if (!isLive(h, future, Kind.Future)) return { blocks: [], all: false };
  const state = Atomics.load(h.i32, (future >> 2) + FUTURE_STATE) & 7;
  if (state === RUNNING) {
    const runner = blocks.find((block) => Atomics.load(h.i32, (block >> 2) + B.TASK) === future);
    return { blocks: runner === undefined ? [] : [runner], all: false };
  }
  if (state !== PENDING) return { blocks: [], all: false };
  // Queued: RUNNER holds minus its pool's offset until a thread takes it.
  const pool = -Atomics.load(h.i32, (future >> 2) + FUTURE_RUNNER);
  if (!isLive(h, pool, Kind.Executor)) return { blocks: [], all: false };
  const threads = poolThreadBlocks(h, pool);
  // A pool that can still start a thread will run the task: nobody is needed.
  if (threads === undefined) return { blocks: [], all: false };
  return { blocks: threads.filter((block) => blocks.includes(block)), all: true };
}

/** Set by futures/thread-pool.ts: a pool's threads, or undefined when it may start another. */
let poolThreads: (h: Heap, pool: number) => number[] | undefined = () => undefined;

export function setPoolThreadsReader(reader: (h: Heap, pool: number) => number[] | undefined): void {
  poolThreads = reader;
}

function poolThreadBlocks(h: Heap, pool: number): number[] | undefined {
  return poolThreads(h, pool);
}

/** Every Lock and RLock each thread holds, by ident (a walk of the heap: for dumps only). */
export function locksHeld(): Map<number, number[]> {
  const h = heap();
  const held = new Map<number, number[]>();
  h.walk((offset, kind) => {
    if (kind !== Kind.Lock && kind !== Kind.RLock) return;
    const owner = mutexOwner(Atomics.load(h.i32, offset >> 2));
    if (owner === 0) return;
    const list = held.get(owner) ?? [];
    list.push(offset);
    held.set(owner, list);
  });
  return held;
}

export function waitKindName(kind: WaitKind): string {
  return WAIT_KIND_NAMES[kind] ?? `wait ${kind}`;
}
