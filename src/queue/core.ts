/**
 * The machinery every threadkit queue shares. One block in the shared heap holds the queue's
 * state (two lock-and-counter words, waiter counts, the futex words sleepers wait on), a second
 * block owned by the queue holds the items as records. An item is encoded once, by the putter,
 * straight into that storage (numbers, booleans, null, undefined and strings in a record format
 * of their own; anything else with the value codec; an item whose encoding is larger than
 * INLINE_MAX in a Bytes block of its own, referenced from its record) and decoded once by the
 * getter. `QueueCore` holds put/get/qsize/shutdown and their async twins, and the FIFO storage:
 * a byte ring with a put lock and a get lock, so one producer and one consumer never take the
 * same lock. LifoQueue and PriorityQueue replace the storage hooks (`_insert`, `_take`, …) and
 * guard both ends with the put lock.
 *
 * Queue block (Int32 slots; the payload starts 8 bytes into a 64-aligned block, so slots 14, 30,
 * 46 and 62 start cache lines). In the hot path each line has one writer: a put writes its own
 * line (TAIL) and PUT_WORD, a get writes its own line (HEAD) and GET_WORD; a getter polling
 * PUT_WORD while it waits costs the putter one line, not its private state; the first line
 * (state, bound, waiter counts) is only read while nobody waits.
 *
 * | slot | field          | written by           | meaning                                          |
 * |------|----------------|----------------------|--------------------------------------------------|
 * | 0    | FLAVOR         | constructor          | 0 Queue, 1 SimpleQueue, 2 LifoQueue, 3 PriorityQueue |
 * | 1    | STATE          | shutdown             | 0 open, 1 shut down (written under the put lock)  |
 * | 2    | MAXSIZE        | maxsize setter       | <= 0: unbounded (written under the put lock)      |
 * | 3    | GET_WAITERS    | getters (slow path)  | threads registered to sleep on NOT_EMPTY_SEQ      |
 * | 4    | PUT_WAITERS    | putters (slow path)  | threads registered to sleep on NOT_FULL_SEQ       |
 * | 5    | JOIN_WAITERS   | joiners              | threads registered to sleep on DONE_WORD          |
 * | 6    | NOT_EMPTY_SEQ  | putters, shutdown    | futex word of sleeping getters (bumped to wake)   |
 * | 7    | NOT_FULL_SEQ   | getters, shutdown, maxsize setter | futex word of sleeping putters       |
 * | 8    | STORE          | storage hooks        | offset of the storage block (0: none yet)         |
 * | 9    | CAP            | storage hooks        | storage capacity (bytes)                          |
 * | 14   | TAIL           | putters              | FIFO: bytes ever written (wrapping); LIFO: bytes used; priority: items |
 * | 15   | HEAD_CACHE     | putters              | FIFO: the last HEAD_PUB a putter read             |
 * | 16   | GET_CACHE      | putters              | the last GET_WORD a putter read (maxsize check)   |
 * | 18-19| SEQ            | putters (priority)   | Float64: insertion number, for stable order       |
 * | 30   | HEAD           | getters              | FIFO: bytes ever consumed                         |
 * | 31   | HEAD_SHOWN     | getters              | FIFO: the HEAD last stored in HEAD_PUB            |
 * | 32   | PUT_CACHE      | getters              | the last PUT_WORD a getter read                   |
 * | 33   | DONE_WORD      | taskDone, shutdown   | tasks ever done × 8                               |
 * | 46   | PUT_WORD       | putters              | items ever put × 8 + WAIT (getters sleep) + put lock state |
 * | 62   | GET_WORD       | getters              | items ever taken × 8 + WAIT (putters sleep) + get lock state (FIFO) |
 * | 63   | HEAD_PUB       | getters              | FIFO: a HEAD no newer than the real one           |
 *
 * Lock-and-counter words: `count × 8 + WAIT (bit 2) + lock state (bits 0-1)`, the lock state
 * being the three-state mutex of shm/mutex.ts (0 free, 1 held, 2 held and maybe slept on).
 * Taking the lock is one compareExchange that keeps the count; releasing it is one
 * compareExchange that writes the new count with the lock free, so releasing *is* publishing:
 * a getter that reads the put word and sees a count sees every record written before it. Counts
 * wrap (29 bits); differences are taken modulo 2^32 (`((a & -8) - (b & -8) | 0) >> 3`), so a
 * queue holds at most 2^28 items. `qsize = put count - get count`, `unfinishedTasks = put count
 * - DONE_WORD / 8`. For LIFO and priority the put word's lock guards both ends and the get
 * word is only a counter (with WAIT).
 *
 * Each end keeps a copy of the other end's word (PUT_CACHE, GET_CACHE) and a FIFO putter a
 * copy of the get end's position (HEAD_CACHE), re-read only when the copy says "empty", "full"
 * or "no room": a copy can only lag, so it errs on the safe side. The getter publishes its
 * position (HEAD_PUB) only every quarter ring, so a get writes one shared word, not two; a
 * putter therefore sees up to a quarter of the ring as used when it is free, and the ring grows
 * a little earlier than it must.
 *
 * Records (4-aligned; header word = type | payloadBytes << 4). FIFO: header, then payload. A
 * record never wraps: a PAD header fills the ring's end and the record starts at 0.
 *
 * | type     | payload                                         |
 * |----------|-------------------------------------------------|
 * | PAD      | none; skip to the ring's end                    |
 * | UNDEF, NULL, FALSE, TRUE | none                            |
 * | INT      | int32                                           |
 * | F64      | float64 as two int32                            |
 * | ASCII    | bytes of a short all-ASCII string               |
 * | UTF8     | UTF-8 bytes of a string                         |
 * | CODEC    | the value codec's bytes (handles inside own their references) |
 * | BLOCK    | int32: a Bytes block that holds the codec bytes |
 *
 * Waking (the rule at every Atomics call below). A getter that must sleep registers in
 * GET_WAITERS, reads its futex word NOT_EMPTY_SEQ, sets WAIT on the put word, re-checks the
 * count, and sleeps only while NOT_EMPTY_SEQ still holds what it read (putters: PUT_WAITERS,
 * NOT_FULL_SEQ, WAIT on the get word). A put publishes with a compareExchange from the value it
 * locked: if WAIT was set before that, the exchange fails or WAIT was already in the locked
 * value, and the putter takes the slow release (releaseSlow): it bumps NOT_EMPTY_SEQ, wakes one
 * sleeper, and keeps WAIT set while others stay registered. If WAIT is set after the publish,
 * the sleeper's re-check (which follows its WAIT) sees the item. These are all sequentially
 * consistent atomics, so the hot path pays nothing for sleepers (no waiter count is read) and no
 * wake is lost. One notify wakes one sleeper per item (or per freed slot): a woken thread takes
 * the item or, if another thread took it first, sleeps again; a thread whose wait timed out is
 * not one a notify can pick (Atomics.notify wakes only threads still asleep). An async waiter
 * that is aborted wakes every sleeper on its word (futexWaitAsync does), so it cannot swallow a
 * wake meant for another. shutdown() and a raised maxsize bump the words and wake everyone.
 */

import { inspect } from 'node:util';
import { QueueEmpty, QueueFull, QueueShutDown } from '../errors.js';
import { copyBytes, decodeReceived, dropEncoded, encodeToScratch, encodedLength } from '../shm/codec.js';
import { heap } from '../shm/current.js';
import { TIMEOUT_MAX, deadlineAfter, describe, futexWait, futexWaitAsync } from '../shm/futex.js';
import { Kind, SharedObject, dropReference, isReviving, registerKind, reviveAs } from '../shm/handles.js';
import { HeapExhaustedError, type Heap } from '../shm/heap.js';

// ---- layout -----------------------------------------------------------------------------------

export const FLAVOR = 0;
export const STATE = 1;
export const MAXSIZE = 2;
export const GET_WAITERS = 3;
export const PUT_WAITERS = 4;
export const JOIN_WAITERS = 5;
export const NOT_EMPTY_SEQ = 6;
export const NOT_FULL_SEQ = 7;
export const STORE = 8;
export const CAP = 9;
export const TAIL = 14;
export const HEAD_CACHE = 15;
export const GET_CACHE = 16;
export const SEQ = 18;
export const HEAD = 30;
export const HEAD_SHOWN = 31;
export const PUT_CACHE = 32;
export const DONE_WORD = 33;
export const PUT_WORD = 46;
export const GET_WORD = 62;
export const HEAD_PUB = 63;
/** Payload bytes of a queue block: slots 0..63 (a 512-byte block with its header). */
export const QUEUE_BLOCK_BYTES = 256;

