/** Heap statistics for tests, benchmarks and curious users. */

import { heap } from '../shm/current.js';
import { heldCount } from '../shm/handles.js';

export interface HeapStats {
  /** Bytes in live blocks, headers included. */
  usedBytes: number;
  /** Live blocks. */
  liveBlocks: number;
  /** The high-water mark: bytes of the buffer ever handed out. */
  topBytes: number;
  /** The buffer's current size. */
  mappedBytes: number;
  /** The most the heap may grow to. */
  maxBytes: number;
  /** Shared objects this thread holds a wrapper for. */
  heldByThisThread: number;
}

/** A snapshot of the shared heap's use. */
export function heapStats(): HeapStats {
  const h = heap();
  return {
    usedBytes: h.usedBytes(),
    liveBlocks: h.liveBlocks(),
    topBytes: h.topBytes(),
    mappedBytes: h.sab.byteLength,
    maxBytes: h.maxBytes,
    heldByThisThread: heldCount(),
  };
}
