/**
 * RLock, the re-entrant lock: the thread that holds it may acquire it again (say, a method that
 * takes the lock calls another that takes it too), and only that thread may release it. A
 * plain Lock would deadlock on the second acquire.
 */

import { fileURLToPath } from 'node:url';
import { Lock, RLock, Thread, isMainThread, sharedArray } from 'threadkit';

/** Two bank accounts in shared memory, guarded by one RLock. */
export class Bank {
  constructor(
    readonly balances: Int32Array,
    readonly lock: RLock,
  ) {}

  withdraw(account: number, amount: number): void {
    using _ = this.lock.hold(); // `with self.lock:`
    this.balances[account]! -= amount;
  }

  deposit(account: number, amount: number): void {
    using _ = this.lock.hold();
    this.balances[account]! += amount;
  }

  /** Takes the lock, then calls withdraw and deposit, which take it again: fine with an RLock. */
  transfer(from: number, to: number, amount: number): void {
    using _ = this.lock.hold();
    this.withdraw(from, amount);
    this.deposit(to, amount);
  }
}

/** A thread's work: many transfers between the two accounts. */
export function transferMany(balances: Int32Array, lock: RLock, from: number, times: number): number {
  const bank = new Bank(balances, lock);
  for (let i = 0; i < times; i++) bank.transfer(from, 1 - from, 1 + (i % 3));
  return times;
}

export function main(): string[] {
  const lines: string[] = [];

  // Re-entrancy in one thread: an RLock counts its acquisitions; a Lock would block.
  const rlock = new RLock();
  lines.push(`RLock: acquire ${rlock.acquire()}, again ${rlock.acquire()} (held twice by this thread)`);
  rlock.release();
  rlock.release();
  const lock = new Lock();
  lock.acquire();
  lines.push(`Lock:  acquire true, again with a 50 ms timeout: ${lock.acquire({ timeout: 50 })} (it would deadlock without one)`);
  lock.release();

  // Nested locking across threads: the total is conserved.
  const balances = sharedArray(Int32Array, 2);
  balances[0] = 10_000;
  balances[1] = 10_000;
  const bankLock = new RLock();
  const threads = [0, 1, 0, 1].map((from) => new Thread({ target: { module: import.meta.url, name: 'transferMany' }, args: [balances, bankLock, from, 20_000] }));
  threads.forEach((t) => t.start());
  threads.forEach((t) => t.join());
  lines.push(`4 threads made 80000 nested-locking transfers: balances ${balances[0]} + ${balances[1]} = ${balances[0]! + balances[1]!} (was 20000)`);

  // Only the owner releases an RLock.
  bankLock.acquire();
  const intruder = new Thread<string>({
    target: (l: RLock) => {
      try {
        l.release();
        return 'released it?!';
      } catch (error) {
        return `${(error as Error).name}: ${(error as Error).message}`;
      }
    },
    args: [bankLock],
  });
  intruder.start();
  intruder.join();
  bankLock.release();
  lines.push(`another thread calling release(): ${intruder.result}`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
