/*
 * PDF text extraction (issue 11, point 4): pdfjs-dist in a pool of
 * worker_threads, so a hostile PDF costs at most one worker, never the relay.
 *
 * Each worker (pdf-worker.ts) reads one document at a time under V8
 * resourceLimits; the pool gives each document a deadline. What a document
 * can do, and what the caller gets back:
 *   - parse in time, within the limits    -> { text, pages }
 *   - run past timeoutMs                  -> unscannable 'time'   (worker terminated, replaced)
 *   - fill the worker's V8 heap           -> unscannable 'memory' (V8 ends the worker, replaced)
 *   - grow the process's RSS by more than maxRssGrowthMb
 *                                         -> unscannable 'memory' (worker terminated, replaced)
 *   - need a password to open             -> unscannable 'encrypted'
 *   - have more than maxPages pages       -> unscannable 'pages'  (checked before any page is read)
 *   - hold more than maxTextChars of text -> unscannable 'text_size'
 *   - not parse at all                    -> unscannable 'corrupt'
 * An `unscannable` is never clean (DESIGN.md guarantee 5): the caller counts
 * it as `unscannable{reason}` and applies the `unscannable` action.
 * A PDF with only an owner password (print/copy restrictions, empty user
 * password) opens without one and is extracted like any other.
 *
 * Why an RSS watchdog besides resourceLimits: resourceLimits bound the V8
 * heap only. pdfjs decodes a stream into one growing Uint8Array, whose
 * memory is outside that heap: a 1 MB PDF holding a FlateDecode stream of
 * 1 GB of spaces took over 2 GB of RSS in 24 s with a 256 MiB heap limit,
 * and a heap bomb reached 1.1 GB of RSS before V8 stopped it. Workers are
 * threads of this process, so the pool samples the process's RSS while a
 * document is read (every RSS_SAMPLE_MS) and terminates the workers when it
 * has grown by more than maxRssGrowthMb since the oldest running document
 * started. Threads share one RSS, so which document grew it cannot be
 * told: every document being read at that moment gets 'memory'. That can
 * hold an innocent document read beside a bomb; it fails closed (held, not
 * passed), and it is rare (it needs a bomb at the same moment).
 *
 * extract() rejects (instead of resolving) only for the pool's own
 * failures: closed, or a worker that cannot start. Those are mailveil's
 * errors, not the document's.
 *
 * Workers start on first use, sit unref'd while idle (an idle pool does not
 * keep the process alive), and a worker that is terminated or dies is
 * replaced on the next document.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { PdfReply, PdfRequest, PdfUnscannable } from './pdf-worker';

export type { PdfUnscannable } from './pdf-worker';

export type PdfResult = { text: string; pages: number } | { unscannable: PdfUnscannable; detail: string };

export interface PdfExtractorOptions {
  /** Documents read at once. */
  workers?: number;
  /** V8 old-generation heap of each worker, MiB (resourceLimits). */
  maxOldGenerationSizeMb?: number;
  /** V8 young-generation heap of each worker, MiB (resourceLimits). */
  maxYoungGenerationSizeMb?: number;
  /** Time one document may take, ms, from when a worker takes it. */
  timeoutMs?: number;
  /** Pages a document may have. */
  maxPages?: number;
  /** Characters of text a document may give. */
  maxTextChars?: number;
  /** Growth of the process's RSS, MiB, at which the documents being read are stopped. */
  maxRssGrowthMb?: number;
}

/**
 * Defaults, and why:
 *  - workers 2: PDFs are a minority of attachments; two keep one slow file
 *    from queueing the others, and bound the memory below to 2 x heap.
 *  - maxOldGenerationSizeMb 256: reading a 500-page PDF of dense text
 *    grew RSS by under 50 MiB (two 200-page ones at once: under 90 MiB);
 *    256 leaves room and bounds a heap bomb to 256 MiB per worker.
 *  - maxYoungGenerationSizeMb 32: V8's own default on 64-bit is in this
 *    range; set so the bound is explicit.
 *  - timeoutMs 10 s: pdfjs lays text out at about 250,000 characters a
 *    second on one core (measured on Node 20 and 24), so a 20-page form
 *    takes a few hundred ms and a document at maxPages of dense text (1.7 M
 *    characters) about 7 s alone. Under CPU contention such a document may
 *    reach the deadline and be held as 'time' (fail closed). 10 s is well
 *    inside an SMTP client's patience after the dot (RFC 5321 4.5.3.2.6:
 *    10 minutes; Postfix's smtp_data_done_timeout is 600 s), and keeps a
 *    hostile file from holding a worker for long.
 *  - maxPages 500: more than any form, contract or report mailed as an
 *    attachment, and refused before a page is parsed.
 *  - maxTextChars 2,000,000: about 600 dense pages of text; the DLP scan
 *    works on the whole text, so this bounds its input per document.
 *  - maxRssGrowthMb 512: two workers each reading a large legitimate PDF
 *    grow RSS by under 100 MiB (measured, see above); a 2 GiB inflate
 *    bomb passes 512 MiB in about 4 s, well before the deadline.
 */
