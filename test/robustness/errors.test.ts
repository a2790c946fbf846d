/**
 * Error bodies when the server itself fails: a 500 names a request id and
 * nothing else, a failure in the middle of a streamed multistatus never looks
 * like a complete response, and the server keeps serving afterwards.
 */
import http from 'node:http';
import { startTestApp, type TestApp } from '../helpers/app';
import type { Storage } from '../../storage/types';
import { basicAuth, Client, expectDavError, expectNoInternals, parseMultistatus, person, portOf, PROPFIND_ETAG } from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';

let app: TestApp;
let client: Client;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: 65536 });
  await app.addUser('alice');
  client = new Client(portOf(app), app.auth('alice'));
  for (let i = 0; i < 3; i++) await client.put(`${BOOK}card-${i}.vcf`, person(`card-${i}`));
});

afterAll(() => app.close());

/** Replaces one storage method until the returned function restores it. */
function breakStorage<K extends keyof Storage>(name: K, replacement: Storage[K]): () => void {
  const storage = app.storage as unknown as Record<string, unknown>;
  const original = storage[name];
  storage[name] = replacement;
  return () => {
    storage[name] = original;
  };
}

function internalError(): Error {
  const error = new Error('SQLITE_CORRUPT: database disk image is malformed at /var/lib/cardinal/cardinal.sqlite3');
  error.name = 'SqliteError';
  return error;
}

/** Sends a request and returns the status and body, or the client error when the response was cut off. */
function fetchOrAbort(method: string, path: string, body: string): Promise<{ status?: number; text?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port: client.port, method, path, agent: false, headers: { Authorization: app.auth('alice'), Depth: '1', 'Content-Length': String(Buffer.byteLength(body)) } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(parts).toString('utf8') }));
        res.on('error', (error) => resolve({ status: res.statusCode, text: Buffer.concat(parts).toString('utf8'), error: error.message }));
      },
    );
    req.on('error', (error) => resolve({ error: error.message }));
    req.end(body);
  });
}

describe('storage failure', () => {
  test('500 body reveals no internals', async () => {
    const restore = breakStorage('getCardMeta', async () => {
      throw internalError();
    });
    try {
      const reply = await client.get(`${BOOK}card-0.vcf`);
      const root = expectDavError(reply, 500);
      expectNoInternals(reply.text);
      expect(reply.text).not.toContain('SQLITE_CORRUPT');
      expect(reply.text).not.toContain('cardinal.sqlite3');
      expect(root.children.map((c) => c.text).join(' ')).toMatch(/request id [0-9a-f-]{36}/);
    } finally {
      restore();
    }
    expect((await client.get(`${BOOK}card-0.vcf`)).status).toBe(200);
  });

  test('500 during login reveals no internals', async () => {
    const restore = breakStorage('getUser', async () => {
      throw internalError();
    });
    try {
      const reply = await new Client(client.port, basicAuth('alice', 'anything')).propfind(BOOK, '0', PROPFIND_ETAG);
      expectDavError(reply, 500);
      expect(reply.text).not.toContain('SQLITE_CORRUPT');
    } finally {
      restore();
    }
  });

  test('failure mid-listing breaks the stream', async () => {
    const snapshot = app.storage.snapshotCardMeta.bind(app.storage);
    // The first page reaches the client before the storage fails.
    const restore = breakStorage('snapshotCardMeta', async function* (bookId: number, pageSize: number) {
      for await (const page of snapshot(bookId, pageSize)) {
        yield page.slice(0, 1);
        break;
      }
      throw internalError();
    });
    let result: { status?: number; text?: string; error?: string };
    try {
      result = await fetchOrAbort('PROPFIND', BOOK, PROPFIND_ETAG);
    } finally {
      restore();
    }
    if (result.status === 500) expectNoInternals(result.text ?? '');
    else expect(() => parseMultistatus(result.text ?? '')).toThrow();
    expect(result.text ?? '').not.toContain('SQLITE_CORRUPT');

    const replies = await Promise.all(Array.from({ length: 5 }, () => client.propfind(BOOK, '1', PROPFIND_ETAG)));
    expect(replies.map((r) => r.status)).toEqual([207, 207, 207, 207, 207]);
    expect(parseMultistatus(replies[0].text).responses).toHaveLength(4);
  });

  // A sync that requests the ETag alone reads responses that the storage renders, and one with other values reads changes.
  test.each([
    ['renderChanges', '<d:getetag/>'],
    ['changesSince', '<d:getetag/><d:getlastmodified/>'],
  ] as const)('failure in %s breaks the sync', async (method, props) => {
    const restore = breakStorage(method, async () => {
      throw internalError();
    });
    let result: { status?: number; text?: string; error?: string };
    try {
      result = await fetchOrAbort('REPORT', BOOK, `<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level><d:prop>${props}</d:prop></d:sync-collection>`);
    } finally {
      restore();
    }
    if (result.status === 500) expectNoInternals(result.text ?? '');
    else expect(() => parseMultistatus(result.text ?? '')).toThrow();
    expect((await client.propfind(BOOK, '1', PROPFIND_ETAG)).status).toBe(207);
  });

  // A multiget of the ETag and the address data as stored reads responses that the storage renders.
  // One that also requests getlastmodified reads the cards.
  test.each([
    ['renderCards', '<d:getetag/><c:address-data/>'],
    ['getCardXml', '<d:getetag/><d:getlastmodified/><c:address-data/>'],
  ] as const)('failure in %s fails the multiget', async (method, props) => {
    const listing = parseMultistatus((await client.propfind(BOOK, '1', PROPFIND_ETAG)).text);
    const hrefs = listing.responses.map((r) => r.href).filter((href) => href !== BOOK);
    expect(hrefs.length).toBeGreaterThan(0);
    const body =
      `<c:addressbook-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav"><d:prop>${props}</d:prop>` +
      hrefs.map((href) => `<d:href>${href}</d:href>`).join('') +
      '</c:addressbook-multiget>';
    const restore = breakStorage(method, async () => {
      throw internalError();
    });
    let result: { status?: number; text?: string; error?: string };
    try {
      result = await fetchOrAbort('REPORT', BOOK, body);
    } finally {
      restore();
    }
    expect(result.status).toBe(500);
    expectNoInternals(result.text ?? '');
    const again = await fetchOrAbort('REPORT', BOOK, body);
    expect(again.status).toBe(207);
    expect(parseMultistatus(again.text ?? '').responses.map((r) => r.href)).toEqual(hrefs);
  });
});

describe('login limits', () => {
  test('429 is a DAV:error with Retry-After', async () => {
    await app.addUser('target');
    const wrong = new Client(client.port, basicAuth('target', 'wrong'));
    const statuses: number[] = [];
    for (let i = 0; i < 100 && !statuses.includes(429); i++) {
      statuses.push((await wrong.propfind('/dav/addressbooks/target/', '0', PROPFIND_ETAG)).status);
    }
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
    expect(statuses).toContain(429);
    const limited = await wrong.propfind('/dav/addressbooks/target/', '0', PROPFIND_ETAG);
    expectDavError(limited, 429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  });
});
