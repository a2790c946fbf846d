/** The CRM rules as a CardDAV client meets them: validation, stamps, the disqualified lead, account links and deletion. */
import { createGroup, shareBook } from '../../server/groups';
import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, vcard } from '../helpers/dav';
import { clark, DAV, parseDavError, parseXmlTree } from '../helpers/multistatus';

const CARDDAV = 'urn:ietf:params:xml:ns:carddav';
const CARDINAL = 'urn:x-cardinal:ns';

let app: TestApp;
let alice: DavClient;
let bob: DavClient;
let eve: DavClient;

const BOOK = '/dav/addressbooks/alice/customers/';
const BOB_VIEW = '/dav/addressbooks/bob/customers/';
const PRIVATE = '/dav/addressbooks/alice/contacts/';

beforeAll(async () => {
  app = await startTestApp();
  for (const name of ['alice', 'bob', 'eve']) await app.addUser(name);
  alice = new DavClient(app, 'alice');
  bob = new DavClient(app, 'bob');
  eve = new DavClient(app, 'eve');
  await alice.createBook(BOOK);
  await createGroup(app.storage, 'sales', ['alice', 'bob']);
  await shareBook(app.storage, 'alice/customers', '@sales', { access: 'write' });
  await alice.putCard(`${BOOK}acme.vcf`, account('acme', 'Acme Corporation'));
});

afterAll(async () => {
  await app.close();
});

function account(uid: string, name: string, extra: string[] = []): string {
  return vcard({ uid, fn: name, lines: ['N:;;;;', `ORG:${name}`, 'X-ADDRESSBOOKSERVER-KIND:org', ...extra] });
}

function lead(uid: string, name: string, state: string, source: string, extra: string[] = []): string {
  const [given, family] = name.split(' ');
  return vcard({ uid, fn: name, lines: [`N:${family};${given};;;`, `X-CRM-LEAD-STATE:${state}`, `X-CRM-LEAD-SOURCE:${source}`, ...extra] });
}

function contact(uid: string, name: string, accountUid: string, extra: string[] = []): string {
  const [given, family] = name.split(' ');
  return vcard({ uid, fn: name, lines: [`N:${family};${given};;;`, `X-CRM-ACCOUNT:${accountUid}`, ...extra] });
}

/** Returns the Clark names of every child of the DAV:error root. */
function conditions(body: string): string[] {
  return parseXmlTree(body).children.map((element) => element.name);
}

function expectRule(reply: { status: number; text: string }, rule: string): void {
  expect(reply.status).toBe(403);
  const names = conditions(reply.text);
  expect(names).toContain(clark(CARDDAV, 'valid-address-data'));
  expect(names).toContain(clark(CARDINAL, rule));
}

/** Unfolded content lines of a GET body. */
async function cardLines(client: DavClient, path: string): Promise<string[]> {
  const reply = await client.get(path);
  expect(reply.status).toBe(200);
  return reply.text.replace(/\r\n[ \t]/g, '').split('\r\n');
}

