/**
 * The value codec: JavaScript values ↔ bytes, with structured-clone semantics, and shared
 * objects (Lock, Queue, Future, …) written as handles so they travel by reference.
 *
 * Format: a tag byte per value, little-endian numbers. Containers and other objects get an index
 * in order of first appearance; a repeated or cyclic reference is written as BACKREF(index), so
 * cycles and shared sub-objects survive as in `structuredClone`.
 *
 * Chosen over msgpackr and v8.serialize by measurement (bench/codec.ts, README "Benchmarks"):
 * it writes handles natively, names the path of a value that cannot be cloned, and decodes
 * straight from shared memory.
 */

import { errorClasses } from '../errors.js';
import { describe } from './futex.js';
import { heap } from './current.js';
import type { Heap } from './heap.js';
import { Kind, SharedObject, dropReference, receiveSharedView, retainForTransfer, reviveHandle, sharedViewBlock } from './handles.js';

const enum Tag {
  Undefined = 0,
  Null = 1,
  False = 2,
  True = 3,
  Int32 = 4,
  Float64 = 5,
  AsciiShort = 6, // u8 length, one byte per char
  String = 7, // u32 byte length, UTF-8
  BigInt = 8, // sign u8, then ascii hex of the magnitude
  Array = 9, // u32 length, items
  Object = 10, // u32 count, (key, value)*
  Map = 11,
  Set = 12,
  Date = 13,
  RegExp = 14,
  ArrayBuffer = 15,
  TypedArray = 16, // u8 kind, u32 byte length, bytes
  DataView = 17,
  Error = 18,
  Handle = 19, // u32 offset
  BackRef = 20, // u32 index
  SharedView = 21, // u8 kind, u32 block, u32 byte offset, u32 length: a sharedArray by reference
}

const typedArrayKinds = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
] as const;

/** Why a value could not be encoded, with the path from the root to it. */
class NotCloneable extends Error {
  readonly segments: string[] = [];
  constructor(readonly what: string) {
    super(what);
  }
}