export const PDF_DEFAULTS = Object.freeze({
  workers: 2,
  maxOldGenerationSizeMb: 256,
  maxYoungGenerationSizeMb: 32,
  timeoutMs: 10_000,
  maxPages: 500,
  maxTextChars: 2_000_000,
  maxRssGrowthMb: 512,
});

/** How often the process's RSS is sampled while a document is read: about 10 MiB of inflate at pdfjs's speed. */
const RSS_SAMPLE_MS = 20;

const WORKER_FILE = join(__dirname, 'pdf-worker.js');

interface Job {
  id: number;
  data: Uint8Array;
  transfer: ArrayBuffer[];
  /** The process's RSS when a worker took it. */
  rssAtStart?: number;
  resolve: (r: PdfResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job?: Job;
  timer?: NodeJS.Timeout;
}

export class PdfExtractor {
  readonly options: Readonly<Required<PdfExtractorOptions>>;
  #slots = new Set<Slot>();
  #queue: Job[] = [];
  #nextId = 1;
  #closed = false;
  #watchdog?: NodeJS.Timeout;

  constructor(opts: PdfExtractorOptions = {}) {
    const o = { ...PDF_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
    for (const [k, v] of Object.entries(o)) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`PdfExtractor: ${k} must be a positive integer, not ${v}`);
    }
    this.options = Object.freeze(o);
  }

