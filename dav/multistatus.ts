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

export function responseXml(href: string, propstats: PropStat[]): string {
  const parts = propstats
    .filter((propstat) => propstat.properties.length > 0)
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

/** A response that carries a status for the whole href (a missing card, a removed one, a truncation). */
export function statusResponseXml(href: string, status: number, error?: string): string {
  const errorXml = error ? `<d:error>${error}</d:error>` : '';
  return `<d:response><d:href>${escapeXml(href)}</d:href>${statusLine(status)}${errorXml}</d:response>`;
}

/**
 * Sends a 207 whose responses are produced lazily, so a listing of a large
 * book is written as it is read and never held in memory whole. `trailer` is
 * written after the last response (a sync-token, for example).
 */
export function sendMultistatus(ctx: Koa.Context, responses: AsyncIterable<string>, trailer?: () => string): void {
  async function* body(): AsyncGenerator<string> {
    yield `${XML_HEADER}<d:multistatus ${XMLNS_DECLARATIONS}>`;
    let batch = '';
    for await (const response of responses) {
      batch += response;
      if (batch.length >= 65536) {
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

export { tag };
