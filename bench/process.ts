/**
 * Child processes of the benchmark: servers started and stopped by PID, their memory and
 * CPU time read from /proc (Linux only), and client commands run to completion.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';

const STOP_TIMEOUT_MS = 10_000;

/** Clock ticks per second of the utime and stime fields in /proc/PID/stat. */
const CLOCK_TICKS = readClockTicks();

function readClockTicks(): number {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const value = Number(result.stdout?.trim());
  return Number.isInteger(value) && value > 0 ? value : 100;
}

/** Returns a TCP port that was free on 127.0.0.1 when probed. */
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

/** Peak resident set size (VmHWM) of a running process, in KiB. */
export function readPeakRssKib(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(match[1]);
}

/** User plus system CPU time that a running process has used, in seconds. */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name in brackets may contain spaces, so the fields are counted after its ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 (utime) and 15 (stime) of proc(5), counted from 1 with pid and comm as 1 and 2.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Server processes that have not exited yet, so that an interrupted run can stop them. */
const runningServers = new Set<ServerProcess>();

/** Sends SIGKILL to every server process still running, for a benchmark that is being interrupted. */
export function killRunningServers(): void {
  for (const server of runningServers) signal(server.pid, 'SIGKILL');
}

/** A server process whose output goes to a log file, so that no pipe can fill up and stall it. */
export class ServerProcess {
  readonly pid: number;
  private readonly child: ChildProcess;
  private exitCode: number | null = null;
  private exitSignal: NodeJS.Signals | null = null;
  private exited = false;

  constructor(
    readonly label: string,
    command: string,
    args: string[],
    readonly logFile: string,
    env: NodeJS.ProcessEnv,
    cwd?: string,
  ) {
    const log = openSync(logFile, 'a');
    try {
      this.child = spawn(command, args, { cwd, env, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    if (this.child.pid === undefined) throw new Error(`${label} did not start: ${command} ${args.join(' ')}`);
    this.pid = this.child.pid;
    runningServers.add(this);
    this.child.once('exit', (code, signal) => {
      runningServers.delete(this);
      this.exited = true;
      this.exitCode = code;
      this.exitSignal = signal;
    });
  }

  get running(): boolean {
    return !this.exited;
  }

  /** Returns the last `chars` characters of the log, for error messages. */
  logTail(chars = 3000): string {
    try {
      const text = readFileSync(this.logFile, 'utf8');
      return text.slice(-chars);
    } catch {
      return '';
    }
  }

  /** Waits until `probe` resolves true, polling every 100 ms, and fails if the process exits or time runs out. */
  async waitUntilReady(probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const started = performance.now();
    for (;;) {
      if (this.exited) {
        throw new Error(`${this.label} exited before it was ready (exit ${this.exitCode}, signal ${this.exitSignal}):\n${this.logTail()}`);
      }
      if (await probe().catch(() => false)) return;
      if (performance.now() - started > timeoutMs) {
        throw new Error(`${this.label} was not ready after ${timeoutMs / 1000} s:\n${this.logTail()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Sends SIGTERM to the PID, then SIGKILL if the process is still running after 10 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    signal(this.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (!this.exited) signal(this.pid, 'SIGKILL');
    }, STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to completion with its output collected; SIGKILL after `timeoutMs`. */
export function runCommand(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signalName) => {
      resolve({ code, signal: signalName, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
    // A child that exits without reading its input closes the pipe (EPIPE). Its exit status
    // reports whether it failed, so the write error itself is ignored.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** Throws with the command's output unless it exited with status 0. */
export function checkCommand(label: string, result: CommandResult): CommandResult {
  if (result.code !== 0) {
    throw new Error(
      `${label} failed (exit ${result.code}, signal ${result.signal})\nstdout:\n${result.stdout.slice(-3000)}\nstderr:\n${result.stderr.slice(-3000)}`,
    );
  }
  return result;
}