export const enum Flavor {
  Fifo = 0,
  Simple = 1,
  Lifo = 2,
  Priority = 3,
}

export const enum R {
  PAD = 0,
  UNDEF = 1,
  NULL = 2,
  FALSE = 3,
  TRUE = 4,
  INT = 5,
  F64 = 6,
  ASCII = 7,
  UTF8 = 8,
  CODEC = 9,
  BLOCK = 10,
  /** Staged only (priority queue): the whole item lives in its own block. */
  ITEM = 11,
}

/** Encoded items larger than this go to a block of their own instead of into the storage. */
export const INLINE_MAX = 1024;
/** Strings up to this length are checked for ASCII in JavaScript (longer ones use utf8Write). */
const ASCII_MAX = 64;
/** First FIFO ring (bytes). It is allocated at the first put, so an unused queue costs 512 bytes. */
const FIRST_RING = 1024;
/** A storage larger than this is given back when the queue becomes empty. */
export const SHRINK_ABOVE = 64 * 1024;
/** How long a getter or putter re-reads the words before it registers to sleep (µs). */
const SPIN_MICROS = 20;

/** Lock states in the low 2 bits of a lock-and-counter word (as shm/mutex.ts). */
const HELD = 1;
const CONTENDED = 2;
/** Bit 2: a thread of the other end may sleep waiting for this end's count to move. */
const WAIT = 4;
/** One item in a lock-and-counter word (the count is in bits 3..31). */
export const ONE = 8;

/** Items between two counter words (`a` not behind `b`), modulo 2^29. */
export function itemsBetween(a: number, b: number): number {
  return (((a & -8) - (b & -8)) | 0) >> 3;
}

/** Rounds a byte count up to a multiple of 4. */
export function round4(n: number): number {
  return (n + 3) & ~3;
}

/** The smallest power of two >= n (n >= 1). */
export function nextPow2(n: number): number {
  return n <= 1 ? 1 : 2 ** (32 - Math.clz32(n - 1));
}

// ---- staged items ---------------------------------------------------------------------------------

/**
 * An item ready to be written: its record type and payload size, and what the payload is made
 * of. Sync puts use one module-level instance (nothing else runs between staging and writing);
 * an async put that has to wait copies it (`detach`) so that other puts in this thread can
 * stage meanwhile.
 */
export class Staged {
  type: number = R.UNDEF;
  /** Payload bytes (UTF8: the most the string can take; the record gets the real size). */
  len = 0;
  num = 0;
  str = '';
  /** CODEC: a buffer that starts with the codec's `len` bytes (the encoder's scratch until detached). */
  bytes: Uint8Array | undefined = undefined;
  /** BLOCK: a Bytes block with the codec bytes; ITEM: the priority queue's item block. */
  block = 0;

  detach(): Staged {
    const copy = new Staged();
    copy.type = this.type;
    copy.len = this.len;
    copy.num = this.num;
    copy.str = this.str;
    copy.block = this.block;
    copy.bytes = this.bytes === undefined ? undefined : Uint8Array.prototype.slice.call(this.bytes, 0, this.len);
    this.clear();
    return copy;
  }

  clear(): void {
    this.bytes = undefined;
    this.str = '';
    this.block = 0;
  }
}

export const STAGE = new Staged();

const f64 = new Float64Array(1);
const f64i = new Int32Array(f64.buffer);

/** Node's Buffer has these (unlisted in its types): string coding without argument parsing. */
export interface FastBuffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  utf8Write(s: string, offset: number, length: number): number;
}

/** Prefixes a heap-exhaustion error with what the queue was doing; other errors pass unchanged. */
export function explainExhausted(error: unknown, what: string): unknown {
  if (!(error instanceof HeapExhaustedError)) return error;
  return new HeapExhaustedError(`${what}: ${error.message}`, { cause: error });
}

/**
 * Classifies `item` and fills `st`. Numbers, booleans, null, undefined and strings that fit
 * inline need no encoding; anything else goes through the codec (a TypeError naming the path
 * if it cannot be cloned) and, when large, into a Bytes block allocated here.
 */
export function stageItem(st: Staged, item: unknown, name: string, op: string, keepBytes = false, self = 0): Staged {
  switch (typeof item) {
    case 'number':
      st.num = item;
      if ((item | 0) === item && (item !== 0 || 1 / item > 0)) {
        st.type = R.INT;
        st.len = 4;
      } else {
        st.type = R.F64;
        st.len = 8;
      }
      return st;
    case 'string': {
      const n = item.length;
      if (n <= ASCII_MAX) {
        let i = 0;
        while (i < n && item.charCodeAt(i) < 0x80) i++;
        if (i === n) {
          st.type = R.ASCII;
          st.len = n;
          st.str = item;
          return st;
        }
      }
      // (A string with a lone surrogate, which UTF-8 cannot carry, goes through the codec.)
      if (n * 3 <= INLINE_MAX && item.isWellFormed()) {
        st.type = R.UTF8;
        st.len = n * 3;
        st.str = item;
        return st;
      }
      break;
    }
    case 'boolean':
      st.type = item ? R.TRUE : R.FALSE;
      st.len = 0;
      return st;
    case 'undefined':
      st.type = R.UNDEF;
      st.len = 0;
      return st;
    case 'object':
      if (item === null) {
        st.type = R.NULL;
        st.len = 0;
        return st;
      }
      break;
  }
  const bytes = encodeToScratch(item, 'item', self, `the ${name}`);
  const length = encodedLength();
  if (length <= INLINE_MAX || keepBytes) {
    st.type = R.CODEC;
    st.len = length;
    st.bytes = bytes;
    return st;
  }
  st.block = copyToBlock(bytes, length, name, op);
  st.type = R.BLOCK;
  st.len = 4;
  return st;
}

/** Copies the first `length` encoded bytes into a new Bytes block; on failure drops the handles inside them. */
function copyToBlock(bytes: Uint8Array, length: number, name: string, op: string): number {
  let block: number;
  try {
    const h = heap();
    block = h.alloc(length, Kind.Bytes);
    copyBytes(bytes, h.u8, block, length);
  } catch (error) {
    dropEncoded(bytes);
    throw explainExhausted(error, `${name}.${op}: an item of ${length} bytes (encoded) does not fit in the shared heap`);
  }
  return block;
}

/** Gives back what a staged item holds (references of handles inside, its block). */
export function unstage(st: Staged): void {
  const h = heap();
  if (st.type === R.CODEC && st.bytes !== undefined) {
    dropEncoded(st.bytes);
  } else if (st.type === R.BLOCK && st.block !== 0) {
    h.ensureMapped(st.block + 4);
    dropEncoded(h.buf, st.block);
    dropReference(st.block);
  } else if (st.type === R.ITEM && st.block !== 0) {
    dropItemBlock(st.block);
  }
  st.clear();
}

/** The priority queue registers how to drop one of its item blocks. */
let dropItemBlock: (block: number) => void = () => {};
export function setItemBlockDropper(fn: (block: number) => void): void {
  dropItemBlock = fn;
}

/** Writes a staged item's payload at byte `p`; returns the payload's real size in bytes. */
export function writePayload(h: Heap, st: Staged, p: number): number {
  switch (st.type) {
    case R.INT:
      h.i32[p >> 2] = st.num;
      return 4;
    case R.F64:
      f64[0] = st.num;
      h.i32[p >> 2] = f64i[0]!;
      h.i32[(p >> 2) + 1] = f64i[1]!;
      return 8;
    case R.ASCII: {
      const s = st.str;
      const n = s.length;
      const u8 = h.u8;
      for (let i = 0; i < n; i++) u8[p + i] = s.charCodeAt(i);
      return n;
    }
    case R.UTF8:
      return (h.buf as unknown as FastBuffer).utf8Write(st.str, p, st.len);
    case R.CODEC:
      copyBytes(st.bytes!, h.u8, p, st.len);
      return st.len;
    case R.BLOCK:
      h.i32[p >> 2] = st.block;
      return 4;
    default:
      return 0;
  }
}

// ---- reading records --------------------------------------------------------------------------------

/** `_take` results that need work after the lock is released. */
export const NONE: unique symbol = Symbol('none');
export const DECODE_SCRATCH: unique symbol = Symbol('decode scratch');
export const DECODE_BLOCK: unique symbol = Symbol('decode block');
export const DECODE_ITEM: unique symbol = Symbol('decode item');

