/*
 * Minimal types for mailsplit 5, which ships none. Headers is typed for what
 * its callers need; Splitter, Joiner and Rewriter are loose (any-typed
 * Transforms) until the DLP stages pin down what they use.
 * Beware: Headers' parser is super-linear on hostile input (long runs of bare
 * CR, alternating field and continuation lines), and MessageSplitter parses
 * every MIME part's header with it; see src/mime/header-fields.ts.
 */
declare module 'mailsplit' {
  import { Transform } from 'node:stream';

  /** One header field; `line` is binary (latin1) text, folds joined by "\r\n", no final line end. */
  export interface HeaderLine {
    key: string;
    line: string;
  }

  export class Headers {
    constructor(headers: Buffer | string | HeaderLine[], config?: { Iconv?: unknown });
    getList(): HeaderLine[];
    get(key: string): string[];
    getFirst(key: string): string;
    hasHeader(key: string): boolean;
    remove(key: string): void;
    add(key: string, value: string | Buffer | number, index?: number): void;
    addFormatted(key: string, line: string | Buffer, index?: number): void;
    update(key: string, value: string | Buffer | number, relativeIndex?: number): void;
    /** Unchanged input comes back byte-identical; otherwise re-joined with `lineEnd` (default CRLF). */
    build(lineEnd?: string): Buffer;
  }

  export class Splitter extends Transform {
    constructor(config?: any);
    [key: string]: any;
  }

  export class Joiner extends Transform {
    constructor(config?: any);
    [key: string]: any;
  }

  export class Rewriter extends Transform {
    constructor(filter: (node: any) => boolean, config?: any);
    [key: string]: any;
  }

  export class Streamer extends Transform {
    constructor(filter: (node: any) => boolean, config?: any);
    [key: string]: any;
  }
}
