import { TextDecoder } from 'node:util';
import getRawBody from 'raw-body';
import type Koa from 'koa';
import { DavError } from './errors';
import { parseXml, XmlElement, XmlError } from './xml';

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
  const declared = ctx.get('content-length');
  if (declared !== '' && Number(declared) > limit) {
    ctx.set('Connection', 'close');
    ctx.req.resume();
    throw tooLarge();
  }
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

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const UTF16LE = new TextDecoder('utf-16le', { fatal: true });
const UTF16BE = new TextDecoder('utf-16be', { fatal: true });
/** The encoding name in an XML declaration (XML 1.0 section 4.3.3), read from the first bytes as ASCII. */
const DECLARED_ENCODING = /^\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']/;

function invalidEncoding(message: string): DavError {
  return new DavError(400, undefined, message);
}

function decodeStrict(decoder: TextDecoder, bytes: Uint8Array, name: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw invalidEncoding(`the XML body is not valid ${name}`);
  }
}

/**
 * Decodes an XML body. A byte order mark selects UTF-8 or UTF-16, and
 * without one the XML declaration may name UTF-8, US-ASCII or ISO-8859-1;
 * the body defaults to UTF-8. Invalid bytes and any other encoding are a 400,
 * because a lenient decoder would store U+FFFD in their place.
 */
export function decodeXmlBody(body: Buffer): string {
  const marked = decodeByteOrderMark(body);
  if (marked) {
    const declared = DECLARED_ENCODING.exec(marked.text.slice(0, 200))?.[1];
    const encoding = declared?.toUpperCase();
    const matches =
      encoding === undefined || encoding === marked.encoding || (marked.encoding === 'UTF-16' && (encoding === 'UTF-16LE' || encoding === 'UTF-16BE'));
    if (!matches) throw invalidEncoding(`the XML body starts with a ${marked.encoding} byte order mark but declares encoding ${declared}`);
    return marked.text;
  }
  const declared = DECLARED_ENCODING.exec(body.subarray(0, 200).toString('latin1'))?.[1];
  switch (declared?.toUpperCase()) {
    case undefined:
    case 'UTF-8':
    case 'UTF8':
      return decodeStrict(UTF8, body, 'UTF-8');
    case 'ISO-8859-1':
    case 'ISO_8859-1':
    case 'LATIN1':
      return body.toString('latin1');
    case 'US-ASCII':
    case 'ASCII':
      if (body.some((byte) => byte > 0x7f)) throw invalidEncoding('the XML body declares US-ASCII but contains bytes above 0x7F');
      return body.toString('latin1');
    default:
      throw invalidEncoding(`the XML body declares encoding ${declared}, which is not supported; send UTF-8`);
  }
}

/** Decodes a body that starts with a UTF-8 or UTF-16 byte order mark, without the mark; returns undefined when there is none. */
function decodeByteOrderMark(body: Buffer): { encoding: 'UTF-8' | 'UTF-16'; text: string } | undefined {
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return { encoding: 'UTF-8', text: decodeStrict(UTF8, body.subarray(3), 'UTF-8') };
  if (body[0] === 0xff && body[1] === 0xfe) return { encoding: 'UTF-16', text: decodeStrict(UTF16LE, body.subarray(2), 'UTF-16') };
  if (body[0] === 0xfe && body[1] === 0xff) return { encoding: 'UTF-16', text: decodeStrict(UTF16BE, body.subarray(2), 'UTF-16') };
  return undefined;
}

/** Reads and parses an XML body; returns undefined for an empty one. */
export async function readXmlBody(ctx: Koa.Context, limit: number): Promise<XmlElement | undefined> {
  const body = await readBody(ctx, limit, () => new DavError(413, undefined, `the XML body is larger than ${limit} bytes`));
  const text = decodeXmlBody(body).trim();
  if (text === '') return undefined;
  try {
    return parseXml(text);
  } catch (error) {
    if (error instanceof XmlError) throw new DavError(400, undefined, error.message);
    throw error;
  }
}