/** Codec bytes copied out of the storage under the lock, decoded after it is released. */
const scratch = Buffer.allocUnsafeSlow(INLINE_MAX);
/** The same memory as Int32 words: records are 4-aligned, so the copy goes a word at a time. */
const scratch32 = new Int32Array(scratch.buffer, scratch.byteOffset, INLINE_MAX >> 2);
/** How many bytes of `scratch` the last DECODE_SCRATCH holds (to put them back if they fail to decode). */
let scratchLength = 0;
/** The block taken for DECODE_BLOCK / DECODE_ITEM. */
export let takenBlock = 0;
export function setTakenBlock(block: number): void {
  takenBlock = block;
}

/**
 * Reads the record payload at byte `p` (the caller holds the lock): the value itself for the
 * simple types; for CODEC a copy into the scratch buffer (decoded after the lock is released,
 * so a slow decode never holds other getters up); for BLOCK the block to decode.
 */
export function readPayload(h: Heap, type: number, len: number, p: number): unknown {
  switch (type) {
    case R.INT:
      return h.i32[p >> 2];
    case R.F64:
      f64i[0] = h.i32[p >> 2]!;
      f64i[1] = h.i32[(p >> 2) + 1]!;
      return f64[0];
    case R.ASCII:
      return len <= 24 ? shortAscii(h.u8, p, len) : (h.buf as unknown as FastBuffer).latin1Slice(p, p + len);
    case R.UTF8:
      return (h.buf as unknown as FastBuffer).utf8Slice(p, p + len);
    case R.CODEC: {
      const i32 = h.i32;
      const from = p >> 2;
      for (let i = 0, words = (len + 3) >> 2; i < words; i++) scratch32[i] = i32[from + i]!;
      scratchLength = len;
      return DECODE_SCRATCH;
    }
    case R.BLOCK:
      takenBlock = h.i32[p >> 2]!;
      return DECODE_BLOCK;
    case R.UNDEF:
      return undefined;
    case R.NULL:
      return null;
    case R.FALSE:
      return false;
    case R.TRUE:
      return true;
    default:
      throw new TypeError(`threadkit queue: corrupt record (type ${type} at byte ${p - 4})`);
  }
}

/**
 * A short ASCII string from bytes: String.fromCharCode with the codes as arguments is about
 * three times faster here than a concatenation loop or Buffer#latin1Slice (a native call).
 */
export function shortAscii(u8: Uint8Array, p: number, n: number): string {
  const c = String.fromCharCode;
  switch (n) {
    case 0:
      return '';
    case 1:
      return c(u8[p]!);
    case 2:
      return c(u8[p]!, u8[p + 1]!);
    case 3:
      return c(u8[p]!, u8[p + 1]!, u8[p + 2]!);
    case 4:
      return c(u8[p]!, u8[p + 1]!, u8[p + 2]!, u8[p + 3]!);
    case 5:
      return c(u8[p]!, u8[p + 1]!, u8[p + 2]!, u8[p + 3]!, u8[p + 4]!);
    case 6:
      return c(u8[p]!, u8[p + 1]!, u8[p + 2]!, u8[p + 3]!, u8[p + 4]!, u8[p + 5]!);
    case 7:
      return c(u8[p]!, u8[p + 1]!, u8[p + 2]!, u8[p + 3]!, u8[p + 4]!, u8[p + 5]!, u8[p + 6]!);
    case 8:
      return c(u8[p]!, u8[p + 1]!, u8[p + 2]!, u8[p + 3]!, u8[p + 4]!, u8[p + 5]!, u8[p + 6]!, u8[p + 7]!);
    default:
      return shortAscii(u8, p, 8) + shortAscii(u8, p + 8, n - 8);
  }
}

/**
 * Decodes a record payload that is no longer shared (an item block the caller took). If that
 * fails, the payload still owns what it holds (its handles, its Bytes block): the caller puts
 * it back.
 */
export function decodePrivate(h: Heap, type: number, len: number, p: number): unknown {
  if (type === R.CODEC) return decodeReceived(h.buf, p, true);
  const value = readPayload(h, type, len, p);
  return value === DECODE_BLOCK ? receiveBlock(h, takenBlock) : value;
}

/** Decodes a taken Bytes block and frees it; if the decode fails, the block is kept whole. */
function receiveBlock(h: Heap, block: number): unknown {
  // Another thread may have allocated the block after this one last mapped the heap.
  h.ensureMapped(h.topBytes());
  const value = decodeReceived(h.buf, block, true);
  dropReference(block);
  return value;
}

/** Drops what one stored record holds: the handles inside its codec bytes, its block. */
export function dropRecord(h: Heap, type: number, p: number): void {
  if (type === R.CODEC) {
    dropEncoded(h.buf, p);
  } else if (type === R.BLOCK) {
    const block = h.i32[p >> 2]!;
    h.ensureMapped(h.topBytes());
    dropEncoded(h.buf, block);
    dropReference(block);
  }
}

// ---- lock-and-counter words -----------------------------------------------------------------------

/**
 * Takes the lock of a lock-and-counter word; returns the word's value while held (count, WAIT
 * and the lock state). `guess` is the value this thread last released it with: when nobody
 * used the word since, one compareExchange does it. Contended: spin briefly, then sleep (the
 * mutex protocol of shm/mutex.ts on the whole word: a sleeper marks the word CONTENDED and
 * sleeps only while it still holds exactly that value; the holder's release sees CONTENDED and
 * notifies, and a release between the mark and the sleep changes the value: no sleep).
 */
export function lockCounted(i32: Int32Array, index: number, guess: number): number {
  // Taking a free lock wakes nobody and makes nobody sleep: no wake-up to lose here.
  const seen = Atomics.compareExchange(i32, index, guess, guess | HELD);
  if (seen === guess) return guess | HELD;
  if ((seen & 3) === 0 && Atomics.compareExchange(i32, index, seen, seen | HELD) === seen) return seen | HELD;
  return lockCountedSlow(i32, index);
}

function lockCountedSlow(i32: Int32Array, index: number): number {
  // Spin first (a holder on another core releases within ~100 ns): nothing sleeps yet.
  for (let spin = 0; spin < 100; spin++) {
    const v = Atomics.load(i32, index);
    if ((v & 3) === 0 && Atomics.compareExchange(i32, index, v, v | HELD) === v) return v | HELD;
  }
  for (;;) {
    const v = Atomics.load(i32, index);
    const state = v & 3;
    // Free: take it, as CONTENDED (others may sleep: our release must notify).
    if (state === 0) {
      if (Atomics.compareExchange(i32, index, v, v | CONTENDED) === v) return v | CONTENDED;
      continue;
    }
    // Mark CONTENDED, then sleep only while the word is exactly that: the holder's release
    // changes the word, and notifies because it sees CONTENDED.
    const marked = (v & -4) | CONTENDED;
    if (state === HELD && Atomics.compareExchange(i32, index, v, marked) !== v) continue;
    futexWait(i32, index, marked, Infinity);
  }
}

/** One attempt (for callers that must not block: async paths, a getter trying the put lock); -1 if held. */
export function tryLockCounted(i32: Int32Array, index: number, guess: number): number {
  // Never sleeps: no wake-up to lose.
  const seen = Atomics.compareExchange(i32, index, guess, guess | HELD);
  if (seen === guess) return guess | HELD;
  if ((seen & 3) === 0 && Atomics.compareExchange(i32, index, seen, seen | HELD) === seen) return seen | HELD;
  return -1;
}

/** The Promise twin of lockCountedSlow (same protocol, waiting with futexWaitAsync). */
export async function lockCountedAsync(i32: Int32Array, index: number): Promise<number> {
  for (;;) {
    const v = Atomics.load(i32, index);
    const state = v & 3;
    if (state === 0) {
      if (Atomics.compareExchange(i32, index, v, v | CONTENDED) === v) return v | CONTENDED;
      continue;
    }
    // As lockCountedSlow: mark CONTENDED, sleep only while the word is exactly that.
    const marked = (v & -4) | CONTENDED;
    if (state === HELD && Atomics.compareExchange(i32, index, v, marked) !== v) continue;
    await futexWaitAsync(i32, index, marked, Infinity);
  }
}

/**
 * Releases a word held as `held`, writing the count `next` (no WAIT, lock free): this publishes
 * the new count. When we took the lock as plain HELD (not CONTENDED: a lock taken in the slow
 * path may have sleepers to wake) with WAIT clear, and nobody touched the word since, one
 * compareExchange does it, and proves that no sleeper of the other end had set WAIT before it:
 * a sleeper sets WAIT after
 * registering and before its last check, so a sleeper that sets it later finds our item in that
 * check. Otherwise (WAIT set, or CONTENDED) `releaseSlow`.
 */