function pathSegment(key: string | number): string {
  if (typeof key === 'number') return `[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

// ---- encoder ------------------------------------------------------------------------------

/** Objects of one value an encoder tracks without a Map (see Encoder.seenSmall). */
const SEEN_SMALL = 64;

class Encoder {
  buf = Buffer.allocUnsafe(4096);
  /** A DataView over `buf` (number writes without Buffer's argument checks). */
  dv: DataView = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  pos = 0;
  /**
   * Objects met so far in this encode, by index (for back references): the first SEEN_SMALL in
   * an array searched linearly (most values hold a few objects: no hashing, nothing to clear
   * but those slots), the rest in a Map.
   */
  private seenSmall: (object | undefined)[] = new Array<object | undefined>(SEEN_SMALL).fill(undefined);
  private seen = new Map<object, number>();
  private nextIndex = 0;
  /** Handles written during this encode: their in-flight references are undone on failure. */
  private handles: number[] = [];

  /** True while an encode runs (re-entered, the caller takes a fresh encoder). */
  busy = false;

  encode(value: unknown, root: string): Uint8Array {
    const length = this.encodeRaw(value, root); // (first: it may replace `buf` with a bigger one)
    return this.buf.subarray(0, length);
  }

  /** Encodes into `buf` (from byte 0); returns the length. */
  encodeRaw(value: unknown, root: string): number {
    this.pos = 0;
    this.nextIndex = 0;
    // (A new array rather than `length = 0`, a runtime call that costs more than the allocation.)
    if (this.handles.length !== 0) this.handles = [];
    this.busy = true;
    try {
      this.value(value);
    } catch (error) {
      for (const offset of this.handles) dropReference(offset);
      if (error instanceof NotCloneable) {
        throw new TypeError(`${root}${error.segments.join('')}: ${error.what} could not be cloned (cannot be sent to another thread)`);
      }
      throw error;
    } finally {
      this.busy = false;
      this.forgetSeen();
    }
    return this.pos;
  }

  /** The index `o` was given in this encode, or -1. */
  private seenIndex(o: object): number {
    const small = this.seenSmall;
    const n = Math.min(this.nextIndex, SEEN_SMALL);
    for (let i = 0; i < n; i++) if (small[i] === o) return i;
    if (this.nextIndex <= SEEN_SMALL) return -1;
    return this.seen.get(o) ?? -1;
  }

  private remember(o: object): void {
    const index = this.nextIndex++;
    if (index < SEEN_SMALL) this.seenSmall[index] = o;
    else this.seen.set(o, index);
  }

  /** Drops the references to what was encoded (they must not be kept alive by the encoder). */
  private forgetSeen(): void {
    const n = Math.min(this.nextIndex, SEEN_SMALL);
    for (let i = 0; i < n; i++) this.seenSmall[i] = undefined;
    if (this.nextIndex > SEEN_SMALL) this.seen.clear();
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + extra));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
    this.dv = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength);
  }

  private u8(n: number): void {
    this.buf[this.pos++] = n;
  }

  private u32(n: number): void {
    this.dv.setUint32(this.pos, n, true);
    this.pos += 4;
  }

  private value(v: unknown): void {
    this.ensure(16);
    switch (typeof v) {
      case 'number':
        if ((v | 0) === v && !Object.is(v, -0)) {
          this.u8(Tag.Int32);
          this.dv.setInt32(this.pos, v, true);
          this.pos += 4;
        } else {
          this.u8(Tag.Float64);
          this.dv.setFloat64(this.pos, v, true);
          this.pos += 8;
        }
        return;
      case 'string':
        return this.string(v);
      case 'boolean':
        return this.u8(v ? Tag.True : Tag.False);
      case 'undefined':
        return this.u8(Tag.Undefined);
      case 'bigint':
        this.u8(Tag.BigInt);
        this.u8(v < 0n ? 1 : 0);
        return this.string((v < 0n ? -v : v).toString(16));
      case 'object':
        if (v === null) return this.u8(Tag.Null);
        return this.object(v);
      case 'function':
        throw new NotCloneable(`${describe(v)}()`);
      default:
        throw new NotCloneable(`${typeof v} ${String(v)}`);
    }
  }

  private string(s: string): void {
    const n = s.length;
    if (n < 256) {
      this.ensure(2 + n);
      const buf = this.buf;
      const start = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[start + 2 + i] = c;
      }
      if (i === n) {
        buf[start] = Tag.AsciiShort;
        buf[start + 1] = n;
        this.pos = start + 2 + n;
        return;
      }
    }
    this.ensure(5 + n * 3);
    this.u8(Tag.String);
    const written = this.buf.write(s, this.pos + 4, 'utf8');
    this.u32(written);
    this.pos += written;
  }

  private object(o: object): void {
    const index = this.seenIndex(o);
    if (index >= 0) {
      this.u8(Tag.BackRef);
      return this.u32(index);
    }
    if (o instanceof SharedObject) {
      this.u8(Tag.Handle);
      const offset = retainForTransfer(o);
      this.handles.push(offset);
      return this.u32(offset);
    }
    this.remember(o);
    if (Array.isArray(o)) return this.array(o);
    const proto = Object.getPrototypeOf(o);
    if (proto === Object.prototype || proto === null) return this.fields(o, Tag.Object);
    if (o instanceof Map) return this.map(o);
    if (o instanceof Set) return this.set(o);
    if (o instanceof Date) {
      this.u8(Tag.Date);
      this.dv.setFloat64(this.pos, o.getTime(), true);
      this.pos += 8;
      return;
    }
    if (o instanceof RegExp) {
      this.u8(Tag.RegExp);
      this.string(o.source);
      return this.string(o.flags);
    }
    if (o instanceof Error) return this.error(o);
    if (ArrayBuffer.isView(o)) return this.view(o);
    if (o instanceof ArrayBuffer) {
      this.u8(Tag.ArrayBuffer);
      return this.bytes(new Uint8Array(o));
    }
    if (o instanceof SharedArrayBuffer) throw new NotCloneable('a SharedArrayBuffer (use sharedArray() for shared memory that travels)');
    if (o instanceof Promise || o instanceof WeakMap || o instanceof WeakSet || o instanceof WeakRef) {
      throw new NotCloneable(`a ${proto.constructor.name}`);
    }
    // Any other class instance travels as its own enumerable fields, as structuredClone does.
    return this.fields(o, Tag.Object);
  }

  private array(a: unknown[]): void {
    this.u8(Tag.Array);
    this.u32(a.length);
    for (let i = 0; i < a.length; i++) {
      try {
        this.value(a[i]);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift(pathSegment(i));
        throw error;
      }
    }
  }

  private fields(o: object, tag: Tag): void {
    const keys = Object.keys(o);
    this.ensure(5); // (an Error's extra fields come after its cause: nothing reserved room)
    this.u8(tag);
    this.u32(keys.length);
    for (const key of keys) {
      this.string(key);
      try {
        this.value((o as Record<string, unknown>)[key]);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift(pathSegment(key));
        throw error;
      }
    }
  }

  private map(m: Map<unknown, unknown>): void {
    this.u8(Tag.Map);
    this.u32(m.size);
    for (const [k, v] of m) {
      try {
        this.value(k);
        this.value(v);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift(`.get(${describe(k)})`);
        throw error;
      }
    }
  }

  private set(s: Set<unknown>): void {
    this.u8(Tag.Set);
    this.u32(s.size);
    for (const v of s) {
      try {
        this.value(v);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift('.<set item>');
        throw error;
      }
    }
  }

  private error(e: Error): void {
    this.u8(Tag.Error);
    this.string(String(e.name));
    this.string(String(e.message));
    this.value(typeof e.stack === 'string' ? e.stack : undefined);
    const hasCause = Object.hasOwn(e, 'cause');
    this.value(hasCause);
    if (hasCause) {
      try {
        this.value(e.cause);
      } catch (error) {
        if (error instanceof NotCloneable) error.segments.unshift('.cause');
        throw error;
      }
    }
    // Extra own fields such as `code` or `errno` come along; name/message/stack are above.
    const extra: Record<string, unknown> = {};
    for (const key of Object.keys(e)) if (key !== 'name' && key !== 'message' && key !== 'stack' && key !== 'cause') extra[key] = (e as unknown as Record<string, unknown>)[key];
    this.fields(extra, Tag.Object);
  }

  private view(v: ArrayBufferView): void {
    if (v.buffer === heap().sab) return this.sharedView(v);
    if (v.buffer instanceof SharedArrayBuffer) {
      throw new NotCloneable('a view of a SharedArrayBuffer (use sharedArray() for shared memory that travels)');
    }
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    if (v instanceof DataView) {
      this.u8(Tag.DataView);
      return this.bytes(bytes);
    }
    const kind = typedArrayKinds.findIndex((T) => v instanceof T);
    if (kind < 0) throw new NotCloneable(`a ${v.constructor.name}`);
    // Node's Buffer is a Uint8Array subclass; it arrives as a Uint8Array, as with structuredClone.
    this.u8(Tag.TypedArray);
    this.u8(kind);
    this.bytes(bytes);
  }

  /** A sharedArray travels by reference: block, position and length, never its contents. */
  private sharedView(v: ArrayBufferView): void {
    const block = sharedViewBlock(v);
    if (block === undefined) throw new NotCloneable('a view of threadkit shared memory that sharedArray() did not return (send the array itself, not a subarray)');
    const kind = typedArrayKinds.findIndex((T) => v instanceof T);
    this.ensure(14);
    this.u8(Tag.SharedView);
    this.u8(kind);
    heap().retain(block);
    this.handles.push(block);
    this.u32(block);
    this.u32(v.byteOffset);
    this.u32(v.byteLength / (kind < 0 ? 1 : typedArrayKinds[kind]!.BYTES_PER_ELEMENT));
  }

  private bytes(bytes: Uint8Array): void {
    this.ensure(4 + bytes.length);
    this.u32(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
}

/** Node's Buffer has these (unlisted in its types): string decoding without argument parsing. */
interface FastSlices {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

const KEY_CACHE_SIZE = 4096;
const KEY_CACHE_MAX_LENGTH = 32;
const keyCache: (string | undefined)[] = new Array(KEY_CACHE_SIZE).fill(undefined);

// ---- decoder ------------------------------------------------------------------------------

class Decoder {
  private buf!: Buffer;
  private dv: DataView = new DataView(new ArrayBuffer(0));
  private pos = 0;
  private refs: unknown[] = [];

  decode(buf: Buffer, start: number): unknown {
    this.buf = buf;
    if (this.dv.buffer !== buf.buffer || this.dv.byteOffset !== buf.byteOffset || this.dv.byteLength !== buf.byteLength) this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    // (New arrays rather than `length = 0`, a runtime call that costs more than the allocation.)
    if (this.refs.length !== 0) this.refs = [];
    const value = this.value();
    if (this.refs.length !== 0) this.refs = [];
    return value;
  }

  private u32(): number {
    const n = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return n;
  }

  private value(): unknown {
    const buf = this.buf;
    const tag = buf[this.pos++] as Tag;
    switch (tag) {
      case Tag.Undefined:
        return undefined;
      case Tag.Null:
        return null;
      case Tag.False:
        return false;
      case Tag.True:
        return true;
      case Tag.Int32: {
        const n = this.dv.getInt32(this.pos, true);
        this.pos += 4;
        return n;
      }
      case Tag.Float64: {
        const n = this.dv.getFloat64(this.pos, true);
        this.pos += 8;
        return n;
      }
      case Tag.AsciiShort:
      case Tag.String:
        this.pos--;
        return this.string();
      case Tag.BigInt: {
        const negative = buf[this.pos++] === 1;
        const magnitude = BigInt(`0x${this.string()}`);
        return negative ? -magnitude : magnitude;
      }
      case Tag.Array: {
        const length = this.u32();
        const a: unknown[] = new Array(length);
        this.refs.push(a);
        for (let i = 0; i < length; i++) a[i] = this.value();
        return a;
      }
      case Tag.Object: {
        const o: Record<string, unknown> = {};
        this.refs.push(o);
        this.fieldsInto(o);
        return o;
      }
      case Tag.Map: {
        const m = new Map();
        this.refs.push(m);
        for (let n = this.u32(); n > 0; n--) {
          const k = this.value();
          m.set(k, this.value());
        }
        return m;
      }
      case Tag.Set: {
        const s = new Set();
        this.refs.push(s);
        for (let n = this.u32(); n > 0; n--) s.add(this.value());
        return s;
      }
      case Tag.Date: {
        const d = new Date(this.dv.getFloat64(this.pos, true));
        this.pos += 8;
        this.refs.push(d);
        return d;
      }
      case Tag.RegExp: {
        const source = this.string();
        const r = new RegExp(source, this.string());
        this.refs.push(r);
        return r;
      }
      case Tag.ArrayBuffer: {
        const ab = this.bytes().buffer;
        this.refs.push(ab);
        return ab;
      }
      case Tag.TypedArray: {
        const T = typedArrayKinds[buf[this.pos++]!]!;
        const bytes = this.bytes();
        const t = new T(bytes.buffer as ArrayBuffer, 0, bytes.length / T.BYTES_PER_ELEMENT);
        this.refs.push(t);
        return t;
      }
      case Tag.DataView: {
        const dv = new DataView(this.bytes().buffer);
        this.refs.push(dv);
        return dv;
      }
      case Tag.Error:
        return this.error();
      case Tag.Handle:
        return reviveHandle(this.u32());
      case Tag.BackRef:
        return this.refs[this.u32()];
      case Tag.SharedView: {
        const T = typedArrayKinds[buf[this.pos++]!]!;
        const block = this.u32();
        const byteOffset = this.u32();
        const length = this.u32();
        const view = receiveSharedView(block, () => new T(heap().sab as unknown as ArrayBuffer, byteOffset, length));
        this.refs.push(view);
        return view;
      }
      default:
        throw new TypeError(`threadkit codec: corrupt data (tag ${tag} at byte ${this.pos - 1})`);
    }
  }

  private string(): string {
    const buf = this.buf;
    const tag = buf[this.pos++];
    if (tag === Tag.AsciiShort) {
      const n = buf[this.pos++]!;
      const start = this.pos;
      this.pos += n;
      if (n < 16) {
        let s = '';
        for (let i = start; i < start + n; i++) s += String.fromCharCode(buf[i]!);
        return s;
      }
      return (buf as unknown as FastSlices).latin1Slice(start, start + n);
    }
    const n = this.u32();
    const start = this.pos;
    this.pos += n;
    return (buf as unknown as FastSlices).utf8Slice(start, start + n);
  }

  private fieldsInto(o: Record<string, unknown>): void {
    for (let n = this.u32(); n > 0; n--) {
      const key = this.key();
      o[key] = this.value();
    }
  }

  /**
   * An object key. Keys repeat (every record of an array has the same ones), and a string that
   * V8 has seen as a key makes property stores fast, so short ASCII keys come from a small cache
   * indexed by a hash of their bytes (checked byte by byte before use).
   */
  private key(): string {
    const buf = this.buf;
    if (buf[this.pos] !== Tag.AsciiShort || buf[this.pos + 1]! > KEY_CACHE_MAX_LENGTH) return this.string();
    const n = buf[this.pos + 1]!;
    const start = this.pos + 2;
    let hash = n;
    for (let i = start; i < start + n; i++) hash = (Math.imul(hash, 31) + buf[i]!) | 0;
    const slot = (hash >>> 0) & (KEY_CACHE_SIZE - 1);
    const cached = keyCache[slot];
    if (cached !== undefined && cached.length === n) {
      let same = true;
      for (let i = 0; i < n; i++) {
        if (cached.charCodeAt(i) !== buf[start + i]) {
          same = false;
          break;
        }
      }
      if (same) {
        this.pos = start + n;
        return cached;
      }
    }
    const key = this.string();
    keyCache[slot] = key;
    return key;
  }

  private bytes(): Uint8Array<ArrayBuffer> {
    const n = this.u32();
    const copy = new Uint8Array(n);
    copy.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return copy;
  }

  private error(): Error {
    const name = this.string();
    const message = this.string();
    const Class = errorClasses[name] ?? Error;
    const e = Object.create(Class.prototype) as Error;
    this.refs.push(e);
    Object.defineProperty(e, 'message', { value: message, writable: true, configurable: true, enumerable: false });
    const stack = this.value();
    if (stack !== undefined) Object.defineProperty(e, 'stack', { value: stack, writable: true, configurable: true, enumerable: false });
    if (this.value() === true) Object.defineProperty(e, 'cause', { value: this.value(), writable: true, configurable: true, enumerable: false });
    if (e.name !== name) Object.defineProperty(e, 'name', { value: name, writable: true, configurable: true, enumerable: false });
    this.pos++; // the Object tag of the extra fields
    this.fieldsInto(e as unknown as Record<string, unknown>);
    return e;
  }
}

// ---- scanning (for dropping the handles inside bytes that will never be decoded) ------------

/** Calls `fn` with the offset of every handle inside an encoded value. */
export function forEachHandle(buf: Buffer, start: number, fn: (offset: number) => void): void {
  // Decoding is the simplest exact walk; handles found are reported instead of revived.
  const scanner = new Scanner(buf, start, fn);
  scanner.value();
}

class Scanner {
  constructor(
    private buf: Buffer,
    private pos: number,
    private fn: (offset: number) => void,
  ) {}

  private u32(): number {
    const n = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return n;
  }

  private skipString(): void {
    const tag = this.buf[this.pos++];
    this.skip(tag === Tag.AsciiShort ? this.buf[this.pos]! + 1 : this.u32());
  }

  /** (Not `this.pos += this.u32()`: that reads `pos` before u32() moves it past the length.) */
  private skip(n: number): void {
    this.pos += n;
  }

  value(): void {
    const tag = this.buf[this.pos++] as Tag;
    switch (tag) {
      case Tag.Int32:
      case Tag.BackRef:
        this.pos += 4;
        return;
      case Tag.Float64:
      case Tag.Date:
        this.pos += 8;
        return;
      case Tag.AsciiShort:
      case Tag.String:
        this.pos--;
        return this.skipString();
      case Tag.BigInt:
        this.pos++;
        return this.skipString();
      case Tag.Array:
      case Tag.Set:
        for (let n = this.u32(); n > 0; n--) this.value();
        return;
      case Tag.Map:
        for (let n = this.u32() * 2; n > 0; n--) this.value();
        return;
      case Tag.Object:
        for (let n = this.u32(); n > 0; n--) {
          this.skipString();
          this.value();
        }
        return;
      case Tag.RegExp:
        this.skipString();
        return this.skipString();
      case Tag.ArrayBuffer:
      case Tag.DataView:
        return this.skip(this.u32());
      case Tag.TypedArray:
        this.pos++;
        return this.skip(this.u32());
      case Tag.Error:
        this.skipString();
        this.skipString();
        this.value();
        if (this.buf[this.pos++] === Tag.True) this.value();
        return this.value();
      case Tag.Handle:
        return this.fn(this.u32());
      case Tag.SharedView: {
        this.pos++;
        const block = this.u32();
        this.pos += 8;
        return this.fn(block);
      }
      default:
        return;
    }
  }
}

// ---- public entry points ----------------------------------------------------------------------

const encoder = new Encoder();
const decoder = new Decoder();

/**
 * The thread's encoder, or a new one when it is in use: a getter may itself send something
 * while we encode (a getter that submits a task), and that nested encode needs its own.
 */
function idleEncoder(): Encoder {
  return encoder.busy ? new Encoder() : encoder;
}

/**
 * Encodes `value`; `root` names it in errors (`args` gives "args[1].handler: … could not be
 * cloned"). The result is a view of a scratch buffer, valid until the next encode in this thread.
 * Every handle inside owns one in-flight reference until the bytes are decoded or dropped.
 * @throws TypeError naming the path of a value that cannot cross threads.
 */
export function encodeValue(value: unknown, root = 'value'): Uint8Array {
  return idleEncoder().encode(value, root);
}

/**
 * Encodes `value` straight into a new heap block of kind Bytes, after `headerBytes` bytes the
 * caller fills in; returns the block (the hot paths: task records, future outcomes).
 * @throws TypeError naming the path of a value that cannot cross threads (nothing allocated).
 */
export function encodeToBlock(h: Heap, value: unknown, root: string, headerBytes = 0): number {
  const enc = idleEncoder();
  const length = enc.encodeRaw(value, root);
  let block: number;
  try {
    block = h.alloc(headerBytes + length, Kind.Bytes);
  } catch (error) {
    dropEncoded(enc.buf, 0);
    throw error;
  }
  copyBytes(enc.buf, h.u8, block + headerBytes, length);
  return block;
}

/**
 * Encodes `value` into the thread's scratch buffer and returns that buffer: the bytes are its
 * first `encodedLength()`, valid until the next encode in this thread. For callers that copy
 * them at once: it saves the view `encodeValue` makes (~80 ns).
 * @throws TypeError naming the path of a value that cannot cross threads.
 */
export function encodeToScratch(value: unknown, root: string): Buffer {
  const enc = idleEncoder();
  scratchLength = enc.encodeRaw(value, root);
  return enc.buf;
}

let scratchLength = 0;

/** The length of what the last `encodeToScratch` wrote. */
export function encodedLength(): number {
  return scratchLength;
}

/**
 * Copies `length` bytes from the start of `from` to `to` at `at`: a loop for the small ones
 * (Buffer.copy costs ~300 ns of call overhead, the view TypedArray#set needs ~80 ns).
 */
export function copyBytes(from: Uint8Array, to: Uint8Array, at: number, length: number): void {
  // (Measured: the loop wins below ~48 bytes, the view and memcpy above.)
  if (length > 48) {
    to.set(from.subarray(0, length), at);
    return;
  }
  for (let i = 0; i < length; i++) to[at + i] = from[i]!;
}

/** Encodes `value` into a fresh, independent Uint8Array. */
export function encodeToBytes(value: unknown, root = 'value'): Uint8Array {
  return Uint8Array.prototype.slice.call(encodeValue(value, root));
}

/** Decodes a value written by `encodeValue`, starting at byte `start` of `buf`. */
export function decodeValue(buf: Buffer | Uint8Array, start = 0): unknown {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return decoder.decode(b, start);
}

/** Drops the in-flight references of the handles inside bytes that will never be decoded. */
export function dropEncoded(buf: Buffer | Uint8Array, start = 0): void {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  forEachHandle(b, start, dropReference);
}
