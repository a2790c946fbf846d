import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * scrypt cost parameters (N, r, p) for new hashes. N = 2^14 with r = 8 needs
 * 16 MiB, and p = 5 runs five such passes one after the other, so a hash
 * does 5 × 2^14 block mixes: 62% of the work of the OWASP Password Storage
 * Cheat Sheet's minimum (N = 2^17, p = 1), in an eighth of its memory.
 * Stored hashes keep the parameters they were made with.
 */
const N = 16384;
const R = 8;
const P = 5;
const KEY_LENGTH = 32;
const MAX_MEMORY = 64 * 1024 * 1024;

/** The tail of the queue of hashes; each new one waits for it. */
let lastDerivation: Promise<unknown> = Promise.resolve();

/**
 * Derives one key at a time, because each scrypt run uses 16 MiB (32 MiB for
 * hashes made with N = 2^15). Eight clients whose cached logins expire
 * together would otherwise need eight times as much.
 */
function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  const run = () =>
    new Promise<Buffer>((resolve, reject) => {
      scrypt(password, salt, KEY_LENGTH, { N: n, r, p, maxmem: MAX_MEMORY }, (error, key) => (error ? reject(error) : resolve(key)));
    });
  const result = lastDerivation.then(run, run);
  lastDerivation = result.catch(() => undefined);
  return result;
}

/** Hashes a password as `scrypt$N$r$p$salt$hash` (salt and hash in base64). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return ['scrypt', N, R, P, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await derive(password, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * Remembers recent successful logins for a short time, because clients send
 * Basic credentials on every request and one scrypt hash costs tens of
 * milliseconds. The key binds the password to the stored hash, so a changed
 * password (on any node) misses the cache at once.
 */
export class LoginCache {
  private readonly entries = new Map<string, number>();
  private readonly secret = randomBytes(32);

  constructor(private readonly ttlMs = 60_000, private readonly maxEntries = 10_000) {}

  private key(name: string, password: string, stored: string): string {
    return createHmac('sha256', this.secret).update(name).update('\0').update(password).update('\0').update(stored).digest('base64');
  }

  /** Returns whether the credentials passed within the lifetime, and if so starts their lifetime again. */
  renew(name: string, password: string, stored: string): boolean {
    const key = this.key(name, password, stored);
    const expires = this.entries.get(key);
    if (expires === undefined) return false;
    const now = Date.now();
    if (expires < now) {
      this.entries.delete(key);
      return false;
    }
    this.entries.set(key, now + this.ttlMs);
    return true;
  }

  add(name: string, password: string, stored: string): void {
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(this.key(name, password, stored), Date.now() + this.ttlMs);
  }

  private readonly pending = new Map<string, Promise<boolean>>();

  /**
   * Verifies a password once for all requests that carry the same
   * credentials at the same time, and remembers a match.
   */
  verify(name: string, password: string, stored: string): Promise<boolean> {
    const key = this.key(name, password, stored);
    const running = this.pending.get(key);
    if (running) return running;
    const check = verifyPassword(password, stored)
      .then((matches) => {
        if (matches) this.add(name, password, stored);
        return matches;
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, check);
    return check;
  }
}
