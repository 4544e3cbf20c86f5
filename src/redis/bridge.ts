/**
 * The RedisExecutor's bridge: a daemon thread that owns the executor's Redis connections (a
 * BullMQ Queue to add jobs, one QueueEvents subscription for every job's progress) and settles
 * the executor's futures. The user's thread only encodes and puts `[SUBMIT, …]` into the
 * bridge's inbox (a SimpleQueue), so `future.result()` may block it: the outcome arrives here,
 * on another thread's event loop. Futures' `cancel()` put their notices into the same inbox.
 *
 * Every future the bridge takes is held (holdProcess) until it is done, then forgotten:
 * settled by an event, cancelled, or failed with ConnectionError when Redis stays away longer
 * than `unreachableTimeout`, or when the bridge itself fails (nothing is left pending).
 */

import { ConnectionError, QueueEmpty, ThreadError, describeError } from '../errors.js';
import type { Future } from '../futures/future.js';
import { REMOTE_CANCELLED, REMOTE_INTERRUPT } from '../futures/future.js';
import type { SimpleQueue } from '../queue/simple.js';
import { holdProcess } from '../thread/registry.js';
import { describeConnection, loadBullMQ, openRedis, type RedisClient, type RedisConnection } from './connection.js';
import { decodeFailure, decodeResult, type JobData } from './wire.js';

/** Inbox messages besides the futures' notices. */
export const SUBMIT = 10;
export const CLOSE = 11;

export type InboxMessage =
  | [typeof SUBMIT, Future<unknown>, JobData]
  | [typeof REMOTE_CANCELLED | typeof REMOTE_INTERRUPT, Future<unknown>]
  | [typeof CLOSE, boolean];

export interface BridgeSettings {
  connection: RedisConnection;
  queue: string;
  prefix: string;
  /** ms Redis may stay unreachable before pending futures fail with ConnectionError. */
  unreachableTimeout: number;
  /** Jobs added per addBulk at most. */
  batch: number;
}

/** The channel a queue's workers listen on for interrupts (the job's id is the message). */
export function interruptChannel(prefix: string, queue: string): string {
  return `${prefix}:${queue}:threadkit:interrupt`;
}

const EVENTS_KEPT = 100_000;
const CLOSE_WAIT_MS = 2000;

interface NewJob {
  name: string;
  data: JobData;
  opts: { jobId: string; removeOnComplete: { age: number }; removeOnFail: { age: number } };
}

/** The bridge thread's body (a module function: the executor starts it as a daemon Thread). */
export async function runBridge(settings: BridgeSettings, inbox: SimpleQueue<InboxMessage>): Promise<void> {
  const bridge = new Bridge(settings, inbox);
  try {
    await bridge.run();
  } catch (error) {
    bridge.failAll(new ThreadError(`the RedisExecutor's bridge failed: ${describeError(error)}`, { cause: error }));
    throw error;
  } finally {
    // Puts from now on are refused (cancel() ignores that; submit reports the bridge ended).
    // What is left is settled: a submit fails, a notice goes (left in the inbox, it would hold
    // its future, which holds the inbox, and neither would ever be freed).
    inbox.shutdown();
    bridge.settleLeftovers();
    inbox.shutdown(true);
    await bridge.close();
  }
}

class Bridge {
  /** Futures taken and not yet done, by job id. */
  private pending = new Map<string, Future<unknown>>();
  /** Job ids by future offset (notices name the future). */
  private jobOf = new Map<number, string>();
  /** Ids whose addBulk was sent, and whose addBulk resolved (only these are looked for in Redis after an outage). */
  private sent = new Set<string>();
  private added = new Set<string>();
  private readonly idPrefix = `tk${process.pid.toString(36)}${Math.random().toString(36).slice(2, 8)}-`;
  private nextId = 0;
  private client: RedisClient;
  private eventsClient: RedisClient;
  private queue: any;
  private events: any;
  private closing = false;
  /** Set by close(): a connect() still under way stops (stopIfClosed). */
  private closed = false;
  private cancelOnClose = false;
  /** Since when Redis is unreachable (0 while connected), and whether the timeout passed. */
  private downSince = 0;
  private unavailable = false;
  private downTimer: NodeJS.Timeout | undefined;
  private lastError = '';
  /** True once jobs may be added: the events subscription reads from before the first. */
  private connected = false;
  /** Jobs submitted before the connection was made. */
  private unsent: NewJob[] = [];
  /** Why the bridge cannot work at all (bullmq missing…): every task fails with it. */
  private broken: unknown;
  /** Resolves when pending empties during close. */
  private drained: (() => void) | undefined;

  constructor(
    private readonly settings: BridgeSettings,
    private readonly inbox: SimpleQueue<InboxMessage>,
  ) {}

