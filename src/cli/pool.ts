// Runs tasks on worker threads (node:worker_threads), at most `jobs` at a time, each worker
// with its own Wasm core; with jobs = 1 (or one task) they run one after another in this
// thread. A run's result does not depend on where it ran: it depends only on its scenario
// and seed, and each run builds its own machines (test/cli/sweep.test.ts compares the files
// of --jobs 1 and --jobs 2).
//
// The worker's code: from dist/ (the installed package, plain node) it is sweep-worker.js
// beside this file; from the TypeScript sources (tsx in a clone, vitest) it is
// sweep-worker.ts, loaded through tsx's loader registered inside the worker, since Node 20
// does not pass --import loader hooks on to worker threads.

import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { availableParallelism } from 'node:os';
import { executeRun, type RunOutcome, type RunTask } from './run-task.js';
import type { FromWorker, ToWorker } from './sweep-worker.js';

/** The default of --jobs: the cores this process may use. */
export function defaultJobs(): number {
  return availableParallelism();
}

export interface PoolCallbacks {
  /** A task finished; called in completion order (index = the task's place in the list). */
  done(index: number, outcome: RunOutcome): void;
  /** Overall progress: finished tasks plus the running ones' fractions, over the task count. */
  progress?(fraction: number, finished: number): void;
}

export async function runPool(tasks: readonly RunTask[], jobs: number, cb: PoolCallbacks): Promise<void> {
  if (jobs <= 1 || tasks.length <= 1) return runHere(tasks, cb);
  return runOnWorkers(tasks, Math.min(jobs, tasks.length), cb);
}

async function runHere(tasks: readonly RunTask[], cb: PoolCallbacks): Promise<void> {
  for (let i = 0; i < tasks.length; i++) {
    const outcome = await executeRun(tasks[i], (f) => cb.progress?.((i + f) / tasks.length, i));
    cb.done(i, outcome);
    cb.progress?.((i + 1) / tasks.length, i + 1);
  }
}

function runOnWorkers(tasks: readonly RunTask[], workers: number, cb: PoolCallbacks): Promise<void> {
  return new Promise((resolve, reject) => {
    const pool: Worker[] = [];
    const running = new Map<number, number>(); // task index → fraction
    let next = 0, finished = 0, failed = false;
    const stopAll = () => { for (const w of pool) void w.terminate(); };
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      stopAll();
      reject(e);
    };
    const report = () => {
      let f = finished;
      for (const v of running.values()) f += v;
      cb.progress?.(f / tasks.length, finished);
    };
    const feed = (w: Worker) => {
      if (next >= tasks.length) return;
      const id = next++;
      running.set(id, 0);
      w.postMessage({ id, task: tasks[id] } satisfies ToWorker);
    };
    for (let k = 0; k < workers; k++) {
      const w = spawnWorker();
      pool.push(w);
      w.on('message', (m: FromWorker) => {
        if (failed) return;
        if (m.kind === 'progress') { running.set(m.id, m.fraction); report(); return; }
        if (m.kind === 'failed') { fail(new Error(m.message)); return; }
        running.delete(m.id);
        finished++;
        try { cb.done(m.id, m.outcome); } catch (e) { fail(e as Error); return; }
        report();
        if (finished === tasks.length) { stopAll(); resolve(); return; }
        feed(w);
      });
      w.on('error', (e) => fail(new Error(`a worker thread failed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => {
        if (!failed && finished < tasks.length && code !== 0) fail(new Error(`a worker thread exited with code ${code}`));
      });
      feed(w);
    }
  });
}

function spawnWorker(): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./sweep-worker.js', here));
  const entry = new URL('./sweep-worker.ts', here).href;
  const tsx = createRequire(here).resolve('tsx/package.json');
  const api = pathToFileURL(join(dirname(tsx), 'dist/esm/api/index.mjs')).href;
  return new Worker(`import(${JSON.stringify(api)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); });`, { eval: true });
}
