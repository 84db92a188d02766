/*
 * One PDF extraction worker: runs inside a worker_threads Worker that
 * pdf.ts starts with resourceLimits, and answers one document at a time.
 *
 * Protocol (pdf.ts is the only sender): the parent posts a PdfRequest with
 * the file's bytes transferred (not copied) where it can; the worker posts
 * back one PdfReply with the same id. A document never ends the worker on
 * purpose: the parent ends it (timeout) or V8 does (heap limit), and the
 * parent then starts another.
 *
 * pdfjs-dist is ESM only. This file compiles to CommonJS, and the import()
 * below stays a native dynamic import because tsconfig.json sets
 * `module: nodenext`: for a CommonJS output file TypeScript leaves import()
 * as it is (under `module: commonjs` it would become require(), which
 * cannot load an .mjs file on Node 20). No eval and no Function().
 *
 * pdfjs runs here with no worker of its own: on Node it uses its "fake
 * worker" (the parser on this thread), so every byte it parses is under
 * this thread's resourceLimits and the parent's timeout.
 *
 * Text only. No canvas, no rendering, no fonts loaded into the page, no
 * eval in font programs (isEvalSupported: false, CVE-2024-4367), no URL or
 * network loading: the document is given as data. The only files read are
 * pdfjs-dist's own CMaps (cMapUrl), so CJK text in predefined-CMap fonts
 * extracts instead of going missing.
 */
import { parentPort } from 'node:worker_threads';
import { dirname, join } from 'node:path';

export interface PdfRequest {
  id: number;
  data: Uint8Array;
  maxPages: number;
  maxTextChars: number;
}

export type PdfUnscannable = 'time' | 'memory' | 'corrupt' | 'encrypted' | 'pages' | 'text_size';

export type PdfReply =
  | { id: number; text: string; pages: number }
  | { id: number; unscannable: PdfUnscannable; detail: string };

/** What pdfjs's getTextContent gives per run of text (the fields used here). */
interface TextRun {
  str: string;
  transform: number[];
  width: number;
  height: number;
  hasEOL: boolean;
}

/** A gap wider than this share of the font size between two runs on one line reads as a space. */
const SPACE_GAP = 0.15;
/** Two runs whose baselines differ by more than this share of the font size are on different lines. */
const SAME_LINE = 0.5;

const CMAP_DIR = join(dirname(require.resolve('pdfjs-dist/package.json')), 'cmaps') + '/';

let pdfjsReady: Promise<typeof import('pdfjs-dist/legacy/build/pdf.mjs')> | undefined;
/**
 * pdfjs, loaded on first use (not when a test imports joinRuns). Its parser
 * half (pdf.worker.mjs, which sets globalThis.pdfjsWorker, where pdfjs's
 * fake worker finds it) is loaded here too, before 'ready': else the first
 * document would spend its deadline loading 2 MB of JavaScript.
 */
function loadPdfjs() {
  return (pdfjsReady ??= import(PDFJS_PARSER).then(() => import('pdfjs-dist/legacy/build/pdf.mjs')));
}
/** A constant, not a literal in import(): pdfjs-dist ships no types for this file, and only its side effect is wanted. */
const PDFJS_PARSER = 'pdfjs-dist/legacy/build/pdf.worker.mjs';

class Limit extends Error {
  constructor(
    readonly reason: PdfUnscannable,
    detail: string,
  ) {
    super(detail);
  }
}

/**
 * Joins one page's runs: runs on one line are joined with nothing, or one
 * space when their gap is a space wide, so a value a generator split into
 * several runs reads as one; a line ends with `\n`.
 */
export function joinRuns(runs: readonly TextRun[]): string {
  let out = '';
  let prev: TextRun | undefined;
  for (const run of runs) {
    if (prev && !prev.hasEOL) {
      const size = Math.max(Math.abs(run.transform[3]) || run.height, 1);
      const dy = Math.abs(run.transform[5] - prev.transform[5]);
      if (dy > size * SAME_LINE) out += '\n';
      else {
        const gap = run.transform[4] - (prev.transform[4] + prev.width);
        if (gap > size * SPACE_GAP && !/\s$/.test(out) && !/^\s/.test(run.str)) out += ' ';
      }
    }
    out += run.str;
    if (run.hasEOL) out += '\n';
    prev = run;
  }
  return out.endsWith('\n') || out === '' ? out : out + '\n';
}

async function extract(req: PdfRequest): Promise<PdfReply> {
  const pdfjs = await loadPdfjs();
  const task = pdfjs.getDocument({
    data: req.data,
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
    stopAtErrors: false,
    isOffscreenCanvasSupported: false,
    isImageDecoderSupported: false,
    enableXfa: false,
    useWasm: false,
    useWorkerFetch: false,
    cMapUrl: CMAP_DIR,
    cMapPacked: true,
    verbosity: 0,
  });
  try {
    let doc;
    try {
      doc = await task.promise;
    } catch (err) {
      const name = (err as Error)?.name;
      if (name === 'PasswordException') return { id: req.id, unscannable: 'encrypted', detail: 'the PDF needs a password' };
      return { id: req.id, unscannable: 'corrupt', detail: `${name ?? 'Error'}: ${(err as Error)?.message ?? err}` };
    }
    const pages = doc.numPages;
    if (pages > req.maxPages) throw new Limit('pages', `${pages} pages, over the limit of ${req.maxPages}`);
    let text = '';
    for (let n = 1; n <= pages; n++) {
      const page = await doc.getPage(n);
      const content = await page.getTextContent();
      const runs: TextRun[] = content.items.flatMap((i) => ('str' in i ? [i] : []));
      text += joinRuns(runs);
      page.cleanup();
      if (text.length > req.maxTextChars) throw new Limit('text_size', `more than ${req.maxTextChars} characters of text`);
    }
    return { id: req.id, text, pages };
  } catch (err) {
    if (err instanceof Limit) return { id: req.id, unscannable: err.reason, detail: err.message };
    const name = (err as Error)?.name;
    if (name === 'PasswordException') return { id: req.id, unscannable: 'encrypted', detail: 'the PDF needs a password' };
    return { id: req.id, unscannable: 'corrupt', detail: `${name ?? 'Error'}: ${(err as Error)?.message ?? err}` };
  } finally {
    await task.destroy().catch(() => undefined);
  }
}

if (parentPort) {
  const port = parentPort;
  // pdfjs prints warnings about broken files (and, at load, about the
  // canvas polyfills it does not need here) with console.log: they would
  // go to the relay's stdout. A document's failure comes back as a reply.
  console.log = console.warn = console.info = console.debug = () => undefined;
  // 'ready' once pdfjs is loaded, so a document's deadline is not spent loading it.
  loadPdfjs().then(
    () => port.postMessage('ready'),
    (err) => {
      throw err;
    },
  );
  port.on('message', (req: PdfRequest) => {
    extract(req).then(
      (reply) => port.postMessage(reply),
      (err) => port.postMessage({ id: req.id, unscannable: 'corrupt', detail: String(err) } satisfies PdfReply),
    );
  });
}
