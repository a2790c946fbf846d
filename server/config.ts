import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AuthConfig, DEFAULT_AUTH_CONFIG, DEFAULT_LDAP_CONFIG, LdapConfig, ldapConfigProblem } from '../ldap/config';

export interface Config {
  host: string;
  port: number;
  /** Folder for the SQLite database; created when missing. */
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Trust X-Forwarded-For and X-Forwarded-Proto from a reverse proxy in front of the server. */
  trustProxy: boolean;
  /** PEM files; both set serves HTTPS, both empty serves HTTP. */
  tls: { cert: string; key: string };
  limits: {
    maxResourceSize: number;
    maxXmlBody: number;
  };
  /** HTTP connection timeouts, in seconds (Node's headersTimeout, requestTimeout and keepAliveTimeout). */
  timeouts: { headersSeconds: number; requestSeconds: number; keepAliveSeconds: number };
  storage: { synchronous: 'NORMAL' | 'FULL' };
  defaultBook: { slug: string; displayName: string };
  /** The company directory mirrored as a shared read-only address book (see ldap/config.ts). */
  ldap: LdapConfig;
  auth: AuthConfig;
}

export const DEFAULT_CONFIG: Config = {
  host: '127.0.0.1',
  port: 8843,
  dataDir: 'data',
  logLevel: 'info',
  trustProxy: false,
  tls: { cert: '', key: '' },
  limits: {
    maxResourceSize: 1024 * 1024,
    maxXmlBody: 64 * 1024 * 1024,
  },
  timeouts: { headersSeconds: 60, requestSeconds: 300, keepAliveSeconds: 30 },
  storage: { synchronous: 'NORMAL' },
  defaultBook: { slug: 'contacts', displayName: 'Contacts' },
  ldap: DEFAULT_LDAP_CONFIG,
  auth: DEFAULT_AUTH_CONFIG,
};

export class ConfigError extends Error {}

type Json = Record<string, unknown>;

/** Merges `override` into `base`; keys starting with "//" are comments in config.example.json and are skipped. */
function merge(base: Json, override: Json, path: string): Json {
  const result: Json = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (key.startsWith('//')) continue;
    if (!(key in base)) throw new ConfigError(`unknown configuration key: ${path}${key}`);
    const current = base[key];
    if (current !== null && typeof current === 'object' && !Array.isArray(current)) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new ConfigError(`configuration key ${path}${key} must be an object`);
      }
      result[key] = merge(current as Json, value as Json, `${path}${key}.`);
    } else {
      result[key] = value;
    }
  }
  return result;
}

export interface ConfigOverrides {
  config?: string;
  host?: string;
  port?: string | number;
  data?: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function validate(config: Config): Config {
  if (!LOG_LEVELS.includes(config.logLevel)) {
    throw new ConfigError(`invalid logLevel: ${config.logLevel}; use one of ${LOG_LEVELS.join(', ')}`);
  }
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) {
    throw new ConfigError(`invalid port: ${config.port}; use a number from 0 to 65535`);
  }
  if (!Number.isInteger(config.limits.maxResourceSize) || config.limits.maxResourceSize < 1024) {
    throw new ConfigError('limits.maxResourceSize must be an integer of at least 1024 bytes');
  }
  if (!Number.isInteger(config.limits.maxXmlBody) || config.limits.maxXmlBody < 1024) {
    throw new ConfigError('limits.maxXmlBody must be an integer of at least 1024 bytes');
  }
  for (const [key, value] of Object.entries(config.timeouts)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new ConfigError(`timeouts.${key} must be a positive number of seconds`);
    }
  }
  // Node rejects a headers timeout longer than the request timeout.
  if (config.timeouts.headersSeconds > config.timeouts.requestSeconds) {
    throw new ConfigError('timeouts.headersSeconds must not be larger than timeouts.requestSeconds');
  }
  if (config.storage.synchronous !== 'NORMAL' && config.storage.synchronous !== 'FULL') {
    throw new ConfigError('storage.synchronous must be "NORMAL" or "FULL"');
  }
  if (Boolean(config.tls.cert) !== Boolean(config.tls.key)) throw new ConfigError('tls.cert and tls.key must be set together');
  const ldapProblem = ldapConfigProblem(config.ldap, config.auth);
  if (ldapProblem) throw new ConfigError(ldapProblem);
  return config;
}

/** Loads the configuration: defaults, then the file, then command-line flags. Relative paths resolve against the working directory. */
export function loadConfig(overrides: ConfigOverrides = {}): Config {
  let config = DEFAULT_CONFIG as unknown as Json;
  if (overrides.config) {
    let text: string;
    try {
      text = readFileSync(overrides.config, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read the configuration file ${overrides.config}: ${(error as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`the configuration file ${overrides.config} is not valid JSON: ${(error as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(`the configuration file ${overrides.config} must hold a JSON object`);
    }
    config = merge(config, parsed as Json, '');
  }
  const result = { ...(config as unknown as Config) };
  if (overrides.host !== undefined) result.host = overrides.host;
  if (overrides.port !== undefined) {
    // Only a plain number is a port; Number() would turn '' into 0 and 'abc' into NaN.
    if (!/^\d+$/.test(String(overrides.port).trim())) throw new ConfigError(`invalid port: ${overrides.port}; use a number from 0 to 65535`);
    result.port = Number(overrides.port);
  }
  if (overrides.data !== undefined) result.dataDir = overrides.data;
  result.dataDir = resolve(result.dataDir);
  return validate(result);
}

export function databasePath(config: Config): string {
  return resolve(config.dataDir, 'cardinal.sqlite3');
}
