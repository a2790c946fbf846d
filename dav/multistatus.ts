import { Readable } from 'node:stream';
import type Koa from 'koa';
import { escapeXml, tag, XML_HEADER, XMLNS_DECLARATIONS } from './xml';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  424: 'Failed Dependency',
  507: 'Insufficient Storage',
};

/** Status lines exactly as strict clients (Thunderbird, CardBook) compare them. */
export function statusLine(status: number): string {
  return `<d:status>HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}</d:status>`;
}

export interface PropStat {
  status: number;
  /** Clark names with their XML content. */
  properties: [string, string][];
  /** A DAV:error condition for this propstat, as XML. */
  error?: string;
}

/**
 * Builds a DAV:response from its propstats, leaving out empty ones. When
 * every propstat is empty (a PROPFIND with an empty DAV:prop), the response
 * gets one 200 propstat with an empty DAV:prop, because a response needs a
 * propstat or a status (RFC 4918 section 14.24).
 */
export function responseXml(href: string, propstats: PropStat[]): string {
  let filled = propstats.filter((propstat) => propstat.properties.length > 0);
  if (filled.length === 0) filled = [{ status: 200, properties: [] }];
  const parts = filled
    // The 200 propstat goes first because Thunderbird reads only the first status.
    // Array sort is stable, so the other propstats keep their order.
    .sort((a, b) => Number(a.status !== 200) - Number(b.status !== 200))
    .map((propstat) => {
      const props = propstat.properties.map(([name, value]) => tag(name, value)).join('');
      const error = propstat.error ? `<d:error>${propstat.error}</d:error>` : '';
      return `<d:propstat><d:prop>${props}</d:prop>${statusLine(propstat.status)}${error}</d:propstat>`;
    });
  return `<d:response><d:href>${escapeXml(href)}</d:href>${parts.join('')}</d:response>`;
}

/** Builds a response with one status for the whole href: a missing card, a removed one, or a truncated result. */
export function statusResponseXml(href: string, status: number, error?: string): string {
  const errorXml = error ? `<d:error>${error}</d:error>` : '';
  return `<d:response><d:href>${escapeXml(href)}</d:href>${statusLine(status)}${errorXml}</d:response>`;
}

/**
 * Length in characters at which a response body is written out, and at which
 * producers of responses yield their text. With one chunk per page of 500
 * cards (about 750 KB), a multiget of 100,000 cards peaked at 270 MB of
 * resident memory. With this length it peaked at 180 MB. Which part of V8's
 * garbage collection kept the larger chunks was not measured.
 */
export const CHUNK_CHARS = 16384;

/**
 * Joins text and bytes into pieces of about CHUNK_CHARS bytes, written
 * straight into one buffer per piece. Stored card bytes are copied once, and
 * no string of a whole response is built and encoded again.
 */
export class ByteChunks {
  private buffer = Buffer.alloc(0);
  private length = 0;

  /** Adds text as UTF-8. */
  text(text: string): void {
    // UTF-8 takes at most 3 bytes for each UTF-16 code unit.
    this.reserve(3 * text.length);
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
  }

  /** Whether a piece is ready to go out. */
  get full(): boolean {
    return this.length >= CHUNK_CHARS;
  }

  /** Returns what was added since the last take, or undefined when nothing was. */
  take(): Buffer | undefined {
    if (this.length === 0) return undefined;
    const piece = this.buffer.subarray(0, this.length);
    this.buffer = Buffer.alloc(0);
    this.length = 0;
    return piece;
  }

  private reserve(size: number): void {
    if (this.length + size <= this.buffer.length) return;
    // Room for two pieces, so that a piece is rarely copied to a larger buffer.
    const larger = Buffer.allocUnsafe(Math.max(2 * CHUNK_CHARS, 2 * (this.length + size)));
    larger.set(this.buffer.subarray(0, this.length));
    this.buffer = larger;
  }
}

/**
 * Sends a 207 whose responses are produced lazily, so a listing of a large
 * book is written as it is read and never held in memory whole. `trailer` is
 * written after the last response (a sync-token, for example).
 */

export function sendMultistatus(ctx: Koa.Context, responses: AsyncIterable<string | Buffer>, trailer?: () => string): void {
  async function* body(): AsyncGenerator<string | Buffer> {
    yield `${XML_HEADER}<d:multistatus ${XMLNS_DECLARATIONS}>`;
    let batch = '';
    for await (const response of responses) {
      // Bytes are already in pieces of about CHUNK_CHARS and go out as they are, after the text before them.
      if (typeof response !== 'string') {
        if (batch !== '') yield batch;
        batch = '';
        yield response;
        continue;
      }
      batch += response;
      if (batch.length >= CHUNK_CHARS) {
        yield batch;
        batch = '';
      }
    }
    yield batch + (trailer ? trailer() : '') + '</d:multistatus>';
  }
  ctx.status = 207;
  ctx.type = 'application/xml; charset=utf-8';
  ctx.body = Readable.from(body(), { objectMode: false });
}

/**
 * Reads the first response before anything is sent, so the storage read
 * behind it runs while a failure can still become a DAV:error response
 * instead of a 207 cut off in the middle. Returns the same responses, the
 * first one included, and closes the source when the consumer stops early.
 */
export async function prefetchFirst<T>(responses: AsyncIterable<T>): Promise<AsyncIterable<T>> {
  const iterator = responses[Symbol.asyncIterator]();
  const first = await iterator.next();
  const rest: AsyncIterable<T> = { [Symbol.asyncIterator]: () => iterator };
  return (async function* () {
    try {
      if (first.done) return;
      yield first.value;
      yield* rest;
    } finally {
      await iterator.return?.();
    }
  })();
}

export { tag };
