import { TextDecoder } from 'node:util';
import getRawBody from 'raw-body';
import type Koa from 'koa';
import { DavError } from './errors';
import { PackRule, XmlElement, XmlError, XmlTreeParser } from './xml';

function isTooLarge(error: unknown): boolean {
  return (error as { type?: string }).type === 'entity.too.large';
}

/**
 * Reads the request body up to `limit` bytes. A declared Content-Length over
 * the limit fails before anything is read, and a chunked body fails as soon as
 * it passes the limit, so no body is ever buffered beyond it. Either failure
 * closes the connection after the response, because the rest of the body
 * would otherwise be read and discarded to reuse the connection.
 */
export async function readBody(ctx: Koa.Context, limit: number, tooLarge: () => DavError): Promise<Buffer> {
  const declared = checkDeclaredLength(ctx, limit, tooLarge);
  try {
    return await getRawBody(ctx.req, { limit, length: declared === '' ? undefined : Number(declared) });
  } catch (error) {
    if (isTooLarge(error)) {
      ctx.set('Connection', 'close');
      throw tooLarge();
    }
    throw new DavError(400, undefined, `the request body could not be read: ${(error as Error).message}`);
  }
}

/** Throws `tooLarge()` for a declared Content-Length over the limit, before anything is read; returns the header's value. */
function checkDeclaredLength(ctx: Koa.Context, limit: number, tooLarge: () => DavError): string {
  const declared = ctx.get('content-length');
  if (declared !== '' && Number(declared) > limit) {
    ctx.set('Connection', 'close');
    ctx.req.resume();
    throw tooLarge();
  }
  return declared;
}

/**
 * Reads the request body and hands each piece to `consume`, up to `limit`
 * bytes. After `consume` throws, the rest of the body is read and dropped, so
 * that the error response reaches the client on a connection that stays
 * usable. The promise then rejects with that error.
 */
function consumeBody(ctx: Koa.Context, limit: number, tooLarge: () => DavError, consume: (piece: Buffer) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const req = ctx.req;
    let received = 0;
    let failure: unknown;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      req.off('close', onClose);
    };
    const settle = (error?: unknown) => {
      cleanup();
      if (error === undefined) resolve();
      else reject(error);
    };
    const onData = (piece: Buffer) => {
      received += piece.length;
      if (received > limit) {
        // As for a declared length over the limit: nothing more is read, and the connection closes after the 413.
        ctx.set('Connection', 'close');
        req.pause();
        settle(tooLarge());
        return;
      }
      if (failure !== undefined) return;
      try {
        consume(piece);
      } catch (error) {
        failure = error;
      }
    };
    const onEnd = () => settle(failure);
    const onError = (error: Error) => settle(new DavError(400, undefined, `the request body could not be read: ${error.message}`));
    const onAborted = () => settle(new DavError(400, undefined, 'the request body could not be read: the client closed the connection'));
    // A connection destroyed without an error event (a timeout, say) still ends the wait.
    const onClose = () => settle(new DavError(400, undefined, 'the request body could not be read: the connection closed'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
    req.on('close', onClose);
  });
}

/** The encoding name in an XML declaration (XML 1.0 section 4.3.3), read from the first bytes as ASCII. */
const DECLARED_ENCODING = /^\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']/;

function invalidEncoding(message: string): DavError {
  return new DavError(400, undefined, message);
}

/** Bytes read before the encoding is chosen: enough for a byte order mark and an XML declaration. */
const HEAD_BYTES = 200;

/**
 * Decodes an XML body piece by piece. A byte order mark selects UTF-8 or
 * UTF-16, and without one the XML declaration may name UTF-8, US-ASCII or
 * ISO-8859-1; the body defaults to UTF-8. Invalid bytes and any other
 * encoding are a 400, because a lenient decoder would store U+FFFD in their
 * place. The encoding is chosen from the first HEAD_BYTES bytes, or from all
 * of a shorter body; until then, pieces are held back.
 */
class XmlBodyDecoder {
  private head: Buffer[] = [];
  private headLength = 0;
  private decode?: (bytes: Buffer, last: boolean) => string;

  write(bytes: Buffer): string {
    if (this.decode) return this.decode(bytes, false);
    this.head.push(bytes);
    this.headLength += bytes.length;
    return this.headLength < HEAD_BYTES ? '' : this.start(false);
  }

  end(): string {
    return this.decode ? this.decode(Buffer.alloc(0), true) : this.start(true);
  }

