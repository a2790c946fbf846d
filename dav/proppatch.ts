import { readXmlBody } from './body';
import type { DavContext } from './context';
import { DavError } from './errors';
import { PropStat, responseXml, sendMultistatus } from './multistatus';
import { P, PROTECTED } from './props';
import { childrenNamed, clark, contentNodes, is, NS, serializeNodes, tag, XmlElement } from './xml';

/** Maximum length of a display name or description, in characters. */
const MAX_TEXT = 4096;
/** Most dead properties one address book may carry. */
const MAX_DEAD_PROPERTIES = 64;

/**
 * Serializes a dead property's value back to XML: its child elements with
 * their attributes, and text, in document order (RFC 4918 section 4.4).
 * Each namespace is declared locally.
 */
export function serializeContent(element: XmlElement): string {
  // NOTE: only the content is stored, so attributes of the property element itself (such as xml:lang) are lost.
  return serializeNodes(contentNodes(element));
}

interface Operation {
  name: string;
  /** The new value, or null for a remove. */
  value: XmlElement | null;
}

function parseOperations(root: XmlElement | undefined): Operation[] {
  if (!root || !is(root, NS.DAV, 'propertyupdate')) {
    throw new DavError(400, undefined, 'the PROPPATCH body must be a DAV:propertyupdate element');
  }
  const operations: Operation[] = [];
  for (const instruction of root.children) {
    const isSet = is(instruction, NS.DAV, 'set');
    if (!isSet && !is(instruction, NS.DAV, 'remove')) continue;
    for (const prop of childrenNamed(instruction, NS.DAV, 'prop')) {
      for (const element of prop.children) {
        operations.push({ name: clark(element.ns, element.local), value: isSet ? element : null });
      }
    }
  }
  return operations;
}

/**
 * PROPPATCH on an address book. Every instruction is checked first; if any
 * fails, none is applied, and the others report 424 Failed Dependency
 * (RFC 4918 section 9.2).
 */
export async function handleProppatch(dc: DavContext): Promise<void> {
  const resource = dc.resource;
  const operations = parseOperations(await readXmlBody(dc.ctx, dc.limits.maxXmlBody));
  if (resource.kind !== 'book') {
    if (resource.kind === 'card' || resource.kind === 'new-book') {
      throw new DavError(403, undefined, 'properties can be changed on address books only');
    }
  }

  const failures = new Map<string, { status: number; error?: string }>();
  let displayName: string | undefined;
  let description: string | undefined;
  const dead = new Map<string, string | null>();
  const existingDead = resource.kind === 'book' ? await dc.storage.getBookProperties(resource.book.id) : new Map();

  for (const { name, value } of operations) {
    if (resource.kind !== 'book') {
      failures.set(name, { status: 403, error: tag(clark(NS.DAV, 'need-privileges')) });
    } else if (PROTECTED.has(name)) {
      failures.set(name, { status: 403, error: tag(clark(NS.DAV, 'cannot-modify-protected-property')) });
    } else if (name === P.displayname || name === P.addressbookDescription) {
      const text = value ? value.text.trim() : '';
      if (value && value.children.length > 0) failures.set(name, { status: 409 });
      else if (text.length > MAX_TEXT) failures.set(name, { status: 403 });
      else if (name === P.displayname) displayName = text;
      else description = text;
    } else {
      dead.set(name, value ? serializeContent(value) : null);
    }
  }
  const deadCount = new Set([...existingDead.keys(), ...[...dead].filter(([, v]) => v !== null).map(([k]) => k)]).size;
  if (deadCount > MAX_DEAD_PROPERTIES) {
    for (const name of dead.keys()) failures.set(name, { status: 403 });
  }

  const propstats: PropStat[] = [];
  if (failures.size > 0) {
    for (const { name } of operations) {
      const failure = failures.get(name) ?? { status: 424 };
      propstats.push({ status: failure.status, properties: [[name, '']], error: failure.error });
    }
  } else {
    if (resource.kind === 'book') {
      await dc.storage.updateBook(resource.book.id, { displayName, description, properties: dead });
    }
    for (const { name } of operations) propstats.push({ status: 200, properties: [[name, '']] });
  }
  const body = responseXml(resource.href, propstats);
  sendMultistatus(dc.ctx, (async function* () {
    yield body;
  })());
}