export function releasePublish(i32: Int32Array, index: number, held: number, next: number, waiters: number, seq: number): void {
  // The compareExchange fails if anyone marked the word (WAIT, CONTENDED) since we took it.
  if ((held & (WAIT | 3)) !== HELD || Atomics.compareExchange(i32, index, held, next) !== held) releaseSlow(i32, index, next, waiters, seq, true);
}

/**
 * Publishes a new count on a word that is not locked (the get word of one-lock queues, whose
 * lock is the put word): `seen` is its value as read under that lock. Same wake rule as
 * releasePublish; only WAIT (set by a putter without the lock) can have changed it.
 */
export function publishCount(i32: Int32Array, index: number, seen: number, next: number, waiters: number, seq: number): void {
  // The compareExchange fails if a sleeper set WAIT since we read the word.
  if ((seen & WAIT) !== 0 || Atomics.compareExchange(i32, index, seen, next) !== seen) releaseSlow(i32, index, next, waiters, seq, true);
}

/** Releases a word held as `held` without publishing: count and WAIT stay, the lock is freed. */
export function releaseKeep(i32: Int32Array, index: number, held: number): void {
  // As releasePublish: a lock taken as CONTENDED, or a word marked since, goes the slow way.
  if ((held & 3) !== HELD || Atomics.compareExchange(i32, index, held, held & -4) !== held) releaseSlow(i32, index, 0, 0, 0, false);
}

/**
 * The release when the word changed while held. Publishing with WAIT set: wake one sleeper (bump
 * its futex word, then notify one) and keep WAIT in the new value while more than one is
 * registered, so the next publish wakes the next one; a sleeper that registers after our read of
 * the waiter count sets WAIT itself, which makes our compareExchange fail and retry. Not
 * publishing: only the lock bits change. CONTENDED: wake one thread waiting for the lock.
 */
function releaseSlow(i32: Int32Array, index: number, next: number, waiters: number, seq: number, publish: boolean): void {
  for (;;) {
    // The value we replace tells who may sleep; the compareExchange makes it the one replaced.
    const v = Atomics.load(i32, index);
    let value: number;
    if (!publish) value = v & -4;
    else value = next | ((v & WAIT) !== 0 && Atomics.load(i32, waiters) > 1 ? WAIT : 0);
    if (Atomics.compareExchange(i32, index, v, value) !== v) continue;
    // The word changed before these notifies: a lock sleeper wakes or finds it changed.
    if ((v & 3) === CONTENDED) Atomics.notify(i32, index, 1);
    if (publish && (v & WAIT) !== 0) {
      // Bump first: a sleeper between its read of `seq` and its sleep does not sleep.
      Atomics.add(i32, seq, 1);
      Atomics.notify(i32, seq, 1);
    }
    return;
  }
}

/**
 * A sleeper's announcement on the other end's word (after registering in its waiter count and
 * reading its futex word, before its last check of the condition): the next publishing release
 * of that word takes the slow path and wakes it.
 */
export function setWait(i32: Int32Array, index: number): void {
  for (;;) {
    // Set (or find set) WAIT; a release that replaced the word before this sees no WAIT, but
    // then our re-check, which comes after, sees what that release published.
    const v = Atomics.load(i32, index);
    if ((v & WAIT) !== 0 || Atomics.compareExchange(i32, index, v, v | WAIT) === v) return;
  }
}

/** Runs `fn` with the put lock of queue block `base` held (rare writes that putters read under it). */
export function withPutLock(i32: Int32Array, base: number, fn: () => void): void {
  const held = lockCounted(i32, base + PUT_WORD, 0);
  try {
    fn();
  } finally {
    releaseKeep(i32, base + PUT_WORD, held);
  }
}

// ---- options ----------------------------------------------------------------------------------------

export interface QueueOptions {
  /** When false, fail at once (QueueFull / QueueEmpty) instead of waiting. @default true */
  block?: boolean;
  /** Wait at most this many milliseconds, then fail. `undefined` waits forever. */
  timeout?: number;
}

export interface QueueAsyncOptions extends QueueOptions {
  /** Aborting rejects the Promise with `signal.reason`; the queue is left as it was. */
  signal?: AbortSignal;
}

export interface QueueJoinOptions {
  /** Wait at most this many milliseconds (the Promise then resolves to false). */
  timeout?: number;
  signal?: AbortSignal;
}

/** Parsed options (module-level, so that parsing allocates nothing). */
let optBlock = true;
let optTimeout: number | undefined;

