/**
 * The real server as a child process: killed with SIGKILL in the middle of a
 * burst of PUTs, sharing its database with the command line, and sent
 * requests that Node's HTTP parser rejects. Needs `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { findFreePort, repoRoot, runCli } from '../helpers/server';
import {
  basicAuth,
  Client,
  currentSyncToken,
  dav,
  okProp,
  parseRawResponse,
  parseXml,
  person,
  PROPFIND_ETAG,
  rawExchange,
  readWholeBook,
  syncCollection,
} from './support';

jest.setTimeout(120_000);

const BOOK = '/dav/addressbooks/alice/contacts/';
const PASSWORD = 'alice-password';

interface ServerProcess {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<void>;
}

/** Starts `cardinal serve` on an existing data folder and resolves once it logs "listening". */
async function serve(dataDir: string): Promise<ServerProcess> {
  const port = await findFreePort();
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'cardinal.js'), 'serve', '--data', dataDir, '--host', '127.0.0.1', '--port', String(port)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: string): void => {
      output += chunk;
      if (output.split('\n').some((line) => line.includes('"msg":"listening"'))) resolve();
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('exit', (code, signal) => reject(new Error(`cardinal serve exited before listening (exit ${code}, signal ${signal})\n${output}`)));
  });
  return { child, port, output: () => output, exited };
}

/** Stops a server by its PID and waits for it to exit. */
async function stop(server: ServerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null && server.child.pid !== undefined) process.kill(server.child.pid, signal);
  await server.exited;
}

async function cli(args: string[], input = ''): Promise<void> {
  const result = await runCli(args, input);
  if (result.code !== 0) throw new Error(`cardinal ${args.join(' ')} failed (exit ${result.code})\n${result.stdout}${result.stderr}`);
}

