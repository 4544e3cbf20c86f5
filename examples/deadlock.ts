/**
 * When threads hang: a thread dump shows who waits on what and who holds it, and deadlock
 * detection turns the classic lock-order inversion (thread A takes lock 1 then 2, thread B
 * takes 2 then 1) into a DeadlockError in the thread whose wait would close the cycle, instead
 * of a program that stops forever.
 *
 * Run: node --import tsx examples/deadlock.ts
 */

import { fileURLToPath } from 'node:url';
import { Event, Lock, Queue, Thread, type ThreadDump, configureThreads, dumpThreads, isMainThread, sleep } from 'threadkit';

/** Takes `first`, tells main, waits for the go, then takes `second`: half of the inversion. */
export function takeInOrder(first: Lock, second: Lock, holding: Event, go: Event): string {
  first.acquire();
  try {
    holding.set();
    go.wait();
    second.acquire();
    second.release();
    return 'took both locks';
  } catch (error) {
    return `${(error as Error).name}`;
  } finally {
    first.release();
  }
}

/** A dump taken once the thread named `name` is blocked in a wait. */
function whenWaiting(name: string): ThreadDump {
  for (;;) {
    const dump = dumpThreads();
    if (dump.threads.find((t) => t.name === name)?.waitingOn !== undefined) return dump;
    sleep(5);
  }
}

export function main(): string[] {
  const lines: string[] = [];
  configureThreads({ deadlockDetection: 'raise' });
  try {
    const accounts = new Lock();
    const audit = new Lock();
    const holding = [new Event(), new Event()];
    const go = new Event();
    const target = { module: import.meta.url, name: 'takeInOrder' };
    const a = new Thread<string>({ name: 'transfer', target, args: [accounts, audit, holding[0], go] });
    const b = new Thread<string>({ name: 'auditor', target, args: [audit, accounts, holding[1], go] });
    a.start();
    b.start();
    for (const e of holding) e.wait();

    // Both hold their first lock. Let them go for the second: one waits on the other, and the
    // second to wait closes the cycle and gets DeadlockError, releases, and the first goes on.
    go.set();
    a.join();
    b.join();
    const results = [a.result, b.result].sort();
    lines.push(`lock-order inversion: ${results.join(' / ')}`);

    // A dump while a thread is blocked: it names the lock and who holds it.
    accounts.acquire();
    const waiter = new Thread({ name: 'waiter', target: (l: Lock) => (l.acquire(), l.release()), args: [accounts] });
    waiter.start();
    const dump = whenWaiting('waiter');
    const seen = dump.threads.find((t) => t.name === 'waiter')!;
    lines.push(`dump: waiter is ${seen.state}, on a ${seen.waitingOn!.kind} held by ${seen.waitingOn!.owner === dump.threads[0]!.ident ? 'MainThread' : seen.waitingOn!.owner}`);
    lines.push(`main holds: ${dump.threads[0]!.holding.length} lock(s)`);
    console.error(dump.toString());
    accounts.release();
    waiter.join();

    // Two threads joining each other: the second to wait gets DeadlockError and ends, and then
    // the other's join returns.
    const toFirst = new Queue<Thread>();
    const toSecond = new Queue<Thread>();
    const joinPartner = (partner: Queue<Thread>): string => {
      try {
        partner.get().join();
        return 'joined';
      } catch (error) {
        return (error as Error).name;
      }
    };
    const first = new Thread<string>({ name: 'first', target: joinPartner, args: [toFirst] });
    const second = new Thread<string>({ name: 'second', target: joinPartner, args: [toSecond] });
    first.start();
    second.start();
    toFirst.put(second);
    toSecond.put(first);
    first.join();
    second.join();
    lines.push(`two threads joining each other: ${[first.result, second.result].sort().join(' / ')}`);
    return lines;
  } finally {
    configureThreads({ deadlockDetection: 'off' });
  }
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
