/**
 * The process-wide shared heap: one growable SharedArrayBuffer that every thread threadkit
 * starts receives at spawn, a size-class allocator over it, and per-block reference counts.
 *
 * Every shared object (Lock, Event, Queue, …) is a block in this heap and is known by its byte
 * offset (its handle). Blocks never move, so a thread that holds an offset can always reach the
 * block; when the buffer grows, a thread refreshes its views the first time it meets an offset
 * beyond them (`ensureMapped`).
 *
 * Heap header (Int32 slots):
 *
 * | slot | field            | meaning                                               |
 * |------|------------------|-------------------------------------------------------|
 * | 0    | MAGIC            | marks a threadkit heap                                |
 * | 1    | ALLOC_LOCK       | futex mutex guarding the free lists and TOP (0/1/2)   |
 * | 2    | TOP              | bump pointer: end of the carved part of the buffer    |
 * | 3    | USED_BYTES       | bytes in live blocks (headers included)               |
 * | 4    | NEXT_IDENT       | last thread ident handed out                          |
 * | 5    | NEXT_THREAD_NO   | last N used in a "Thread-N" name                      |
 * | 6    | LIVE_BLOCKS      | number of live blocks                                 |
 * | 7    | MAIN_IDENT       | ident of the main thread                              |
 * | 8..  | ROOTS            | offsets of process-wide singletons (thread table, …)  |
 * | 32+k | FREE_HEAD[k]     | head of the free list of size class k (2^k bytes)     |
 * | 64+k | FREE_COUNT[k]    | blocks on that list                                   |
 * | 96.. | more roots       | the watchdog, deadlock detection's mutex and last     |
 * |      |                  | warning (the header area runs to 1016)                |
 *
 * Block layout: an 8-byte header, then the payload (the payload offset is the handle). Header
 * slot 0 is the reference count, slot 1 packs `kind << 8 | sizeClass`.
 *
 * The allocator is a buddy system over payload offsets: a block of class k (2^k bytes, header
 * included) has its payload offset aligned to 2^k, and its buddy is the block at
 * `payload XOR 2^k`. Freeing a block whose buddy is free merges the two into a block of class
 * k + 1, and so on up; allocating from an empty class splits a larger free block. So memory
 * freed at one size serves every size: after a burst of 1 KB items drains, a Lock or a 100 MB
 * item finds its room. Below TOP every byte (from FIRST_PAYLOAD - 8) belongs to exactly one
 * block, live or free; above it nothing has been handed out, and a freed block that ends at
 * TOP lowers TOP instead of going to a list.
 *
 * Merging is lazy: a freed block goes on its class's list as it is, and buddies are merged
 * (coalesceAll) only when an allocation finds no free block large enough and would otherwise
 * grow the buffer or fail. So a steady churn of tasks and futures pops and pushes without
 * splitting and merging each time (measured: eager merging doubled the allocator's share of a
 * 100k-task burst), and memory freed at one size still serves every size before the heap grows.
 *
 * A free block is tagged FREE_KIND in its header and sits on its class's doubly linked list:
 * payload slot 0 is the next free block, slot 1 the previous (0 = none). Every list, every
 * header of a free block and TOP change only under ALLOC_LOCK.
 */

import { ThreadError } from '../errors.js';
import { internalLock, internalUnlock } from './mutex.js';
import { enterInternal, leaveInternal } from './kill-guard.js';

