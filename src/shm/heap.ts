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
 * | 2    | TOP              | bump pointer: first byte never handed out             |
 * | 3    | USED_BYTES       | bytes in live blocks (headers included)               |
 * | 4    | NEXT_IDENT       | last thread ident handed out                          |
 * | 5    | NEXT_THREAD_NO   | last N used in a "Thread-N" name                      |
 * | 6    | LIVE_BLOCKS      | number of live blocks                                 |
 * | 7    | MAIN_IDENT       | ident of the main thread                              |
 * | 8..  | ROOTS            | offsets of process-wide singletons (thread table, …)  |
 * | 32+k | FREE_HEAD[k]     | head of the free list of size class k (2^k bytes)     |
 *
 * Block layout: an 8-byte header, then the payload (8-aligned; the payload offset is the
 * handle). Header slot 0 is the reference count, slot 1 packs `kind << 8 | sizeClass`.
 * A free block stores the next free block's payload offset in its first payload slot.
 */

import { ThreadError } from '../errors.js';
import { mutexLockSlow, mutexTryLock, mutexUnlock } from './mutex.js';

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
const S_FREE_HEAD = 32;

const BLOCK_HEADER = 8;
const MIN_CLASS = 4; // 16-byte blocks: 8 of header, 8 of payload
const MAX_CLASS = 30;

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
    i32[S_TOP] = HEADER_BYTES;
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
   * Returns the payload offset (8-aligned).
   * @throws HeapExhaustedError when the heap is at its maximum size.
   */
  alloc(payloadBytes: number, kind: number): number {
    const sizeClass = classFor(payloadBytes + BLOCK_HEADER);
    const blockBytes = 2 ** sizeClass;
    this.lockAllocator();
    let offset: number;
    try {
      const i32 = this.i32;
      const head = i32[S_FREE_HEAD + sizeClass]!;
      if (head !== 0) {
        this.ensureMapped(head - BLOCK_HEADER + blockBytes);
        offset = head;
        i32[S_FREE_HEAD + sizeClass] = this.i32[offset >> 2]!;
      } else {
        offset = this.bumpAllocate(blockBytes) + BLOCK_HEADER;
      }
      this.i32[S_USED] = this.i32[S_USED]! + blockBytes;
      this.i32[S_LIVE_BLOCKS] = this.i32[S_LIVE_BLOCKS]! + 1;
    } finally {
      this.unlockAllocator();
    }
    if (blockBytes <= 64) {
      for (let i = offset >> 2, end = (offset - BLOCK_HEADER + blockBytes) >> 2; i < end; i++) this.i32[i] = 0;
    } else {
      this.u8.fill(0, offset, offset - BLOCK_HEADER + blockBytes);
    }
    const h = (offset - BLOCK_HEADER) >> 2;
    this.i32[h + 1] = (kind << 8) | sizeClass;
    // The store of the count publishes the block; readers get the offset only after this.
    Atomics.store(this.i32, h, 1);
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

  /** Returns a block (whose count reached zero) to its size class's free list. */
  free(offset: number): void {
    const h = (offset - BLOCK_HEADER) >> 2;
    const sizeClass = this.i32[h + 1]! & 0xff;
    this.lockAllocator();
    try {
      this.i32[offset >> 2] = this.i32[S_FREE_HEAD + sizeClass]!;
      this.i32[S_FREE_HEAD + sizeClass] = offset;
      this.i32[S_USED] = this.i32[S_USED]! - 2 ** sizeClass;
      this.i32[S_LIVE_BLOCKS] = this.i32[S_LIVE_BLOCKS]! - 1;
    } finally {
      this.unlockAllocator();
    }
  }

  private bumpAllocate(blockBytes: number): number {
    // Blocks are aligned to min(blockBytes, 64) so that Float64 and BigInt64 fields line up.
    const align = Math.min(blockBytes, 64);
    const start = roundUp(this.i32[S_TOP]! + BLOCK_HEADER, align) - BLOCK_HEADER;
    const end = start + blockBytes;
    if (end > this.sab.byteLength) this.grow(end);
    // Another thread may have grown the buffer already: make sure our views reach the block.
    this.ensureMapped(end);
    this.i32[S_TOP] = end;
    return start;
  }

  private grow(needed: number): void {
    const max = this.sab.maxByteLength;
    if (needed > max) {
      throw new HeapExhaustedError(
        `threadkit heap exhausted: ${needed} bytes needed, the limit is ${max} bytes. ` +
          'Raise it with THREADKIT_HEAP_MAX=2g (environment) or configureHeap({ maxBytes }) before first use.',
      );
    }
    const target = Math.min(max, Math.max(needed, this.sab.byteLength * 2));
    this.sab.grow(roundUp(target, 8));
    this.remap();
  }

  /** The allocator's critical sections are a few loads and stores, so contention is short. */
  private lockAllocator(): void {
    if (!mutexTryLock(this.i32, S_ALLOC_LOCK)) mutexLockSlow(this.i32, S_ALLOC_LOCK, Infinity);
  }

  private unlockAllocator(): void {
    mutexUnlock(this.i32, S_ALLOC_LOCK);
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
