import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, person, propfindBody, XMLNS } from '../helpers/dav';
import {
  CARDDAV,
  CS,
  DAV,
  clark,
  okProp,
  parseMultistatus,
  type MultistatusResponse,
  type PropStat,
} from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);
const HOME = '/dav/addressbooks/alice/';

let app: TestApp;
let alice: DavClient;
let bookCount = 0;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
});

afterAll(() => app.close());

/** Creates a new book for each test, so no test reads another test's changes. */
async function freshBook(): Promise<string> {
  const path = `${HOME}patch-${++bookCount}/`;
  await alice.createBook(path);
  return path;
}

function propertyUpdate(set: string, remove = ''): string {
  const removeXml = remove === '' ? '' : `<d:remove><d:prop>${remove}</d:prop></d:remove>`;
  return `<?xml version="1.0" encoding="utf-8"?><d:propertyupdate ${XMLNS}><d:set><d:prop>${set}</d:prop></d:set>${removeXml}</d:propertyupdate>`;
}

async function proppatch(path: string, body: string): Promise<MultistatusResponse> {
  const reply = await alice.proppatch(path, body);
  expect(reply.status).toBe(207);
  const responses = parseMultistatus(reply.text);
  expect(responses).toHaveLength(1);
  expect(responses[0].href).toBe(path);
  return responses[0];
}

/** Maps each property in the response to the status of its propstat. */
function statusByProperty(propstats: PropStat[]): Record<string, number> {
  const result: Record<string, number> = {};
  for (const propstat of propstats) for (const name of propstat.props.keys()) result[name] = propstat.status;
  return result;
}

async function readProps(path: string, ...names: string[]): Promise<MultistatusResponse> {
  const reply = await alice.propfind(path, '0', propfindBody(...names));
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text)[0];
}

describe('PROPPATCH', () => {
  test('sets displayname and description', async () => {
    const book = await freshBook();
    const response = await proppatch(
      book,
      propertyUpdate('<d:displayname>Family</d:displayname><card:addressbook-description>Relatives and in-laws</card:addressbook-description>'),
    );
    expect(statusByProperty(response.propstats)).toEqual({ [d('displayname')]: 200, [card('addressbook-description')]: 200 });

    const after = await readProps(book, d('displayname'), card('addressbook-description'));
    expect(okProp(after, d('displayname'))?.text).toBe('Family');
    expect(okProp(after, card('addressbook-description'))?.text).toBe('Relatives and in-laws');
  });

  test('returns a propstat per property', async () => {
    const book = await freshBook();
    const response = await proppatch(
      book,
      propertyUpdate('<d:displayname>Club</d:displayname><card:addressbook-description>Chess club</card:addressbook-description>'),
    );
    expect(response.propstats.map((p) => [...p.props.keys()])).toEqual([[d('displayname')], [card('addressbook-description')]]);
    expect(response.propstats.map((p) => p.statusLine)).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    for (const propstat of response.propstats) {
      for (const value of propstat.props.values()) expect(value.text).toBe('');
    }
  });

  test('escapes markup in displayname', async () => {
    const book = await freshBook();
    await proppatch(book, propertyUpdate('<d:displayname>Work &amp; &lt;friends&gt;</d:displayname>'));
    const after = await readProps(book, d('displayname'));
    expect(okProp(after, d('displayname'))?.text).toBe('Work & <friends>');
  });

  test('removes the description', async () => {
    const book = await freshBook();
    await proppatch(book, propertyUpdate('<card:addressbook-description>Temporary</card:addressbook-description>'));
    const response = await proppatch(
      book,
      `<?xml version="1.0"?><d:propertyupdate ${XMLNS}><d:remove><d:prop><card:addressbook-description/></d:prop></d:remove></d:propertyupdate>`,
    );
    expect(statusByProperty(response.propstats)).toEqual({ [card('addressbook-description')]: 200 });
    const after = await readProps(book, card('addressbook-description'));
    expect(okProp(after, card('addressbook-description'))?.text).toBe('');
  });

  test('stores a dead property', async () => {
    const book = await freshBook();
    await proppatch(book, propertyUpdate('<x:color xmlns:x="http://apple.com/ns/ical/">#FF8800</x:color>'));
    const after = await readProps(book, '{http://apple.com/ns/ical/}color');
    expect(okProp(after, '{http://apple.com/ns/ical/}color')?.text).toBe('#FF8800');
  });

  test('protected property fails with 403', async () => {
    const book = await freshBook();
    const response = await proppatch(book, propertyUpdate('<d:getetag>"forged"</d:getetag>'));
    expect(response.propstats).toHaveLength(1);
    expect(response.propstats[0].status).toBe(403);
    expect(response.propstats[0].error?.children.map((c) => c.name)).toEqual([d('cannot-modify-protected-property')]);
  });

  test('protected property fails the others with 424', async () => {
    const book = await freshBook();
    const before = await readProps(book, d('displayname'), card('addressbook-description'), d('resourcetype'), clark(CS, 'getctag'));
    const response = await proppatch(
      book,
      propertyUpdate(
        '<d:displayname>Renamed</d:displayname>' +
          '<d:resourcetype><d:collection/></d:resourcetype>' +
          '<card:addressbook-description>Changed</card:addressbook-description>' +
          '<cs:getctag>forged</cs:getctag>',
      ),
    );
    expect(statusByProperty(response.propstats)).toEqual({
      [d('displayname')]: 424,
      [d('resourcetype')]: 403,
      [card('addressbook-description')]: 424,
      [clark(CS, 'getctag')]: 403,
    });
    for (const propstat of response.propstats.filter((p) => p.status === 403)) {
      expect(propstat.error?.children.map((c) => c.name)).toEqual([d('cannot-modify-protected-property')]);
    }
    expect(response.propstats.find((p) => p.status === 424)?.statusLine).toBe('HTTP/1.1 424 Failed Dependency');

    const after = await readProps(book, d('displayname'), card('addressbook-description'), d('resourcetype'), clark(CS, 'getctag'));
    expect(after).toEqual(before);
  });

  test('failed request leaves dead properties unset', async () => {
    const book = await freshBook();
    await proppatch(book, propertyUpdate('<x:color xmlns:x="http://apple.com/ns/ical/">#00FF00</x:color><d:sync-token>x</d:sync-token>'));
    const after = await readProps(book, '{http://apple.com/ns/ical/}color');
    expect(okProp(after, '{http://apple.com/ns/ical/}color')).toBeUndefined();
  });

  test('non-propertyupdate body is rejected', async () => {
    const book = await freshBook();
    const reply = await alice.proppatch(book, `<?xml version="1.0"?><d:propfind ${XMLNS}><d:allprop/></d:propfind>`);
    expect(reply.status).toBe(400);
  });

  test('PROPPATCH on a card is rejected', async () => {
    const book = await freshBook();
    await alice.putCard(`${book}grace.vcf`, person('7f0e2b7c-8a51-4f5e-a0c1-3b7d9c2e0001', 'Grace Hopper'));
    const reply = await alice.proppatch(`${book}grace.vcf`, propertyUpdate('<d:displayname>x</d:displayname>'));
    expect(reply.status).toBe(403);
  });
});
