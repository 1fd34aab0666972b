// The browser build's node:worker_threads: gzip trace files are inflated in a Node worker;
// a page has no trace files, so this is never reached (validation reports the file missing).
export class Worker {
  constructor() { throw new Error('node:worker_threads is not available in the browser (trace files need Node)'); }
}
export default { Worker };
