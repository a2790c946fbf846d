import type { Config } from './config';
import type { Storage, User } from '../storage/types';
import { UserExistsError } from '../storage/sqlite';
import { hashPassword } from './passwords';

/** User names: letters, digits and . _ @ + -, so they can appear in URLs and logs unescaped. */
export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;

export class UserError extends Error {}

/** Creates a user with a hashed password and the default address book. */
export async function addUser(storage: Storage, config: Config, name: string, password: string): Promise<User> {
  if (!USER_NAME.test(name)) {
    throw new UserError(`invalid user name "${name}": use 1 to 64 letters, digits or . _ @ + -, starting with a letter or digit`);
  }
  if (password.length === 0) throw new UserError('the password is empty');
  if (await storage.getUser(name)) throw new UserError(`user ${name} already exists`);
  let user: User;
  try {
    // Another process or request may create the same name while the password is hashed.
    // The user and their default book are written in one transaction, so a failure leaves neither.
    user = await storage.createUser(name, await hashPassword(password), config.defaultBook);
  } catch (error) {
    if (error instanceof UserExistsError) throw new UserError(error.message);
    throw error;
  }
  return user;
}
