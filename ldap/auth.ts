import { createHash, createHmac, randomBytes } from 'node:crypto';
import { InvalidCredentialsError, type Client, type Entry } from 'ldapts';
import type { Logger } from 'pino';
import type { Config } from '../server/config';
import { USER_NAME } from '../server/users';
import type { Storage, User } from '../storage/types';
import { directoryId } from './card';
import { close, connect, connectAsService, searchPages } from './client';
import { loginAttributes } from './config';
import { DirectoryError, toDirectoryError } from './errors';
import { escapeDNValue, escapeFilterValue } from './escape';

/** Maximum length of a login name sent to the directory, in characters. */
const MAX_LOGIN_LENGTH = 256;
const MAX_CACHE_ENTRIES = 10_000;

interface CachedLogin {
  userId: number;
  expires: number;
}

/**
 * Checks HTTP Basic credentials against the directory: finds the entry whose
 * login attribute equals the name (an escaped filter, within ldap.baseDN and
 * ldap.filter), then binds as its DN with the password. The entry's stable
 * identifier maps to one Cardinal user, created at the first login, so the
 * principal URL is the same for every login alias.
 */
export class DirectoryLogin {
  private readonly cache = new Map<string, CachedLogin>();
  private readonly pending = new Map<string, Promise<User | undefined>>();
  private readonly secret = randomBytes(32);

