import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Client, Entry } from 'ldapts';
import type { LdapConfig } from './config';
import { DirectoryError, toDirectoryError } from './errors';

/** Reads the service account's password from the configuration or its password file. */
export function bindPassword(config: LdapConfig): string {
  if (config.bindPasswordFile === '') return config.bindPassword;
  try {
    return readFileSync(config.bindPasswordFile, 'utf8').split(/\r?\n/)[0] ?? '';
  } catch (error) {
    throw new DirectoryError(`cannot read ldap.bindPasswordFile ${config.bindPasswordFile}: ${(error as Error).message}`);
  }
}

function tlsOptions(config: LdapConfig): ConnectionOptions {
  const options: ConnectionOptions = { rejectUnauthorized: config.tls.rejectUnauthorized };
  if (config.tls.caFile !== '') {
    try {
      options.ca = [readFileSync(config.tls.caFile)];
    } catch (error) {
      throw new DirectoryError(`cannot read ldap.tls.caFile ${config.tls.caFile}: ${(error as Error).message}`);
    }
  }
  return options;
}

/** Opens a connection, upgraded with StartTLS when configured, without binding. */
export async function connect(config: LdapConfig): Promise<Client> {
  const secure = /^ldaps:/i.test(config.url);
  const tls = secure || config.startTLS ? tlsOptions(config) : undefined;
  const client = new Client({
    url: config.url,
    timeout: config.timeoutSeconds * 1000,
    connectTimeout: config.connectTimeoutSeconds * 1000,
    tlsOptions: secure ? tls : undefined,
  });
  if (config.startTLS) {
    try {
      await client.startTLS({ ...tls, servername: new URL(config.url).hostname });
    } catch (error) {
      await close(client);
      throw toDirectoryError(error, 'StartTLS');
    }
  }
  return client;
}

/** Opens a connection and binds as the configured service account (anonymously when bindDN is empty). */
export async function connectAsService(config: LdapConfig): Promise<Client> {
  const client = await connect(config);
  if (config.bindDN === '') return client;
  try {
    await client.bind(config.bindDN, bindPassword(config));
  } catch (error) {
    await close(client);
    throw toDirectoryError(error, `bind as ${config.bindDN}`);
  }
  return client;
}

/** Unbinds and closes the socket; errors on an already broken connection are ignored. */
export async function close(client: Client): Promise<void> {
  try {
    await client.unbind();
  } catch {
    // The connection is gone already, which is what closing wants.
  }
}

export interface SearchRequest {
  baseDN: string;
  filter: string;
  scope: 'base' | 'one' | 'sub';
  attributes: string[];
  /** Attributes returned as Buffers, such as jpegPhoto. */
  binaryAttributes: string[];
  /** Entries per page; 0 sends one unpaged request. */
  pageSize: number;
}

/**
 * Runs a search and yields its entries page by page, following the paged
 * results cookie (RFC 2696) until the server returns an empty one. Every
 * result other than success raises a DirectoryError, including
 * sizeLimitExceeded, so a capped result is never taken for the whole set.
 * Continuation references raise too, because entries behind a referral
 * would be missing.
 */
export async function* searchPages(client: Client, request: SearchRequest): AsyncGenerator<Entry[]> {
  const options = {
    scope: request.scope,
    filter: request.filter,
    attributes: request.attributes,
    explicitBufferAttributes: request.binaryAttributes,
  };
  try {
    if (request.pageSize === 0) {
      const result = await client.search(request.baseDN, options);
      checkReferences(result.searchReferences);
      yield result.searchEntries;
      return;
    }
    // NOTE: ldapts 8 stops paging after a page without entries even when the
    // server sent a cookie. OpenLDAP sends no such page, but a server that does would be read short.
    for await (const page of client.searchPaginated(request.baseDN, { ...options, paged: { pageSize: request.pageSize } })) {
      checkReferences(page.searchReferences);
      yield page.searchEntries;
    }
  } catch (error) {
    throw toDirectoryError(error, `search under ${request.baseDN}`);
  }
}

function checkReferences(references: string[]): void {
  if (references.length > 0) {
    throw new DirectoryError(
      `the search returned ${references.length} continuation reference(s) to other servers, so the result is partial; narrow ldap.baseDN to one server`,
      10,
    );
  }
}