  private start(last: boolean): string {
    const head = Buffer.concat(this.head);
    this.head = [];
    const bom = byteOrderMark(head);
    if (bom) {
      this.decode = streamDecoder(new TextDecoder(bom.label, { fatal: true }), bom.encoding);
      const text = this.decode(head.subarray(bom.bytes.length), last);
      const declared = DECLARED_ENCODING.exec(text.slice(0, HEAD_BYTES))?.[1];
      const encoding = declared?.toUpperCase();
      const matches = encoding === undefined || encoding === bom.encoding || (bom.encoding === 'UTF-16' && (encoding === 'UTF-16LE' || encoding === 'UTF-16BE'));
      if (!matches) throw invalidEncoding(`the XML body starts with a ${bom.encoding} byte order mark but declares encoding ${declared}`);
      return text;
    }
    this.decode = declaredDecoder(DECLARED_ENCODING.exec(head.subarray(0, HEAD_BYTES).toString('latin1'))?.[1]);
    return this.decode(head, last);
  }
}

/** Byte order marks, with the encoding each selects and the name TextDecoder gives it. */
const BYTE_ORDER_MARKS: { bytes: number[]; encoding: 'UTF-8' | 'UTF-16'; label: string }[] = [
  { bytes: [0xef, 0xbb, 0xbf], encoding: 'UTF-8', label: 'utf-8' },
  { bytes: [0xff, 0xfe], encoding: 'UTF-16', label: 'utf-16le' },
  { bytes: [0xfe, 0xff], encoding: 'UTF-16', label: 'utf-16be' },
];

/** Finds the byte order mark at the start of a body, if there is one. */
function byteOrderMark(head: Buffer): (typeof BYTE_ORDER_MARKS)[number] | undefined {
  return BYTE_ORDER_MARKS.find((mark) => mark.bytes.every((byte, i) => head[i] === byte));
}

/** Returns a decoder that keeps an incomplete sequence at the end of one piece for the next, and rejects invalid bytes. */
function streamDecoder(decoder: TextDecoder, name: string): (bytes: Buffer, last: boolean) => string {
  return (bytes, last) => {
    try {
      return decoder.decode(bytes, { stream: !last });
    } catch {
      throw invalidEncoding(`the XML body is not valid ${name}`);
    }
  };
}

function declaredDecoder(declared: string | undefined): (bytes: Buffer, last: boolean) => string {
  switch (declared?.toUpperCase()) {
    case undefined:
    case 'UTF-8':
    case 'UTF8':
      return streamDecoder(new TextDecoder('utf-8', { fatal: true }), 'UTF-8');
    case 'ISO-8859-1':
    case 'ISO_8859-1':
    case 'LATIN1':
      return (bytes) => bytes.toString('latin1');
    case 'US-ASCII':
    case 'ASCII':
      return (bytes) => {
        if (bytes.some((byte) => byte > 0x7f)) throw invalidEncoding('the XML body declares US-ASCII but contains bytes above 0x7F');
        return bytes.toString('latin1');
      };
    default:
      throw invalidEncoding(`the XML body declares encoding ${declared}, which is not supported; send UTF-8`);
  }
}

/**
 * Reads and parses an XML body as it arrives, so that neither its bytes nor
 * its text are ever held whole: in a multiget of 100,000 hrefs they were
 * 17 MB beside the tree. Returns undefined for an empty body or one of white
 * space only. The size limit applies as in readBody. `pack` names children
 * that a large body keeps as text alone (see PackRule).
 */
export async function readXmlBody(ctx: Koa.Context, limit: number, pack?: PackRule): Promise<XmlElement | undefined> {
  const tooLarge = () => new DavError(413, undefined, `the XML body is larger than ${limit} bytes`);
  checkDeclaredLength(ctx, limit, tooLarge);
  const decoder = new XmlBodyDecoder();
  const parser = new XmlTreeParser(undefined, pack);
  // Leading white space is skipped, as a lenient reader of `  <?xml ...` would, and the rest goes to the parser.
  let started = false;
  const feed = (text: string) => {
    if (!started) {
      text = text.trimStart();
      if (text === '') return;
      started = true;
    }
    parser.write(text);
  };
  try {
    await consumeBody(ctx, limit, tooLarge, (piece) => feed(decoder.write(piece)));
    feed(decoder.end());
    return started ? parser.close() : undefined;
  } catch (error) {
    if (error instanceof XmlError) throw new DavError(400, undefined, error.message);
    throw error;
  }
}
