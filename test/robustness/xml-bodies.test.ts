/**
 * Hostile and broken XML request bodies. Each is rejected with a DAV:error
 * body, leaves the stored book as it was, and every 207 the server does send
 * is well-formed XML that a strict client parser accepts.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import {
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
} from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';
const CARD = `${BOOK}ada.vcf`;
const XML_LIMIT = 65536;

let app: TestApp;
let client: Client;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: XML_LIMIT });
  await app.addUser('alice');
  client = new Client(portOf(app), app.auth('alice'));
  const stored = await client.put(CARD, person('ada'));
  if (stored.status !== 201) throw new Error(`PUT ${CARD} returned ${stored.status}: ${stored.text}`);
});

afterAll(() => app.close());

async function displayName(): Promise<string | undefined> {
  const reply = await client.propfind(BOOK, '0', `<d:propfind ${XMLNS}><d:prop><d:displayname/></d:prop></d:propfind>`);
  return okProp(parseMultistatus(reply.text).responses[0], dav('displayname'))?.text;
}

function setDisplayName(value: string): string {
  return `<d:propertyupdate ${XMLNS}><d:set><d:prop><d:displayname>${value}</d:displayname></d:prop></d:set></d:propertyupdate>`;
}

/** Sends one body with each XML method and returns the replies by method. */
async function sendToEveryXmlMethod(body: string | Buffer): Promise<[string, Reply][]> {
  return [
    ['PROPFIND', await client.propfind(BOOK, '0', body)],
    ['PROPPATCH', await client.proppatch(BOOK, body)],
    ['REPORT', await client.report(BOOK, body)],
    ['MKCOL', await client.request('MKCOL', '/dav/addressbooks/alice/new-book/', { headers: { 'Content-Type': 'application/xml' }, body })],
  ];
}

describe('malformed XML', () => {
  const bodies: [string, string | Buffer][] = [
    ['unclosed element', '<d:propfind xmlns:d="DAV:"><d:prop>'],
    ['mismatched end tag', '<d:propfind xmlns:d="DAV:"><d:allprop/></d:propupdate>'],
    ['two root elements', '<d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind><d:propfind xmlns:d="DAV:"/>'],
    ['text outside the root', 'junk<d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>'],
    ['unbound prefix', '<x:propfind xmlns:d="DAV:"><d:allprop/></x:propfind>'],
    ['unbound attribute prefix', '<d:propfind xmlns:d="DAV:" y:a="1"><d:allprop/></d:propfind>'],
    ['undeclared entity', '<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&ent;</d:displayname></d:prop></d:propfind>'],
    ['invalid character reference', '<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&#0;</d:displayname></d:prop></d:propfind>'],
    ['NUL byte', '<d:propfind xmlns:d="DAV:">\u0000<d:allprop/></d:propfind>'],
    ['duplicate attribute', '<d:propfind xmlns:d="DAV:" a="1" a="2"><d:allprop/></d:propfind>'],
    ['nesting 5,000 deep', '<a>'.repeat(5_000) + '</a>'.repeat(5_000)],
  ];

  test.each(bodies)('%s is rejected by every method', async (_name, body) => {
    for (const [method, reply] of await sendToEveryXmlMethod(body)) {
      expect({ method, status: reply.status }).toEqual({ method, status: 400 });
      expectDavError(reply, 400);
    }
    expect(await displayName()).toBe('Contacts');
    expect((await readWholeBook(client, BOOK)).size).toBe(1);
  });
});

