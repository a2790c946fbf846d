/** Shared setup for the LDAP tests: configuration files, a quiet logger and sync-collection requests. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type request from 'supertest';
import { BASE_DN, SERVICE, type Slapd } from '../helpers/slapd';

export const logger = pino({ level: process.env.CARDINAL_TEST_LOG ?? 'silent' });

const configDirs: string[] = [];
// Jest gives each test file its own process object, whose exit event never fires, so the folders
// go when the test file that wrote them ends.
afterAll(() => {
  for (const dir of configDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Writes a configuration file pointing at `slapd`, with `ldap` and `auth` keys merged over test defaults. */
export function writeConfig(slapd: Slapd, overrides: { ldap?: Record<string, unknown>; auth?: Record<string, unknown>; extra?: Record<string, unknown> } = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cardinal-ldap-config-'));
  configDirs.push(dir);
  const file = path.join(dir, 'config.json');
  const config = {
    ...overrides.extra,
    ldap: {
      url: slapd.url,
      bindDN: SERVICE.sync.dn,
      bindPassword: SERVICE.sync.password,
      baseDN: BASE_DN,
      pageSize: 200,
      timeoutSeconds: 5,
      connectTimeoutSeconds: 2,
      syncIntervalSeconds: 0,
      ...overrides.ldap,
    },
    auth: overrides.auth ?? {},
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export interface SyncResponse {
  href: string;
  status?: number;
  etag?: string;
}

export interface SyncResult {
  token: string;
  responses: SyncResponse[];
}

/** Reads hrefs, response status and ETags from a multistatus body as this server writes it. */
export function parseSyncBody(body: string): SyncResult {
  const responses: SyncResponse[] = [];
  for (const match of body.matchAll(/<d:response>([\s\S]*?)<\/d:response>/g)) {
    const block = match[1];
    const href = /<d:href>([^<]*)<\/d:href>/.exec(block)?.[1] ?? '';
    const status = /^<d:href>[^<]*<\/d:href><d:status>HTTP\/1\.1 (\d{3})/.exec(block)?.[1];
    const etag = /<d:getetag>([^<]*)<\/d:getetag>/.exec(block)?.[1];
    responses.push({ href, status: status === undefined ? undefined : Number(status), etag: etag?.replace(/&quot;/g, '"') });
  }
  const token = /<d:sync-token>([^<]*)<\/d:sync-token>/.exec(body)?.[1] ?? '';
  return { token, responses };
}

/** Runs sync-collection on a book and returns the parsed response. Any status but 207 fails the test. */
export async function syncCollection(agent: request.Agent, url: string, auth: string, token = ''): Promise<SyncResult> {
  const body =
    '<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:">' +
    `<d:sync-token>${token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`;
  const response = await agent.report(url).set('Authorization', auth).set('Content-Type', 'application/xml').send(body);
  if (response.status !== 207) throw new Error(`sync-collection on ${url} returned ${response.status}:\n${response.text}`);
  return parseSyncBody(response.text);
}

export function basic(name: string, password: string): string {
  return 'Basic ' + Buffer.from(`${name}:${password}`).toString('base64');
}