/** Parses `{ block, timeout }` into optBlock / optTimeout; `name.op` names the call in errors. */
function parseOptions(options: QueueOptions | undefined, name: string, op: string): void {
  if (options === undefined) {
    optBlock = true;
    optTimeout = undefined;
    return;
  }
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${name}.${op}: expected an options object such as { block: false } or { timeout: 500 }, got ${describe(options)}`);
  }
  // Both read (a getter may run user code that puts to a queue, and parses options of its
  // own) before either module slot is written; the caller copies them out at once.
  const block = options.block;
  const timeout = options.timeout;
  if (block !== undefined && typeof block !== 'boolean') throw new TypeError(`${name}.${op}: block must be a boolean, got ${describe(block)}`);
  if (timeout !== undefined && timeout !== null) {
    if (typeof timeout !== 'number' || Number.isNaN(timeout)) throw new TypeError(`${name}.${op}: timeout must be a number of milliseconds, got ${describe(timeout)}`);
    if (timeout > TIMEOUT_MAX && timeout !== Infinity) throw new RangeError(`${name}.${op}: timeout ${timeout} is larger than TIMEOUT_MAX (${TIMEOUT_MAX} ms)`);
  }
  optBlock = block ?? true;
  optTimeout = timeout ?? undefined;
}

function negativeTimeout(name: string, op: string): RangeError {
  return new RangeError(`${name}.${op}: 'timeout' must be a non-negative number`);
}

/** Checks a maxsize; returns what is stored (an int32; <= 0 means unbounded). */
export function checkMaxsize(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new TypeError(`${what}: maxsize must be a number, got ${describe(value)}`);
  if (Number.isNaN(value)) throw new RangeError(`${what}: maxsize must be a number, got NaN`);
  if (value === Infinity) return 0;
  // A fractional bound behaves as in Python: full when qsize >= maxsize.
  return Math.max(-0x80000000, Math.min(0x7fffffff, Math.ceil(value)));
}

// ---- the core class --------------------------------------------------------------------------------

const PUT_OK = 0;
const PUT_SHUT = 1;
const PUT_FULL = 2;

/**
 * What every queue class is made of. The public methods here are the ones all four share;
 * Queue adds maxsize, full, taskDone, join and unfinishedTasks.
 * @internal
 */
export abstract class QueueCore<T = unknown> extends SharedObject {
  /** @internal Int32 slot of the block's first field. */
  readonly _base: number;
  /** @internal LIFO and priority: the put word's lock guards both ends. */
  readonly _oneLock: boolean;
  /** @internal the value this thread last released the put / get word with (its CAS guess). */
  _putGuess = 0;
  _getGuess = 0;
  /** @internal a recent put word, for taskDone's "too many times" check. */
  _putSeen = 0;

  protected constructor(flavor: Flavor, maxsize: number) {
    super(Kind.Queue, QUEUE_BLOCK_BYTES);
    this._base = this._offset >> 2;
    this._oneLock = flavor === Flavor.Lifo || flavor === Flavor.Priority;
    if (this._fresh) {
      const i32 = this._heap.i32;
      i32[this._base + FLAVOR] = flavor;
      i32[this._base + MAXSIZE] = maxsize;
    }
  }

  /** @internal class name for messages and toString. */
  abstract get _name(): string;

  // ---- storage hooks (the FIFO ring here; LifoQueue and PriorityQueue override) ---------------------

  /** @internal Stages an item for `_insert` (the priority queue builds its item block here). */
  _stage(st: Staged, item: unknown, op: string): Staged {
    return stageItem(st, item, this._name, op, false, this._offset);
  }

  /**
   * @internal Writes the staged item into the storage. The caller holds the put lock and has
   * checked that the queue is open and not full; it publishes the item afterwards. May throw
   * (heap exhausted; priority TypeError) leaving the storage as it was.
   */
  _insert(st: Staged): void {
    const h = this._heap;
    const b = this._base;
    const need = 4 + round4(st.len);
    let i32 = h.i32;
    let cap = i32[b + CAP]!;
    let tail = i32[b + TAIL]!;
    let idx = tail & (cap - 1);
    let room = cap - idx;
    let total = need <= room ? need : room + need;
    if (cap === 0 || ((tail - i32[b + HEAD_CACHE]!) | 0) + total > cap) {
      // HEAD_PUB is stored by a getter after it has read the bytes it frees: they are ours now.
      const head = Atomics.load(i32, b + HEAD_PUB);
      i32[b + HEAD_CACHE] = head;
      if (cap === 0 || ((tail - head) | 0) + total > cap) {
        this._makeRoom(need);
        i32 = h.i32;
        cap = i32[b + CAP]!;
        tail = i32[b + TAIL]!;
        idx = tail & (cap - 1);
        room = cap - idx;
        total = need <= room ? need : room + need;
      }
    }
    const store = i32[b + STORE]!;
    h.ensureMapped(store + cap);
    if (need > room) {
      h.i32[(store + idx) >> 2] = R.PAD;
      idx = 0;
    }
    const p = store + idx;
    const len = writePayload(h, st, p + 4);
    h.i32[p >> 2] = st.type | (len << 4);
    // TAIL is ours (put lock); the record becomes visible when the put word is released.
    h.i32[b + TAIL] = (tail + total - need + 4 + round4(len)) | 0;
  }

  /**
   * @internal Takes the oldest item; the caller holds the get lock and has seen one there.
   * Returns the value, or a DECODE_* marker for work to do once the lock is released.
   */
  _take(): unknown {
    const h = this._heap;
    const b = this._base;
    const store = h.i32[b + STORE]!;
    const cap = h.i32[b + CAP]!;
    h.ensureMapped(store + cap);
    const i32 = h.i32;
    let head = i32[b + HEAD]!;
    let idx = head & (cap - 1);
    let header = i32[(store + idx) >> 2]!;
    if ((header & 15) === R.PAD) {
      head = (head + cap - idx) | 0;
      idx = 0;
      header = i32[store >> 2]!;
    }
    const len = header >>> 4;
    const value = readPayload(h, header & 15, len, store + idx + 4);
    head = (head + 4 + round4(len)) | 0;
    i32[b + HEAD] = head;
    if (((head - i32[b + HEAD_SHOWN]!) | 0) >= cap >> 2) {
      i32[b + HEAD_SHOWN] = head;
      // After the reads above: the bytes before `head` are free for the putters from here on.
      Atomics.store(i32, b + HEAD_PUB, head);
    }
    return value;
  }

  /**
   * A put found no room by HEAD_PUB: look at the real HEAD (under the get lock, taken after the
   * put lock: the one lock order) and either publish it, if that is room enough, or move the
   * records to a ring twice as large (or larger), compacted to start at 0.
   */
  private _makeRoom(need: number): void {
    const h = this._heap;
    const b = this._base;
    const getHeld = lockCounted(h.i32, b + GET_WORD, this._getGuess);
    try {
      let i32 = h.i32;
      const oldStore = i32[b + STORE]!;
      const oldCap = i32[b + CAP]!;
      const head = i32[b + HEAD]!;
      const tail = i32[b + TAIL]!;
      const used = (tail - head) | 0;
      if (oldCap !== 0) {
        const room = oldCap - (tail & (oldCap - 1));
        if (used + (need <= room ? need : room + need) <= oldCap) {
          i32[b + HEAD_CACHE] = head;
          i32[b + HEAD_SHOWN] = head;
          Atomics.store(i32, b + HEAD_PUB, head);
          return;
        }
      }
      const cap = Math.max(FIRST_RING, nextPow2(used + need), oldCap * 2);
      let store: number;
      try {
        store = h.alloc(cap, Kind.Bytes);
      } catch (error) {
        throw explainExhausted(error, `${this._name}.put: the queue's storage cannot grow to ${cap} bytes`);
      }
      h.ensureMapped(oldStore + oldCap);
      i32 = h.i32;
      // Copy the live records in order, leaving PAD records behind: the new ring starts at 0.
      let at = 0;
      for (let pos = head; pos !== tail; ) {
        const idx = pos & (oldCap - 1);
        const header = i32[(oldStore + idx) >> 2]!;
        if ((header & 15) === R.PAD) {
          pos = (pos + oldCap - idx) | 0;
          continue;
        }
        const size = 4 + round4(header >>> 4);
        h.u8.copyWithin(store + at, oldStore + idx, oldStore + idx + size);
        at += size;
        pos = (pos + size) | 0;
      }
      i32[b + STORE] = store;
      i32[b + CAP] = cap;
      i32[b + TAIL] = at;
      i32[b + HEAD] = 0;
      i32[b + HEAD_SHOWN] = 0;
      i32[b + HEAD_CACHE] = 0;
      // Putters read HEAD_PUB under the put lock we hold; getters do not read it.
      Atomics.store(i32, b + HEAD_PUB, 0);
      if (oldStore !== 0) dropReference(oldStore);
    } finally {
      releaseKeep(h.i32, b + GET_WORD, getHeld);
    }
  }

  /** @internal Forgets the storage (both ends locked; the queue is empty or was drained). */
  _resetStorage(i32: Int32Array): void {
    const b = this._base;
    i32[b + STORE] = 0;
    i32[b + CAP] = 0;
    i32[b + TAIL] = 0;
    i32[b + HEAD_CACHE] = 0;
    i32[b + HEAD] = 0;
    i32[b + HEAD_SHOWN] = 0;
    // Putters read it under the put lock, which the caller holds.
    Atomics.store(i32, b + HEAD_PUB, 0);
  }

  /**
   * @internal Detaches the storage and everything in it (both ends locked). Returns what
   * `_dropDetached` needs to drop the items once the locks are released.
   */
  _detachAll(i32: Int32Array): number[] {
    const b = this._base;
    const detached = [i32[b + STORE]!, i32[b + CAP]!, i32[b + HEAD]!, itemsBetween(i32[b + PUT_WORD]!, i32[b + GET_WORD]!)];
    this._resetStorage(i32);
    return detached;
  }

  /** @internal Drops items detached by `_detachAll`, then their storage. */
  _dropDetached(detached: number[]): void {
    drainFifo(this._heap, detached[0]!, detached[1]!, detached[2]!, detached[3]!);
  }

  /**
   * A get emptied a queue whose storage is larger than SHRINK_ABOVE: give the storage back. The
   * caller holds the get lock (for one-lock queues, the put lock: `putWord` is its value); the
   * put lock comes first in the lock order, so a FIFO getter only tries it.
   */
  private _maybeShrink(nextGot: number, putWord: number): void {
    const h = this._heap;
    const b = this._base;
    let held = putWord;
    if (held < 0) {
      held = tryLockCounted(h.i32, b + PUT_WORD, this._putGuess);
      if (held < 0) return;
    }
    try {
      // No put is half done (we hold its lock): equal counts mean an empty queue.
      if (itemsBetween(held, nextGot) !== 0) return;
      const store = h.i32[b + STORE]!;
      this._resetStorage(h.i32);
      if (store !== 0) dropReference(store);
    } finally {
      if (putWord < 0) releaseKeep(h.i32, b + PUT_WORD, held);
    }
  }

  // ---- put ------------------------------------------------------------------------------------------

  /**
   * Puts `item` at the tail of the queue. Blocks while the queue is full (never for an unbounded
   * queue), at most `timeout` ms; with `block: false` fails at once.
   * @throws QueueFull when there was no free slot in time; QueueShutDown after `shutdown()`;
   *   TypeError when the item cannot be sent to another thread (the path is named);
   *   HeapExhaustedError when it does not fit in the shared heap; RangeError for a negative
   *   timeout (on a bounded queue, as CPython).
   */
  put(item: T, options?: QueueOptions): void {
    if (options === undefined) {
      const st = this._stage(STAGE, item, 'put');
      if (this._putOnce(st) !== PUT_OK) this._putWait(st, true, undefined, 'put');
      return;
    }
    // The options before the item is staged (as putAsync): a getter in them that puts on a
    // queue uses STAGE and the option words itself.
    parseOptions(options, this._name, 'put');
    const block = optBlock;
    const timeout = optTimeout;
    // CPython checks a negative timeout of a blocking put on a bounded queue before it looks
    // for room (after the shutdown check).
    if (block && timeout !== undefined && timeout < 0 && this._bounded()) {
      if (this.isShutdown) throw new QueueShutDown();
      throw negativeTimeout(this._name, 'put');
    }
    this._putWait(this._stage(STAGE, item, 'put'), block, timeout, 'put');
  }

  /** `put(item, { block: false })`. @throws QueueFull when full; QueueShutDown after shutdown. */
  putNowait(item: T): void {
    const st = this._stage(STAGE, item, 'putNowait');
    const status = this._putOnce(st);
    if (status === PUT_OK) return;
    unstage(st);
    throw status === PUT_SHUT ? new QueueShutDown() : new QueueFull();
  }

  /** @internal Whether the queue has a bound (puts may wait). */
  protected _bounded(): boolean {
    // An instant's answer for argument checks; nothing waits on it.
    return Atomics.load(this._heap.i32, this._base + MAXSIZE) > 0;
  }

  /** Attempts until the put succeeds, fails (non-blocking, shut down) or times out. */
  private _putWait(st: Staged, block: boolean, timeout: number | undefined, op: string): void {
    let deadline = NaN;
    for (;;) {
      const status = this._putOnce(st);
      if (status === PUT_OK) return;
      if (status === PUT_SHUT) {
        unstage(st);
        throw new QueueShutDown();
      }
      if (!block) {
        unstage(st);
        throw new QueueFull();
      }
      if (timeout !== undefined && timeout < 0) {
        unstage(st);
        throw negativeTimeout(this._name, op);
      }
      if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
      if (!this._waitNotFull(deadline)) {
        const last = this._putOnce(st);
        if (last === PUT_OK) return;
        unstage(st);
        throw last === PUT_SHUT ? new QueueShutDown() : new QueueFull();
      }
    }
  }

  /** One attempt: take the put lock, then `_putLocked`. */
  private _putOnce(st: Staged): number {
    return this._putLocked(st, lockCounted(this._heap.i32, this._base + PUT_WORD, this._putGuess));
  }

  /**
   * With the put lock held (`word`): check state and room, write, publish, wake a getter.
   * Always releases the lock. Returns PUT_*; on a throw the item is unstaged.
   */
  private _putLocked(st: Staged, word: number): number {
    const h = this._heap;
    const i32 = h.i32;
    const b = this._base;
    const put = word & -8;
    // STATE and MAXSIZE are written under the put lock, which we hold (plain reads suffice: the
    // lock's compareExchange ordered us after the writer's release); no put follows a shutdown.
    if (i32[b + STATE] !== 0) {
      this._putGuess = word & -4;
      releaseKeep(i32, b + PUT_WORD, word);
      return PUT_SHUT;
    }
    const max = i32[b + MAXSIZE]!;
    if (max > 0 && itemsBetween(put, i32[b + GET_CACHE]!) >= max) {
      // The get word is released after the getter has read its record: the slot is free.
      const got = Atomics.load(i32, b + GET_WORD);
      i32[b + GET_CACHE] = got;
      if (itemsBetween(put, got) >= max) {
        this._putGuess = word & -4;
        releaseKeep(i32, b + PUT_WORD, word);
        return PUT_FULL;
      }
    }
    try {
      this._insert(st);
    } catch (error) {
      this._putGuess = word & -4;
      releaseKeep(h.i32, b + PUT_WORD, word);
      unstage(st);
      throw error;
    }
    const next = (put + ONE) | 0;
    this._putGuess = next;
    // Releasing publishes the item (a getter that reads the new count sees the record) and
    // wakes a sleeping getter if one announced itself (releasePublish).
    releasePublish(h.i32, b + PUT_WORD, word, next, b + GET_WAITERS, b + NOT_EMPTY_SEQ);
    st.clear();
    return PUT_OK;
  }

  /** Sleeps until a slot may be free (or the queue is shut down); false once `deadline` passed. */
  private _waitNotFull(deadline: number): boolean {
    const i32 = this._heap.i32;
    const b = this._base;
    if (this._spinFor(false, deadline)) return true;
    // Register, read the futex word, announce WAIT on the get word, re-check, sleep only on the
    // value read: a getter that frees a slot after the announcement wakes us (releasePublish);
    // one that freed it before, the re-check sees.
    Atomics.add(i32, b + PUT_WAITERS, 1);
    try {
      for (;;) {
        // Read the futex word before the re-check (and again after every wake).
        const seq = Atomics.load(i32, b + NOT_FULL_SEQ);
        setWait(i32, b + GET_WORD);
        if (!this._isFull() || Atomics.load(i32, b + STATE) !== 0) return true;
        if (futexWait(i32, b + NOT_FULL_SEQ, seq, deadline) === 'timed-out') return false;
      }
    } finally {
      // Deregistering late costs at most one needless wake (the woken thread re-checks).
      Atomics.sub(i32, b + PUT_WAITERS, 1);
    }
  }

  /**
   * Re-reads the words for a few µs before registering to sleep: when the other end is busy,
   * the item (or slot) usually comes sooner than a futex wake-up would, and a waiter that has
   * not registered costs the other end no notify. True when the condition may now hold.
   */
  private _spinFor(empty: boolean, deadline: number): boolean {
    const i32 = this._heap.i32;
    const b = this._base;
    const until = performance.now() + SPIN_MICROS / 1000;
    if (until > deadline) return false;
    // One look per clock read (~30 ns apart): looking in a tight loop would take the line the
    // other end is about to write away from it between its lock and its release.
    do {
      // Only reads: this thread is not registered and sleeps nowhere, so no wake is owed to it.
      if ((empty ? this._available() : !this._isFull()) || Atomics.load(i32, b + STATE) !== 0) return true;
    } while (performance.now() < until);
    return false;
  }

  /** An instant's answer: is there an item? (The get word first: see qsize.) */
  private _available(): boolean {
    const i32 = this._heap.i32;
    // Instant reads, done after registering (or while spinning unregistered): see _waitNotEmpty.
    const got = Atomics.load(i32, this._base + GET_WORD);
    return itemsBetween(Atomics.load(i32, this._base + PUT_WORD), got) > 0;
  }

  private _isFull(): boolean {
    // Instant reads, done after registering (or while spinning unregistered): see _waitNotFull.
    const max = Atomics.load(this._heap.i32, this._base + MAXSIZE);
    return max > 0 && this.qsize() >= max;
  }

  // ---- get ------------------------------------------------------------------------------------------

  /**
   * Removes and returns the next item. Blocks while the queue is empty, at most `timeout` ms;
   * with `block: false` fails at once. After `shutdown()` it still returns the items left, then
   * throws QueueShutDown.
   * @throws QueueEmpty when no item came in time; QueueShutDown when shut down and empty;
   *   RangeError for a negative timeout.
   */
  get(options?: QueueOptions): T {
    if (options === undefined) {
      const value = this._getOnce();
      if (value !== NONE) return this._finish(value) as T;
      return this._getWait(true, undefined, 'get');
    }
    parseOptions(options, this._name, 'get');
    const block = optBlock;
    const timeout = optTimeout;
    return this._getWait(block, timeout, 'get');
  }

  /** `get({ block: false })`. @throws QueueEmpty when empty; QueueShutDown when shut down and empty. */
  getNowait(): T {
    let value = this._getOnce();
    if (value === NONE) value = this._shutOrNone();
    if (value !== NONE) return this._finish(value) as T;
    throw new QueueEmpty();
  }

  /**
   * After an attempt found the queue empty: if it is shut down, one more attempt (a put that
   * finished before the shutdown may have come after our attempt; none can come after the
   * shutdown) and QueueShutDown if that finds nothing either. Else NONE.
   */
  private _shutOrNone(): unknown {
    if (!this.isShutdown) return NONE;
    const value = this._getOnce();
    if (value !== NONE) return value;
    throw new QueueShutDown();
  }

  /** Attempts until an item comes, or failure (non-blocking, shut down and empty, timeout). */
  private _getWait(block: boolean, timeout: number | undefined, op: string): T {
    if (block && timeout !== undefined && timeout < 0) {
      if (this.isShutdown && !this._available()) throw new QueueShutDown();
      throw negativeTimeout(this._name, op);
    }
    let deadline = NaN;
    for (;;) {
      let value = this._getOnce();
      if (value === NONE) value = this._shutOrNone();
      if (value !== NONE) return this._finish(value) as T;
      if (!block) throw new QueueEmpty();
      if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
      if (!this._waitNotEmpty(deadline)) {
        let last = this._getOnce();
        if (last === NONE) last = this._shutOrNone();
        if (last !== NONE) return this._finish(last) as T;
        throw new QueueEmpty();
      }
    }
  }

  /** One attempt: take the get lock (the put lock for one-lock queues), then `_getLocked`. */
  private _getOnce(): unknown {
    const i32 = this._heap.i32;
    const b = this._base;
    if (this._oneLock) return this._getLocked(lockCounted(i32, b + PUT_WORD, this._putGuess));
    return this._getLocked(lockCounted(i32, b + GET_WORD, this._getGuess));
  }

  /**
   * With the get lock held (`word`: the get word's value, or the put word's for one-lock
   * queues): take an item if there is one, publish, wake a putter. Always releases the lock.
   */
  private _getLocked(word: number): unknown {
    const h = this._heap;
    let i32 = h.i32;
    const b = this._base;
    const oneLock = this._oneLock;
    const lockWord = oneLock ? b + PUT_WORD : b + GET_WORD;
    // One-lock queues: putters may set WAIT on the get word without the lock, hence the atomic read.
    const getWord = oneLock ? Atomics.load(i32, b + GET_WORD) : word;
    const got = getWord & -8;
    let left: number;
    if (oneLock) {
      left = itemsBetween(word, got);
    } else {
      left = itemsBetween(i32[b + PUT_CACHE]!, got);
      if (left <= 0) {
        // The put word is released after the record is written: reading it makes it visible.
        const put = Atomics.load(i32, b + PUT_WORD);
        i32[b + PUT_CACHE] = put;
        left = itemsBetween(put, got);
      }
    }
    if (left <= 0) {
      if (oneLock) this._putGuess = word & -4;
      else this._getGuess = word & -4;
      releaseKeep(i32, lockWord, word);
      return NONE;
    }
    const value = this._take();
    i32 = h.i32;
    const next = (got + ONE) | 0;
    if (left === 1 && i32[b + CAP]! > SHRINK_ABOVE) this._maybeShrink(next, oneLock ? word : -1);
    i32 = h.i32;
    // Publishing the new get count frees a slot and wakes a putter that announced itself.
    if (oneLock) {
      publishCount(i32, b + GET_WORD, getWord, next, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      this._putGuess = word & -4;
      releaseKeep(i32, lockWord, word);
    } else {
      releasePublish(i32, b + GET_WORD, word, next, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      this._getGuess = next;
    }
    return value;
  }

  /**
   * Turns a `_take` marker into the item (decoding happens with no lock held). An item that
   * fails to decode here is put back (`_putBack`) and the get throws.
   */
  private _finish(value: unknown): unknown {
    if (typeof value !== 'symbol') return value;
    if (value === DECODE_SCRATCH) return this._receiveScratch(scratchLength);
    if (value === DECODE_BLOCK) return this._receiveBlock(takenBlock);
    if (value === DECODE_ITEM) return this._decodeItem(takenBlock);
    return value;
  }

  private _receiveScratch(length: number): unknown {
    try {
      return decodeReceived(scratch, 0, true);
    } catch (error) {
      const st = new Staged();
      st.type = R.CODEC;
      st.len = length;
      st.bytes = Uint8Array.prototype.slice.call(scratch, 0, length);
      throw this._putBack(st, error);
    }
  }

  private _receiveBlock(block: number): unknown {
    try {
      return receiveBlock(this._heap, block);
    } catch (error) {
      const st = new Staged();
      st.type = R.BLOCK;
      st.len = 4;
      st.block = block;
      throw this._putBack(st, error);
    }
  }

  /**
   * @internal A got item failed to decode in this thread: it goes back into the queue (a FIFO
   * queue's tail, a LIFO queue's top, its place by priority), so nothing is lost, and the
   * error for the get to throw is returned. It ignores maxsize and shutdown (the item was in
   * the queue already) and is not counted as a new unfinished task.
   */
  _putBack(st: Staged, error: unknown): Error {
    const why = error instanceof Error ? error.message : String(error);
    const h = this._heap;
    const b = this._base;
    const word = lockCounted(h.i32, b + PUT_WORD, this._putGuess);
    try {
      this._insert(st);
    } catch (insertError) {
      this._putGuess = word & -4;
      releaseKeep(h.i32, b + PUT_WORD, word);
      unstage(st);
      return new HeapExhaustedError(`${this._name}.get: an item could not be decoded in this thread (${why}), and the shared heap had no room to put it back: it is lost`, { cause: insertError });
    }
    const next = ((word & -8) + ONE) | 0;
    this._putGuess = next;
    // As a put: releasing publishes the item and wakes a getter that announced itself.
    releasePublish(h.i32, b + PUT_WORD, word, next, b + GET_WAITERS, b + NOT_EMPTY_SEQ);
    // The put above counted the item's task a second time: count one done. After the put, so
    // that unfinishedTasks never dips to 0 on the way (joiners need no wake-up: it stays > 0).
    Atomics.add(h.i32, b + DONE_WORD, ONE);
    const where = this._oneLock ? '' : ' (at its tail)';
    const Kind = error instanceof RangeError ? RangeError : TypeError;
    return new Kind(`${this._name}.get: the item could not be decoded in this thread; it is back in the queue${where}: ${why}`, { cause: error });
  }

  /** @internal PriorityQueue: decode and free a taken item block. */
  _decodeItem(_block: number): unknown {
    return undefined;
  }

  /** Sleeps until an item may be there (or the queue is shut down); false once `deadline` passed. */
  private _waitNotEmpty(deadline: number): boolean {
    const i32 = this._heap.i32;
    const b = this._base;
    if (this._spinFor(true, deadline)) return true;
    // Register, read the futex word, announce WAIT on the put word, re-check, sleep only on the
    // value read (header comment).
    Atomics.add(i32, b + GET_WAITERS, 1);
    try {
      for (;;) {
        // Read the futex word before the re-check (and again after every wake).
        const seq = Atomics.load(i32, b + NOT_EMPTY_SEQ);
        setWait(i32, b + PUT_WORD);
        if (this._available() || Atomics.load(i32, b + STATE) !== 0) return true;
        if (futexWait(i32, b + NOT_EMPTY_SEQ, seq, deadline) === 'timed-out') return false;
      }
    } finally {
      // Deregistering late costs at most one needless wake (the woken thread re-checks).
      Atomics.sub(i32, b + GET_WAITERS, 1);
    }
  }

  // ---- async twins --------------------------------------------------------------------------------

  /**
   * The Promise twin of `put`: waits for a free slot without blocking the event loop.
   * Rejects as `put` throws, or with `signal.reason` on abort (the item is then not put).
   */
  async putAsync(item: T, options?: QueueAsyncOptions): Promise<void> {
    parseOptions(options, this._name, 'putAsync');
    const block = optBlock;
    const timeout = optTimeout;
    const signal = options?.signal;
    signal?.throwIfAborted();
    if (block && timeout !== undefined && timeout < 0 && this._bounded()) {
      if (this.isShutdown) throw new QueueShutDown();
      throw negativeTimeout(this._name, 'putAsync');
    }
    let st = this._stage(STAGE, item, 'putAsync');
    const h = this._heap;
    const b = this._base;
    let deadline = NaN;
    try {
      for (;;) {
        let word = tryLockCounted(h.i32, b + PUT_WORD, this._putGuess);
        if (word < 0) {
          if (st === STAGE) st = st.detach();
          // Never hold an internal lock across an await: wait for it, then finish synchronously.
          word = await lockCountedAsync(h.i32, b + PUT_WORD);
        }
        const status = this._putLocked(st, word);
        if (status === PUT_OK) return;
        if (status === PUT_SHUT) throw new QueueShutDown();
        if (!block) throw new QueueFull();
        if (timeout !== undefined && timeout < 0) throw negativeTimeout(this._name, 'putAsync');
        if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
        if (st === STAGE) st = st.detach();
        if (!(await this._waitAsync(PUT_WAITERS, NOT_FULL_SEQ, false, deadline, signal))) {
          const last = this._putOnce(st);
          if (last === PUT_OK) return;
          throw last === PUT_SHUT ? new QueueShutDown() : new QueueFull();
        }
      }
    } catch (error) {
      unstage(st);
      throw error;
    }
  }

  /**
   * The Promise twin of `get`: waits for an item without blocking the event loop.
   * Rejects as `get` throws, or with `signal.reason` on abort (no item is taken).
   */
  async getAsync(options?: QueueAsyncOptions): Promise<T> {
    parseOptions(options, this._name, 'getAsync');
    const block = optBlock;
    const timeout = optTimeout;
    const signal = options?.signal;
    signal?.throwIfAborted();
    if (block && timeout !== undefined && timeout < 0) {
      if (this.isShutdown && !this._available()) throw new QueueShutDown();
      throw negativeTimeout(this._name, 'getAsync');
    }
    const h = this._heap;
    const lockWord = this._base + (this._oneLock ? PUT_WORD : GET_WORD);
    let deadline = NaN;
    for (;;) {
      let word = tryLockCounted(h.i32, lockWord, this._oneLock ? this._putGuess : this._getGuess);
      // Never hold an internal lock across an await: wait for it, then finish synchronously.
      if (word < 0) word = await lockCountedAsync(h.i32, lockWord);
      let value = this._getLocked(word);
      if (value === NONE) value = this._shutOrNone();
      if (value !== NONE) return this._finish(value) as T;
      if (!block) throw new QueueEmpty();
      if (Number.isNaN(deadline)) deadline = deadlineAfter(timeout ?? Infinity);
      if (!(await this._waitAsync(GET_WAITERS, NOT_EMPTY_SEQ, true, deadline, signal))) {
        let last = this._getOnce();
        if (last === NONE) last = this._shutOrNone();
        if (last !== NONE) return this._finish(last) as T;
        throw new QueueEmpty();
      }
    }
  }

  /** The async sleep of getters (`empty`) and putters, with the sync sleep's registration rule. */
  private async _waitAsync(waiters: number, word: number, empty: boolean, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
    const i32 = this._heap.i32;
    const b = this._base;
    // Register, read the futex word, announce WAIT, re-check, sleep only on the value read. An
    // abort wakes every sleeper on the word (futexWaitAsync): it never swallows a wake.
    Atomics.add(i32, b + waiters, 1);
    try {
      for (;;) {
        // Read the futex word before the re-check (and again after every wake).
        const seq = Atomics.load(i32, b + word);
        setWait(i32, b + (empty ? PUT_WORD : GET_WORD));
        if ((empty ? this._available() : !this._isFull()) || Atomics.load(i32, b + STATE) !== 0) return true;
        if ((await futexWaitAsync(i32, b + word, seq, deadline, signal)) === 'timed-out') return false;
      }
    } finally {
      // Deregistering late costs at most one needless wake (the woken thread re-checks).
      Atomics.sub(i32, b + waiters, 1);
    }
  }

  /**
   * Yields items (each awaited with `getAsync`) until the queue is shut down and drained:
   * `for await (const item of queue) { … }`.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      let item: T;
      try {
        item = await this.getAsync();
      } catch (error) {
        if (error instanceof QueueShutDown) return;
        throw error;
      }
      yield item;
    }
  }

  // ---- state ---------------------------------------------------------------------------------------

  /** The number of items in the queue (an instant's answer, as in Python: not reliable). */
  qsize(): number {
    const i32 = this._heap.i32;
    // The get word first: a put word read later counts at least every item taken before it.
    const got = Atomics.load(i32, this._base + GET_WORD);
    return itemsBetween(Atomics.load(i32, this._base + PUT_WORD), got);
  }

  /** True when the queue holds no item (an instant's answer). */
  empty(): boolean {
    return this.qsize() === 0;
  }

  /** True once `shutdown()` was called. */
  get isShutdown(): boolean {
    // STATE only goes 0 → 1, before shutdown's wake-ups: a waiter re-checks it after each wake.
    return Atomics.load(this._heap.i32, this._base + STATE) !== 0;
  }

  /**
   * Shuts the queue down: puts raise QueueShutDown from now on, and so do gets once the queue is
   * empty; every blocked put and get wakes. With `immediate`, the items left are removed at once
   * (and dropped: shared objects inside lose the reference they held), each counting as a task
   * done, so `join()` returns; gets then raise at once.
   */
  shutdown(immediate = false): void {
    const h = this._heap;
    const b = this._base;
    let detached: number[] | undefined;
    // The lock order: put, then get.
    const putHeld = lockCounted(h.i32, b + PUT_WORD, this._putGuess);
    const getHeld = this._oneLock ? -1 : lockCounted(h.i32, b + GET_WORD, this._getGuess);
    const put = putHeld & -8;
    // One-lock queues: the get word is written under the put lock we hold (putters may only add WAIT).
    let got = (this._oneLock ? Atomics.load(h.i32, b + GET_WORD) : getHeld) & -8;
    const gotBefore = got;
    try {
      const i32 = h.i32;
      // Under both locks and before the wake-ups below: no put follows, every waiter sees it.
      Atomics.store(i32, b + STATE, 1);
      const count = itemsBetween(put, got);
      if (immediate && count > 0) {
        detached = this._detachAll(i32);
        got = put;
        // Each removed item counts as a task done, but unfinishedTasks never goes below 0.
        for (;;) {
          // taskDone() may move DONE_WORD meanwhile: compareExchange; joiners are woken below.
          const done = Atomics.load(i32, b + DONE_WORD);
          const next = (done + ONE * Math.max(0, Math.min(count, itemsBetween(put, done)))) | 0;
          if (Atomics.compareExchange(i32, b + DONE_WORD, done, next) === done) break;
        }
      }
    } finally {
      const i32 = h.i32;
      if (this._oneLock) {
        // Getters read it under the put lock we hold; putters may set WAIT on it meanwhile.
        if (got !== gotBefore) publishCount(i32, b + GET_WORD, Atomics.load(i32, b + GET_WORD), got, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      } else if (got !== gotBefore) {
        releasePublish(i32, b + GET_WORD, getHeld, got, b + PUT_WAITERS, b + NOT_FULL_SEQ);
      } else {
        releaseKeep(i32, b + GET_WORD, getHeld);
      }
      releaseKeep(i32, b + PUT_WORD, putHeld);
    }
    const i32 = h.i32;
    // STATE (and the counts) changed before these bumps: every sleeper either saw the new state
    // in its re-check or sleeps on a word we change here, and we wake them all.
    Atomics.add(i32, b + NOT_EMPTY_SEQ, 1);
    Atomics.notify(i32, b + NOT_EMPTY_SEQ);
    Atomics.add(i32, b + NOT_FULL_SEQ, 1);
    Atomics.notify(i32, b + NOT_FULL_SEQ);
    // Joiners sleep on DONE_WORD while it holds what they read; if it changed, wake them.
    if (detached !== undefined) Atomics.notify(i32, b + DONE_WORD);
    if (detached !== undefined) this._dropDetached(detached);
  }

  /** @internal the number of threads registered to sleep in get / put / join (for tests). */
  _waiters(which: 'get' | 'put' | 'join'): number {
    const slot = which === 'get' ? GET_WAITERS : which === 'put' ? PUT_WAITERS : JOIN_WAITERS;
    // An instant's answer for tests; nothing waits on it.
    return Atomics.load(this._heap.i32, this._base + slot);
  }

  protected _describeSize(): string {
    return `qsize=${this.qsize()}`;
  }

  override toString(): string {
    return `<threadkit.${this._name} at 0x${this._offset.toString(16)}: ${this._describeSize()}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

// ---- dropping what a queue holds ----------------------------------------------------------------------

/** Drops `count` records of a FIFO ring starting at `head`, then frees the ring. */
export function drainFifo(h: Heap, store: number, cap: number, head: number, count: number): void {
  if (store === 0) return;
  h.ensureMapped(store + cap);
  try {
    for (let n = 0; n < count; n++) {
      let idx = head & (cap - 1);
      let header = h.i32[(store + idx) >> 2]!;
      if ((header & 15) === R.PAD) {
        head = (head + cap - idx) | 0;
        idx = 0;
        header = h.i32[store >> 2]!;
      }
      // Dropping may free other blocks (their destructors run), never move this ring.
      dropRecord(h, header & 15, store + idx + 4);
      head = (head + 4 + round4(header >>> 4)) | 0;
    }
  } finally {
    dropReference(store);
  }
}

/** Per flavor: how to build a wrapper for a received block, and how to drop what a dead queue holds. */
const revivers: ((offset: number) => SharedObject)[] = [];
const destroyers: ((h: Heap, base: number) => void)[] = [];

/** Each queue class registers its flavor (the Kind.Queue entry dispatches on the FLAVOR slot). */
export function registerFlavor(flavor: Flavor, revive: (offset: number) => SharedObject, destroy: (h: Heap, base: number) => void): void {
  revivers[flavor] = revive;
  destroyers[flavor] = destroy;
}

/** The FIFO flavors' destructor: drop the items left in the ring, then the ring. */
export function destroyFifo(h: Heap, base: number): void {
  const i32 = h.i32;
  drainFifo(h, i32[base + STORE]!, i32[base + CAP]!, i32[base + HEAD]!, itemsBetween(i32[base + PUT_WORD]!, i32[base + GET_WORD]!));
}

registerKind(Kind.Queue, {
  name: 'Queue',
  revive: (offset) => {
    const h = heap();
    h.ensureMapped(offset + QUEUE_BLOCK_BYTES);
    const flavor = h.i32[(offset >> 2) + FLAVOR]!;
    const revive = revivers[flavor];
    if (revive === undefined) throw new TypeError(`threadkit: received a queue of unknown flavor ${flavor}`);
    return revive(offset);
  },
  destroy: (h, offset) => {
    const base = offset >> 2;
    destroyers[h.i32[base + FLAVOR]!]?.(h, base);
  },
});

export { isReviving, reviveAs };