  /**
   * The text of one PDF. The bytes are moved to the worker, not copied,
   * when `pdf` owns its whole ArrayBuffer: `pdf` is then empty afterwards.
   * Pass `{ keep: true }` to have them copied instead.
   */
  extract(pdf: Uint8Array, opts: { keep?: boolean } = {}): Promise<PdfResult> {
    if (this.#closed) return Promise.reject(new Error('PdfExtractor is closed'));
    return new Promise((resolve, reject) => {
      const { data, transfer } = opts.keep ? copyOf(pdf) : movable(pdf);
      this.#queue.push({ id: this.#nextId++, data, transfer, resolve, reject });
      this.#pump();
    });
  }

  /** Ends the workers; documents still queued or running reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const err = new Error('PdfExtractor is closed');
    for (const job of this.#queue.splice(0)) job.reject(err);
    const ends: Promise<number>[] = [];
    for (const slot of [...this.#slots]) {
      const job = this.#release(slot);
      job?.reject(err);
      ends.push(slot.worker.terminate());
    }
    this.#slots.clear();
    await Promise.all(ends);
  }

  /** Hands queued documents to ready idle workers, starting workers up to the pool size. */
  #pump(): void {
    if (this.#closed) return;
    for (const slot of this.#slots) {
      if (!this.#queue.length) return;
      if (slot.ready && !slot.job) this.#start(slot, this.#queue.shift()!);
    }
    const starting = [...this.#slots].filter((s) => !s.ready).length;
    let wanted = Math.min(this.#queue.length - starting, this.options.workers - this.#slots.size);
    while (wanted-- > 0) this.#spawn();
  }

  #spawn(): void {
    const o = this.options;
    const worker = new Worker(WORKER_FILE, {
      resourceLimits: { maxOldGenerationSizeMb: o.maxOldGenerationSizeMb, maxYoungGenerationSizeMb: o.maxYoungGenerationSizeMb },
    });
    const slot: Slot = { worker, ready: false };
    this.#slots.add(slot);
    worker.on('message', (msg: PdfReply | 'ready') => {
      if (msg === 'ready') {
        slot.ready = true;
        worker.unref();
        this.#pump();
        return;
      }
      if (slot.job?.id !== msg.id) return;
      const job = this.#release(slot)!;
      worker.unref();
      job.resolve('text' in msg ? { text: msg.text, pages: msg.pages } : { unscannable: msg.unscannable, detail: msg.detail });
      this.#pump();
    });
    let died: Error | undefined;
    worker.on('error', (err) => {
      died = err;
    });
    worker.on('exit', (code) => {
      if (!this.#slots.delete(slot)) return;
      const job = this.#release(slot);
      const oom = (died as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
      if (job) {
        job.resolve(
          oom
            ? { unscannable: 'memory', detail: `over the worker heap limit (${o.maxOldGenerationSizeMb} MiB)` }
            : { unscannable: 'corrupt', detail: `the worker ended (${died ? died.message : `exit code ${code}`})` },
        );
      } else if (!slot.ready) {
        // It could not even start: the pool is broken, not a document.
        const err = new Error(`PDF worker failed to start: ${died ? died.message : `exit code ${code}`}`);
        for (const queued of this.#queue.splice(0)) queued.reject(err);
        return;
      }
      this.#pump();
    });
  }

  #start(slot: Slot, job: Job): void {
    slot.job = job;
    job.rssAtStart = process.memoryUsage.rss();
    this.#watchdog ??= setInterval(() => this.#checkRss(), RSS_SAMPLE_MS).unref();
    slot.worker.ref();
    slot.timer = setTimeout(() => this.#timeout(slot), this.options.timeoutMs);
    const req: PdfRequest = { id: job.id, data: job.data, maxPages: this.options.maxPages, maxTextChars: this.options.maxTextChars };
    try {
      slot.worker.postMessage(req, job.transfer);
    } catch {
      // An ArrayBuffer Node will not transfer (one it marked untransferable): copy it.
      const copy = copyOf(job.data);
      slot.worker.postMessage({ ...req, data: copy.data }, copy.transfer);
    }
    job.data = EMPTY;
  }

  #timeout(slot: Slot): void {
    const job = this.#release(slot);
    if (!job) return;
    this.#slots.delete(slot);
    void slot.worker.terminate();
    job.resolve({ unscannable: 'time', detail: `not read within ${this.options.timeoutMs} ms` });
    this.#pump();
  }

  /** Stops every document being read when RSS has grown past the limit (see the header). */
  #checkRss(): void {
    const busy = [...this.#slots].filter((s) => s.job);
    if (!busy.length) return;
    const base = Math.min(...busy.map((s) => s.job!.rssAtStart!));
    const rss = process.memoryUsage.rss();
    if (rss - base <= this.options.maxRssGrowthMb * MiB) return;
    const detail = `process RSS grew by ${Math.round((rss - base) / MiB)} MiB while ${busy.length} document(s) were read (limit ${this.options.maxRssGrowthMb} MiB)`;
    for (const slot of busy) {
      const job = this.#release(slot)!;
      this.#slots.delete(slot);
      void slot.worker.terminate();
      job.resolve({ unscannable: 'memory', detail });
    }
    this.#pump();
  }

  /** Takes the slot's job away (and its timer); the caller settles it. */
  #release(slot: Slot): Job | undefined {
    const job = slot.job;
    clearTimeout(slot.timer);
    slot.job = undefined;
    slot.timer = undefined;
    if (job && ![...this.#slots].some((s) => s.job)) {
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
    }
    return job;
  }
}

const EMPTY = new Uint8Array(0);
const MiB = 1024 * 1024;

/** The bytes as a view of an ArrayBuffer that can be transferred: `pdf`'s own when it owns all of it. */
function movable(pdf: Uint8Array): { data: Uint8Array; transfer: ArrayBuffer[] } {
  const ab = pdf.buffer;
  if (ab instanceof ArrayBuffer && pdf.byteOffset === 0 && pdf.byteLength === ab.byteLength) {
    return { data: new Uint8Array(ab), transfer: [ab] };
  }
  return copyOf(pdf);
}

function copyOf(pdf: Uint8Array): { data: Uint8Array; transfer: ArrayBuffer[] } {
  const data = new Uint8Array(pdf.byteLength);
  data.set(pdf);
  return { data, transfer: [data.buffer] };
}
