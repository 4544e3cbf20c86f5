/**
 * Thread dumps: `dumpThreads()` from any thread reads every live thread's block and wait
 * record (shm/wait-site.ts) and the heap's locks, and returns snapshots that print like a JVM
 * thread dump. The watchdog and dumps asked for from outside are in watchdog.ts.
 *
 * Stacks: a thread blocked in `Atomics.wait` cannot be asked for its stack, so a thread records
 * its stack into its block when a wait begins, while stacks are asked for (a watchdog armed, or
 * `configureThreads({ waitStacks: true })`): 10 to 20 µs per wait (measured), next to the tens of µs a
 * sleep and wake cost. The calling thread's own stack is always there.
 */

import type { ThreadSnapshot } from '../errors.js';
import { heap } from '../shm/current.js';
import { Kind, dropReference, tryWrapperFor } from '../shm/handles.js';
import type { Heap } from '../shm/heap.js';
import { S_WAIT_STACKS } from '../shm/heap.js';
import { W_ASYNC, WaitKind, waitRecordBlock } from '../shm/wait-site.js';
import * as B from './thread-block.js';
import { currentThread } from './thread.js';
import { type WaitRecord, holdersOf, identOf, lockHolder, locksHeld, readWait, waitKindName, withLiveThreads } from './wait-graph.js';

export type { ThreadSnapshot };

export interface ThreadDump {
  threads: ThreadSnapshot[];
  /** Every wait-for cycle found (each a list of the threads in it). */
  deadlocks: ThreadSnapshot[][];
  toString(): string;
}

/** A printable name for a shared object (its toString), or its kind and address if it is gone. */
export function describeObject(h: Heap, offset: number): string {
  if (offset === 0) return '';
  const obj = tryWrapperFor(offset);
  return obj === undefined ? `<freed block at 0x${offset.toString(16)}>` : String(obj);
}

/** A snapshot of the thread whose block is `block` (`held`: its locks, from locksHeld). */
export function snapshotOf(h: Heap, block: number, blocks: number[], held: Map<number, number[]> | undefined, wait = readWait(h, block)): ThreadSnapshot {
  const i32 = h.i32;
  const base = block >> 2;
  const ident = identOf(h, block);
  const state = Atomics.load(i32, base + B.STATE);
  const nativeId = Atomics.load(i32, base + B.NATIVE_ID);
  const snapshot: ThreadSnapshot = {
    name: B.readName(h, block),
    ident,
    nativeId: nativeId > 0 ? nativeId : undefined,
    daemon: (Atomics.load(i32, base + B.FLAGS) & B.DAEMON) !== 0,
    state: state === B.STOPPED ? 'stopped' : wait !== undefined ? 'waiting' : nativeId > 0 || state === B.STARTED ? 'running' : 'starting',
    // Held at the heap walk and still now (a thread may release a lock between the two).
    asyncWaits: Atomics.load(i32, base + W_ASYNC),
    holding: (held?.get(ident) ?? []).filter((offset) => lockHolder(h, offset) === ident).map((offset) => describeObject(h, offset)),
  };
  if (state === B.INITIAL) snapshot.state = 'starting';
  if (wait !== undefined) snapshot.waitingOn = describeWait(h, blocks, wait);
  const stack = block === waitRecordBlock() ? ownStack() : recordedStack(h, block);
  if (stack !== undefined) snapshot.stack = stack;
  return snapshot;
}

function describeWait(h: Heap, blocks: number[], wait: WaitRecord): NonNullable<ThreadSnapshot['waitingOn']> {
  const holders = holdersOf(h, blocks, wait.kind, wait.object);
  const described: NonNullable<ThreadSnapshot['waitingOn']> = {
    kind: waitKindName(wait.kind),
    object: wait.kind === WaitKind.Join ? `of thread "${B.readName(h, wait.object)}"` : describeObject(h, wait.object),
    sinceMs: Math.max(0, Date.now() - wait.since),
  };
  if (holders.blocks.length === 1 && !holders.all) described.owner = identOf(h, holders.blocks[0]!);
  return described;
}

/** threadkit's own bookkeeping frames (the wait site, dumps, detection), left out of stacks. */
const OWN_FRAME = /[\\/]shm[\\/]|[\\/]thread[\\/](dump|deadlock|wait-graph)\.|^\s*at Array\.map /;

/** The calling thread's stack, from the threadkit call the user made (the public frames kept). */
function ownStack(): string {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  Error.captureStackTrace(holder);
  Error.stackTraceLimit = limit;
  return (holder.stack ?? '')
    .split('\n')
    .slice(1)
    .filter((line) => !OWN_FRAME.test(line))
    .slice(0, 20)
    .join('\n');
}

function recordedStack(h: Heap, block: number): string | undefined {
  const bytes = Atomics.load(h.i32, (block >> 2) + B.STACK);
  if (bytes <= 0 || h.kindOf(bytes) !== Kind.Bytes) return undefined;
  const length = h.i32[bytes >> 2]!;
  if (length <= 0 || length > h.capacity(bytes) - 4) return undefined;
  return h.buf.toString('utf8', bytes + 4, bytes + 4 + length);
}

