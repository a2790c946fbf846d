/**
 * The group, share and crm subcommands of the built command line (`npm run build` first),
 * each run against one data folder as an administrator would run them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite';
import { prepareCard } from '../../vcard/pipeline';
import { runCli, type CliResult } from '../helpers/server';

jest.setTimeout(60_000);

let dataDir: string;

async function cli(...args: string[]): Promise<CliResult> {
  return runCli([...args, '--data', dataDir]);
}

async function ok(...args: string[]): Promise<string> {
  const result = await cli(...args);
  if (result.code !== 0) throw new Error(`cardinal ${args.join(' ')} exited with ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** Stores a card directly, as a client's PUT would leave it. */
async function storeCard(owner: string, slug: string, name: string, text: string): Promise<void> {
  const storage = new SqliteStorage(join(dataDir, 'cardinal.sqlite3'));
  try {
    const user = await storage.getUser(owner);
    const book = await storage.getBook(user!.id, slug);
    const prepared = prepareCard(Buffer.from(text));
    if (!prepared.ok) throw new Error(prepared.message);
    await storage.putCard(book!.id, { name, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties }, {});
  } finally {
    await storage.close();
  }
}

function lead(uid: string, name: string, state: string, source: string): string {
  return `BEGIN:VCARD\r\nVERSION:3.0\r\nUID:${uid}\r\nFN:${name}\r\nN:${name};;;;\r\nORG:${name} GmbH\r\nX-CRM-LEAD-STATE:${state}\r\nX-CRM-LEAD-SOURCE:${source}\r\nEND:VCARD\r\n`;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cardinal-crm-cli-'));
  for (const name of ['alice', 'bob', 'carol']) {
    const result = await runCli(['user', 'add', name, '--password-stdin', '--data', dataDir], `${name}-password\n`);
    expect(result.code).toBe(0);
  }
});

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('cardinal group', () => {
  test('add and list', async () => {
    expect(await ok('group', 'add', 'sales', 'alice', 'bob')).toBe('created group sales with 2 members: alice, bob\n');
    expect(await ok('group', 'list')).toBe('sales\tlocal\talice, bob\n');
  });

  test('add twice fails', async () => {
    const result = await cli('group', 'add', 'sales');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('group sales already exists');
  });

  test('unknown member fails', async () => {
    const result = await cli('group', 'add', 'support', 'alice', 'nobody');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('cardinal: user not found: nobody\n');
    expect(await ok('group', 'list')).not.toContain('support');
  });

  test('invalid name fails', async () => {
    const result = await cli('group', 'add', '@sales');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('invalid group name "@sales"');
  });

  test('members change', async () => {
    expect(await ok('group', 'add-member', 'sales', 'carol')).toBe('added 1 member to group sales\n');
    expect(await ok('group', 'remove-member', 'sales', 'carol', 'bob')).toBe('removed 2 members from group sales\n');
    expect(await ok('group', 'add-member', 'sales', 'bob')).toBe('added 1 member to group sales\n');
  });

  test('directory group is read-only', async () => {
    const storage = new SqliteStorage(join(dataDir, 'cardinal.sqlite3'));
    await storage.createGroup('staff', 'ldap');
    await storage.close();
    const result = await cli('group', 'add-member', 'staff', 'carol');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('group staff is imported from LDAP');
    expect(await ok('group', 'remove', 'staff')).toBe('removed group staff\n');
  });
});

describe('cardinal share', () => {
  test('share with a group', async () => {
    expect(await ok('share', 'alice/contacts', '--with', '@sales', '--write')).toBe(
      'shared alice/contacts with @sales (write) at "contacts-alice"\n',
    );
  });

  test('share with a user', async () => {
    expect(await ok('share', 'alice/contacts', '--with', 'carol', '--read', '--mount', 'alice')).toBe(
      'shared alice/contacts with carol (read) at "alice"\n',
    );
  });

  test('list the shares', async () => {
    expect(await ok('share', 'alice/contacts')).toBe('carol\tread\talice\n@sales\twrite\tcontacts-alice\n');
  });

  test('needs one access flag', async () => {
    const result = await cli('share', 'alice/contacts', '--with', 'bob');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('cardinal: pass exactly one of --read or --write\n');
  });

  test('bad book name fails', async () => {
    const result = await cli('share', 'contacts', '--with', 'bob', '--read');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('name it as OWNER/SLUG');
  });

  test('unshare', async () => {
    expect(await ok('unshare', 'alice/contacts', '--with', 'carol')).toBe('stopped sharing alice/contacts with carol\n');
    const again = await cli('unshare', 'alice/contacts', '--with', 'carol');
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('cardinal: alice/contacts is not shared with carol\n');
  });
});

describe('cardinal crm', () => {
  beforeAll(async () => {
    await storeCard('alice', 'contacts', 'l1.vcf', lead('l1', 'Ivo', 'open', 'inbound'));
    await storeCard('alice', 'contacts', 'l2.vcf', lead('l2', 'Olga', 'qualified', 'outbound'));
    await storeCard('bob', 'contacts', 'l3.vcf', lead('l3', 'Dmitri', 'disqualified', 'inbound'));
  });

  test('funnel as json', async () => {
    const funnel = JSON.parse(await ok('crm', 'funnel', '--json'));
    expect(funnel.total).toBe(3);
    expect(funnel.states.open.inbound).toBe(1);
    expect(funnel.states.qualified.outbound).toBe(1);
    expect(funnel.states.disqualified.inbound).toBe(1);
  });

  test('funnel for one user', async () => {
    expect(JSON.parse(await ok('crm', 'funnel', '--json', '--user', 'carol')).total).toBe(0);
    expect(JSON.parse(await ok('crm', 'funnel', '--json', '--user', 'bob')).total).toBe(3);
  });

  test('funnel chart', async () => {
    const chart = await ok('crm', 'funnel');
    expect(chart).toContain('Lead funnel: 3 leads');
    expect(chart).toContain('█');
  });

  test('leads table', async () => {
    const table = await ok('crm', 'leads', '--source', 'inbound');
    expect(table).toContain('Ivo');
    expect(table).toContain('Dmitri');
    expect(table).not.toContain('Olga');
  });

  test('convert and show', async () => {
    const output = await ok('crm', 'convert', 'alice/contacts/l2.vcf');
    expect(output).toMatch(/^created account "Olga GmbH" at alice\/contacts\/[0-9a-f-]+\.vcf; alice\/contacts\/l2\.vcf is now its contact\n$/);
    const report = await ok('crm', 'account', 'Olga GmbH');
    expect(report).toContain('Contacts: 1');
    expect(report).toContain('alice/contacts/l2.vcf');
  });

  test('convert an open lead fails', async () => {
    const result = await cli('crm', 'convert', 'l1');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('cardinal: the lead "Ivo" is open; only a qualified lead can be converted\n');
  });
});
