import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { findFreePort, runCli, startServer } from '../helpers/server';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'cardinal-cli-'));
}

function basic(name: string, password: string): string {
  return 'Basic ' + Buffer.from(`${name}:${password}`).toString('base64');
}

describe('cardinal user', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = tempDir();
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  test('add stores a salted scrypt hash', async () => {
    const result = await runCli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], 'correct horse\n');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const db = new Database(join(dataDir, 'cardinal.sqlite3'), { readonly: true });
    const row = db.prepare('SELECT password_hash FROM users WHERE name = ?').get('alice') as { password_hash: string };
    db.close();
    expect(row.password_hash).toMatch(/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(row.password_hash).not.toContain('correct horse');
    const raw = readFileSync(join(dataDir, 'cardinal.sqlite3'));
    expect(raw.includes(Buffer.from('correct horse'))).toBe(false);
  });

  test('add, list, passwd and remove', async () => {
    expect((await runCli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], 'one\n')).code).toBe(0);
    expect((await runCli(['user', 'add', 'bob', '--password-stdin', '--data', dataDir], 'two\n')).code).toBe(0);
    const listed = await runCli(['user', 'list', '--data', dataDir]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^alice\b/m);
    expect(listed.stdout).toMatch(/^bob\b/m);

    expect((await runCli(['user', 'passwd', 'alice', '--password-stdin', '--data', dataDir], 'three\n')).code).toBe(0);
    const removed = await runCli(['user', 'remove', 'bob', '--data', dataDir]);
    expect(removed.code).toBe(0);
    const after = await runCli(['user', 'list', '--data', dataDir]);
    expect(after.stdout).not.toMatch(/^bob\b/m);
  });

  test('add rejects a duplicate and a bad name', async () => {
    expect((await runCli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], 'one\n')).code).toBe(0);
    const duplicate = await runCli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], 'one\n');
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain('already exists');
    const badName = await runCli(['user', 'add', '../etc', '--password-stdin', '--data', dataDir], 'one\n');
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain('invalid user name');
  });

  test('add without a terminal needs --password-stdin', async () => {
    const result = await runCli(['user', 'add', 'alice', '--data', dataDir], 'secret\n');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--password-stdin');
  });

  test('remove of a missing user fails', async () => {
    const result = await runCli(['user', 'remove', 'nobody', '--data', dataDir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('not found');
  });

  test('config file sets the data folder', async () => {
    const configFile = join(dataDir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ dataDir: join(dataDir, 'from-config') }));
    expect((await runCli(['user', 'add', 'carol', '--password-stdin', '--config', configFile], 'x\n')).code).toBe(0);
    const listed = await runCli(['user', 'list', '--data', join(dataDir, 'from-config')]);
    expect(listed.stdout).toMatch(/^carol\b/m);
  });

  test('unknown config key is an error', async () => {
    const configFile = join(dataDir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ prot: 1 }));
    const result = await runCli(['user', 'list', '--config', configFile]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('unknown configuration key: prot');
  });

  test('example config loads', async () => {
    const result = await runCli(['user', 'list', '--config', 'config.example.json', '--data', dataDir]);
    expect(result.stderr).toMatch(/^(no users in \S+\n)?$/);
    expect(result.code).toBe(0);
  });
});