  constructor(
    private readonly storage: Storage,
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  private cacheKey(login: string, password: string): string {
    return createHmac('sha256', this.secret).update(login).update('\0').update(password).digest('base64');
  }

  /**
   * Returns the user for valid credentials and undefined for invalid ones.
   * Raises a DirectoryError when the directory fails to respond, because
   * a failed connection is no verdict on the password.
   */
  async authenticate(login: string, password: string): Promise<User | undefined> {
    // A simple bind with an empty password is an unauthenticated bind that succeeds (RFC 4513 section 5.1.2).
    if (password === '' || login === '' || login.length > MAX_LOGIN_LENGTH) return undefined;
    const key = this.cacheKey(login, password);
    const cached = await this.cachedUser(login, password);
    if (cached) return cached;
    this.cache.delete(key);
    // Clients send many requests at once; they share one directory check.
    let check = this.pending.get(key);
    if (!check) {
      check = this.check(login, password).finally(() => this.pending.delete(key));
      this.pending.set(key, check);
    }
    const user = await check;
    if (user && this.config.auth.ldap.cacheSeconds > 0) {
      if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
      this.cache.set(key, { userId: user.id, expires: Date.now() + this.config.auth.ldap.cacheSeconds * 1000 });
    }
    return user;
  }

  /**
   * Returns the user of credentials that the directory accepted within
   * `auth.ldap.cacheSeconds`, without contacting it, or undefined. A local
   * user with a password and this name takes precedence, so it gets no hit.
   */
  async cachedUser(login: string, password: string): Promise<User | undefined> {
    if (password === '' || login === '' || login.length > MAX_LOGIN_LENGTH) return undefined;
    const cached = this.cache.get(this.cacheKey(login, password));
    if (!cached || cached.expires <= Date.now()) return undefined;
    if ((await this.storage.getUser(login))?.passwordHash) return undefined;
    // An account that a sync marked inactive loses its cached logins at once.
    const account = await this.storage.getDirectoryAccount({ userId: cached.userId });
    return account?.active ? this.storage.getUserById(cached.userId) : undefined;
  }

  private async check(login: string, password: string): Promise<User | undefined> {
    const template = this.config.auth.ldap.userDNTemplate;
    const entry = template === '' ? await this.searchAndBind(login, password) : await this.bindByTemplate(template, login, password);
    if (!entry) return undefined;
    const id = directoryId(entry, this.config.ldap.attributes.uid);
    if (id === undefined) {
      this.logger.warn({ attribute: this.config.ldap.attributes.uid }, 'directory login rejected: the entry has no identifier');
      return undefined;
    }
    return this.userFor(id, entry);
  }

  private searchAttributes(): string[] {
    return [this.config.ldap.attributes.uid, ...loginAttributes(this.config.auth)];
  }

  private async findEntries(client: Client, baseDN: string, scope: 'base' | 'one' | 'sub', filter: string): Promise<Entry[]> {
    const entries: Entry[] = [];
    const pages = searchPages(client, {
      baseDN,
      filter,
      scope,
      attributes: this.searchAttributes(),
      binaryAttributes: this.config.ldap.attributes.uid.toLowerCase() === 'objectguid' ? [this.config.ldap.attributes.uid] : [],
      pageSize: 0,
    });
    for await (const page of pages) entries.push(...page);
    return entries;
  }

  private async searchAndBind(login: string, password: string): Promise<Entry | undefined> {
    const ldap = this.config.ldap;
    const value = escapeFilterValue(login);
    const alternatives = loginAttributes(this.config.auth).map((attribute) => `(${attribute}=${value})`);
    const filter = `(&${ldap.filter}${alternatives.length === 1 ? alternatives[0] : `(|${alternatives.join('')})`})`;
    const client = await connectAsService(ldap);
    try {
      let entries: Entry[];
      try {
        entries = await this.findEntries(client, ldap.baseDN, ldap.scope, filter);
      } catch (error) {
        // sizeLimitExceeded: the name matches more entries than the service account may read, so it names no single person.
        if (!(error instanceof DirectoryError && error.resultCode === 4)) throw error;
        this.logger.warn('directory login rejected: the login name matches more entries than the size limit allows');
        return undefined;
      }
      if (entries.length !== 1) {
        if (entries.length > 1) this.logger.warn({ matches: entries.length }, 'directory login rejected: the login name matches more than one entry');
        return undefined;
      }
      const entry = entries[0];
      try {
        await client.bind(entry.dn, password);
      } catch (error) {
        if (error instanceof InvalidCredentialsError) return undefined;
        throw toDirectoryError(error, 'bind as the user');
      }
      return entry;
    } finally {
      await close(client);
    }
  }

  private async bindByTemplate(template: string, login: string, password: string): Promise<Entry | undefined> {
    const dn = template.split('{login}').join(escapeDNValue(login));
    const client = await connect(this.config.ldap);
    try {
      try {
        await client.bind(dn, password);
      } catch (error) {
        if (error instanceof InvalidCredentialsError) return undefined;
        const wrapped = toDirectoryError(error, 'bind as the user');
        // invalidDNSyntax (34) and noSuchObject (32) mean that the login names no entry.
        if (wrapped.resultCode === 34 || wrapped.resultCode === 32) return undefined;
        throw wrapped;
      }
      // The entry must still match ldap.filter, so a disabled account that can bind is refused.
      let entries: Entry[];
      try {
        entries = await this.findEntries(client, dn, 'base', this.config.ldap.filter);
      } catch (error) {
        if (error instanceof DirectoryError && error.resultCode === 32) return undefined;
        throw error;
      }
      return entries.length === 1 ? entries[0] : undefined;
    } finally {
      await close(client);
    }
  }

  /** Finds or creates the Cardinal user of a directory entry. */
  private async userFor(id: string, entry: Entry): Promise<User | undefined> {
    const account = await this.storage.getDirectoryAccount({ directoryId: id });
    if (account) {
      if (!account.active) await this.storage.setDirectoryAccountActive(account.userId, true);
      return this.storage.getUserById(account.userId);
    }
    const name = await this.newUserName(id, entry);
    let user: User;
    try {
      user = await this.storage.createDirectoryUser(name, id);
    } catch (error) {
      // Two first logins of one person with different aliases raced; the other one created the user.
      const raced = await this.storage.getDirectoryAccount({ directoryId: id });
      if (!raced) throw error;
      return this.storage.getUserById(raced.userId);
    }
    await this.storage.createBook(user.id, this.config.defaultBook.slug, this.config.defaultBook.displayName);
    this.logger.info({ user: user.name }, 'directory user created at first login');
    return user;
  }

  /**
   * Names a new directory user after the first login attribute (uid by
   * default). A value that breaks the user-name rule or is taken falls back to
   * the entry's identifier, or a hash of it.
   */
  private async newUserName(id: string, entry: Entry): Promise<string> {
    const first = loginAttributes(this.config.auth)[0].toLowerCase();
    const raw = Object.entries(entry).find(([key]) => key.toLowerCase() === first)?.[1];
    const value = Array.isArray(raw) ? raw[0] : raw;
    const candidates = [typeof value === 'string' ? value : undefined, id, `d-${createHash('sha256').update(id).digest('hex').slice(0, 32)}`];
    for (const candidate of candidates) {
      if (candidate === undefined || !USER_NAME.test(candidate)) continue;
      if (!(await this.storage.getUser(candidate))) return candidate;
    }
    throw new DirectoryError('cannot name the new directory user: every candidate name is taken');
  }
}
