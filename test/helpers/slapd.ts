/**
 * Starts a private OpenLDAP slapd for tests: its own slapd.conf, an mdb
 * database in a temporary folder loaded with slapadd, and a free port on
 * 127.0.0.1. It is stopped by its PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'ldapts';
import { findFreePort } from './server';

export const BASE_DN = 'dc=example,dc=com';
export const PEOPLE_DN = `ou=people,${BASE_DN}`;
export const ROOT_DN = `cn=admin,${BASE_DN}`;
export const ROOT_PASSWORD = 'root-secret';

/**
 * Service accounts with different limits. Each has a size limit of 500, as
 * OpenLDAP's default, and differs in how many entries a paged search may
 * return in total (size.prtotal).
 */
export const SERVICE = {
  /** Paged searches return everything; unpaged ones stop at 500. */
  sync: { dn: `cn=sync,ou=services,${BASE_DN}`, password: 'sync-secret' },
  /** Paged searches stop with sizeLimitExceeded after 1,000 entries. */
  capped: { dn: `cn=capped,ou=services,${BASE_DN}`, password: 'capped-secret' },
  /** Paged searches are turned off (size.prtotal=disabled). */
  nopaging: { dn: `cn=nopaging,ou=services,${BASE_DN}`, password: 'nopaging-secret' },
} as const;

const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';
const MODULE_PATH = '/usr/lib/ldap';
const SCHEMA_DIR = '/etc/ldap/schema';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

export interface Person {
  uid: string;
  cn: string;
  sn: string;
  givenName: string;
  mail: string;
  telephoneNumber: string;
  mobile?: string;
  title: string;
  ou: string;
  /** uid of the manager, whose entry must also exist. */
  manager?: string;
  jpegPhoto?: Buffer;
  password: string;
}

const GIVEN = ['Anna', 'Jürgen', 'Zoë', 'Søren', 'Ángel', 'Łukasz', 'Björn', 'Renée', 'José', 'Mei', 'Noah', 'Fatima', 'Olivia', 'Émile', 'Ingrid', 'Kenji'];
const FAMILY = ['Müller', 'Østergaard', 'Nováková', 'García', 'Ó Briain', 'Smith', 'Kowalski', 'Lefèvre', 'Rossi', 'Yılmaz', 'Nakamura', 'Andersson', 'Dvořák', 'Papadopoulos', 'Silva', 'Brown'];
const UNITS = ['Engineering', 'Sales', 'Finance', 'Support', 'Legal', 'Research & Development'];
const TITLES = ['Engineer', 'Manager', 'Analyst', 'Designer', 'Consultant'];

/** A minimal JPEG (start and end markers around a marker segment); directories store such bytes in jpegPhoto. */
export const SMALL_JPEG = Buffer.from('ffd8ffe000104a46494600010100000100010000ffd9', 'hex');

/** Generates `count` invented people, the same ones on every call; uid `p00001`… and password `pw-<uid>`. */
export function generatePeople(count: number): Person[] {
  const people: Person[] = [];
  for (let i = 1; i <= count; i++) {
    const uid = `p${String(i).padStart(5, '0')}`;
    const givenName = GIVEN[i % GIVEN.length];
    const sn = `${FAMILY[Math.floor(i / GIVEN.length) % FAMILY.length]}${i > GIVEN.length * FAMILY.length ? ` ${Math.floor(i / (GIVEN.length * FAMILY.length))}` : ''}`;
    people.push({
      uid,
      cn: `${givenName} ${sn}`,
      sn,
      givenName,
      mail: `${uid}@example.com`,
      telephoneNumber: `+1 555 01${String(i).padStart(5, '0')}`,
      mobile: i % 3 === 0 ? `+1 555 09${String(i).padStart(5, '0')}` : undefined,
      title: TITLES[i % TITLES.length],
      ou: UNITS[i % UNITS.length],
      manager: i > 10 ? `p${String(Math.ceil(i / 10)).padStart(5, '0')}` : undefined,
      jpegPhoto: i % 500 === 0 ? SMALL_JPEG : undefined,
      password: `pw-${uid}`,
    });
  }
  return people;
}

/** Formats one LDIF attribute line, in base64 for values that are not plain printable ASCII (RFC 2849). */
function ldifLine(name: string, value: string | Buffer): string {
  if (typeof value === 'string' && /^[\x21-\x39\x3b\x3d-\x7e][\x20-\x7e]*$/.test(value) && !value.endsWith(' ')) {
    return `${name}: ${value}`;
  }
  return `${name}:: ${Buffer.from(value).toString('base64')}`;
}

export function personDN(uid: string): string {
  return `uid=${uid},${PEOPLE_DN}`;
}

/** Returns the text attributes of a person in the form ldapts `add` takes, without jpegPhoto. */
export function personAttributes(person: Person): Record<string, string | string[]> {
  const attributes: Record<string, string | string[]> = {
    objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
    uid: person.uid,
    cn: person.cn,
    sn: person.sn,
    givenName: person.givenName,
    mail: person.mail,
    telephoneNumber: person.telephoneNumber,
    title: person.title,
    o: 'Example Corp',
    ou: person.ou,
    userPassword: person.password,
  };
  if (person.mobile) attributes.mobile = person.mobile;
  if (person.manager) attributes.manager = personDN(person.manager);
  return attributes;
}