/** Every live thread now, with what it waits on, what it holds, and every wait-for cycle. */
export function dumpThreads(): ThreadDump {
  currentThread(); // the main thread is listed once it has a block
  const h = heap();
  const held = locksHeld();
  return withLiveThreads((blocks) => {
    const ordered = blocks.slice().reverse(); // start order, main first
    const threads = ordered.map((block) => snapshotOf(h, block, ordered, held));
    const deadlocks = findCycles(h, ordered).map((cycle) => cycle.map((block) => threads[ordered.indexOf(block)]!));
    return makeDump(threads, deadlocks);
  });
}

function makeDump(threads: ThreadSnapshot[], deadlocks: ThreadSnapshot[][]): ThreadDump {
  return { threads, deadlocks, toString: () => formatDump(threads, deadlocks) };
}

/** The cycles of the wait-for graph among `blocks` (unbounded waits with one known holder). */
export function findCycles(h: Heap, blocks: number[]): number[][] {
  const next = new Map<number, number>();
  for (const block of blocks) {
    const wait = readWait(h, block);
    if (wait === undefined || !wait.forever) continue;
    const holders = holdersOf(h, blocks, wait.kind, wait.object);
    if (holders.blocks.length === 1) next.set(block, holders.blocks[0]!);
    else if (holders.all && holders.blocks.length > 0) next.set(block, holders.blocks.find((b) => b !== block) ?? block);
  }
  const cycles: number[][] = [];
  const done = new Set<number>();
  for (const start of blocks) {
    const path: number[] = [];
    let at: number | undefined = start;
    while (at !== undefined && !done.has(at) && !path.includes(at)) {
      path.push(at);
      at = next.get(at);
    }
    if (at !== undefined && path.includes(at)) cycles.push(path.slice(path.indexOf(at)));
    for (const block of path) done.add(block);
  }
  return cycles;
}

/** One line naming a thread, as dumps and DeadlockError print it. */
export function threadLine(t: ThreadSnapshot): string {
  return `"${t.name}" ident=${t.ident}${t.nativeId === undefined ? '' : ` nid=${t.nativeId}`}${t.daemon ? ' daemon' : ''}`;
}

/** What a snapshot waits on, in words: `Lock <…> held by ident 4 (for 1200 ms)`. */
export function waitLine(t: ThreadSnapshot): string {
  const w = t.waitingOn;
  if (w === undefined) return t.state;
  const owner = w.owner === undefined ? '' : w.kind === 'join' ? ` (ident ${w.owner})` : w.kind === 'Future' ? ` run by ident ${w.owner}` : ` held by ident ${w.owner}`;
  return `waiting on ${w.kind}${w.object === '' ? '' : ` ${w.object}`}${owner} (for ${w.sinceMs} ms)`;
}

export function formatDump(threads: ThreadSnapshot[], deadlocks: ThreadSnapshot[][]): string {
  const lines = [`threadkit thread dump (${new Date().toISOString()}), ${threads.length} threads:`, ''];
  for (const t of threads) {
    lines.push(`${threadLine(t)} ${t.state}`);
    lines.push(`   ${waitLine(t)}`);
    for (const lock of t.holding) lines.push(`   - holding ${lock}`);
    if (t.asyncWaits > 0) lines.push(`   - ${t.asyncWaits} Promise wait${t.asyncWaits === 1 ? '' : 's'} pending`);
    if (t.stack !== undefined) for (const frame of t.stack.split('\n')) if (frame.trim() !== '') lines.push(`   ${frame.trim()}`);
    lines.push('');
  }
  if (deadlocks.length === 0) {
    lines.push('No deadlock found.');
  } else {
    for (const cycle of deadlocks) {
      lines.push('Found one deadlock:');
      for (const t of cycle) lines.push(`  ${threadLine(t)}: ${waitLine(t)}`);
      lines.push('');
    }
  }
  return lines.join('\n');
}

// ---- recording stacks at waits --------------------------------------------------------------

/** Whether threads record their stack when a wait begins (process-wide). */
export function waitStacksWanted(h: Heap): boolean {
  return Atomics.load(h.i32, S_WAIT_STACKS) !== 0;
}

/** Asks (+1) or stops asking (-1) every thread to record its stack when a wait begins. */
export function wantWaitStacks(delta: 1 | -1): void {
  // Read by every park before it sleeps; nobody sleeps on it.
  Atomics.add(heap().i32, S_WAIT_STACKS, delta);
}

/** Writes the calling thread's stack into its block (a Bytes block: length, then UTF-8). */
export function recordStack(h: Heap, block: number): void {
  const text = ownStack();
  const length = Buffer.byteLength(text);
  let bytes: number;
  try {
    bytes = h.alloc(4 + length, Kind.Bytes);
  } catch {
    return; // no room: the dump shows no stack for this wait
  }
  h.i32[bytes >> 2] = length;
  h.buf.write(text, bytes + 4, length, 'utf8');
  // Only this thread writes its STACK slot (the destructor once it has ended); readers poll.
  const old = Atomics.exchange(h.i32, (block >> 2) + B.STACK, bytes);
  if (old > 0) dropReference(old);
}

export function forgetStack(h: Heap, block: number): void {
  const old = Atomics.exchange(h.i32, (block >> 2) + B.STACK, 0);
  if (old > 0) dropReference(old);
}
