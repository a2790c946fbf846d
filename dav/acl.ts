import type { BookGrant, Storage, User } from '../storage/types';
import { principalHref } from './resource';
import type { Resource } from './resource';
import { clark, escapeXml, NS, tag } from './xml';

type BookResource = Extract<Resource, { kind: 'book' }>;

const d = (local: string) => clark(NS.DAV, local);

/** Privileges each grant gives, as the aggregates RFC 3744 section 3 defines; a write grant lacks DAV:write-properties. */
const GRANTED: Record<'owner' | 'read' | 'write', string[]> = {
  owner: ['all'],
  read: ['read'],
  write: ['read', 'write-content', 'bind', 'unbind'],
};

/**
 * Principal URL of a group. Groups have no principal resource yet, so this is
 * a URN that names them without resolving.
 */
export function groupPrincipal(name: string): string {
  return `urn:x-cardinal:group:${encodeURIComponent(name)}`;
}

function ace(principal: string, privileges: string[]): string {
  const grant = privileges.map((name) => tag(d('privilege'), tag(d(name)))).join('');
  // Every ACE is protected, because the ACL method is not supported and grants change through the command line only.
  return tag(d('ace'), tag(d('principal'), principal) + tag(d('grant'), grant) + tag(d('protected')));
}

function principalOf(grant: BookGrant): string {
  if (grant.grantee.kind === 'everyone') return tag(d('all'));
  const href = grant.grantee.kind === 'user' ? principalHref({ name: grant.granteeName ?? '' } as User) : groupPrincipal(grant.granteeName ?? '');
  return tag(d('href'), escapeXml(href));
}

/**
 * Builds the DAV:acl value of a book (RFC 3744 section 5.5). For the owner it
 * lists every ACE. For a grantee it lists the owner's ACE and the ACEs that
 * apply to them (their own, their groups', everyone's), not other grantees'.
 */
export async function bookAcl(storage: Storage, viewer: User, resource: BookResource): Promise<string> {
  const grants = await storage.listGrants(resource.book.id);
  let visible = grants;
  if (resource.access !== 'owner') {
    const groups = new Set((await storage.listUserGroups(viewer.id)).map((group) => group.id));
    visible = grants.filter(({ grantee }) => {
      if (grantee.kind === 'everyone') return true;
      return grantee.kind === 'user' ? grantee.id === viewer.id : groups.has(grantee.id);
    });
  }
  const owner = ace(tag(d('href'), escapeXml(principalHref(resource.owner))), GRANTED.owner);
  return owner + visible.map((grant) => ace(principalOf(grant), GRANTED[grant.access])).join('');
}
