import type { Command } from 'commander';
import { SLUG } from '../dav/collections';
import type { AddressBook, Grantee, Group, Storage, User } from '../storage/types';
import type { Config, ConfigOverrides } from './config';
import { UserError } from './users';

/** Group names: the characters of user names except @, which marks a group in `share --with @NAME`. */
export const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** The helpers every subcommand module gets from server/cli.ts. */
export interface CommandTools {
  withCommonOptions(command: Command): Command;
  withStorage<T>(options: ConfigOverrides, work: (storage: Storage, config: Config) => Promise<T>): Promise<T>;
}

interface CommonOptions {
  config?: string;
  data?: string;
}

/** Looks up users by name; fails naming every missing one. */
export async function findUsers(storage: Storage, names: string[]): Promise<User[]> {
  const users: User[] = [];
  const missing: string[] = [];
  for (const name of names) {
    const user = await storage.getUser(name);
    if (user) users.push(user);
    else missing.push(name);
  }
  if (missing.length > 0) throw new UserError(`user${missing.length === 1 ? '' : 's'} not found: ${missing.join(', ')}`);
  return users;
}

async function findGroup(storage: Storage, name: string): Promise<Group> {
  const group = await storage.getGroup(name);
  if (!group) throw new UserError(`group ${name} not found`);
  return group;
}

/** Refuses membership changes to a group that a directory import maintains, because the next import would undo them. */
function requireLocal(group: Group): void {
  if (group.source !== 'local') {
    throw new UserError(`group ${group.name} is imported from ${group.source.toUpperCase()}; change its members in the directory`);
  }
}

export async function createGroup(storage: Storage, name: string, memberNames: string[]): Promise<{ group: Group; members: User[] }> {
  if (!GROUP_NAME.test(name)) {
    throw new UserError(`invalid group name "${name}": use 1 to 64 letters, digits or . _ + -, starting with a letter or digit`);
  }
  const members = await findUsers(storage, memberNames);
  const group = await storage.createGroup(name, 'local');
  if (!group) throw new UserError(`group ${name} already exists; add members with "cardinal group add-member ${name} USER..."`);
  await storage.addGroupMembers(group.id, members.map((member) => member.id));
  return { group, members };
}

export async function changeMembers(storage: Storage, name: string, memberNames: string[], change: 'add' | 'remove'): Promise<number> {
  const group = await findGroup(storage, name);
  requireLocal(group);
  const ids = (await findUsers(storage, memberNames)).map((user) => user.id);
  return change === 'add' ? storage.addGroupMembers(group.id, ids) : storage.removeGroupMembers(group.id, ids);
}

/** Finds a book named on the command line as OWNER/SLUG. */
export async function findBook(storage: Storage, reference: string): Promise<{ owner: User; book: AddressBook }> {
  const parts = reference.split('/');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new UserError(`invalid address book "${reference}": name it as OWNER/SLUG, for example alice/contacts`);
  }
  const [ownerName, slug] = parts;
  const owner = await storage.getUser(ownerName);
  if (!owner) throw new UserError(`user ${ownerName} not found`);
  const book = await storage.getBook(owner.id, slug);
  if (!book) throw new UserError(`address book ${reference} not found`);
  return { owner, book };
}

interface ResolvedGrantee {
  grantee: Grantee;
  /** `@sales` or `bob`, as the command line writes it. */
  label: string;
  /** The users whose homes the book appears in. */
  users: User[];
}

/** Reads `--with`: `@NAME` for a group, otherwise a user name. */
async function resolveGrantee(storage: Storage, spec: string): Promise<ResolvedGrantee> {
  if (spec.startsWith('@')) {
    const group = await findGroup(storage, spec.slice(1));
    return { grantee: { kind: 'group', id: group.id }, label: spec, users: await storage.listGroupMembers(group.id) };
  }
  const [user] = await findUsers(storage, [spec]);
  return { grantee: { kind: 'user', id: user.id }, label: spec, users: [user] };
}

function sameGrantee(a: Grantee, b: Grantee): boolean {
  if (a.kind === 'everyone' || b.kind === 'everyone') return a.kind === b.kind;
  return a.kind === b.kind && a.id === b.id;
}

/** URL segments already used in a user's home by their own books and by books shared with them, leaving out `bookId`. */
async function takenMounts(storage: Storage, user: User, bookId: number): Promise<Set<string>> {
  const taken = new Set((await storage.listBooks(user.id)).map((book) => book.slug));
  for (const visible of await storage.listVisibleBooks(user.id)) {
    if (visible.book.id !== bookId) taken.add(visible.mount);
  }
  return taken;
}

/**
 * Picks the URL segment a shared book gets in the grantees' homes: the
 * owner's slug when no grantee uses it yet, otherwise `SLUG-OWNER`. Fails
 * when both are taken, asking for `--mount`.
 */
export async function chooseMount(storage: Storage, owner: User, book: AddressBook, users: User[]): Promise<string> {
  const taken = new Set<string>();
  for (const user of users) for (const mount of await takenMounts(storage, user, book.id)) taken.add(mount);
  for (const candidate of [book.slug, `${book.slug}-${owner.name}`]) {
    if (!taken.has(candidate) && SLUG.test(candidate)) return candidate;
  }
  throw new UserError(`the grantees already use "${book.slug}" and "${book.slug}-${owner.name}" in their homes; choose a segment with --mount`);
}

export interface ShareOptions {
  access: 'read' | 'write';
  /** An explicit URL segment; chosen by `chooseMount` when undefined. */
  mount?: string;
}