describe('DOCTYPE and entities', () => {
  const bodies: [string, string][] = [
    [
      'external entity',
      '<?xml version="1.0"?><!DOCTYPE d:propfind [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' +
        '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>&xxe;</d:displayname></d:prop></d:set></d:propertyupdate>',
    ],
    [
      'billion laughs',
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
        Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('') +
        ']><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>&lol9;</d:displayname></d:prop></d:set></d:propertyupdate>',
    ],
    ['external DTD', '<?xml version="1.0"?><!DOCTYPE d:propfind SYSTEM "http://127.0.0.1:1/dtd"><d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>'],
  ];

  test.each(bodies)('%s is rejected', async (_name, body) => {
    for (const [method, reply] of await sendToEveryXmlMethod(body)) {
      expect({ method, status: reply.status }).toEqual({ method, status: 400 });
      expectDavError(reply, 400);
      expect(reply.text).not.toContain('root:');
      expect(reply.text).not.toContain('lollollol');
    }
    expect(await displayName()).toBe('Contacts');
  });
});

describe('XML body size', () => {
  test('huge attribute value within the limit', async () => {
    const body = `<d:propfind ${XMLNS} x="${'a'.repeat(XML_LIMIT - 200)}"><d:prop><d:getetag/></d:prop></d:propfind>`;
    const reply = await client.propfind(BOOK, '1', body);
    expect(reply.status).toBe(207);
    expect(parseMultistatus(reply.text).responses).toHaveLength(2);
  });

  test('attribute value over the limit is rejected with 413', async () => {
    const body = `<d:propfind ${XMLNS} x="${'a'.repeat(XML_LIMIT)}"><d:prop><d:getetag/></d:prop></d:propfind>`;
    expectDavError(await client.propfind(BOOK, '1', body), 413);
  });

  test('PROPPATCH over the limit changes nothing', async () => {
    expectDavError(await client.proppatch(BOOK, setDisplayName('x'.repeat(XML_LIMIT))), 413);
    expect(await displayName()).toBe('Contacts');
  });
});

describe('wrong namespaces', () => {
  test('propfind in no namespace is rejected', async () => {
    expectDavError(await client.propfind(BOOK, '0', '<propfind><allprop/></propfind>'), 400);
  });

  test('propertyupdate in another namespace changes nothing', async () => {
    const body = '<d:propertyupdate xmlns:d="urn:not-dav"><d:set><d:prop><d:displayname>x</d:displayname></d:prop></d:set></d:propertyupdate>';
    expectDavError(await client.proppatch(BOOK, body), 400);
    expect(await displayName()).toBe('Contacts');
  });

  test('multiget in the DAV namespace is an unsupported report', async () => {
    const body = `<d:addressbook-multiget ${XMLNS}><d:prop><d:getetag/></d:prop><d:href>${CARD}</d:href></d:addressbook-multiget>`;
    expectDavError(await client.report(BOOK, body), 403, dav('supported-report'));
  });

  test('namespace with a brace stays well-formed', async () => {
    const propfind = '<d:propfind xmlns:d="DAV:" xmlns:x="urn:x}y"><d:prop><x:thing/></d:prop></d:propfind>';
    const reply = await client.propfind(BOOK, '0', propfind);
    expect(reply.status).toBe(207);
    const response = parseMultistatus(reply.text).responses[0];
    expect(response.propstats.flatMap((p) => [...p.props.keys()])).toContain('{urn:x}y}thing');
  });
});

