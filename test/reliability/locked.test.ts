/**
 * The real server while another process holds the database's write lock, as
 * the command line does during a long change. Writes wait without stopping
 * the server, so reads are served meanwhile. A lock held for longer than the
 * storage retries its writes (10 s) gets 503 with Retry-After, and nothing is
 * stored. Needs `npm run build` first.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { RunningServer, startServer } from '../helpers/server';

jest.setTimeout(60_000);

const BOOK = 'dav/addressbooks/alice/contacts/';
const AUTH = `Basic ${Buffer.from('alice:alice-password').toString('base64')}`;

let server: RunningServer;
let holder: Database.Database;

beforeAll(async () => {
  server = await startServer();
  await server.addUser('alice', 'alice-password');
  holder = new Database(join(server.dataDir, 'cardinal.sqlite3'));
});

afterAll(async () => {
  if (holder.inTransaction) holder.exec('ROLLBACK');
  holder.close();
  await server.stop();
});

function card(uid: string): string {
  return `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:Person ${uid}\r\nEND:VCARD\r\n`;
}

function put(uid: string): Promise<Response> {
  return fetch(`${server.url}${BOOK}${uid}.vcf`, {
    method: 'PUT',
    headers: { Authorization: AUTH, 'Content-Type': 'text/vcard; charset=utf-8' },
    body: card(uid),
  });
}

function propfindBook(): Promise<Response> {
  return fetch(`${server.url}${BOOK}`, { method: 'PROPFIND', headers: { Authorization: AUTH, Depth: '0' } });
}

/** Holds the write lock from the test's own connection until the returned function is called. */
function holdWriteLock(): () => void {
  holder.exec('BEGIN IMMEDIATE');
  return () => holder.exec('COMMIT');
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('write waits, reads go on', async () => {
  const release = holdWriteLock();
  const order: string[] = [];
  const write = put('waiting').then((response) => {
    order.push('write');
    return response;
  });
  await delay(300);
  const read = await propfindBook();
  order.push('read');
  expect(read.status).toBe(207);
  release();

  const written = await write;
  expect(written.status).toBe(201);
  expect(order).toEqual(['read', 'write']);
  const stored = await fetch(`${server.url}${BOOK}waiting.vcf`, { headers: { Authorization: AUTH } });
  expect(await stored.text()).toContain('UID:waiting');
});

test('lock held too long gives 503', async () => {
  const release = holdWriteLock();
  let response: Response;
  try {
    response = await put('refused');
  } finally {
    release();
  }
  expect(response.status).toBe(503);
  expect(response.headers.get('retry-after')).toBe('5');
  expect(await response.text()).toContain('the database is locked by another process, so nothing was stored');
  const stored = await fetch(`${server.url}${BOOK}refused.vcf`, { headers: { Authorization: AUTH } });
  expect(stored.status).toBe(404);
  expect(server.output()).toContain('request failed: the database stayed locked');

  const again = await put('refused');
  expect(again.status).toBe(201);
});
