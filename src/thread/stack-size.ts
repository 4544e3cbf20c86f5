/** threading.stack_size: the stack size of threads started from now on. */

import { describe } from '../shm/futex.js';
import { getStackBytes, setStackBytes } from '../runtime/pool.js';

/**
 * Returns the stack size (bytes) used for new threads, and sets it when `size` is given:
 * 0 means the platform default; otherwise at least 32768. Returns the previous size.
 * @throws RangeError for a size below 32768 (other than 0); TypeError for a non-number.
 */
/** The largest stack a thread may ask for. */
const MAX_STACK_BYTES = 2 ** 30;

export function stackSize(size?: number): number {
  const previous = getStackBytes();
  if (size === undefined) return previous;
  if (typeof size !== 'number' || !Number.isInteger(size)) throw new TypeError(`stackSize(size): expected an integer number of bytes, got ${describe(size)}`);
  if (size !== 0 && size < 32768) throw new RangeError(`stackSize(size): size not valid: ${size} bytes (0, or at least 32768)`);
  if (size > MAX_STACK_BYTES) throw new RangeError(`stackSize(size): size not valid: ${size} bytes (at most ${MAX_STACK_BYTES}, 1 GiB)`);
  setStackBytes(size);
  return previous;
}
