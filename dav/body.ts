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
 * it passes the limit, so no body is ever buffered beyond it.
 */
export async function readBody(ctx: Koa.Context, limit: number, tooLarge: () => DavError): Promise<Buffer> {
  const declared = ctx.get('content-length');
  if (declared !== '' && Number(declared) > limit) {
    ctx.req.resume();
    throw tooLarge();
  }
  try {
    return await getRawBody(ctx.req, { limit, length: declared === '' ? undefined : Number(declared) });
  } catch (error) {
    if (isTooLarge(error)) throw tooLarge();
    throw new DavError(400, undefined, `the request body could not be read: ${(error as Error).message}`);
  }
}

/** Reads and parses an XML body; returns undefined for an empty one. */
export async function readXmlBody(ctx: Koa.Context, limit: number): Promise<XmlElement | undefined> {
  const body = await readBody(ctx, limit, () => new DavError(413, undefined, `the XML body is larger than ${limit} bytes`));
  const text = body.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return parseXml(text);
  } catch (error) {
    if (error instanceof XmlError) throw new DavError(400, undefined, error.message);
    throw error;
  }
}
