/** Lead reports, the funnel, conversion, and the same lead sets found with a standard addressbook-query. */
import { accountReport, bar, computeFunnel, convertLead, leadsReport, renderFunnel } from '../../server/crm';
import { createGroup, shareBook } from '../../server/groups';
import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, vcard, XMLNS } from '../helpers/dav';
import { parseMultistatusDocument } from '../helpers/multistatus';

let app: TestApp;
let alice: DavClient;
let bob: DavClient;

const BOOK = '/dav/addressbooks/alice/customers/';

/** Leads by state and source: [uid, name, state, source]. */
const LEADS: [string, string, string, string][] = [
  ['l1', 'Ines Inbound', 'open', 'inbound'],
  ['l2', 'Ida Inbound', 'open', 'inbound'],
  ['l3', 'Otto Outbound', 'open', 'outbound'],
  ['l4', 'Quinn Qualified', 'qualified', 'inbound'],
  ['l5', 'Dora Dropped', 'disqualified', 'outbound'],
  ['l6', 'Dirk Dropped', 'disqualified', 'inbound'],
];

function lead(uid: string, name: string, state: string, source: string, extra: string[] = []): string {
  const [given, family] = name.split(' ');
  return vcard({ uid, fn: name, lines: [`N:${family};${given};;;`, `X-CRM-LEAD-STATE:${state}`, `X-CRM-LEAD-SOURCE:${source}`, ...extra] });
}

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  await app.addUser('bob');
  alice = new DavClient(app, 'alice');
  bob = new DavClient(app, 'bob');
  await alice.createBook(BOOK);
  await createGroup(app.storage, 'sales', ['alice', 'bob']);
  await shareBook(app.storage, 'alice/customers', '@sales', { access: 'write' });
  for (const [uid, name, state, source] of LEADS) {
    await alice.putCard(`${BOOK}${uid}.vcf`, lead(uid, name, state, source, [`ORG:${family(name)} Holdings`]));
  }
  await alice.putCard(`${BOOK}acme.vcf`, vcard({ uid: 'acme', fn: 'Acme Corporation', lines: ['N:;;;;', 'ORG:Acme Corporation', 'X-ADDRESSBOOKSERVER-KIND:org', 'X-CRM-CASE;STATUS=open;SUBJECT=Invoice:C-7'] }));
  await alice.putCard(
    `${BOOK}ada.vcf`,
    vcard({ uid: 'ada', fn: 'Ada Lovelace', lines: ['N:Lovelace;Ada;;;', 'EMAIL:ada@example.org', 'X-CRM-ACCOUNT:acme', 'X-CRM-CASE;STATUS=pending;SUBJECT="Printer jams":C-1042'] }),
  );
  // A lead in bob's own book, outside the shared one.
  await bob.putCard('/dav/addressbooks/bob/contacts/solo.vcf', lead('solo', 'Sam Solo', 'open', 'outbound'));
});

afterAll(async () => {
  await app.close();
});

function family(name: string): string {
  return name.split(' ')[1];
}

describe('funnel', () => {
  test('counts match the cards', async () => {
    const funnel = await computeFunnel(app.storage, { book: 'alice/customers' });
    expect(funnel.total).toBe(6);
    expect(funnel.states.open).toEqual({ inbound: 2, outbound: 1, unspecified: 0, total: 3 });
    expect(funnel.states.qualified).toEqual({ inbound: 1, outbound: 0, unspecified: 0, total: 1 });
    expect(funnel.states.disqualified).toEqual({ inbound: 1, outbound: 1, unspecified: 0, total: 2 });
    expect(funnel.invalid).toBe(0);
  });

  test('user scope covers shared books', async () => {
    expect((await computeFunnel(app.storage, { user: 'bob' })).total).toBe(7);
    expect((await computeFunnel(app.storage, {})).total).toBe(7);
    expect((await computeFunnel(app.storage, { user: 'alice' })).total).toBe(6);
  });

  test('chart draws scaled bars', async () => {
    const chart = renderFunnel(await computeFunnel(app.storage, { book: 'alice/customers' }));
    const lines = chart.split('\n');
    expect(lines[0]).toBe('Lead funnel: 6 leads');
    expect(lines).toContain(`open          3  inbound   ${'█'.repeat(40)} 2`);
    expect(lines).toContain(`                 outbound  ${'█'.repeat(20)} 1`);
    const qualified = lines.indexOf(`qualified     1  inbound   ${'█'.repeat(20)} 1`);
    expect(qualified).toBeGreaterThan(0);
    expect(lines[qualified + 1]).toBe('                 outbound  0');
    expect(chart).not.toContain('unspecified');
  });

  test('bar uses eighth blocks', () => {
    expect(bar(1, 3)).toBe('█'.repeat(13) + '▍');
    expect(bar(0, 3)).toBe('');
    expect(bar(1, 1000)).toBe('▏');
  });
});

describe('leads report', () => {
  test('filters by state and source', async () => {
    const table = await leadsReport(app.storage, {}, { state: 'open', source: 'inbound' });
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATE\s+SOURCE\s+ORGANIZATION\s+SINCE\s+CONVERTED\s+CARD$/);
    expect(lines.slice(1).map((line) => line.split(/\s{2,}/)[0])).toEqual(['Ida Inbound', 'Ines Inbound']);
    expect(table).toContain('alice/customers/l1.vcf');
  });

  test('rejects an unknown state', async () => {
    await expect(leadsReport(app.storage, {}, { state: 'warm' })).rejects.toThrow('invalid --state "warm": use one of open, qualified, disqualified');
  });

  test('says when none match', async () => {
    expect(await leadsReport(app.storage, { book: 'bob/contacts' }, { state: 'qualified' })).toBe('no leads found');
  });
});