describe('validation', () => {
  test('unknown lead state', async () => {
    const reply = await alice.put(`${BOOK}l1.vcf`, lead('l1', 'Lena Lead', 'warm', 'inbound'));
    expectRule(reply, 'valid-lead-state');
    expect(reply.text).toContain('invalid X-CRM-LEAD-STATE "warm"');
    expect((await alice.get(`${BOOK}l1.vcf`)).status).toBe(404);
  });

  test('unknown lead source', async () => {
    expectRule(await alice.put(`${BOOK}l1.vcf`, lead('l1', 'Lena Lead', 'open', 'referral')), 'valid-lead-source');
  });

  test('source without state', async () => {
    const card = vcard({ uid: 'l1', fn: 'Lena Lead', lines: ['X-CRM-LEAD-SOURCE:inbound'] });
    expectRule(await alice.put(`${BOOK}l1.vcf`, card), 'valid-lead-state');
  });

  test('two lead states', async () => {
    expectRule(await alice.put(`${BOOK}l1.vcf`, lead('l1', 'Lena Lead', 'open', 'inbound', ['X-CRM-LEAD-STATE:qualified'])), 'valid-lead-state');
  });

  test('link to a missing account', async () => {
    expectRule(await alice.put(`${BOOK}c1.vcf`, contact('c1', 'Carl Contact', 'no-such-uid')), 'valid-account-link');
  });

  test('link to a person card', async () => {
    await alice.putCard(`${BOOK}person.vcf`, vcard({ uid: 'person', fn: 'Pat Person', lines: ['N:Person;Pat;;;'] }));
    expectRule(await alice.put(`${BOOK}c1.vcf`, contact('c1', 'Carl Contact', 'person')), 'valid-account-link');
  });

  test('link to an unreadable account', async () => {
    await alice.putCard(`${PRIVATE}secret.vcf`, account('secret-account', 'Secret Ltd'));
    expectRule(await bob.put(`${BOB_VIEW}c1.vcf`, contact('c1', 'Carl Contact', 'secret-account')), 'valid-account-link');
  });

  test('account linking an account', async () => {
    expectRule(await alice.put(`${BOOK}sub.vcf`, account('sub', 'Subsidiary', ['X-CRM-ACCOUNT:acme'])), 'valid-account-link');
  });

  test('invalid case status', async () => {
    const card = contact('c1', 'Carl Contact', 'acme', ['X-CRM-CASE;STATUS=lost:C-1']);
    expectRule(await alice.put(`${BOOK}c1.vcf`, card), 'valid-case');
  });

  test('duplicate case reference', async () => {
    const card = contact('c1', 'Carl Contact', 'acme', ['X-CRM-CASE:C-1', 'X-CRM-CASE;STATUS=closed:C-1']);
    expectRule(await alice.put(`${BOOK}c1.vcf`, card), 'valid-case');
  });

  test('plain card keeps its etag', async () => {
    const reply = await alice.putCard(`${BOOK}plain.vcf`, vcard({ uid: 'plain', fn: 'Plain Person', lines: ['N:Person;Plain;;;'] }));
    expect(reply.headers.etag).toMatch(/^"/);
  });
});

describe('account links', () => {
  test('contact gets the account name', async () => {
    const reply = await bob.put(`${BOB_VIEW}c1.vcf`, contact('c1', 'Carl Contact', 'acme'));
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toBeUndefined();
    expect(await cardLines(alice, `${BOOK}c1.vcf`)).toContain('ORG:Acme Corporation');
  });

  test('matching org keeps the etag', async () => {
    const reply = await bob.put(`${BOB_VIEW}c2.vcf`, contact('c2', 'Cleo Contact', 'acme', ['ORG:Acme Corporation;Sales']));
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toMatch(/^"/);
  });

  test('wrong org is corrected', async () => {
    await bob.put(`${BOB_VIEW}c2.vcf`, contact('c2', 'Cleo Contact', 'acme', ['ORG:Acme Inc;Sales']));
    expect(await cardLines(alice, `${BOOK}c2.vcf`)).toContain('ORG:Acme Corporation;Sales');
  });

  test('account delete names contacts', async () => {
    const reply = await alice.delete(`${BOOK}acme.vcf`);
    expect(reply.status).toBe(409);
    const error = parseDavError(reply.text);
    expect(error.condition).toBe(clark(CARDINAL, 'no-linked-contacts'));
    const hrefs = error.element.children.filter((c) => c.name === clark(DAV, 'href')).map((c) => c.text);
    expect(hrefs.sort()).toEqual([`${BOOK}c1.vcf`, `${BOOK}c2.vcf`]);
    expect((await alice.get(`${BOOK}acme.vcf`)).status).toBe(200);
  });

  test('grantee sees own hrefs', async () => {
    const reply = await bob.delete(`${BOB_VIEW}acme.vcf`);
    expect(reply.status).toBe(409);
    const hrefs = parseDavError(reply.text).element.children.map((c) => c.text);
    expect(hrefs.sort()).toEqual([`${BOB_VIEW}c1.vcf`, `${BOB_VIEW}c2.vcf`]);
  });

  test('account cannot stop being one', async () => {
    const reply = await alice.put(`${BOOK}acme.vcf`, vcard({ uid: 'acme', fn: 'Acme Corporation', lines: ['N:;;;;'] }));
    expect(reply.status).toBe(409);
    expect(parseDavError(reply.text).condition).toBe(clark(CARDINAL, 'no-linked-contacts'));
  });

  test('book delete with outside links', async () => {
    await alice.createBook('/dav/addressbooks/alice/partners/');
    await alice.putCard('/dav/addressbooks/alice/partners/p.vcf', account('partner', 'Partner plc'));
    await alice.putCard(`${BOOK}pc.vcf`, contact('pc', 'Paula Partner', 'partner'));
    const reply = await alice.delete('/dav/addressbooks/alice/partners/');
    expect(reply.status).toBe(409);
    expect(parseDavError(reply.text).element.children.map((c) => c.text)).toEqual([`${BOOK}pc.vcf`]);
    expect((await alice.delete(`${BOOK}pc.vcf`)).status).toBe(204);
    expect((await alice.delete('/dav/addressbooks/alice/partners/')).status).toBe(204);
  });

  test('book delete finds a KIND:ORG account among individuals', async () => {
    const book = '/dav/addressbooks/alice/vendors/';
    await alice.createBook(book);
    for (let i = 0; i < 5; i++) {
      await alice.putCard(`${book}i${i}.vcf`, vcard({ version: '4.0', uid: `ind-${i}`, fn: `Person ${i}`, lines: ['KIND:individual'] }));
    }
    await alice.putCard(`${book}v.vcf`, vcard({ version: '4.0', uid: 'vendor', fn: 'Vendor AG', lines: ['KIND:ORG', 'ORG:Vendor AG'] }));
    await alice.putCard(`${BOOK}vc.vcf`, contact('vc', 'Vera Vendor', 'vendor'));
    const reply = await alice.delete(book);
    expect(reply.status).toBe(409);
    expect(parseDavError(reply.text).element.children.map((c) => c.text)).toEqual([`${BOOK}vc.vcf`]);
    expect((await alice.delete(`${BOOK}vc.vcf`)).status).toBe(204);
    expect((await alice.delete(book)).status).toBe(204);
  });

  test('unlinked account can go', async () => {
    await alice.putCard(`${BOOK}old.vcf`, account('old-account', 'Old Account'));
    await alice.putCard(`${BOOK}oc.vcf`, contact('oc', 'Otto Contact', 'old-account'));
    expect((await alice.delete(`${BOOK}old.vcf`)).status).toBe(409);
    const unlinked = vcard({ uid: 'oc', fn: 'Otto Contact', lines: ['N:Contact;Otto;;;', 'ORG:Old Account'] });
    expect((await alice.put(`${BOOK}oc.vcf`, unlinked)).status).toBe(204);
    expect((await alice.delete(`${BOOK}old.vcf`)).status).toBe(204);
  });

  test('outsider cannot reach the book', async () => {
    expect((await eve.put('/dav/addressbooks/eve/customers/c9.vcf', contact('c9', 'Eve Contact', 'acme'))).status).toBe(409);
    expectRule(await eve.put('/dav/addressbooks/eve/contacts/c9.vcf', contact('c9', 'Eve Contact', 'acme')), 'valid-account-link');
  });
});

describe('lead stamps', () => {
  test('open lead is stored as sent', async () => {
    const reply = await alice.put(`${BOOK}lena.vcf`, lead('lena', 'Lena Lead', 'open', 'inbound', ['ORG:Lena Labs']));
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toMatch(/^"/);
  });

  test('qualifying stamps the card', async () => {
    const before = Date.now();
    const reply = await bob.put(`${BOB_VIEW}lena.vcf`, lead('lena', 'Lena Lead', 'qualified', 'inbound', ['ORG:Lena Labs']));
    expect(reply.status).toBe(204);
    expect(reply.headers.etag).toBeUndefined();
    const stamp = (await cardLines(alice, `${BOOK}lena.vcf`)).find((line) => line.startsWith('X-CRM-LEAD-QUALIFIED-AT:'));
    expect(stamp).toMatch(/^X-CRM-LEAD-QUALIFIED-AT:\d{8}T\d{6}Z$/);
    const iso = (stamp ?? '').slice(-16).replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');
    expect(Date.parse(iso)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
  });

  test('forged stamp is replaced', async () => {
    const stored = await cardLines(alice, `${BOOK}lena.vcf`);
    const real = stored.find((line) => line.startsWith('X-CRM-LEAD-QUALIFIED-AT:'));
    const forged = lead('lena', 'Lena Lead', 'qualified', 'inbound', ['ORG:Lena Labs', 'X-CRM-LEAD-QUALIFIED-AT:20000101T000000Z']);
    const reply = await alice.put(`${BOOK}lena.vcf`, forged);
    expect(reply.status).toBe(204);
    expect(reply.headers.etag).toBeUndefined();
    const lines = await cardLines(alice, `${BOOK}lena.vcf`);
    expect(lines).toContain(real);
    expect(lines).not.toContain('X-CRM-LEAD-QUALIFIED-AT:20000101T000000Z');
  });

  test('dropped stamp is restored', async () => {
    const stored = await cardLines(alice, `${BOOK}lena.vcf`);
    const real = stored.find((line) => line.startsWith('X-CRM-LEAD-QUALIFIED-AT:'));
    await alice.put(`${BOOK}lena.vcf`, lead('lena', 'Lena Lead', 'qualified', 'inbound', ['ORG:Lena Labs', 'TEL:+1 555 0100']));
    expect(await cardLines(alice, `${BOOK}lena.vcf`)).toContain(real);
  });

  test('unchanged stamps keep the etag', async () => {
    const current = await alice.get(`${BOOK}lena.vcf`);
    const reply = await alice.put(`${BOOK}lena.vcf`, current.text.replace('TEL:+1 555 0100', 'TEL:+1 555 0101'));
    expect(reply.status).toBe(204);
    expect(reply.headers.etag).toMatch(/^"/);
  });

  test('state is lower-cased', async () => {
    await alice.put(`${BOOK}omar.vcf`, lead('omar', 'Omar Outbound', 'Open', 'OUTBOUND'));
    const lines = await cardLines(alice, `${BOOK}omar.vcf`);
    expect(lines).toContain('X-CRM-LEAD-STATE:open');
    expect(lines).toContain('X-CRM-LEAD-SOURCE:outbound');
  });
});

describe('disqualified lead', () => {
  const path = `${BOOK}dan.vcf`;

  test('disqualifying stamps the card', async () => {
    await alice.putCard(path, lead('dan', 'Dan Dropped', 'open', 'outbound'));
    await alice.put(path, lead('dan', 'Dan Dropped', 'disqualified', 'outbound'));
    expect((await cardLines(alice, path)).some((line) => line.startsWith('X-CRM-LEAD-DISQUALIFIED-AT:'))).toBe(true);
  });

  test('edit is rejected', async () => {
    const before = await alice.get(path);
    const edited = before.text.replace('FN:Dan Dropped', 'FN:Dan Changed');
    const reply = await bob.put(`${BOB_VIEW}dan.vcf`, edited);
    expectRule(reply, 'no-change-to-disqualified-lead');
    const after = await alice.get(path);
    expect(after.text).toBe(before.text);
    expect(after.headers.etag).toBe(before.headers.etag);
  });

  test('qualifying is rejected', async () => {
    expectRule(await alice.put(path, lead('dan', 'Dan Dropped', 'qualified', 'outbound')), 'no-change-to-disqualified-lead');
  });

  test('identical upload is accepted', async () => {
    const current = await alice.get(path);
    expect((await alice.put(path, current.body, { 'If-Match': String(current.headers.etag) })).status).toBe(204);
  });

  test('reordered copy keeps the server card', async () => {
    const before = await alice.get(path);
    const lines = before.text.trimEnd().split('\r\n');
    const body = lines.slice(2, -1).reverse();
    const copy = [lines[0], lines[1], ...body, 'REV:20300101T000000Z', 'PRODID:-//Other client//EN', lines[lines.length - 1]].join('\r\n') + '\r\n';
    const reply = await bob.put(`${BOB_VIEW}dan.vcf`, copy);
    expect(reply.status).toBe(204);
    expect(reply.headers.etag).toBeUndefined();
    const after = await alice.get(path);
    expect(after.text).toBe(before.text);
    expect(after.headers.etag).toBe(before.headers.etag);
  });

  test('changed parameter is a change', async () => {
    const before = await alice.get(path);
    const edited = before.text.replace('N:Dropped;Dan;;;', 'N;LANGUAGE=en:Dropped;Dan;;;');
    expect(edited).not.toBe(before.text);
    expectRule(await bob.put(`${BOB_VIEW}dan.vcf`, edited), 'no-change-to-disqualified-lead');
  });

  test('delete is rejected', async () => {
    const reply = await bob.delete(`${BOB_VIEW}dan.vcf`);
    expect(reply.status).toBe(403);
    expect(parseDavError(reply.text).condition).toBe(clark(CARDINAL, 'no-change-to-disqualified-lead'));
    expect((await alice.get(path)).status).toBe(200);
  });

  test('reactivation is stamped', async () => {
    const reply = await bob.put(`${BOB_VIEW}dan.vcf`, lead('dan', 'Dan Dropped', 'open', 'outbound'));
    expect(reply.status).toBe(204);
    const lines = await cardLines(alice, path);
    expect(lines).toContain('X-CRM-LEAD-STATE:open');
    expect(lines.some((line) => line.startsWith('X-CRM-LEAD-REACTIVATED-AT:'))).toBe(true);
    expect(lines.some((line) => line.startsWith('X-CRM-LEAD-DISQUALIFIED-AT:'))).toBe(true);
  });

  test('reactivated lead is editable', async () => {
    const current = await alice.get(path);
    const reply = await bob.put(`${BOB_VIEW}dan.vcf`, current.text.replace('FN:Dan Dropped', 'FN:Dan Back'));
    expect(reply.status).toBe(204);
    expect(await cardLines(alice, path)).toContain('FN:Dan Back');
  });
});

describe('cases', () => {
  test('case params survive a client that drops them', async () => {
    const path = `${BOOK}carla.vcf`;
    await alice.put(path, contact('carla', 'Carla Case', 'acme', ['X-CRM-CASE;STATUS=pending;SUBJECT="Printer jams, again":C-1042']));
    const reply = await alice.put(path, contact('carla', 'Carla Case', 'acme', ['ORG:Acme Corporation', 'X-CRM-CASE:C-1042']));
    expect(reply.status).toBe(204);
    expect(reply.headers.etag).toBeUndefined();
    expect(await cardLines(alice, path)).toContain('X-CRM-CASE;STATUS=pending;SUBJECT="Printer jams, again":C-1042');
  });

  test('explicit status wins', async () => {
    const path = `${BOOK}carla.vcf`;
    await alice.put(path, contact('carla', 'Carla Case', 'acme', ['ORG:Acme Corporation', 'X-CRM-CASE;STATUS=closed:C-1042']));
    expect(await cardLines(alice, path)).toContain('X-CRM-CASE;STATUS=closed;SUBJECT="Printer jams, again":C-1042');
  });
});

describe('precondition on a rule card', () => {
  test('stale if-match gets 412', async () => {
    const reply = await alice.put(`${BOOK}lena.vcf`, lead('lena', 'Lena Lead', 'qualified', 'inbound'), { 'If-Match': '"stale"' });
    expect(reply.status).toBe(412);
  });

  test('if-none-match on existing gets 412', async () => {
    const reply = await alice.put(`${BOOK}lena.vcf`, lead('lena', 'Lena Lead', 'qualified', 'inbound'), { 'If-None-Match': '*' });
    expect(reply.status).toBe(412);
  });
});
