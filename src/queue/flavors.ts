/**
 * The queue flavors (the FLAVOR slot) and their registry: each queue class registers how to
 * build its wrapper for a received queue block and how to drop what a dead one holds; the
 * Kind.Queue entry of the handle registry dispatches on the block's FLAVOR slot.
 */

import { heap } from '../shm/current.js';
import { Kind, type SharedObject, registerKind } from '../shm/handles.js';
import type { Heap } from '../shm/heap.js';
import { FLAVOR, QUEUE_BLOCK_BYTES } from './layout.js';

export const enum Flavor {
  Fifo = 0,
  Simple = 1,
  Lifo = 2,
  Priority = 3,
}

/** Per flavor: how to build a wrapper for a received block, and how to drop what a dead queue holds. */
const revivers: ((offset: number) => SharedObject)[] = [];
const destroyers: ((h: Heap, base: number) => void)[] = [];

/** Each queue class registers its flavor (the Kind.Queue entry dispatches on the FLAVOR slot). */
export function registerFlavor(flavor: Flavor, revive: (offset: number) => SharedObject, destroy: (h: Heap, base: number) => void): void {
  revivers[flavor] = revive;
  destroyers[flavor] = destroy;
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