describe('cardinal serve', () => {
  let dataDir: string;
  const running: ServerProcess[] = [];

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cardinal-faults-'));
    await cli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], `${PASSWORD}\n`);
  });

  afterEach(async () => {
    for (const server of running.splice(0)) await stop(server);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('SIGKILL mid-burst keeps acknowledged cards', async () => {
    const first = await serve(dataDir);
    running.push(first);
    let client = new Client(first.port, basicAuth('alice', PASSWORD));
    for (let i = 0; i < 5; i++) await client.put(`${BOOK}before-${i}.vcf`, person(`before-${i}`));
    const earlyToken = await currentSyncToken(client, BOOK);

    const KILL_AFTER = 60;
    const sent = new Map<string, string>();
    const acknowledged = new Map<string, string>();
    const unexpected: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 1000 && first.child.exitCode === null && first.child.signalCode === null) {
        const href = `${BOOK}burst-${next}.vcf`;
        const body = person(`burst-${next}`, `Person ${next}`, [`NOTE:${'n'.repeat(next % 7 === 0 ? 3000 : 20)}`]);
        next += 1;
        sent.set(href, body);
        try {
          const reply = await client.put(href, body);
          if (reply.status === 201) acknowledged.set(href, reply.headers.etag as string);
          else unexpected.push(`${href}: ${reply.status} ${reply.text}`);
          if (acknowledged.size === KILL_AFTER && first.child.pid !== undefined) process.kill(first.child.pid, 'SIGKILL');
        } catch {
          // Requests in flight when the process dies fail with a connection error.
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await first.exited;
    expect(first.child.signalCode).toBe('SIGKILL');
    expect(unexpected).toEqual([]);
    expect(acknowledged.size).toBeGreaterThanOrEqual(KILL_AFTER);

    const second = await serve(dataDir);
    running.push(second);
    client = new Client(second.port, basicAuth('alice', PASSWORD));

    const db = new Database(join(dataDir, 'cardinal.sqlite3'), { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.pragma('foreign_key_check')).toEqual([]);
    db.close();

    for (const [href, etag] of acknowledged) {
      const reply = await client.get(href);
      expect({ href, status: reply.status, etag: reply.headers.etag }).toEqual({ href, status: 200, etag });
      expect({ href, body: reply.text }).toEqual({ href, body: sent.get(href) });
    }
    const cards = await readWholeBook(client, BOOK);
    for (const [href, card] of cards) {
      if (href.includes('/before-')) continue;
      expect({ href, body: card.data }).toEqual({ href, body: sent.get(href) });
    }

    const changes = await syncCollection(client, BOOK, earlyToken);
    const reported = new Map(changes.responses.map((r) => [r.href, okProp(r, dav('getetag'))?.text]));
    for (const [href, etag] of acknowledged) expect({ href, etag: reported.get(href) }).toEqual({ href, etag });
    for (const href of cards.keys()) if (!href.includes('/before-')) expect(reported.has(href)).toBe(true);

    const afterRestart = await currentSyncToken(client, BOOK);
    expect((await client.put(`${BOOK}after-restart.vcf`, person('after-restart'))).status).toBe(201);
    const latest = await syncCollection(client, BOOK, afterRestart);
    expect(latest.responses.map((r) => r.href)).toEqual([`${BOOK}after-restart.vcf`]);
  });

  test('user commands during a PUT burst', async () => {
    await cli(['user', 'add', 'bob', '--password-stdin', '--data', dataDir], 'bob-1\n');
    const server = await serve(dataDir);
    running.push(server);
    const client = new Client(server.port, basicAuth('alice', PASSWORD));

    let commandsDone = false;
    const statuses: number[] = [];
    let next = 0;
    let firstWriteDone: () => void = () => undefined;
    const firstWrite = new Promise<void>((resolve) => (firstWriteDone = resolve));
    const worker = async (): Promise<void> => {
      while (!commandsDone && next < 1500) {
        const href = `${BOOK}shared-db-${next}.vcf`;
        const body = person(`shared-db-${next}`);
        next += 1;
        statuses.push((await client.put(href, body)).status);
        firstWriteDone();
      }
    };
    const workers = Promise.all(Array.from({ length: 4 }, worker));
    await firstWrite;

    const results = [];
    try {
      for (let i = 0; i < 4; i++) results.push(await runCli(['user', 'add', `extra-${i}`, '--password-stdin', '--data', dataDir], `extra-${i}\n`));
      for (let i = 2; i <= 4; i++) results.push(await runCli(['user', 'passwd', 'bob', '--password-stdin', '--data', dataDir], `bob-${i}\n`));
      results.push(await runCli(['user', 'list', '--data', dataDir]));
    } finally {
      commandsDone = true;
      await workers;
    }

    for (const result of results) {
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    }
    expect(results[results.length - 1].stdout).toContain('extra-3');
    expect(statuses.filter((status) => status !== 201)).toEqual([]);
    expect(statuses.length).toBeGreaterThan(0);
    expect((await readWholeBook(client, BOOK)).size).toBe(statuses.length);
    expect((await new Client(server.port, basicAuth('bob', 'bob-4')).propfind('/dav/addressbooks/bob/', '0', PROPFIND_ETAG)).status).toBe(207);
    expect((await new Client(server.port, basicAuth('extra-3', 'extra-3')).propfind('/dav/addressbooks/extra-3/', '0', PROPFIND_ETAG)).status).toBe(207);
  });

  test('parser-rejected requests get DAV:error', async () => {
    const server = await serve(dataDir);
    running.push(server);
    const auth = basicAuth('alice', PASSWORD);
    const requests: [string, string][] = [
      ['unknown method', `FROBNICATE ${BOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\n\r\n`],
      ['invalid Content-Length', `PUT ${BOOK}x.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\nContent-Length: abc\r\n\r\n`],
      ['two Content-Lengths', `PUT ${BOOK}x.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`],
      ['header of 20 KB', `GET ${BOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'a'.repeat(20_000)}\r\n\r\n`],
      ['path of 20 KB', `GET ${BOOK}${'p'.repeat(20_000)}.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`],
      ['garbage request line', 'hello there\r\n\r\n'],
      ['bad chunk size', `PUT ${BOOK}x.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`],
    ];
    const rows = [];
    for (const [name, request] of requests) {
      const response = parseRawResponse(await rawExchange(server.port, request));
      rows.push({ name, status: response.status, contentType: response.headers['content-type'], root: safeRootName(response.body) });
    }
    const expected = requests.map(([name]) => ({ name, status: expect.any(Number), contentType: expect.stringMatching(/^application\/xml/), root: dav('error') }));
    expect(rows).toEqual(expected);
    for (const row of rows) expect({ name: row.name, clientError: row.status >= 400 && row.status < 500 }).toEqual({ name: row.name, clientError: true });
    const reply = await new Client(server.port, auth).propfind(BOOK, '0', PROPFIND_ETAG);
    expect(reply.status).toBe(207);
  });
});

function safeRootName(body: string): string {
  try {
    return parseXml(body).name;
  } catch (error) {
    return `not XML: ${(error as Error).message}: ${JSON.stringify(body.slice(0, 100))}`;
  }
}
