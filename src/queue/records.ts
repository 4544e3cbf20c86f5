/**
 * Queue items as records: staging an item (classify it, encode it once if it is not a plain
 * value), writing a staged item's payload into a queue's storage, reading it back (or copying
 * codec bytes out for a decode after the lock is released), decoding a taken block, and dropping
 * what a record holds. The storages (ring.ts, lifo.ts, priority.ts) lay the records out; this
 * file only knows a record's type and payload.
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
 */

import { copyBytes, decodeReceived, dropEncoded, encodeToScratch, encodedLength } from '../shm/codec.js';
import { heap } from '../shm/current.js';
import { Kind, dropReference } from '../shm/handles.js';
import { HeapExhaustedError, type Heap } from '../shm/heap.js';

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

/** Rounds a byte count up to a multiple of 4. */
export function round4(n: number): number {
  return (n + 3) & ~3;
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
export const DECODE_SCRATCH: unique symbol = Symbol('decode scratch');
export const DECODE_BLOCK: unique symbol = Symbol('decode block');
export const DECODE_ITEM: unique symbol = Symbol('decode item');

/** Codec bytes copied out of the storage under the lock, decoded after it is released. */
export const scratch = Buffer.allocUnsafeSlow(INLINE_MAX);
/** The same memory as Int32 words: records are 4-aligned, so the copy goes a word at a time. */
const scratch32 = new Int32Array(scratch.buffer, scratch.byteOffset, INLINE_MAX >> 2);
/** How many bytes of `scratch` the last DECODE_SCRATCH holds (to put them back if they fail to decode). */
export let scratchLength = 0;
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
export function receiveBlock(h: Heap, block: number): unknown {
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
