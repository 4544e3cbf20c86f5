/**
 * The hang watchdog's thread (`dumpThreadsLater`, thread/dump.ts): a daemon threadkit thread
 * that waits on an Event for the interval, then prints a thread dump to stderr with a
 * synchronous write (the other threads may all be blocked), and with `exit` ends the process.
 */

import { writeSync } from 'node:fs';
import { BUILTIN_MODULE, builtins } from '../shm/functions.js';
import { Event } from '../sync/event.js';
import { dumpThreads, setWatchdogStarter, wantWaitStacks } from './dump.js';
import { Thread } from './thread.js';

function runWatchdog(stop: Event, ms: number, repeat: boolean, exit: boolean): void {
  try {
    while (!stop.wait(ms)) {
      writeSync(2, `${dumpThreads().toString()}\n`);
      // A worker cannot exit the process, and the main thread may be blocked: a signal ends it.
      if (exit) process.kill(process.pid, 'SIGKILL');
      if (!repeat) break;
    }
  } finally {
    wantWaitStacks(-1);
  }
}

builtins.runWatchdog = runWatchdog;

setWatchdogStarter((ms, repeat, exit) => {
  const stop = new Event();
  wantWaitStacks(1);
  const thread = new Thread({ name: 'threadkit-watchdog', daemon: true, target: { module: BUILTIN_MODULE, name: 'runWatchdog' }, args: [stop, ms, repeat, exit] });
  try {
    thread._start();
  } catch (error) {
    wantWaitStacks(-1);
    throw error;
  }
  return { cancel: () => stop.set() };
});
