/**
 * Starts a real Cardinal server as a child process for tests that need a listening socket
 * (end-to-end tests with external clients). Every server gets its own temporary data folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Repository root. Jest runs the TypeScript sources, so it is two levels above test/helpers/. */
export const repoRoot = path.resolve(__dirname, '..', '..');

const cliPath = path.join(repoRoot, 'bin', 'cardinal.js');

const STOP_TIMEOUT_MS = 5_000;
const CLI_TIMEOUT_MS = 20_000;

export interface StartServerOptions {
  /** Extra arguments appended to `cardinal serve`. */
  args?: string[];
  /** Extra environment variables for the server process. */
  env?: NodeJS.ProcessEnv;
  /** Maximum wait for the "listening" log line, in milliseconds. */
  startTimeoutMs?: number;
}

export interface RunningServer {
  /** Root URL with a trailing slash, for example `http://127.0.0.1:40123/`. */
  url: string;
  port: number;
  dataDir: string;
  pid: number;
  /** Server stdout and stderr so far, for failure messages. */
  output(): string;
  /** Creates a user through `cardinal user add --password-stdin`. */
  addUser(name: string, password: string): Promise<void>;
  /** Stops the server by its PID and deletes the data folder. */
  stop(): Promise<void>;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Returns a TCP port that was free on 127.0.0.1 when probed. Another process can still take
 * it before the server binds it, and startServer then fails with the server output.
 */
export async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      if (address === null || typeof address === 'string') {
        probe.close();
        reject(new Error(`unexpected address from a TCP listener: ${String(address)}`));
        return;
      }
      probe.close(() => resolve(address.port));
    });
  });
}

/** Runs `node bin/cardinal.js ARGS`, writes `input` to its stdin and collects its output. */
export async function runCli(args: string[], input = ''): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: CLI_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Starts `cardinal serve` on 127.0.0.1 and resolves once it logs that it is listening. */
export async function startServer(options: StartServerOptions = {}): Promise<RunningServer> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cardinal-test-'));
  const port = await findFreePort();
  const args = [
    cliPath,
    'serve',
    '--data',
    dataDir,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));

  try {
    await waitForListening(child, () => output, options.startTimeoutMs ?? 20_000);
  } catch (error) {
    await stopProcess(child);
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }

  const pid = child.pid;
  if (pid === undefined) {
    throw new Error('cardinal serve started without a PID');
  }

  // The logged URL is the truth: extra arguments may change the port or switch to HTTPS.
  const logged = /"msg":"listening"[^\n]*|[^\n]*"msg":"listening"/.exec(output)?.[0] ?? '';
  const url = /"url":"([^"]+)"/.exec(logged)?.[1] ?? `http://127.0.0.1:${port}/`;

  return {
    url,
    port: Number(new URL(url).port),
    dataDir,
    pid,
    output: () => output,
    addUser: async (name, password) => {
      const result = await runCli(['user', 'add', name, '--password-stdin', '--data', dataDir], `${password}\n`);
      if (result.code !== 0) {
        throw new Error(
          `cardinal user add ${name} failed (exit ${result.code}, signal ${result.signal})\n` +
            `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
        );
      }
    },
    stop: async () => {
      await stopProcess(child);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves on the pino line `{"msg":"listening",...}` and rejects on exit or timeout. */
function waitForListening(child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';

    const finish = (error?: Error): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      if (error) {
        reject(error);
      } else {
        resolve();
      }
    };

    const onData = (chunk: string): void => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      if (lines.some(isListeningLine)) {
        finish();
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      finish(new Error(`cardinal serve exited before listening (exit ${code}, signal ${signal})\n${output()}`));
    };
    const onError = (error: Error): void => {
      finish(new Error(`cardinal serve failed to start: ${error.message}`));
    };
    const timer = setTimeout(() => {
      finish(new Error(`cardinal serve timed out after ${timeoutMs} ms without logging "listening"\n${output()}`));
    }, timeoutMs);

    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

function isListeningLine(line: string): boolean {
  try {
    const record: unknown = JSON.parse(line);
    return typeof record === 'object' && record !== null && (record as { msg?: unknown }).msg === 'listening';
  } catch {
    return false;
  }
}

/** Sends SIGTERM to the child's PID, then SIGKILL if it has not exited after STOP_TIMEOUT_MS. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    return;
  }
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  signalProcess(pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) {
      signalProcess(pid, 'SIGKILL');
    }
  }, STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Sends a signal, ignoring ESRCH from a process that exited in the meantime. */
function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') {
      throw error;
    }
  }
}
