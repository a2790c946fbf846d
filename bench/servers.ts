/**
 * The three servers under test, each started on a free port of 127.0.0.1 with a fresh store
 * in its own folder: Cardinal from this checkout, Radicale and Xandikos from their Debian
 * packages. Every server runs with its shipped defaults apart from the listen address, the
 * storage folder and (for Radicale) authentication, which is off so that any password works.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { BenchCard } from './cards';
import { DavClient } from './http';
import { checkCommand, findFreePort, readCpuSeconds, readPeakRssKib, runCommand, ServerProcess } from './process';

export const SERVER_KINDS = ['cardinal', 'radicale', 'xandikos'] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];

/** Connections the client keeps open to each server: the 8 upload clients need 8. */
const SOCKETS = 8;
const GIT_IDENTITY = ['-c', 'user.name=Cardinal benchmark', '-c', 'user.email=bench@example.invalid', '-c', 'commit.gpgsign=false'];

/** Repository root: the compiled script runs from dist/bench/. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface CardinalOptions {
  /** Checkout whose compiled `bin/cardinal.js` runs; it must have been built. */
  root: string;
  /** Node arguments before the script, for example `--cpu-prof --cpu-prof-dir=DIR`. */
  nodeArgs: string[];
}

/** Returns the short commit id of a git checkout, or `unknown` outside one. */
export async function commitOf(root: string): Promise<string> {
  try {
    const result = await runCommand('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
    return result.code === 0 ? result.stdout.trim() : 'unknown';
  } catch {
    // Without git the record names the commit `unknown` instead of failing the run.
    return 'unknown';
  }
}

const MKCOL_ADDRESSBOOK =
  '<?xml version="1.0" encoding="utf-8"?>' +
  '<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>' +
  '<D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>' +
  '</D:prop></D:set></D:mkcol>';

const PROPFIND_ETAG = '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>';

/** Minimal environment for the peers and clients: no proxy settings, no user configuration. */
export function isolatedEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
}

export abstract class BenchServer {
  abstract readonly kind: ServerKind;
  /** Path of the address book that the read measurements use. */
  abstract readonly bookPath: string;
  /** Collection under which the bulk upload creates its extra address books. */
  abstract readonly homePath: string;
  /** Whether `seed` can fill the address book's storage folder directly. */
  abstract readonly canSeed: boolean;
  readonly username = 'bench';
  readonly password = 'bench-password';
  client!: DavClient;
  port = 0;
  protected process?: ServerProcess;
  /** Highest VmHWM of processes that already stopped, for servers restarted to seed them. */
  private earlierPeakKib = 0;

  constructor(protected readonly workDir: string) {
    mkdirSync(workDir, { recursive: true });
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    if (!this.process) throw new Error(`${this.kind} is not running`);
    return this.process.pid;
  }

  protected abstract spawnProcess(): ServerProcess;
  abstract version(): Promise<string>;

  /** Prepares the store before the first start. */
  protected async prepare(): Promise<void> {}

  /** Creates the main address book where the server does not create it itself. */
  protected async createMainBook(): Promise<void> {}

  async start(): Promise<void> {
    if (this.port === 0) {
      this.port = await findFreePort();
      await this.prepare();
    }
    this.client ??= new DavClient(this.origin, { username: this.username, password: this.password }, SOCKETS);
    const child = this.spawnProcess();
    this.process = child;
    await child.waitUntilReady(async () => (await this.client.request('OPTIONS', '/', { timeoutMs: 2000 })).status < 500);
    await this.createMainBook();
  }

  /** Peak resident memory of the server over the whole run, in KiB. */
  peakRssKib(): number {
    return Math.max(this.earlierPeakKib, readPeakRssKib(this.pid));
  }

  cpuSeconds(): number {
    return readCpuSeconds(this.pid);
  }

  async stop(): Promise<void> {
    if (!this.process) return;
    if (this.process.running) this.earlierPeakKib = this.peakRssKib();
    await this.process.stop();
    this.process = undefined;
  }

  /** Stops the server and closes the client's connections. */
  async shutdown(): Promise<void> {
    await this.stop();
    this.client?.close();
  }

