import { randomBytes } from 'node:crypto';
import type Koa from 'koa';
import type { Logger } from 'pino';
import { DavError } from '../dav/errors';
import { DirectoryLogin } from '../ldap/auth';
import { DEFAULT_AUTH_CONFIG } from '../ldap/config';
import { DirectoryError } from '../ldap/errors';
import type { Storage, User } from '../storage/types';
import type { Config } from './config';
import { hashPassword, verifyPassword } from './passwords';

/**
 * Counts failed logins per user name and per client address in a sliding
 * window. Once either count reaches its maximum, further attempts are refused
 * without checking the password until the oldest failure leaves the window.
 * The counts live in this process only.
 */
export interface LoginLimits {
  windowSeconds: number;
  maxFailuresPerUser: number;
  maxFailuresPerAddress: number;
}

/** Keys tracked at most per kind; beyond that the oldest keys are dropped first. */
const MAX_KEYS = 100_000;

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limits: LoginLimits) {}

  private recent(key: string, now: number): number[] {
    const windowStart = now - this.limits.windowSeconds * 1000;
    const times = (this.failures.get(key) ?? []).filter((time) => time > windowStart);
    if (times.length === 0) this.failures.delete(key);
    else this.failures.set(key, times);
    return times;
  }

  /** Seconds until a login for this user from this address may be tried again; 0 when it may be tried now. */
  retryAfter(user: string, address: string, now = Date.now()): number {
    const checks: [string, number][] = [
      [`user:${user.toLowerCase()}`, this.limits.maxFailuresPerUser],
      [`address:${address}`, this.limits.maxFailuresPerAddress],
    ];
    let wait = 0;
    for (const [key, max] of checks) {
      const times = this.recent(key, now);
      if (times.length < max) continue;
      const freeAt = times[times.length - max] + this.limits.windowSeconds * 1000;
      wait = Math.max(wait, Math.ceil((freeAt - now) / 1000));
    }
    return wait;
  }

  recordFailure(user: string, address: string, now = Date.now()): void {
    for (const key of [`user:${user.toLowerCase()}`, `address:${address}`]) {
      const times = this.recent(key, now);
      times.push(now);
      this.failures.delete(key);
      this.failures.set(key, times.slice(-Math.max(this.limits.maxFailuresPerUser, this.limits.maxFailuresPerAddress)));
    }
    while (this.failures.size > MAX_KEYS) this.failures.delete(this.failures.keys().next().value as string);
  }

  /** Forgets the user's failures after a successful login; the address keeps its count. */
  recordSuccess(user: string): void {
    this.failures.delete(`user:${user.toLowerCase()}`);
  }
}

/**
 * Runs the login checks of one request: the failure limits, local users, then
 * the directory when enabled. Credentials that server/app.ts finds in its
 * login cache are accepted before this guard runs, and so are directory
 * credentials in the directory's login cache, so the limits apply to
 * password checks only.
 */
export class LoginGuard {
  private readonly limiter: LoginLimiter;
  private readonly directory?: DirectoryLogin;
  private dummyHash?: Promise<string>;

  private unknownUserHash(): Promise<string> {
    this.dummyHash ??= hashPassword(randomBytes(16).toString('base64'));
    return this.dummyHash;
  }

  constructor(
    storage: Storage,
    private readonly logger: Logger,
    config: Config | undefined,
  ) {
    this.limiter = new LoginLimiter(config?.auth.rateLimit ?? DEFAULT_AUTH_CONFIG.rateLimit);
    if (config?.auth.ldap.enabled) this.directory = new DirectoryLogin(storage, config, logger);
  }

  /**
   * Returns the authenticated user, or undefined for wrong credentials.
   * `local` returns the local user, false for a local user's wrong password,
   * or undefined when no local user with a password has this name, which
   * hands the check to the directory. Raises 429 while the limits refuse
   * attempts and 503 when the directory cannot be reached.
   */
  async authenticate(ctx: Koa.Context, name: string, password: string, local: () => Promise<User | false | undefined>): Promise<User | undefined> {
    const address = ctx.ip;
    // Directory credentials checked recently pass without the limits, as cached local ones do in server/app.ts.
    const cached = await this.directory?.cachedUser(name, password);
    if (cached) return cached;
    const wait = this.limiter.retryAfter(name, address);
    if (wait > 0) {
      ctx.set('Retry-After', String(wait));
      throw new DavError(429, undefined, `too many failed logins for this user or from this address; try again in ${wait} seconds`);
    }
    let user = await local();
    if (user === undefined && !this.directory) {
      // Hash anyway, so an unknown user name takes as long as a wrong password and does not reveal which names exist.
      await verifyPassword(password, await this.unknownUserHash());
    }
    if (user === undefined && this.directory) {
      try {
        user = await this.directory.authenticate(name, password);
      } catch (error) {
        if (!(error instanceof DirectoryError)) throw error;
        this.logger.error({ err: error, ...error.logFields() }, 'directory login failed: the directory server returned an error or did not respond');
        ctx.set('Retry-After', '30');
        throw new DavError(503, undefined, 'the directory server could not check the password; try again later');
      }
    }
    if (!user) {
      this.limiter.recordFailure(name, address);
      if (this.limiter.retryAfter(name, address) > 0) {
        this.logger.warn({ user: name, address }, 'too many failed logins; refusing further attempts for a while');
      }
      return undefined;
    }
    this.limiter.recordSuccess(name);
    return user;
  }
}