describe('account report', () => {
  test('shows contacts and cases', async () => {
    const report = await accountReport(app.storage, {}, 'acme corporation');
    expect(report).toContain('Acme Corporation  (UID acme, alice/customers/acme.vcf)');
    expect(report).toContain('Contacts: 1');
    expect(report).toMatch(/Ada Lovelace\s+ada@example.org\s+alice\/customers\/ada.vcf/);
    expect(report).toContain('Cases: 2');
    expect(report).toMatch(/C-1042\s+pending\s+Printer jams\s+Ada Lovelace/);
    expect(report).toMatch(/C-7\s+open\s+Invoice\s+Acme Corporation/);
  });

  test('unknown account fails', async () => {
    await expect(accountReport(app.storage, {}, 'Nobody Ltd')).rejects.toThrow('no account named "Nobody Ltd"');
  });
});

describe('convert', () => {
  test('open lead is refused', async () => {
    await expect(convertLead(app.storage, 'alice/customers/l1.vcf')).rejects.toThrow('the lead "Ines Inbound" is open');
  });

  test('qualified lead becomes a contact', async () => {
    const start = await bob.sync('/dav/addressbooks/bob/customers/', '');
    const result = await convertLead(app.storage, 'l4');
    expect(result.accountCreated).toBe(true);
    expect(result.accountName).toBe('Qualified Holdings');
    expect(result.contactPath).toBe('alice/customers/l4.vcf');

    const contact = (await alice.get(`${BOOK}l4.vcf`)).text;
    const accountName = result.accountPath.split('/')[2];
    const accountCard = (await alice.get(`${BOOK}${accountName}`)).text;
    const accountUid = /^UID:(.+)$/m.exec(accountCard)?.[1].trim();
    expect(accountCard).toContain('X-ADDRESSBOOKSERVER-KIND:org');
    expect(accountCard).toContain('ORG:Qualified Holdings');
    expect(contact).toContain(`X-CRM-ACCOUNT:${accountUid}`);
    expect(contact).toContain('ORG:Qualified Holdings');
    expect(contact).toMatch(/X-CRM-LEAD-CONVERTED-AT:\d{8}T\d{6}Z/);
    expect(contact).toContain('X-CRM-LEAD-STATE:qualified');

    const changes = await bob.sync('/dav/addressbooks/bob/customers/', start.syncToken ?? '');
    expect(changes.responses.map((r) => r.href).sort()).toEqual(
      [`/dav/addressbooks/bob/customers/${accountName}`, '/dav/addressbooks/bob/customers/l4.vcf'].sort(),
    );
  });

  test('second conversion is refused', async () => {
    await expect(convertLead(app.storage, 'alice/customers/l4.vcf')).rejects.toThrow('was converted already');
  });

  test('converted lead still counts', async () => {
    const funnel = await computeFunnel(app.storage, { book: 'alice/customers' });
    expect(funnel.states.qualified.total).toBe(1);
    expect(await leadsReport(app.storage, {}, { state: 'qualified' })).toMatch(/Quinn Qualified.+yes/);
  });

  test('lead without org is refused', async () => {
    await alice.putCard(`${BOOK}nora.vcf`, lead('nora', 'Nora Noorg', 'qualified', 'inbound'));
    await expect(convertLead(app.storage, 'nora')).rejects.toThrow('has no ORG');
  });

  test('linked lead keeps its account', async () => {
    await alice.putCard(`${BOOK}lia.vcf`, lead('lia', 'Lia Linked', 'qualified', 'inbound', ['X-CRM-ACCOUNT:acme']));
    const result = await convertLead(app.storage, 'alice/customers/lia.vcf');
    expect(result.accountCreated).toBe(false);
    expect(result.accountPath).toBe('alice/customers/acme.vcf');
    expect((await alice.get(`${BOOK}lia.vcf`)).text).toContain('ORG:Acme Corporation');
  });
});

/** Builds an addressbook-query for leads in one state from one source, matched exactly. */
function leadQuery(state: string, source: string): string {
  const match = (name: string, value: string) =>
    `<card:prop-filter name="${name}"><card:text-match match-type="equals" collation="i;ascii-casemap">${value}</card:text-match></card:prop-filter>`;
  return (
    `<?xml version="1.0" encoding="utf-8"?><card:addressbook-query ${XMLNS}>` +
    '<d:prop><d:getetag/></d:prop>' +
    `<card:filter test="allof">${match('X-CRM-LEAD-STATE', state)}${match('X-CRM-LEAD-SOURCE', source)}</card:filter>` +
    '</card:addressbook-query>'
  );
}

describe('addressbook-query', () => {
  test('finds open inbound leads', async () => {
    const reply = await bob.report('/dav/addressbooks/bob/customers/', leadQuery('open', 'inbound'), { Depth: '1' });
    expect(reply.status).toBe(207);
    const hrefs = parseMultistatusDocument(reply.text).responses.map((r) => r.href);
    expect(hrefs.sort()).toEqual(['/dav/addressbooks/bob/customers/l1.vcf', '/dav/addressbooks/bob/customers/l2.vcf']);
  });

  test('finds disqualified outbound leads', async () => {
    const reply = await alice.report(BOOK, leadQuery('disqualified', 'outbound'), { Depth: '1' });
    expect(reply.status).toBe(207);
    expect(parseMultistatusDocument(reply.text).responses.map((r) => r.href)).toEqual([`${BOOK}l5.vcf`]);
  });
});
