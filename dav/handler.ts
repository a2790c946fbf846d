import { handleMkcol } from './collections';
import type { DavContext } from './context';
import { DavError } from './errors';
import { handleDelete, handleGet, handlePut } from './objects';
import { handlePropfind } from './propfind';
import { handleProppatch } from './proppatch';
import { handleReport } from './report';
import type { Resource } from './resource';
import { clark, escapeXml, NS } from './xml';

export const DAV_HEADER = '1, 3, addressbook, extended-mkcol';

type Handler = (dc: DavContext) => Promise<void>;

const HANDLERS: Record<string, Handler> = {
  PROPFIND: handlePropfind,
  PROPPATCH: handleProppatch,
  REPORT: handleReport,
  MKCOL: handleMkcol,
  GET: handleGet,
  HEAD: handleGet,
  PUT: handlePut,
  DELETE: handleDelete,
};

/** Returns the methods a kind of resource supports, for the Allow header of OPTIONS and 405 responses. */
export function allowedMethods(resource: Resource | undefined): string[] {
  const base = ['OPTIONS', 'GET', 'HEAD', 'PROPFIND'];
  switch (resource?.kind) {
    case 'book':
      return [...base, 'PROPPATCH', 'REPORT', 'DELETE'];
    case 'new-book':
      return ['OPTIONS', 'MKCOL', 'PUT'];
    case 'card':
      return resource.exists ? [...base, 'PUT', 'DELETE'] : ['OPTIONS', 'PUT'];
    case 'home':
    case 'principal':
      return [...base, 'PROPPATCH', 'REPORT'];
    default:
      return [...base, 'REPORT'];
  }
}

export async function dispatch(dc: DavContext): Promise<void> {
  const method = dc.ctx.method;
  const resource = dc.resource;
  dc.ctx.set('DAV', DAV_HEADER);
  if (method === 'OPTIONS') {
    dc.ctx.set('Allow', allowedMethods(resource).join(', '));
    dc.ctx.status = 200;
    dc.ctx.body = '';
    return;
  }
  try {
    const handler = HANDLERS[method];
    if (!handler) throw new DavError(405, undefined, `${method} is not supported on this resource`);
    if (resource.kind === 'new-book' && method === 'PUT') {
      throw new DavError(409, undefined, 'cards are stored inside an address book; create the address book first');
    }
    // MKCOL works on unmapped URLs only (RFC 4918 section 9.3.1), so on any existing resource it fails
    // for everyone who can see it, grantees of a read-only book too, before privileges are checked.
    const mapped = resource.kind !== 'new-book' && !(resource.kind === 'card' && !resource.exists);
    if (mapped && method === 'MKCOL') throw new DavError(405, undefined, 'a resource already exists at this URL');
    checkAccess(resource, method);
    await handler(dc);
  } catch (error) {
    // Every 405 names the methods the resource does support (RFC 9110 section 15.5.6).
    if (error instanceof DavError && error.status === 405) dc.ctx.set('Allow', allowedMethods(resource).join(', '));
    throw error;
  }
}

const WRITE_METHODS = new Set(['PUT', 'DELETE', 'PROPPATCH', 'MKCOL']);

/** Writes to a book shared read-only, and changes to a shared book's own settings, need privileges the user lacks (RFC 3744 section 7.1.1). */
function checkAccess(resource: Resource, method: string): void {
  if (resource.kind !== 'book' && resource.kind !== 'card') return;
  if (!WRITE_METHODS.has(method)) return;
  const needsOwner = resource.kind === 'book';
  if (resource.access === 'owner' || (!needsOwner && resource.access === 'write')) return;
  let privilege = 'write-content';
  if (needsOwner) privilege = method === 'DELETE' ? 'unbind' : 'write-properties';
  throw new DavError(
    403,
    clark(NS.DAV, 'need-privileges'),
    `this address book is shared with you ${resource.access === 'read' ? 'read-only' : 'without the right to change its settings'}`,
    needPrivileges(resource.href, privilege),
  );
}

function needPrivileges(href: string, privilege: string): string {
  return `<d:resource><d:href>${escapeXml(href)}</d:href><d:privilege><d:${privilege}/></d:privilege></d:resource>`;
}
