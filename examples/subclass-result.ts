/**
 * Subclassing Thread: override run() and set `this.result`, the CPython idiom. The subclass's
 * own fields are copied to the thread at start() and back when run() ends. The class must be
 * exported (threadkit imports this module in the thread to rebuild it), and the module must
 * not do work when imported: hence the `isMainThread` guard at the bottom.
 */

import { fileURLToPath } from 'node:url';
import { Thread, currentThread, isMainThread } from 'threadkit';

export function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** Counts the primes in [lo, hi) in its own thread. */
export class PrimeCounter extends Thread<number> {
  /** Filled in by run(), in the thread; copied back to this object when the thread ends. */
  largest = 0;
  ranIn = '';

  constructor(
    public lo: number,
    public hi: number,
  ) {
    super({ name: `primes[${lo}, ${hi})` });
  }

  override run(): void {
    let count = 0;
    for (let n = this.lo; n < this.hi; n++) {
      if (isPrime(n)) {
        count++;
        this.largest = n;
      }
    }
    this.ranIn = currentThread().name;
    this.result = count;
  }
}

export function main(): string[] {
  const lines: string[] = [];
  const step = 100_000;
  const counters = [0, 1, 2, 3].map((i) => new PrimeCounter(i * step, (i + 1) * step));
  counters.forEach((t) => t.start());
  counters.forEach((t) => t.join());
  for (const t of counters) lines.push(`${t.name}: ${t.result} primes, largest ${t.largest} (run() ran in thread "${t.ranIn}")`);
  const total = counters.reduce((sum, t) => sum + (t.result ?? 0), 0);
  lines.push(`total: ${total} primes below ${4 * step}`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