  async run(): Promise<void> {
    // The inbox is read from the start: while Redis is away, submits wait in `unsent` (and fail
    // with the others once unreachableTimeout passes).
    const connected = this.connect().then(
      () => this.flushUnsent(),
      (error: unknown) => {
        // bullmq or ioredis missing, or a bad connection option: every task fails with it.
        this.broken = error;
        this.failAll(error);
      },
    );
    for (;;) {
      const batch = [await this.inbox.getAsync()];
      for (;;) {
        try {
          batch.push(this.inbox.getNowait());
        } catch (error) {
          if (error instanceof QueueEmpty) break;
          throw error;
        }
      }
      this.handle(batch);
      if (this.closing) break;
    }
    // Never connected (Redis away from the start): the pending futures fail at the timeout;
    // close() then ends the connection attempt.
    if (this.connected) await connected;
    if (this.cancelOnClose) for (const future of [...this.pending.values()]) future.cancel();
    // Notices of those cancels, and anything else put meanwhile.
    this.drainInboxNow();
    // Until every future is done, notices still come (a cancel() while we wait must remove its job).
    if (this.pending.size === 0) return;
    const drained = new Promise<undefined>((resolve) => (this.drained = () => resolve(undefined)));
    while (this.pending.size > 0) {
      const next = this.inbox.getAsync();
      next.catch(() => {}); // (left waiting when the last future settles: the inbox's shutdown ends it)
      const message = await Promise.race([next, drained]);
      if (message === undefined) return;
      this.handle([message]);
      this.drainInboxNow();
    }
  }

  /** After the bridge ended (the inbox refuses puts): submits still in it fail, notices go. */
  settleLeftovers(): void {
    for (;;) {
      let message: InboxMessage;
      try {
        message = this.inbox.getNowait();
      } catch {
        return; // empty (QueueShutDown)
      }
      if (message[0] !== SUBMIT) continue;
      const future = message[1];
      this.take(future, '');
      this.fail(future, this.broken ?? new ThreadError("the RedisExecutor's bridge thread ended before it could send this task"));
    }
  }

  private flushUnsent(): void {
    const jobs = this.unsent;
    this.unsent = [];
    this.send(jobs);
  }

  private drainInboxNow(): void {
    const batch: InboxMessage[] = [];
    for (;;) {
      try {
        batch.push(this.inbox.getNowait());
      } catch {
        break;
      }
    }
    this.handle(batch);
  }

  private async connect(): Promise<void> {
    const { connection, queue, prefix } = this.settings;
    const { Queue, QueueEvents } = await loadBullMQ();
    this.client = await openRedis(connection, `threadkit-executor:${queue}`);
    this.eventsClient = await openRedis(connection, `threadkit-events:${queue}`);
    this.stopIfClosed();
    // (Its errors are the same as the main client's, which watchConnection reports.)
    this.eventsClient.on('error', () => {});
    this.watchConnection(this.client);
    this.queue = new Queue(queue, { connection: this.client, prefix, streams: { events: { maxLen: EVENTS_KEPT } } });
    this.queue.on('error', (error: Error) => (this.lastError = describeError(error)));
    // Events from now on: the stream's last id, read before any job of ours is added.
    const last = (await this.client.xrevrange(`${prefix}:${queue}:events`, '+', '-', 'COUNT', 1)) as [string, string[]][];
    this.stopIfClosed();
    this.events = new QueueEvents(queue, { connection: this.eventsClient, prefix, lastEventId: last[0]?.[0] ?? '0-0', autorun: true });
    this.events.on('error', (error: Error) => (this.lastError = describeError(error)));
    this.events.on('active', ({ jobId }: { jobId: string }) => this.onActive(jobId));
    this.events.on('completed', ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => this.onCompleted(jobId, returnvalue));
    this.events.on('failed', ({ jobId, failedReason }: { jobId: string; failedReason: string }) => this.onFailed(jobId, failedReason));
    this.events.on('removed', ({ jobId }: { jobId: string }) => this.onRemoved(jobId));
    await this.events.waitUntilReady();
    this.stopIfClosed();
    this.connected = true;
  }

  /** close() ran while connect() awaited: what connect() made since is closed, and it stops. */
  private stopIfClosed(): void {
    if (!this.closed) return;
    void this.events?.close().catch(() => {});
    void this.queue?.close().catch(() => {});
    for (const client of [this.client, this.eventsClient]) client?.disconnect();
    throw new Error('the RedisExecutor was shut down while it connected');
  }

  // ---- the inbox ---------------------------------------------------------------------------

