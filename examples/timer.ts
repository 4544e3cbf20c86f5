/**
 * Timer: a thread that calls a function after a delay, unless cancel() comes first. A Timer is
 * a Thread: start() it, join() it, read its result.
 */

import { fileURLToPath } from 'node:url';
import { Timer, isMainThread } from 'threadkit';

export function main(): string[] {
  const lines: string[] = [];

  // Fires after 200 ms, in its own thread; the function's return value is the thread's result.
  const started = performance.now();
  const reminder = new Timer(200, (what: string) => `time to ${what}`, ['stretch']);
  reminder.start();
  lines.push(`started ${reminder.name}: alive=${reminder.isAlive()}, interval=${reminder.interval} ms`);
  reminder.join();
  lines.push(`fired after ~${Math.round((performance.now() - started) / 10) * 10} ms: result="${reminder.result}"`);

  // Cancelled before its interval runs out: the function never runs.
  const alarm = new Timer(60_000, () => 'ring!');
  alarm.start();
  const cancelledAt = performance.now();
  alarm.cancel();
  alarm.join();
  lines.push(`cancelled a 60 s timer: it ended after ${Math.round(performance.now() - cancelledAt) < 5000 ? 'well under 5 s' : 'a long while'}, result=${alarm.result}`);
  return lines;
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of main()) console.log(line);
}
