import { createInterface } from 'node:readline';

export class PasswordError extends Error {
  override name = 'PasswordError';
}

function readStdinLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => {
      data += chunk;
    });
    process.stdin.on('end', () => resolve(data.split(/\r?\n/)[0] ?? ''));
    process.stdin.on('error', reject);
  });
}

/**
 * Asks on the terminal without echoing what is typed. readline writes the
 * prompt and then each typed character through `_writeToOutput`. Once the
 * prompt is out, that function writes the prompt alone, so a redraw (after a
 * backspace, say) shows the prompt again and never the password.
 */
function ask(prompt: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const output = rl as unknown as { _writeToOutput: (text: string) => void };
    const write = output._writeToOutput.bind(rl);
    let typing = false;
    output._writeToOutput = (text: string) => {
      if (!typing) write(text);
      else if (text.startsWith(prompt)) write(prompt);
    };
    rl.question(prompt, (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
    typing = true;
  });
}

/** Reads a password from standard input (its first line) or from a terminal prompt. */
export async function readPassword(options: { prompt: string; confirm: boolean; fromStdin: boolean }): Promise<string> {
  if (options.fromStdin) {
    const password = await readStdinLine();
    if (password === '') throw new PasswordError('no password on standard input');
    return password;
  }
  if (!process.stdin.isTTY) throw new PasswordError('standard input is not a terminal; pass --password-stdin to read the password from it');
  const password = await ask(options.prompt);
  if (options.confirm && (await ask('Repeat the password: ')) !== password) throw new PasswordError('the passwords do not match');
  if (password === '') throw new PasswordError('the password is empty');
  return password;
}
