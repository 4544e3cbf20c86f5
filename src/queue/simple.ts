/**
 * SimpleQueue: CPython's `queue.SimpleQueue`, an unbounded FIFO without task tracking: no
 * maxsize, no taskDone/join, so `put` never waits and does nothing but write the record and
 * publish it. It is the fastest queue: the same byte ring as Queue (ring.ts), one producer and
 * one consumer each working under their own lock, with no task counter to touch. Unlike
 * Python 3.13's SimpleQueue it can be shut down (so `for await` over it ends), like the others.
 */

import { reviveAs } from '../shm/handles.js';
import { QueueCore } from './core.js';
import { Flavor, registerFlavor } from './flavors.js';
import { destroyFifo } from './ring.js';

export class SimpleQueue<T = unknown> extends QueueCore<T> {
  /** A new, empty, unbounded queue. It travels to other threads by reference. */
  constructor() {
    super(Flavor.Simple, 0);
  }

  get _name(): string {
    return 'SimpleQueue';
  }

  /** Always false: a SimpleQueue is unbounded. */
  full(): boolean {
    return false;
  }
}

registerFlavor(Flavor.Simple, (offset) => reviveAs(offset, () => new SimpleQueue()), destroyFifo);