function entryLdif(dn: string, attributes: Record<string, string | string[] | Buffer>): string {
  const lines = [ldifLine('dn', dn)];
  for (const [name, value] of Object.entries(attributes)) {
    for (const single of Array.isArray(value) ? value : [value]) lines.push(ldifLine(name, single));
  }
  return lines.join('\n') + '\n\n';
}

function directoryLdif(people: Person[]): string {
  let ldif = entryLdif(BASE_DN, { objectClass: ['top', 'dcObject', 'organization'], dc: 'example', o: 'Example Corp' });
  ldif += entryLdif(PEOPLE_DN, { objectClass: ['top', 'organizationalUnit'], ou: 'people' });
  ldif += entryLdif(`ou=services,${BASE_DN}`, { objectClass: ['top', 'organizationalUnit'], ou: 'services' });
  for (const [name, account] of Object.entries(SERVICE)) {
    ldif += entryLdif(account.dn, { objectClass: ['top', 'organizationalRole', 'simpleSecurityObject'], cn: name, userPassword: account.password });
  }
  for (const person of people) {
    const attributes: Record<string, string | string[] | Buffer> = personAttributes(person);
    if (person.jpegPhoto) attributes.jpegPhoto = person.jpegPhoto;
    ldif += entryLdif(personDN(person.uid), attributes);
  }
  return ldif;
}

function slapdConf(dir: string): string {
  return [
    `include ${SCHEMA_DIR}/core.schema`,
    `include ${SCHEMA_DIR}/cosine.schema`,
    `include ${SCHEMA_DIR}/inetorgperson.schema`,
    `modulepath ${MODULE_PATH}`,
    'moduleload back_mdb',
    `pidfile ${path.join(dir, 'slapd.pid')}`,
    `argsfile ${path.join(dir, 'slapd.args')}`,
    'sizelimit 500',
    'database mdb',
    'maxsize 268435456',
    `suffix "${BASE_DN}"`,
    `rootdn "${ROOT_DN}"`,
    `rootpw ${ROOT_PASSWORD}`,
    `directory ${path.join(dir, 'db')}`,
    'index objectClass eq',
    'index uid,mail eq',
    'index entryUUID eq',
    // OpenLDAP applies the size limit to paged searches as well unless size.prtotal allows more.
    `limits dn.exact="${SERVICE.sync.dn}" size.soft=500 size.hard=500 size.prtotal=unlimited`,
    `limits dn.exact="${SERVICE.capped.dn}" size.soft=500 size.hard=500 size.prtotal=1000`,
    `limits dn.exact="${SERVICE.nopaging.dn}" size.soft=500 size.hard=500 size.prtotal=disabled`,
    'access to attrs=userPassword by anonymous auth by * none',
    'access to * by users read by * none',
    '',
  ].join('\n');
}

export interface Slapd {
  url: string;
  port: number;
  /** PID of the running slapd, or undefined while it is stopped. */
  pid(): number | undefined;
  /** Starts slapd again on the same port and database after `stop`. */
  start(): Promise<void>;
  /** Stops slapd by its PID and waits for it to exit; the database stays. */
  stop(): Promise<void>;
  /** Stops slapd and deletes its folder. */
  destroy(): Promise<void>;
  /** A client bound as the root DN, for changing the directory in a test. */
  admin(): Promise<Client>;
  /** slapd's own output so far, for failure messages. */
  output(): string;
}

/** Creates a directory of `people` (plus service accounts) and starts slapd on it. */
export async function startSlapd(people: Person[]): Promise<Slapd> {
  if (!existsSync(SLAPD) || !existsSync(SLAPADD)) {
    throw new Error(`OpenLDAP is not installed (${SLAPD}, ${SLAPADD}); install the Debian packages slapd and ldap-utils`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cardinal-slapd-'));
  mkdirSync(path.join(dir, 'db'));
  const conf = path.join(dir, 'slapd.conf');
  writeFileSync(conf, slapdConf(dir));
  const ldif = path.join(dir, 'directory.ldif');
  writeFileSync(ldif, directoryLdif(people));
  const loaded = spawnSync(SLAPADD, ['-q', '-f', conf, '-l', ldif], { encoding: 'utf8' });
  if (loaded.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`slapadd failed (exit ${loaded.status}):\n${loaded.stdout}\n${loaded.stderr}`);
  }

  const port = await findFreePort();
  const url = `ldap://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';

  const start = async () => {
    // -d keeps slapd in the foreground, so the child's PID is slapd's own.
    const slapd = spawn(SLAPD, ['-d', '0', '-h', `${url}/`, '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    slapd.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    slapd.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child = slapd;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (slapd.exitCode !== null) throw new Error(`slapd exited with ${slapd.exitCode}:\n${output}`);
      const probe = new Client({ url, connectTimeout: 500, timeout: 1000 });
      try {
        await probe.bind(ROOT_DN, ROOT_PASSWORD);
        await probe.unbind();
        return;
      } catch {
        await probe.unbind().catch(() => undefined);
        if (Date.now() > deadline) throw new Error(`slapd did not accept a bind on ${url} within ${START_TIMEOUT_MS} ms:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };

  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.pid === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const pid = running.pid;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (running.exitCode === null && running.signalCode === null) process.kill(pid, 'SIGKILL');
    }, STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (error) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    url,
    port,
    pid: () => child?.pid,
    start,
    stop,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    admin: async () => {
      const client = new Client({ url, timeout: 10_000 });
      await client.bind(ROOT_DN, ROOT_PASSWORD);
      return client;
    },
    output: () => output,
  };
}