  private handle(batch: InboxMessage[]): void {
    const jobs: NewJob[] = [];
    for (const message of batch) {
      try {
        this.handleOne(message, jobs);
      } catch (error) {
        // (A message that failed must not take the rest of the batch with it; its future fails.)
        if (message[0] === SUBMIT && !this.jobOf.has(message[1]._offset)) this.take(message[1], '');
        if (message[0] === SUBMIT) this.fail(message[1], error);
      }
    }
    if (!this.connected) this.unsent.push(...jobs);
    else this.send(jobs);
  }

  private handleOne(message: InboxMessage, jobs: NewJob[]): void {
    switch (message[0]) {
      case SUBMIT: {
        const [, future, data] = message;
        if (this.broken !== undefined || this.unavailable) {
          this.take(future, '');
          this.fail(future, this.broken ?? this.unreachableError());
          break;
        }
        const id = this.idPrefix + (this.nextId++).toString(36);
        this.take(future, id);
        // A future cancelled before we read it: its notice follows in this batch or the next.
        jobs.push({ name: data.name, data, opts: { jobId: id, removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } } });
        break;
      }
      case REMOTE_CANCELLED:
        this.onCancelled(message[1]);
        break;
      case REMOTE_INTERRUPT:
        this.onInterrupt(message[1]);
        break;
      case CLOSE:
        this.closing = true;
        this.cancelOnClose ||= message[1];
        break;
    }
  }

  /**
   * Adds the jobs whose futures are still pending. A future cancelled before its job is sent
   * (its state changed before its notice was put) is forgotten here: the job is never sent.
   */
  private send(jobs: NewJob[]): void {
    const live = jobs.filter((job) => {
      const future = this.pending.get(job.opts.jobId);
      if (future === undefined) return false;
      if (!future.done()) return true;
      this.forget(job.opts.jobId);
      return false;
    });
    for (let i = 0; i < live.length; i += this.settings.batch) this.add(live.slice(i, i + this.settings.batch));
  }

  /** The future is the bridge's to settle (it holds the process, from submit, until forgotten). */
  private take(future: Future<unknown>, id: string): void {
    this.pending.set(id, future);
    this.jobOf.set(future._offset, id);
  }

  private add(jobs: NewJob[]): void {
    for (const job of jobs) this.sent.add(job.opts.jobId);
    // (One job: a plain add, one script call; addBulk sends a pipeline of them.)
    const adding = jobs.length === 1 ? this.queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts) : this.queue.addBulk(jobs);
    (adding as Promise<unknown>).then(
      () => {
        for (const job of jobs) if (this.pending.has(job.opts.jobId)) this.added.add(job.opts.jobId);
      },
      (error: unknown) => {
        const why = new ConnectionError(`RedisExecutor: the tasks could not be added to queue "${this.settings.queue}" at ${describeConnection(this.settings.connection)}: ${describeError(error)}`, { cause: error });
        for (const job of jobs) {
          const future = this.pending.get(job.opts.jobId);
          if (future !== undefined) this.fail(future, why);
        }
      },
    );
  }

  /** A future cancelled while queued: its job is removed (a job a worker already took is interrupted instead). */
  private onCancelled(future: Future<unknown>): void {
    const id = this.jobOf.get(future._offset);
    if (id === undefined) return;
    const sent = this.sent.has(id);
    this.forget(id);
    // Not sent yet: it never will be (handle and flushUnsent skip it). Sent: the removal goes
    // on the same connection, after the add.
    if (!sent) return;
    (this.queue.remove(id) as Promise<number>).then(
      (removed) => {
        if (removed === 0) this.interrupt(id); // taken by a worker meanwhile (locked) or gone
      },
      () => this.interrupt(id),
    );
  }

  private onInterrupt(future: Future<unknown>): void {
    const id = this.jobOf.get(future._offset);
    if (id !== undefined) this.interrupt(id);
  }

  private interrupt(id: string): void {
    (this.client.publish(interruptChannel(this.settings.prefix, this.settings.queue), id) as Promise<number>).catch(() => {
      // Redis away: the task runs to its end; its outcome settles the future as usual.
    });
  }

  // ---- events ------------------------------------------------------------------------------

  private onActive(id: string): void {
    const future = this.pending.get(id);
    if (future === undefined || future.running()) return; // (active again after a worker died)
    if (future.setRunningOrNotifyCancel()) return;
    // Cancelled, and a worker took its job before the removal: interrupt it there instead.
    this.interrupt(id);
    this.forget(id);
  }

  private onCompleted(id: string, returnvalue: unknown): void {
    const future = this.pending.get(id);
    if (future === undefined) return;
    let outcome: ReturnType<typeof decodeResult>;
    try {
      outcome = decodeResult(returnvalue);
    } catch (error) {
      return this.fail(future, error);
    }
    this.forget(id);
    try {
      if (outcome.cancelled) {
        if (!future._cancelRunning()) future.cancel();
      } else future.setResult(outcome.value);
    } catch {
      // cancelled meanwhile
    }
  }

  private onFailed(id: string, reason: string): void {
    const future = this.pending.get(id);
    if (future === undefined) return;
    let error: unknown;
    try {
      error = decodeFailure(reason) ?? new ThreadError(`the task's job failed in BullMQ: ${reason}`);
    } catch (whyNot) {
      error = whyNot;
    }
    this.fail(future, error);
  }

  private onRemoved(id: string): void {
    const future = this.pending.get(id);
    if (future === undefined) return;
    this.forget(id);
    // Removed from Redis by someone else (a dashboard): the task will not run.
    if (!future.cancel()) future._cancelRunning();
  }

  // ---- settling ----------------------------------------------------------------------------

  private fail(future: Future<unknown>, error: unknown): void {
    const id = this.jobOf.get(future._offset);
    if (id !== undefined) this.forget(id);
    try {
      future.setException(error);
    } catch {
      // done meanwhile (cancelled)
    }
  }

  /** The future needs the bridge no more: it stops holding the process. */
  private forget(id: string): void {
    const future = this.pending.get(id);
    if (future === undefined) return;
    this.pending.delete(id);
    this.sent.delete(id);
    this.added.delete(id);
    this.jobOf.delete(future._offset);
    holdProcess(-1);
    if (this.pending.size === 0) this.drained?.();
  }

  failAll(error: unknown): void {
    for (const future of [...this.pending.values()]) this.fail(future, error);
  }

  // ---- Redis away --------------------------------------------------------------------------

  private watchConnection(client: RedisClient): void {
    const down = (): void => {
      if (this.downSince !== 0) return;
      this.downSince = Date.now();
      this.downTimer = setTimeout(() => this.giveUp(), this.settings.unreachableTimeout);
    };
    client.on('error', (error: Error) => {
      this.lastError = describeError(error);
      down();
    });
    client.on('close', down);
    client.on('ready', () => {
      const wasDown = this.downSince !== 0;
      this.downSince = 0;
      this.unavailable = false;
      clearTimeout(this.downTimer);
      if (wasDown) void this.reconcile();
    });
    if (client.status !== 'ready') down();
  }

  private unreachableError(): ConnectionError {
    const since = this.downSince === 0 ? 0 : Date.now() - this.downSince;
    return new ConnectionError(
      `RedisExecutor: Redis at ${describeConnection(this.settings.connection)} has been unreachable for ${since} ms (unreachableTimeout: ${this.settings.unreachableTimeout} ms)` +
        `${this.lastError ? `; last error: ${this.lastError}` : ''}. The task's outcome is unknown: it may still run once Redis is back`,
    );
  }

  /** Redis stayed away too long: pending futures fail, and submits fail at once until it is back. */
  private giveUp(): void {
    if (this.downSince === 0) return;
    this.unavailable = true;
    this.failAll(this.unreachableError());
  }

  /**
   * Back after an outage shorter than the timeout: jobs that Redis no longer has (it restarted
   * without its data) fail; jobs that finished while events were not read are settled.
   */
  private async reconcile(): Promise<void> {
    const ids = [...this.added];
    const { Job } = await loadBullMQ();
    for (let i = 0; i < ids.length; i += 200) {
      await Promise.all(
        ids.slice(i, i + 200).map(async (id) => {
          let job: any;
          try {
            job = await Job.fromId(this.queue, id);
          } catch {
            return; // away again: the next reconnect looks again
          }
          const future = this.pending.get(id);
          if (future === undefined) return;
          if (job === undefined) {
            this.fail(future, new ConnectionError(`RedisExecutor: the task's job ${id} is no longer in Redis at ${describeConnection(this.settings.connection)} (Redis restarted without its data?): its outcome is unknown`));
          } else if (job.finishedOn !== undefined && job.finishedOn !== null) {
            if (job.failedReason) this.onFailed(id, job.failedReason as string);
            else this.onCompleted(id, job.returnvalue);
          }
        }),
      );
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.downTimer);
    const closing: Promise<unknown>[] = [];
    // (Never connected: BullMQ's close would wait for the connection; the disconnects end it.)
    if (this.connected && this.events !== undefined) closing.push(this.events.close().catch(() => {}));
    if (this.connected && this.queue !== undefined) closing.push(this.queue.close().catch(() => {}));
    // (Bounded: with Redis away, BullMQ's close waits for commands that will not be answered.)
    await Promise.race([Promise.all(closing), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
    for (const client of [this.client, this.eventsClient]) client?.disconnect();
  }
}
