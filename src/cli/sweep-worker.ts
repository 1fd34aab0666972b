// The entry of a worker thread of `memvisor run --jobs N`: it loads its own copy of the
// Wasm core and the experiments, then runs the tasks the pool (pool.ts) sends, one at a time,
// and answers each with the run's report files or its error. Progress is sent at most every
// 1 % of a run, so the main thread's progress bar moves without flooding the channel.

import { parentPort } from 'node:worker_threads';
import { executeRun, type RunTask } from './run-task.js';

export type ToWorker = { id: number; task: RunTask };
export type FromWorker =
  | { id: number; kind: 'progress'; fraction: number }
  | { id: number; kind: 'done'; outcome: Awaited<ReturnType<typeof executeRun>> }
  | { id: number; kind: 'failed'; message: string };

const port = parentPort;
if (!port) throw new Error('sweep-worker.ts runs only as a worker thread');

port.on('message', async ({ id, task }: ToWorker) => {
  let last = -1;
  const progress = (f: number) => {
    const step = Math.floor(f * 100);
    if (step !== last) { last = step; port.postMessage({ id, kind: 'progress', fraction: f } satisfies FromWorker); }
  };
  try {
    const outcome = await executeRun(task, progress);
    port.postMessage({ id, kind: 'done', outcome } satisfies FromWorker);
  } catch (e) {
    port.postMessage({ id, kind: 'failed', message: (e as Error).message } satisfies FromWorker);
  }
});
