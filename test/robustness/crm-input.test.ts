/**
 * CRM rules under odd input: a disqualified lead written back in another
 * representation, account links to escaped UIDs, forged stamps and lead
 * states in unusual spellings.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { carddav, Client, expectDavError, person, portOf, vcard } from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';
const CARDINAL = 'urn:x-cardinal:ns';
const cardinal = (local: string) => `{${CARDINAL}}${local}`;

let app: TestApp;
let alice: Client;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new Client(portOf(app), app.auth('alice'));
});

afterAll(() => app.close());

async function store(path: string, card: string, headers: Record<string, string> = {}): Promise<void> {
  const reply = await alice.put(path, card, headers);
  if (reply.status !== 201 && reply.status !== 204) throw new Error(`PUT ${path} returned ${reply.status}: ${reply.text}`);
}

describe('disqualified lead written back unchanged', () => {
  const LEAD_30 = vcard({
    uid: 'lost-30',
    fn: 'Lost Lead',
    lines: ['N:Lead;Lost;;;', 'X-CRM-LEAD-STATE:disqualified', 'BDAY:1990-01-02', 'TEL;TYPE=cell,pref:+1 555 0100', 'EMAIL;TYPE=INTERNET,WORK:lost@example.com'],
  });
  const LEAD_40 = vcard({
    uid: 'lost-40',
    fn: 'Lost Lead',
    version: '4.0',
    lines: ['N:Lead;Lost;;;', 'X-CRM-LEAD-STATE:disqualified', 'BDAY:19900102', 'TEL;VALUE=uri;TYPE=cell;PREF=1:tel:+1-555-0100'],
  });

  test.each([
    ['3.0 lead as 4.0', 'lost-30.vcf', LEAD_30, { Accept: 'text/vcard;version=4.0' }, {}],
    ['3.0 lead as jCard', 'lost-30.vcf', LEAD_30, { Accept: 'application/vcard+json' }, { 'Content-Type': 'application/vcard+json' }],
    ['4.0 lead as 3.0', 'lost-40.vcf', LEAD_40, { Accept: 'text/vcard;version=3.0' }, {}],
  ])('%s is accepted', async (_, name, card, accept, upload) => {
    const path = `${BOOK}${name}`;
    await store(path, card);
    const before = await alice.get(path);
    const converted = await alice.get(path, accept);
    expect(converted.status).toBe(200);

    const reply = await alice.put(path, converted.text, upload);
    expect(reply.status).toBe(204);
    expect(reply.headers.etag).toBeUndefined();
    const after = await alice.get(path);
    expect(after.text).toBe(before.text);
    expect(after.headers.etag).toBe(before.headers.etag);
  });

  test('changed copy in another version is rejected', async () => {
    const path = `${BOOK}lost-30.vcf`;
    const before = await alice.get(path);
    const converted = await alice.get(path, { Accept: 'text/vcard;version=4.0' });
    const edited = converted.text.replace('FN:Lost Lead', 'FN:Found Lead');
    expectDavError(await alice.put(path, edited), 403, cardinal('no-change-to-disqualified-lead'));
    expect((await alice.get(path)).text).toBe(before.text);
  });
});

describe('account links', () => {
  test('link to an escaped UID finds the account', async () => {
    await store(`${BOOK}acme.vcf`, vcard({ uid: 'acme\\,inc', fn: 'Acme\\, Inc', lines: ['N:;;;;', 'ORG:Acme\\, Inc', 'X-ADDRESSBOOKSERVER-KIND:ORG'] }));
    const reply = await alice.put(`${BOOK}ada.vcf`, person('ada', 'Ada Lovelace', ['X-CRM-ACCOUNT:acme\\,inc']));
    expect(reply.status).toBe(201);
    expect((await alice.get(`${BOOK}ada.vcf`)).text).toContain('ORG:Acme\\, Inc');
  });

  test('escaped account with a contact is not deleted', async () => {
    const reply = await alice.delete(`${BOOK}acme.vcf`);
    expectDavError(reply, 409, cardinal('no-linked-contacts'));
    expect((await alice.get(`${BOOK}acme.vcf`)).status).toBe(200);
  });

  test('UID that matches only unescaped is no link', async () => {
    await store(`${BOOK}plain.vcf`, vcard({ uid: 'plain,co', fn: 'Plain', version: '4.0', lines: ['KIND:individual'] }));
    const reply = await alice.put(`${BOOK}grace.vcf`, person('grace', 'Grace Hopper', ['X-CRM-ACCOUNT:plain\\,co']));
    expectDavError(reply, 403, cardinal('valid-account-link'));
    expect(reply.text).toContain(carddav('valid-address-data').replace(/^\{[^}]*\}/, 'card:'));
  });
});

describe('server stamps', () => {
  test('forged stamps in any spelling are replaced', async () => {
    const path = `${BOOK}forged.vcf`;
    const reply = await alice.put(
      path,
      person('forged', 'Forged Lead', [
        'X-CRM-LEAD-STATE: Open ',
        'item1.x-crm-lead-qualified-at:19990101T000000Z',
        'X-CRM-LEAD-CONVERTED-AT;VALUE=text:20000101T000000Z',
      ]),
    );
    expect(reply.status).toBe(201);
    const stored = (await alice.get(path)).text;
    expect(stored).toContain('X-CRM-LEAD-STATE:open\r\n');
    expect(stored.toUpperCase()).not.toContain('-AT');
  });
});