describe('non-UTF-8 XML', () => {
  const latin1Name = Buffer.concat([
    Buffer.from(`<d:propertyupdate ${XMLNS}><d:set><d:prop><d:displayname>Caf`),
    Buffer.from([0xe9]),
    Buffer.from('</d:displayname></d:prop></d:set></d:propertyupdate>'),
  ]);

  afterEach(async () => {
    await client.proppatch(BOOK, setDisplayName('Contacts'));
  });

  test('invalid UTF-8 is rejected', async () => {
    expectDavError(await client.proppatch(BOOK, latin1Name), 400);
    expect(await displayName()).toBe('Contacts');
  });

  test('declared ISO-8859-1 is decoded or rejected', async () => {
    const body = Buffer.concat([Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?>'), latin1Name]);
    const reply = await client.proppatch(BOOK, body);
    const name = await displayName();
    if (reply.status === 207) expect(name).toBe('Caf\u00e9');
    else {
      expect({ status: reply.status, rejected: reply.status === 400 || reply.status === 415 }).toEqual({ status: reply.status, rejected: true });
      expectDavError(reply, reply.status);
      expect(name).toBe('Contacts');
    }
  });

  test('UTF-16 body is decoded or rejected', async () => {
    const body = Buffer.from('\ufeff<?xml version="1.0" encoding="UTF-16"?>' + setDisplayName('Sixteen'), 'utf16le');
    const reply = await client.proppatch(BOOK, body);
    const name = await displayName();
    if (reply.status === 207) expect(name).toBe('Sixteen');
    else {
      expectDavError(reply, 400);
      expect(name).toBe('Contacts');
    }
  });
});

describe('empty bodies', () => {
  test('PROPFIND is allprop', async () => {
    const reply = await client.request('PROPFIND', BOOK, { headers: { Depth: '0' }, body: '' });
    expect(reply.status).toBe(207);
    parseMultistatus(reply.text);
  });

  test('PROPPATCH is rejected', async () => {
    expectDavError(await client.request('PROPPATCH', BOOK, { body: '' }), 400);
  });

  test('REPORT is rejected', async () => {
    expectDavError(await client.request('REPORT', BOOK, { body: '' }), 400);
  });

  test('whitespace-only REPORT is rejected', async () => {
    expectDavError(await client.report(BOOK, ' \r\n\t '), 400);
  });

  test('PUT is invalid address data', async () => {
    expectDavError(await client.request('PUT', `${BOOK}empty.vcf`, { body: '' }), 403, '{urn:ietf:params:xml:ns:carddav}valid-address-data');
    expect((await client.get(`${BOOK}empty.vcf`)).status).toBe(404);
  });

  test('MKCOL creates a book', async () => {
    const reply = await client.request('MKCOL', '/dav/addressbooks/alice/empty-mkcol/', { body: '' });
    expect(reply.status).toBe(201);
  });
});

describe('multistatus responses', () => {
  test('empty prop request stays valid', async () => {
    const reply = await client.propfind(BOOK, '1', `<d:propfind ${XMLNS}><d:prop/></d:propfind>`);
    expect(reply.status).toBe(207);
    expect(() => parseMultistatus(reply.text)).not.toThrow();
  });

  test('return=minimal with only unknown properties', async () => {
    const body = `<d:propfind ${XMLNS} xmlns:x="urn:x"><d:prop><x:unknown/></d:prop></d:propfind>`;
    const reply = await client.request('PROPFIND', BOOK, { headers: { Depth: '0', Prefer: 'return=minimal' }, body });
    expect(reply.status).toBe(207);
    expect(() => parseMultistatus(reply.text)).not.toThrow();
  });
});

describe('dead properties', () => {
  test('attributes and mixed content survive', async () => {
    const value = '<x:item kind="home">Main<x:sub level="2"/>tail</x:item>';
    const set = `<d:propertyupdate ${XMLNS} xmlns:x="urn:x"><d:set><d:prop><x:color>${value}</x:color></d:prop></d:set></d:propertyupdate>`;
    expect((await client.proppatch(BOOK, set)).status).toBe(207);
    const reply = await client.propfind(BOOK, '0', `<d:propfind ${XMLNS} xmlns:x="urn:x"><d:prop><x:color/></d:prop></d:propfind>`);
    const color = okProp(parseMultistatus(reply.text).responses[0], '{urn:x}color');
    const item = color && childNamed(color, '{urn:x}item');
    expect(item?.attrs).toEqual({ kind: 'home' });
    expect(item?.text).toBe('Maintail');
    const sub = item ? childNamed(item, '{urn:x}sub') : undefined;
    expect(sub?.attrs).toEqual({ level: '2' });
  });
});