export const HEADER_BYTES = 256;
const MAGIC = 0x7468_6b74; // "thkt"
const S_MAGIC = 0;
const S_ALLOC_LOCK = 1;
const S_TOP = 2;
const S_USED = 3;
export const S_NEXT_IDENT = 4;
export const S_NEXT_THREAD_NO = 5;
const S_LIVE_BLOCKS = 6;
export const S_MAIN_IDENT = 7;
/** First of the slots that hold offsets of process-wide singletons. */
export const S_ROOTS = 8;
/** Injected faults (threadkit/testing): allocations, anywhere in the process, still to fail. */
const S_FAULT_ALLOCS = S_ROOTS + 20;
/** Injected faults: isolate starts still to fail (runtime/pool.ts). */
export const S_FAULT_STARTS = S_ROOTS + 21;
/** Deadlock detection, process-wide: 0 off, 1 warn, 2 raise (thread/deadlock.ts). */
export const S_DEADLOCK_MODE = S_ROOTS + 22;
/** Threads record their stack when a wait begins while this is non-zero (thread/dump.ts). */
export const S_WAIT_STACKS = S_ROOTS + 23;
/** The armed watchdog's stop Event (one reference), or 0: one watchdog per process (thread/watchdog.ts). */
export const S_WATCHDOG = 96;
/** Mutex word: one thread at a time looks for a deadlock (thread/deadlock.ts). */
export const S_DETECTING = 97;
/** Hash of the deadlock cycle 'warn' printed last (thread/deadlock.ts). */
export const S_LAST_WARNED = 98;
/** The trace under way: its generation (0: tracing off), events kept per thread, the ring list and its lock (shm/trace-ring.ts). */
export const S_TRACE = 99;
export const S_TRACE_MAX = 100;
export const S_TRACE_LOCK = 101;
export const S_TRACE_RINGS = 102;
const S_FREE_HEAD = 32;
const S_FREE_COUNT = 64;

const BLOCK_HEADER = 8;
const MIN_CLASS = 4; // 16-byte blocks: 8 of header, 8 of payload
const MAX_CLASS = 30;
/** The lowest payload offset (the heap header lies below it); aligned for the buddy system. */
const FIRST_PAYLOAD = 1024;
/** The kind a free block carries in its header (no real kind is this large). */
const FREE_KIND = 0xffff;


const DEFAULT_INITIAL = 4 * 1024 * 1024;
const DEFAULT_MAX = 1024 * 1024 * 1024;
/** Offsets live in Int32 slots, so the heap stays below 2 GiB. */
const MAX_HEAP_BYTES = 2 ** 31 - 65536;

export interface HeapOptions {
  /** Bytes reserved at creation. @default 4 MiB */
  initialBytes?: number;
  /** The heap never grows past this many bytes. @default 1 GiB, or `THREADKIT_HEAP_MAX` */
  maxBytes?: number;
}

/** Raised when the heap cannot hold a new block; says how to raise the limit. */
export class HeapExhaustedError extends RangeError {}
Object.defineProperty(HeapExhaustedError.prototype, 'name', { value: 'HeapExhaustedError', writable: true, configurable: true });

/** Parses sizes such as `512m`, `2g`, `1048576`. */
export function parseByteSize(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?)?\s*$/i.exec(text);
  if (!match) throw new RangeError(`${what}: expected a size such as 512m or 2g, got ${JSON.stringify(text)}`);
  const unit = (match[2] ?? '').toLowerCase()[0];
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.floor(Number(match[1]) * scale);
}