/** Grants a book to a user or group and returns the segment it is mounted at. Sharing again changes the access and keeps the mount. */
export async function shareBook(storage: Storage, reference: string, granteeSpec: string, options: ShareOptions): Promise<string> {
  const { owner, book } = await findBook(storage, reference);
  const target = await resolveGrantee(storage, granteeSpec);
  if (target.grantee.kind === 'user' && target.grantee.id === owner.id) throw new UserError(`${owner.name} owns ${reference} already`);
  const existing = (await storage.listGrants(book.id)).find((grant) => sameGrantee(grant.grantee, target.grantee));
  // The owner may be a member of the group, but reaches the book under its own slug.
  const grantees = target.users.filter((user) => user.id !== owner.id);
  let mount = options.mount ?? existing?.mount;
  if (mount === undefined) mount = await chooseMount(storage, owner, book, grantees);
  else if (!SLUG.test(mount)) throw new UserError(`invalid mount "${mount}": use letters, digits and . _ ~ @ + - (at most 100 characters)`);
  else if (options.mount !== undefined) {
    for (const user of grantees) {
      if ((await takenMounts(storage, user, book.id)).has(mount)) throw new UserError(`${user.name} already has an address book at "${mount}"`);
    }
  }
  await storage.grant(book.id, target.grantee, options.access, mount);
  return mount;
}

export async function unshareBook(storage: Storage, reference: string, granteeSpec: string): Promise<void> {
  const { book } = await findBook(storage, reference);
  const target = await resolveGrantee(storage, granteeSpec);
  if (!(await storage.revoke(book.id, target.grantee))) throw new UserError(`${reference} is not shared with ${target.label}`);
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

export function addGroupCommands(program: Command, tools: CommandTools): void {
  const { withCommonOptions, withStorage } = tools;
  const group = program.command('group').description('manage groups of users, to share address books with');

  withCommonOptions(group.command('add <name> [users...]').description('create a group, with the listed users as members'))
    .action(async (name: string, users: string[], options: CommonOptions) => {
      await withStorage(options, async (storage) => {
        const { members } = await createGroup(storage, name, users);
        const names = members.map((member) => member.name).join(', ');
        console.log(`created group ${name} with ${plural(members.length, 'member')}${names ? `: ${names}` : ''}`);
      });
    });

  withCommonOptions(group.command('remove <name>').description('remove a group and every share made to it'))
    .action(async (name: string, options: CommonOptions) => {
      await withStorage(options, async (storage) => {
        if (!(await storage.removeGroup(name))) throw new UserError(`group ${name} not found`);
        console.log(`removed group ${name}`);
      });
    });

  withCommonOptions(group.command('list').description('list groups with their source (local or ldap) and members'))
    .action(async (options: CommonOptions) => {
      await withStorage(options, async (storage) => {
        for (const entry of await storage.listGroups()) {
          const members = await storage.listGroupMembers(entry.id);
          console.log(`${entry.name}\t${entry.source}\t${members.map((member) => member.name).join(', ')}`);
        }
      });
    });

  withCommonOptions(group.command('add-member <name> <users...>').description('add users to a local group'))
    .action(async (name: string, users: string[], options: CommonOptions) => {
      await withStorage(options, async (storage) => {
        const added = await changeMembers(storage, name, users, 'add');
        console.log(`added ${plural(added, 'member')} to group ${name}`);
      });
    });

  withCommonOptions(group.command('remove-member <name> <users...>').description('remove users from a local group'))
    .action(async (name: string, users: string[], options: CommonOptions) => {
      await withStorage(options, async (storage) => {
        const removed = await changeMembers(storage, name, users, 'remove');
        console.log(`removed ${plural(removed, 'member')} from group ${name}`);
      });
    });
}

export function addShareCommands(program: Command, tools: CommandTools): void {
  const { withCommonOptions, withStorage } = tools;

  withCommonOptions(
    program
      .command('share <book>')
      .description('share the address book OWNER/SLUG with a user or @GROUP; without --with, list its shares'),
  )
    .option('--with <grantee>', 'user name, or @NAME for a group')
    .option('--read', 'grant read-only access')
    .option('--write', 'grant access to read, add, change and delete cards (not to change the book settings)')
    .option('--mount <segment>', "URL segment in the grantees' homes (default: the slug, or SLUG-OWNER when that is taken)")
    .action(async (reference: string, options: CommonOptions & { with?: string; read?: boolean; write?: boolean; mount?: string }) => {
      await withStorage(options, async (storage) => {
        if (options.with === undefined) {
          if (options.read || options.write || options.mount) throw new UserError('--read, --write and --mount need --with USER or --with @GROUP');
          const { book } = await findBook(storage, reference);
          for (const grant of await storage.listGrants(book.id)) {
            let name = '*';
            if (grant.grantee.kind === 'group') name = `@${grant.granteeName}`;
            else if (grant.grantee.kind === 'user') name = grant.granteeName ?? '';
            console.log(`${name}\t${grant.access}\t${grant.mount}`);
          }
          return;
        }
        if (Boolean(options.read) === Boolean(options.write)) throw new UserError('pass exactly one of --read or --write');
        const access = options.write ? 'write' : 'read';
        const mount = await shareBook(storage, reference, options.with, { access, mount: options.mount });
        console.log(`shared ${reference} with ${options.with} (${access}) at "${mount}"`);
      });
    });

  withCommonOptions(program.command('unshare <book>').description('stop sharing the address book OWNER/SLUG with a user or @GROUP'))
    .requiredOption('--with <grantee>', 'user name, or @NAME for a group')
    .action(async (reference: string, options: CommonOptions & { with: string }) => {
      await withStorage(options, async (storage) => {
        await unshareBook(storage, reference, options.with);
        console.log(`stopped sharing ${reference} with ${options.with}`);
      });
    });
}
