import { Command, CommanderError } from 'commander';
import { isBusy, openStorage } from '../storage';
import type { Storage } from '../storage/types';
import { Config, ConfigError, ConfigOverrides, databasePath, loadConfig } from './config';
import { addBookCommands, finishEarlierRemovals } from './books';
import { addCrmCommands } from './crm';
import { addGroupCommands, addShareCommands } from './groups';
import { addLdapCommands } from '../ldap/cli';
import { DIRECTORY_USER } from '../ldap/sync';
import { hashPassword } from './passwords';
import { readPassword } from './prompt';
import { startServer } from './serve';
import { addUser, UserError } from './users';

interface CommonOptions {
  config?: string;
  data?: string;
}

function withCommonOptions(command: Command): Command {
  return command
    .option('--config <file>', 'JSON configuration file (see config.example.json)')
    .option('--data <dir>', 'data folder holding the SQLite database (default: ./data)');
}

async function withStorage<T>(options: ConfigOverrides, work: (storage: Storage, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig(options);
  const storage = openStorage(config);
  try {
    return await work(storage, config);
  } finally {
    await storage.close();
  }
}

async function passwordFor(name: string, fromStdin: boolean): Promise<string> {
  return readPassword({ prompt: `Password for ${name}: `, confirm: true, fromStdin });
}

export function buildProgram(): Command {
  const program = new Command('cardinal').description('Cardinal CardDAV server').showHelpAfterError();

  withCommonOptions(program.command('serve').description('start the CardDAV server'))
    .option('--host <host>', 'address to listen on (default: 127.0.0.1)')
    .option('--port <port>', 'TCP port to listen on (default: 8843)')
    .action(async (options: CommonOptions & { host?: string; port?: string }) => {
      await startServer(loadConfig(options));
    });

  const user = program.command('user').description('manage local users');
  withCommonOptions(user.command('add <name>').description('create a user with a default address book'))
    .option('--password-stdin', 'read the password from standard input instead of a prompt')
    .action(async (name: string, options: CommonOptions & { passwordStdin?: boolean }) => {
      const password = await passwordFor(name, Boolean(options.passwordStdin));
      await withStorage(options, async (storage, config) => {
        await addUser(storage, config, name, password);
        console.log(`created user ${name} with address book "${config.defaultBook.slug}"`);
      });
    });
  withCommonOptions(user.command('list').description('list users')).action(async (options: CommonOptions) => {
    await withStorage(options, async (storage, config) => {
      const accounts = new Map((await storage.listDirectoryAccounts()).map((account) => [account.userId, account]));
      const users = await storage.listUsers();
      // An empty list often means another data folder than intended: ./data is relative to the current folder.
      if (users.length === 0) console.error(`no users in ${databasePath(config)}`);
      for (const entry of users) {
        const books = await storage.listBooks(entry.id);
        const account = accounts.get(entry.id);
        let kind = '';
        if (entry.name === DIRECTORY_USER) kind = '\tsystem user, owns the company directory';
        else if (account) kind = account.active ? '\tdirectory login' : '\tdirectory login, not in the directory';
        console.log(`${entry.name}\t${books.length} address book${books.length === 1 ? '' : 's'}${kind}`);
      }
    });
  });
  withCommonOptions(user.command('remove <name>').description('remove a user with all of their address books'))
    .action(async (name: string, options: CommonOptions) => {
      await withStorage(options, async (storage) => {
        await finishEarlierRemovals(storage);
        if (!(await storage.removeUser(name))) throw new UserError(`user ${name} not found`);
        console.log(`removed user ${name}`);
      });
    });
  withCommonOptions(user.command('passwd <name>').description("change a user's password"))
    .option('--password-stdin', 'read the password from standard input instead of a prompt')
    .action(async (name: string, options: CommonOptions & { passwordStdin?: boolean }) => {
      await withStorage(options, async (storage) => {
        if (!(await storage.getUser(name))) throw new UserError(`user ${name} not found`);
        if (name === DIRECTORY_USER) throw new UserError(`${name} is a system user and cannot log in`);
        const password = await passwordFor(name, Boolean(options.passwordStdin));
        if (password === '') throw new UserError('the password is empty');
        await storage.setPassword(name, await hashPassword(password));
        console.log(`changed the password of ${name}`);
      });
    });
  const tools = { withCommonOptions, withStorage };
  addBookCommands(program, tools);
  addGroupCommands(program, tools);
  addShareCommands(program, tools);
  addCrmCommands(program, tools);
  addLdapCommands(program, tools);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    if (error instanceof ConfigError || error instanceof UserError || (error as Error).name === 'PasswordError') {
      console.error(`cardinal: ${(error as Error).message}`);
      process.exitCode = 1;
      return;
    }
    if (isBusy(error)) {
      console.error('cardinal: the database stayed locked by another process (SQLITE_BUSY), so the command stopped; run it again');
      process.exitCode = 1;
      return;
    }
    console.error(error);
    process.exitCode = 1;
  }
}