export class Heap {
  readonly sab: SharedArrayBuffer;
  /** Fixed-length views over the mapped part; fixed length keeps Atomics on the fast path. */
  i32!: Int32Array;
  u8!: Uint8Array;
  f64!: Float64Array;
  dv!: DataView;
  buf!: Buffer;
  private mappedBytes = 0;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.remap();
    if (this.i32[S_MAGIC] !== MAGIC) throw new TypeError('threadkit: the buffer handed to this thread is not a threadkit heap');
  }

  static create(options: HeapOptions = {}): Heap {
    const envMax = process.env.THREADKIT_HEAP_MAX;
    const maxBytes = options.maxBytes ?? (envMax ? parseByteSize(envMax, 'THREADKIT_HEAP_MAX') : DEFAULT_MAX);
    const initialBytes = Math.min(options.initialBytes ?? DEFAULT_INITIAL, maxBytes);
    if (!Number.isInteger(maxBytes) || maxBytes < 64 * 1024 || maxBytes > MAX_HEAP_BYTES) {
      throw new RangeError(`heap maxBytes must be an integer from 65536 to ${MAX_HEAP_BYTES}, got ${maxBytes}`);
    }
    const sab = new SharedArrayBuffer(roundUp(Math.max(initialBytes, 64 * 1024), 8), { maxByteLength: roundUp(maxBytes, 8) });
    const i32 = new Int32Array(sab, 0, HEADER_BYTES / 4);
    i32[S_MAGIC] = MAGIC;
    i32[S_TOP] = FIRST_PAYLOAD - BLOCK_HEADER;
    return new Heap(sab);
  }

  /** Re-creates the views so they cover every byte the buffer holds now. */
  remap(): void {
    const bytes = this.sab.byteLength;
    if (bytes === this.mappedBytes) return;
    this.mappedBytes = bytes;
    this.i32 = new Int32Array(this.sab, 0, bytes >> 2);
    this.u8 = new Uint8Array(this.sab, 0, bytes);
    this.f64 = new Float64Array(this.sab, 0, bytes >> 3);
    this.dv = new DataView(this.sab, 0, bytes);
    this.buf = Buffer.from(this.sab, 0, bytes);
  }

  /** Makes sure this thread's views reach `end` (a block another thread allocated after a grow). */
  ensureMapped(end: number): void {
    if (end > this.mappedBytes) this.remap();
  }

  get maxBytes(): number {
    return this.sab.maxByteLength;
  }

  /** Bytes in live blocks, headers included. */
  usedBytes(): number {
    return Atomics.load(this.i32, S_USED);
  }

  liveBlocks(): number {
    return Atomics.load(this.i32, S_LIVE_BLOCKS);
  }

  /** Bytes of the buffer ever handed out (the high-water mark). */
  topBytes(): number {
    return Atomics.load(this.i32, S_TOP);
  }

  /**
   * Allocates a block with `payloadBytes` of zeroed payload, reference count 1, tagged `kind`.
   * Returns the payload offset (aligned to min(block size, 2^30), so at least 16).
   * @throws HeapExhaustedError when no free block is large enough and the heap is at its maximum size.
   */
  alloc(payloadBytes: number, kind: number): number {
    // One kill-safe section from the lock to the published count (kill-guard.ts): a kill never
    // leaves a block taken from the lists but not counted.
    enterInternal();
    try {
      return this.allocGuarded(payloadBytes, kind);
    } finally {
      leaveInternal();
    }
  }

  private allocGuarded(payloadBytes: number, kind: number): number {
    if (this.i32[S_FAULT_ALLOCS] !== 0) this.injectedFault(payloadBytes);
    const sizeClass = classFor(payloadBytes + BLOCK_HEADER);
    const blockBytes = 2 ** sizeClass;
    this.lockAllocator();
    let offset: number;
    try {
      this.ensureMapped(this.i32[S_TOP]!);
      offset = this.takeFree(sizeClass) || this.carveOrCoalesce(sizeClass);
      const i32 = this.i32;
      // Tagged live under the lock: a free() that looks at this block as its buddy sees it taken.
      i32[((offset - BLOCK_HEADER) >> 2) + 1] = (kind << 8) | sizeClass;
      i32[S_USED] = i32[S_USED]! + blockBytes;
      i32[S_LIVE_BLOCKS] = i32[S_LIVE_BLOCKS]! + 1;
    } finally {
      this.unlockAllocator();
    }
    if (blockBytes <= 64) {
      for (let i = offset >> 2, end = (offset - BLOCK_HEADER + blockBytes) >> 2; i < end; i++) this.i32[i] = 0;
    } else {
      this.u8.fill(0, offset, offset - BLOCK_HEADER + blockBytes);
    }
    // The store of the count publishes the block; readers get the offset only after this.
    Atomics.store(this.i32, (offset - BLOCK_HEADER) >> 2, 1);
    return offset;
  }

  /** Payload bytes a block can hold. */
  capacity(offset: number): number {
    return 2 ** (this.i32[((offset - BLOCK_HEADER) >> 2) + 1]! & 0xff) - BLOCK_HEADER;
  }

  kindOf(offset: number): number {
    this.ensureMapped(offset);
    return this.i32[((offset - BLOCK_HEADER) >> 2) + 1]! >>> 8;
  }

  refCount(offset: number): number {
    return Atomics.load(this.i32, (offset - BLOCK_HEADER) >> 2);
  }

  /**
   * Adds one reference to a block that another thread may free at any moment (an offset read
   * from another thread's wait record, for a dump), if it is still a live block of a shared
   * object kind (`kinds`): under the allocator lock, so no block is merged or split meanwhile,
   * and with a compareExchange from a count above 0. False (nothing taken) otherwise.
   */
  tryRetain(offset: number, isObjectKind: (kind: number) => boolean): boolean {
    this.lockAllocator();
    try {
      const top = this.i32[S_TOP]!;
      if (offset < FIRST_PAYLOAD || offset >= top || (offset & 15) !== 0) return false;
      this.ensureMapped(top);
      const tag = this.i32[((offset - BLOCK_HEADER) >> 2) + 1]!;
      const sizeClass = tag & 0xff;
      // A block's payload is aligned to its size (buddy system): anything else is not a block start.
      if (sizeClass < MIN_CLASS || sizeClass > MAX_CLASS || (offset - BLOCK_HEADER + 2 ** sizeClass > top)) return false;
      if (offset % Math.min(2 ** sizeClass, 2 ** 30) !== 0 || !isObjectKind(tag >>> 8)) return false;
      const count = (offset - BLOCK_HEADER) >> 2;
      for (let c = Atomics.load(this.i32, count); c > 0; c = Atomics.load(this.i32, count)) {
        if (Atomics.compareExchange(this.i32, count, c, c + 1) === c) return true;
      }
      return false;
    } finally {
      this.unlockAllocator();
    }
  }

  /** Adds one reference to a live block. */
  retain(offset: number): void {
    this.ensureMapped(offset);
    const before = Atomics.add(this.i32, (offset - BLOCK_HEADER) >> 2, 1);
    if (before <= 0) throw new ThreadError(`threadkit: retain of a freed block at ${offset} (use after free)`);
  }

  /**
   * Drops one reference; returns true when it was the last one. The caller then runs the
   * kind's destructor and calls `free`.
   */
  releaseRef(offset: number): boolean {
    this.ensureMapped(offset);
    const before = Atomics.sub(this.i32, (offset - BLOCK_HEADER) >> 2, 1);
    if (before <= 0) throw new ThreadError(`threadkit: release of a freed block at ${offset} (double free)`);
    return before === 1;
  }

  /**
   * Calls `fn` with the payload offset and kind of every live block, in address order, under
   * the allocator lock (so no block splits or merges meanwhile). For thread dumps: slow.
   */
  walk(fn: (offset: number, kind: number) => void): void {
    const found: number[] = [];
    this.lockAllocator();
    try {
      const i32 = this.i32;
      const top = i32[S_TOP]!;
      this.ensureMapped(top);
      for (let block = FIRST_PAYLOAD - BLOCK_HEADER; block < top; ) {
        const tag = this.i32[(block >> 2) + 1]!;
        const kind = tag >>> 8;
        if (kind !== FREE_KIND) found.push(block + BLOCK_HEADER, kind);
        block += 2 ** (tag & 0xff);
      }
    } finally {
      this.unlockAllocator();
    }
    for (let i = 0; i < found.length; i += 2) fn(found[i]!, found[i + 1]!);
  }

  /** Returns a block (whose count reached zero) to its class's free list (merged later: coalesceAll). */
  free(offset: number): void {
    const sizeClass = this.i32[((offset - BLOCK_HEADER) >> 2) + 1]! & 0xff;
    const blockBytes = 2 ** sizeClass;
    this.lockAllocator();
    try {
      const i32 = this.i32;
      i32[S_USED] = i32[S_USED]! - blockBytes;
      i32[S_LIVE_BLOCKS] = i32[S_LIVE_BLOCKS]! - 1;
      // (Even the last block below TOP goes on its list: uncarving it here would make the next
      // allocation carve again, slower than a pop; coalesceAll lowers TOP when it merges.)
      this.pushFree(offset, sizeClass);
    } finally {
      this.unlockAllocator();
    }
  }

  /**
   * No free block of `sizeClass` or larger: carve one from above TOP if the buffer holds it;
   * else merge the free buddies first (memory freed at other sizes may make room), and only
   * then grow the buffer (or fail). Under the lock.
   */
  private carveOrCoalesce(sizeClass: number): number {
    const end = roundUp(this.i32[S_TOP]! + BLOCK_HEADER, 2 ** sizeClass) - BLOCK_HEADER + 2 ** sizeClass;
    if (end > this.sab.byteLength && this.coalesceAll()) {
      const offset = this.takeFree(sizeClass);
      if (offset !== 0) return offset;
    }
    return this.carve(sizeClass);
  }

  /**
   * Merges every pair of free buddies, class by class from the smallest (a merged block may
   * merge again one class up), and lowers TOP over free blocks that end there. Returns true
   * when anything changed. Under the lock.
   */
  private coalesceAll(): boolean {
    const i32 = this.i32;
    this.ensureMapped(i32[S_TOP]!);
    let changed = false;
    for (let sizeClass = MIN_CLASS; sizeClass < MAX_CLASS; sizeClass++) {
      const bytes = 2 ** sizeClass;
      const tag = (FREE_KIND << 8) | sizeClass;
      for (let offset = i32[S_FREE_HEAD + sizeClass]!; offset !== 0; ) {
        let next = i32[offset >> 2]!;
        const buddy = offset ^ bytes;
        const topPayload = i32[S_TOP]! + BLOCK_HEADER;
        if (buddy >= FIRST_PAYLOAD && buddy + bytes <= topPayload && i32[((buddy - BLOCK_HEADER) >> 2) + 1] === tag) {
          // (The buddy may be the next block on this list: step past it first.)
          if (next === buddy) next = i32[buddy >> 2]!;
          this.unlinkFree(offset, sizeClass);
          this.unlinkFree(buddy, sizeClass);
          const merged = Math.min(offset, buddy);
          if (merged + 2 * bytes === topPayload) i32[S_TOP] = merged - BLOCK_HEADER;
          else this.pushFree(merged, sizeClass + 1);
          changed = true;
        }
        offset = next;
      }
    }
    return changed;
  }

  /** Fails this allocation if a test asked for it (threadkit/testing failNextAllocations). */
  private injectedFault(payloadBytes: number): void {
    // A countdown any thread may take from: each failing allocation takes one.
    for (let left = Atomics.load(this.i32, S_FAULT_ALLOCS); left > 0; left = Atomics.load(this.i32, S_FAULT_ALLOCS)) {
      if (Atomics.compareExchange(this.i32, S_FAULT_ALLOCS, left, left - 1) === left) {
        throw new HeapExhaustedError(`threadkit heap exhausted: no room for a block of ${payloadBytes + BLOCK_HEADER} bytes (an injected fault: threadkit/testing failNextAllocations)`);
      }
    }
  }

  /** @internal threadkit/testing: the next `n` allocations in the process fail with HeapExhaustedError. */
  _failNextAllocations(n: number): void {
    Atomics.store(this.i32, S_FAULT_ALLOCS, n);
  }

  /** A free block of `sizeClass` (splitting a larger one if need be), or 0. Under the lock. */
  private takeFree(sizeClass: number): number {
    const i32 = this.i32;
    let from = sizeClass;
    while (from <= MAX_CLASS && i32[S_FREE_HEAD + from] === 0) from++;
    if (from > MAX_CLASS) return 0;
    const offset = i32[S_FREE_HEAD + from]!;
    this.unlinkFree(offset, from);
    // Split: keep the lower half, free the upper one, down to the class asked for.
    while (from > sizeClass) {
      from--;
      this.pushFree(offset + 2 ** from, from);
    }
    return offset;
  }

  /**
   * A new block of `sizeClass` from above TOP, its payload aligned to its size. The gap up to
   * that alignment is carved into free blocks (each aligned to its own size). Under the lock.
   */
  private carve(sizeClass: number): number {
    const blockBytes = 2 ** sizeClass;
    let payload = this.i32[S_TOP]! + BLOCK_HEADER;
    const offset = roundUp(payload, blockBytes);
    const end = offset - BLOCK_HEADER + blockBytes;
    if (end > this.sab.byteLength) this.grow(end, blockBytes);
    // Another thread may have grown the buffer already: make sure our views reach the block.
    this.ensureMapped(end);
    while (payload < offset) {
      // The largest block that is aligned at `payload` and fits below `offset`.
      let gapClass = Math.min(31 - Math.clz32(payload & -payload), 31 - Math.clz32(offset - payload));
      if (gapClass > MAX_CLASS) gapClass = MAX_CLASS;
      this.pushFree(payload, gapClass);
      payload += 2 ** gapClass;
    }
    this.i32[S_TOP] = end;
    return offset;
  }

  private pushFree(offset: number, sizeClass: number): void {
    const i32 = this.i32;
    const at = offset >> 2;
    const next = i32[S_FREE_HEAD + sizeClass]!;
    i32[at - 2] = 0; // (the count of a free block)
    i32[at - 1] = (FREE_KIND << 8) | sizeClass;
    i32[at] = next;
    i32[at + 1] = 0;
    if (next !== 0) i32[(next >> 2) + 1] = offset;
    i32[S_FREE_HEAD + sizeClass] = offset;
    i32[S_FREE_COUNT + sizeClass] = i32[S_FREE_COUNT + sizeClass]! + 1;
  }

  private unlinkFree(offset: number, sizeClass: number): void {
    const i32 = this.i32;
    const next = i32[offset >> 2]!;
    const previous = i32[(offset >> 2) + 1]!;
    if (previous !== 0) i32[previous >> 2] = next;
    else i32[S_FREE_HEAD + sizeClass] = next;
    if (next !== 0) i32[(next >> 2) + 1] = previous;
    i32[S_FREE_COUNT + sizeClass] = i32[S_FREE_COUNT + sizeClass]! - 1;
  }

  private grow(needed: number, blockBytes: number): void {
    const max = this.sab.maxByteLength;
    if (needed > max) {
      throw new HeapExhaustedError(
        `threadkit heap exhausted: no room for a block of ${blockBytes} bytes (${this.usedBytes()} of the limit of ${max} bytes are in live blocks). ` +
          'Raise the limit with THREADKIT_HEAP_MAX=2g (environment) or configureHeap({ maxBytes }) before first use.',
      );
    }
    const target = Math.min(max, Math.max(needed, this.sab.byteLength * 2));
    this.sab.grow(roundUp(target, 8));
    this.remap();
  }

  /** The allocator's critical sections are a few loads and stores, so contention is short. */
  private lockAllocator(): void {
    internalLock(this.i32, S_ALLOC_LOCK);
  }

  private unlockAllocator(): void {
    internalUnlock(this.i32, S_ALLOC_LOCK);
  }
}

function classFor(bytes: number): number {
  const c = Math.max(MIN_CLASS, 32 - Math.clz32(bytes - 1));
  if (c > MAX_CLASS) throw new HeapExhaustedError(`threadkit: a block of ${bytes} bytes is larger than the heap can hold`);
  return c;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
