import { readXmlBody } from './body';
import type { DavContext } from './context';
import { DavError } from './errors';
import { P } from './props';
import { child, childrenNamed, clark, is, NS } from './xml';

/** Address book URL segments: letters, digits and a few punctuation marks that need no escaping. */
export const SLUG = /^[A-Za-z0-9][A-Za-z0-9._~@+-]{0,99}$/;

/**
 * MKCOL and extended MKCOL (RFC 5689) below the user's address book home.
 * Only address books can be created. A plain MKCOL with no body also creates
 * one, because some clients create the collection first and set its type later.
 */
export async function handleMkcol(dc: DavContext): Promise<void> {
  const resource = dc.resource;
  if (resource.kind !== 'new-book') {
    if (resource.kind === 'book' || (resource.kind === 'card' && resource.exists)) {
      throw new DavError(405, undefined, 'a resource already exists at this URL');
    }
    throw new DavError(403, undefined, 'collections can be created in the address book home only');
  }
  if (!SLUG.test(resource.slug)) {
    throw new DavError(403, undefined, 'address book names use letters, digits and . _ ~ @ + - (at most 100 characters)');
  }
  const root = await readXmlBody(dc.ctx, dc.limits.maxXmlBody);
  let displayName = resource.slug;
  let description = '';
  if (root) {
    if (!is(root, NS.DAV, 'mkcol')) throw new DavError(415, undefined, 'the MKCOL body must be a DAV:mkcol element');
    for (const set of childrenNamed(root, NS.DAV, 'set')) {
      for (const prop of childrenNamed(set, NS.DAV, 'prop')) {
        for (const element of prop.children) {
          const name = clark(element.ns, element.local);
          if (name === P.resourcetype) {
            const collection = child(element, NS.DAV, 'collection');
            const addressbook = child(element, NS.CARDDAV, 'addressbook');
            if (!collection || !addressbook || element.children.length !== 2) {
              throw new DavError(403, clark(NS.DAV, 'valid-resourcetype'), 'only address books (DAV:collection with CARDDAV:addressbook) can be created');
            }
          } else if (name === P.displayname) displayName = element.text.trim() || displayName;
          else if (name === P.addressbookDescription) description = element.text.trim();
        }
      }
    }
  }
  const book = await dc.storage.createBook(resource.owner.id, resource.slug, displayName, description);
  if (!book) {
    // RFC 4918 section 9.3.1: 409 when a parent collection is missing, here the home of a user removed meanwhile.
    if (!(await dc.storage.getUserById(resource.owner.id))) throw new DavError(409, undefined, 'the owner of this address book home was removed');
    throw new DavError(405, undefined, 'a resource already exists at this URL');
  }
  dc.log.info({ book: book.id }, 'address book created');
  dc.ctx.set('Location', resource.href);
  dc.ctx.status = 201;
}