  async createBook(slug: string): Promise<string> {
    const bookPath = `${this.homePath}${slug}/`;
    await this.client.expect('MKCOL', bookPath, [201], {
      headers: { 'Content-Type': 'application/xml; charset=utf-8' },
      body: MKCOL_ADDRESSBOOK,
    });
    return bookPath;
  }

  async deleteBook(bookPath: string): Promise<void> {
    await this.client.expect('DELETE', bookPath, [200, 204]);
  }

  /** Loads `cards` into the main address book by writing its storage folder, replacing what it held. */
  async seed(_cards: readonly BenchCard[]): Promise<void> {
    throw new Error(`${this.kind} cannot be seeded; upload the cards instead`);
  }

  /** Reads the whole book once, untimed, so that no measurement pays for a cold cache. */
  async warmUp(): Promise<void> {
    await this.client.expect('PROPFIND', this.bookPath, [207], {
      headers: { Depth: '1', 'Content-Type': 'application/xml; charset=utf-8' },
      body: PROPFIND_ETAG,
    });
  }

  logTail(): string {
    return this.process?.logTail() ?? '';
  }
}

/** The settings of the `#!/usr/bin/env -S [NAME=VALUE ...] node [OPTION ...]` line of a checkout's bin/cardinal.js. */
export interface Shebang {
  /** Environment variables set before node starts. */
  env: Record<string, string>;
  /** Node.js options. */
  nodeOptions: string[];
}

/**
 * Reads the first line of a checkout's bin/cardinal.js, which `npx cardinal` and the bin file
 * itself start with. The benchmark runs its own node binary with what the line sets, so Cardinal
 * runs as it ships. An older checkout whose line is `#!/usr/bin/env node` gets nothing.
 */
export function readShebang(cli: string): Shebang {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0];
  const words = /^#!\S*env -S (.*)$/.exec(first)?.[1].trim().split(/\s+/) ?? [];
  const env: Record<string, string> = {};
  let index = 0;
  for (; index < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[index]); index++) {
    const [name, ...value] = words[index].split('=');
    env[name] = value.join('=');
  }
  const nodeOptions = words[index] === 'node' ? words.slice(index + 1) : [];
  return { env, nodeOptions };
}

/** Cardinal from this checkout, started as `bin/cardinal.js serve` starts it, with the environment and node options of its first line. */
export class CardinalServer extends BenchServer {
  readonly kind = 'cardinal';
  readonly bookPath = '/dav/addressbooks/bench/contacts/';
  readonly homePath = '/dav/addressbooks/bench/';
  readonly canSeed = false;
  private readonly dataDir: string;
  private readonly cli: string;

  constructor(
    workDir: string,
    private readonly options: CardinalOptions,
  ) {
    super(workDir);
    this.dataDir = path.join(workDir, 'data');
    this.cli = path.join(options.root, 'bin', 'cardinal.js');
  }

  async version(): Promise<string> {
    return `commit ${await commitOf(this.options.root)}`;
  }

  protected override async prepare(): Promise<void> {
    const result = await runCommand(process.execPath, [this.cli, 'user', 'add', this.username, '--password-stdin', '--data', this.dataDir], {
      cwd: this.options.root,
      input: `${this.password}\n`,
      timeoutMs: 60_000,
    });
    checkCommand(`cardinal user add ${this.username}`, result);
  }

  protected spawnProcess(): ServerProcess {
    const shebang = readShebang(this.cli);
    const args = [...shebang.nodeOptions, ...this.options.nodeArgs, this.cli, 'serve', '--data', this.dataDir, '--host', '127.0.0.1', '--port', String(this.port)];
    const env = { ...process.env, ...shebang.env };
    return new ServerProcess('cardinal', process.execPath, args, path.join(this.workDir, 'server.log'), env, this.options.root);
  }
}

/** Radicale 3 from Debian, storage in `collection-root/<user>/<book>/`, one .vcf file per card. */
export class RadicaleServer extends BenchServer {
  readonly kind = 'radicale';
  readonly bookPath = '/bench/contacts/';
  readonly homePath = '/bench/';
  readonly canSeed = true;
  private readonly storageDir: string;

