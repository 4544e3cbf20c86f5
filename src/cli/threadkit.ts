#!/usr/bin/env node
/**
 * `npx threadkit worker --connection redis://host:6379 --queue jobs [--threads N] …`: runs a
 * RedisExecutor worker until SIGTERM or SIGINT (then it finishes its running tasks and exits;
 * a second signal exits at once).
 */

import { parseArgs } from 'node:util';

const USAGE = `usage: threadkit worker --connection redis://host:6379 --queue NAME [options]

  --connection URL         Redis (redis://[user:password@]host:port[/db], rediss:// for TLS)
  --queue NAME             the RedisExecutor's queue
  --threads N              threads of the local pool (default: cores + 4, at most 32)
  --concurrency N          jobs taken at once (default: 2 x threads, so results travel while threads work)
  --prefix P               BullMQ key prefix (default: bull)
  --lock-duration MS       a job's lock without renewal: how soon a dead worker's job runs elsewhere (default: 30000)
  --stalled-interval MS    between checks for jobs of dead workers (default: 30000)

SIGTERM or SIGINT: finish the running tasks, take no more, exit 0. A second one: exit at once.`;

function fail(message: string): never {
  process.stderr.write(`threadkit: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) fail(`${flag} must be a whole number from 1 up, got ${JSON.stringify(value)}`);
  return n;
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command !== 'worker') fail(command === undefined ? 'a command is needed' : `unknown command ${JSON.stringify(command)}`);
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        connection: { type: 'string' },
        queue: { type: 'string' },
        threads: { type: 'string' },
        concurrency: { type: 'string' },
        prefix: { type: 'string' },
        'lock-duration': { type: 'string' },
        'stalled-interval': { type: 'string' },
      },
      strict: true,
    }) as { values: Record<string, string | undefined> });
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  if (values.connection === undefined) fail('--connection is required');
  if (values.queue === undefined) fail('--queue is required');
  const { runWorker } = await import('../redis/worker.js');
  const worker = await runWorker({
    connection: values.connection,
    queue: values.queue,
    maxWorkers: count(values.threads, '--threads'),
    concurrency: count(values.concurrency, '--concurrency'),
    prefix: values.prefix,
    lockDuration: count(values['lock-duration'], '--lock-duration'),
    stalledInterval: count(values['stalled-interval'], '--stalled-interval'),
  });
  process.stderr.write(`threadkit worker ${process.pid}: taking jobs from queue "${values.queue}"\n`);
  await worker.closed;
  process.stderr.write(`threadkit worker ${process.pid}: closed after ${worker.finished} job${worker.finished === 1 ? '' : 's'}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`threadkit: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