describe('cardinal serve', () => {
  test('password change applies to a running server', async () => {
    const server = await startServer();
    try {
      await server.addUser('alice', 'first');
      const url = `${server.url}dav/addressbooks/alice/`;
      const before = await fetch(url, { method: 'PROPFIND', headers: { Depth: '0', Authorization: basic('alice', 'first') } });
      expect(before.status).toBe(207);
      const changed = await runCli(['user', 'passwd', 'alice', '--password-stdin', '--data', server.dataDir], 'second\n');
      expect(changed.code).toBe(0);
      const old = await fetch(url, { method: 'PROPFIND', headers: { Depth: '0', Authorization: basic('alice', 'first') } });
      expect(old.status).toBe(401);
      const fresh = await fetch(url, { method: 'PROPFIND', headers: { Depth: '0', Authorization: basic('alice', 'second') } });
      expect(fresh.status).toBe(207);
    } finally {
      await server.stop();
    }
  });

  test('serves HTTPS with tls.cert and tls.key', async () => {
    const dir = tempDir();
    try {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], {
        stdio: 'ignore',
      });
      const configFile = join(dir, 'config.json');
      writeFileSync(configFile, JSON.stringify({ tls: { cert, key } }));
      const server = await startServer({ args: ['--config', configFile] });
      try {
        expect(server.url.startsWith('https://')).toBe(true);
        const status = await new Promise<number>((resolve, reject) => {
          const req = https.request(`${server.url}.well-known/carddav`, { ca: readFileSync(cert), rejectUnauthorized: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
          req.end();
        });
        expect(status).toBe(301);
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('flags override the config file', async () => {
    const dir = tempDir();
    try {
      const configFile = join(dir, 'config.json');
      writeFileSync(configFile, JSON.stringify({ port: 1, host: '127.0.0.2' }));
      const port = await findFreePort();
      const server = await startServer({ args: ['--config', configFile, '--port', String(port)] });
      try {
        expect(server.url).toBe(`http://127.0.0.1:${port}/`);
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cardinal book', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = tempDir();
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  test('add, list and remove', async () => {
    expect((await runCli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], 'pw\n')).code).toBe(0);
    const added = await runCli(['book', 'add', 'alice', 'customers', '--name', 'Customers', '--data', dataDir]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    const listed = await runCli(['book', 'list', 'alice', '--data', dataDir]);
    expect(listed.stdout).toContain('alice/customers\t0 cards\tCustomers');
    expect(listed.stdout).toContain('alice/contacts\t0 cards\tContacts');
    const again = await runCli(['book', 'add', 'alice', 'customers', '--data', dataDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
    expect((await runCli(['book', 'remove', 'alice', 'customers', '--data', dataDir])).code).toBe(0);
    const after = await runCli(['book', 'list', 'alice', '--data', dataDir]);
    expect(after.stdout).not.toContain('customers');
  });

  test('remove finishes an interrupted removal', async () => {
    expect((await runCli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], 'pw\n')).code).toBe(0);
    expect((await runCli(['book', 'add', 'alice', 'old', '--data', dataDir])).code).toBe(0);
    // An interrupted removal leaves the book marked and hidden.
    const db = new Database(join(dataDir, 'cardinal.sqlite3'));
    db.prepare("UPDATE books SET removing = 1, slug = slug || char(0) || id WHERE slug = 'old'").run();
    db.close();

    const again = await runCli(['book', 'remove', 'alice', 'old', '--data', dataDir]);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain('finished removing 1 address book(s) that an earlier run left half done');
    expect(again.stderr).toContain('address book alice/old not found');
    const check = new Database(join(dataDir, 'cardinal.sqlite3'), { readonly: true });
    expect(check.prepare('SELECT count(*) FROM books WHERE removing = 1').pluck().get()).toBe(0);
    check.close();
  });

  test('add rejects a bad slug and owner', async () => {
    expect((await runCli(['user', 'add', 'alice', '--password-stdin', '--data', dataDir], 'pw\n')).code).toBe(0);
    const badSlug = await runCli(['book', 'add', 'alice', '../x', '--data', dataDir]);
    expect(badSlug.code).toBe(1);
    expect(badSlug.stderr).toContain('invalid address book name');
    const noOwner = await runCli(['book', 'add', 'nobody', 'x', '--data', dataDir]);
    expect(noOwner.code).toBe(1);
    expect(noOwner.stderr).toContain('user nobody not found');
  });
});

describe('cardinal serve stop', () => {
  test('SIGTERM after a write logs stopped', async () => {
    const server = await startServer();
    await server.addUser('alice', 'alice-password');
    const response = await fetch(`${server.url}dav/addressbooks/alice/contacts/stop.vcf`, {
      method: 'PUT',
      headers: {
        Authorization: `Basic ${Buffer.from('alice:alice-password').toString('base64')}`,
        'Content-Type': 'text/vcard; charset=utf-8',
      },
      body: 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:stop\r\nFN:Stop\r\nEND:VCARD\r\n',
    });
    expect(response.status).toBe(201);
    await server.stop();
    // The checkpoint worker's last checkpoint runs before the exit, and the last line is written out.
    expect(server.output()).toContain('"msg":"stopped"');
  });
});

describe('cardinal serve errors', () => {
  test('port in use gives a clear message', async () => {
    const server = await startServer();
    try {
      const second = await runCli(['serve', '--data', server.dataDir, '--port', String(server.port)]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain('the address is already in use');
    } finally {
      await server.stop();
    }
  });

  test('invalid log level is a config error', async () => {
    const dir = tempDir();
    try {
      const configFile = join(dir, 'config.json');
      writeFileSync(configFile, JSON.stringify({ logLevel: 'loud' }));
      const result = await runCli(['serve', '--config', configFile, '--data', dir]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('invalid logLevel: loud');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('non-numeric --port is named', async () => {
    const dir = tempDir();
    try {
      const result = await runCli(['serve', '--data', dir, '--port', 'abc']);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe('cardinal: invalid port: abc; use a number from 0 to 65535\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('missing certificate file is named', async () => {
    const dir = tempDir();
    try {
      const configFile = join(dir, 'config.json');
      const cert = join(dir, 'missing.pem');
      writeFileSync(configFile, JSON.stringify({ tls: { cert, key: join(dir, 'missing.key') } }));
      const result = await runCli(['serve', '--config', configFile, '--data', dir]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`cardinal: cannot read tls.cert ${cert} (ENOENT); check the path in the configuration file\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('empty user list names the database', async () => {
    const dir = tempDir();
    try {
      const result = await runCli(['user', 'list', '--data', dir]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`no users in ${join(dir, 'cardinal.sqlite3')}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