  constructor(workDir: string) {
    super(workDir);
    this.storageDir = path.join(workDir, 'storage');
  }

  async version(): Promise<string> {
    const result = await runCommand('radicale', ['--version'], { env: isolatedEnv(this.workDir) });
    return result.stdout.trim() || result.stderr.trim();
  }

  protected spawnProcess(): ServerProcess {
    // `-C ""` skips /etc/radicale/config, whose remote_user authentication needs a reverse proxy.
    const args = ['-C', '', '--server-hosts', `127.0.0.1:${this.port}`, '--storage-filesystem-folder', this.storageDir, '--auth-type', 'none'];
    return new ServerProcess('radicale', 'radicale', args, path.join(this.workDir, 'server.log'), isolatedEnv(this.workDir));
  }

  protected override async createMainBook(): Promise<void> {
    const found = await this.client.request('PROPFIND', this.bookPath, { headers: { Depth: '0' } });
    if (found.status === 404) await this.createBook('contacts');
  }

  override async seed(cards: readonly BenchCard[]): Promise<void> {
    await this.stop();
    const folder = path.join(this.storageDir, 'collection-root', this.username, 'contacts');
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, '.Radicale.props'), JSON.stringify({ tag: 'VADDRESSBOOK' }));
    for (const card of cards) writeFileSync(path.join(folder, card.name), card.text);
    await this.start();
  }
}

/** Xandikos from Debian: every collection is a git repository with the cards as files. */
export class XandikosServer extends BenchServer {
  readonly kind = 'xandikos';
  readonly bookPath = '/user/contacts/addressbook/';
  readonly homePath = '/user/contacts/';
  readonly canSeed = true;
  private readonly storageDir: string;

  constructor(workDir: string) {
    super(workDir);
    this.storageDir = path.join(workDir, 'storage');
  }

  async version(): Promise<string> {
    const result = await runCommand('xandikos', ['--version'], { env: isolatedEnv(this.workDir) });
    // It prints the program path before the version, as in `/usr/bin/xandikos 0.2.8`.
    return (result.stdout.trim() || result.stderr.trim()).replace(/^\S*xandikos\s+/, '');
  }

  protected spawnProcess(): ServerProcess {
    // --defaults creates the principal /user/ and its address book /user/contacts/addressbook/.
    const args = ['-d', this.storageDir, '--defaults', '-l', '127.0.0.1', '-p', String(this.port)];
    return new ServerProcess('xandikos', 'xandikos', args, path.join(this.workDir, 'server.log'), isolatedEnv(this.workDir));
  }

  override async seed(cards: readonly BenchCard[]): Promise<void> {
    await this.stop();
    const folder = path.join(this.storageDir, 'user', 'contacts', 'addressbook');
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder, { recursive: true });
    const env = isolatedEnv(this.workDir);
    checkCommand('git init', await runCommand('git', ['init', '-q', '-b', 'master', folder], { env }));
    // The collection type lives in a committed .xandikos file, as Xandikos itself writes it.
    writeFileSync(path.join(folder, '.xandikos'), '[DEFAULT]\ntype = addressbook\n\n');
    for (const card of cards) writeFileSync(path.join(folder, card.name), card.text);
    checkCommand('git add', await runCommand('git', ['-C', folder, 'add', '-A'], { env, timeoutMs: 600_000 }));
    const commit = ['-C', folder, ...GIT_IDENTITY, 'commit', '-q', '-m', `Seed ${cards.length} cards`];
    checkCommand('git commit', await runCommand('git', commit, { env, timeoutMs: 600_000 }));
    await this.start();
  }
}

export function createServer(kind: ServerKind, workDir: string, cardinal: CardinalOptions): BenchServer {
  switch (kind) {
    case 'cardinal':
      return new CardinalServer(workDir, cardinal);
    case 'radicale':
      return new RadicaleServer(workDir);
    case 'xandikos':
      return new XandikosServer(workDir);
  }
}
