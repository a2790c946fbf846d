/**
 * The transfer floor of a sync-collection response: `node dist/bench/floor.js [options]`.
 * A plain Node.js HTTP server on 127.0.0.1 responds to the benchmark's sync-collection request
 * with a multistatus built in advance, shaped like Cardinal's: 10 getetag responses, or
 * 1,000. The benchmark's own client times both. The difference is the least extra time any
 * server on this machine needs to send the larger response, before reading and formatting.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

import { DavClient } from './http';
import { syncBody } from './measurements';
import { median } from './report';

const BOOK_PATH = '/dav/addressbooks/bench/contacts/';
const SIZES = [10, 1000] as const;

const USAGE = `Usage: node dist/bench/floor.js [options]

Times a server that answers sync-collection from memory with 10 and with 1,000 responses.

Options:
  --runs R     timed requests of each size (default 200)
  --warmup W   untimed requests of each size before them (default 300)
  -h, --help   print this help
`;

/** Returns a multistatus of `count` getetag responses with the hrefs and ETags Cardinal sends. */
export function multistatus(count: number): Buffer {
  const responses: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${i.toString(16).padStart(8, '0')}-62fb-49a0-81b9-2bb8b39febea.vcf`;
    const etag = `"${i.toString(16).padStart(32, '0')}"`;
    responses.push(
      `<d:response><d:href>${BOOK_PATH}${name}</d:href><d:propstat><d:prop><d:getetag>${etag}</d:getetag></d:prop>` +
        '<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>',
    );
  }
  return Buffer.from(
    '<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:">' +
      responses.join('') +
      '<d:sync-token>urn:x-floor:sync:1</d:sync-token></d:multistatus>',
  );
}

/** Formats seconds as milliseconds to the microsecond, because the differences are fractions of a millisecond. */
function milliseconds(seconds: number): string {
  return `${(seconds * 1000).toFixed(3)} ms`;
}

function positiveInteger(text: string | undefined, fallback: number, option: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`invalid ${option}: ${text}; give a whole number`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string' }, warmup: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const runs = Math.max(1, positiveInteger(values.runs, 200, '--runs'));
  const warmups = positiveInteger(values.warmup, 300, '--warmup');

  const bodies = new Map<string, Buffer>(SIZES.map((size) => [`${BOOK_PATH}${size}/`, multistatus(size)]));
  const server = http.createServer((request, response) => {
    // The request body is read in full before the response, as a DAV server must read it.
    request.resume();
    request.once('end', () => {
      const body = bodies.get(request.url ?? '');
      response.writeHead(body ? 207 : 404, { 'Content-Type': 'application/xml; charset=utf-8' });
      response.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = new DavClient(`http://127.0.0.1:${port}`, undefined, 1);
  const request = syncBody('urn:x-floor:sync:0');

  async function once(size: number): Promise<number> {
    const started = performance.now();
    await client.expect('REPORT', `${BOOK_PATH}${size}/`, [207], {
      headers: { 'Content-Type': 'application/xml; charset=utf-8', Depth: '0' },
      body: request,
    });
    return (performance.now() - started) / 1000;
  }

  try {
    process.stderr.write(`floor: ${warmups} untimed and ${runs} timed requests of each size\n`);
    // The sizes alternate, so that both see the same state of the machine.
    for (let run = 0; run < warmups; run++) for (const size of SIZES) await once(size);
    const samples = new Map<number, number[]>(SIZES.map((size) => [size, []]));
    for (let run = 0; run < runs; run++) for (const size of SIZES) samples.get(size)!.push(await once(size));
    const [small, large] = SIZES.map((size) => median(samples.get(size)!));
    const lines = [
      '| responses | bytes | median |',
      '| --- | --- | --- |',
      ...SIZES.map((size) => `| ${size} | ${bodies.get(`${BOOK_PATH}${size}/`)!.length} | ${milliseconds(median(samples.get(size)!))} |`),
      '',
      `The ${SIZES[1] - SIZES[0]} further responses take ${milliseconds(large - small)} from a server that spends nothing on them.`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    client.close();
    server.close();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`floor: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
