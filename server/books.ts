import type { Command } from 'commander';
import { SLUG } from '../dav/collections';
import type { CommandTools } from './groups';
import { UserError } from './users';
import type { Storage } from '../storage/types';

interface CommonOptions {
  config?: string;
  data?: string;
}

/** `cardinal book add|list|remove`: address books by owner and URL segment, without a client's MKCOL. */
export function addBookCommands(program: Command, tools: CommandTools): void {
  const book = program.command('book').description("manage users' address books");

  tools
    .withCommonOptions(book.command('add <owner> <slug>').description('create an address book OWNER/SLUG'))
    .option('--name <display-name>', 'display name (default: the slug)')
    .option('--description <text>', 'description shown by clients')
    .action(async (owner: string, slug: string, options: CommonOptions & { name?: string; description?: string }) => {
      if (!SLUG.test(slug)) {
        throw new UserError(`invalid address book name "${slug}": use letters, digits and . _ ~ @ + - (at most 100 characters)`);
      }
      await tools.withStorage(options, async (storage) => {
        const user = await storage.getUser(owner);
        if (!user) throw new UserError(`user ${owner} not found`);
        const created = await storage.createBook(user.id, slug, options.name ?? slug, options.description ?? '');
        if (!created) throw new UserError(`address book ${owner}/${slug} already exists`);
        console.log(`created address book ${owner}/${slug}`);
      });
    });

  tools
    .withCommonOptions(book.command('list <owner>').description('list the address books a user owns, with their card counts'))
    .action(async (owner: string, options: CommonOptions) => {
      await tools.withStorage(options, async (storage) => {
        const user = await storage.getUser(owner);
        if (!user) throw new UserError(`user ${owner} not found`);
        for (const entry of await storage.listBooks(user.id)) {
          console.log(`${owner}/${entry.slug}\t${await storage.countCards(entry.id)} cards\t${entry.displayName}`);
        }
      });
    });

  tools
    .withCommonOptions(book.command('remove <owner> <slug>').description('remove the address book OWNER/SLUG with all its cards'))
    .action(async (owner: string, slug: string, options: CommonOptions) => {
      await tools.withStorage(options, async (storage) => {
        await finishEarlierRemovals(storage);
        const user = await storage.getUser(owner);
        const entry = user && (await storage.getBook(user.id, slug));
        if (!entry) throw new UserError(`address book ${owner}/${slug} not found`);
        await storage.deleteBook(entry.id);
        console.log(`removed address book ${owner}/${slug}`);
      });
    });
}

/**
 * Finishes the book removals that a stopped process (an interrupted `book remove`, say) left
 * half done, so that running the command again cleans up even when the book is already hidden.
 */
export async function finishEarlierRemovals(storage: Storage): Promise<void> {
  const finished = await storage.finishRemovals();
  if (finished > 0) console.log(`finished removing ${finished} address book(s) that an earlier run left half done`);
}
