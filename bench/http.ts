/**
 * A small WebDAV client on Node's http module with a keep-alive agent, so that timings
 * measure the server and not connection setup.
 */
import http from 'node:http';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Maximum time for the whole exchange, in milliseconds. */
  timeoutMs?: number;
}

export class HttpTimeoutError extends Error {}

/** A response whose status was not one the caller expected. */
export class HttpStatusError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const DEFAULT_TIMEOUT_MS = 600_000;

export class DavClient {
  readonly origin: string;
  private readonly agent: http.Agent;
  private readonly authorization?: string;

  /**
   * `origin` is `http://127.0.0.1:PORT`. `sockets` is the number of connections kept open,
   * which is also the number of requests that can run at once.
   */
  constructor(origin: string, credentials: { username: string; password: string } | undefined, sockets: number) {
    const url = new URL(origin);
    if (url.hostname !== '127.0.0.1') {
      throw new Error(`the benchmark only talks to servers on 127.0.0.1, not to ${url.hostname}`);
    }
    this.origin = url.origin;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
    if (credentials) {
      this.authorization = 'Basic ' + Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
    }
  }

  request(method: string, path: string, options: RequestOptions = {}): Promise<HttpResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.authorization) headers.Authorization = this.authorization;
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    if (body) headers['Content-Length'] = String(body.length);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

    return new Promise((resolve, reject) => {
      const request = http.request(`${this.origin}${path}`, { method, headers, agent: this.agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('error', reject);
        response.once('end', () => {
          clearTimeout(timer);
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) });
        });
      });
      const timer = setTimeout(() => {
        request.destroy(new HttpTimeoutError(`${method} ${path} timed out after ${timeoutMs / 1000} s`));
      }, timeoutMs);
      request.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.end(body);
    });
  }

  /** Sends a request and throws with the response body unless the status is one of `expected`. */
  async expect(method: string, path: string, expected: number[], options: RequestOptions = {}): Promise<HttpResponse> {
    const response = await this.request(method, path, options);
    if (!expected.includes(response.status)) {
      const text = response.body.toString('utf8').slice(0, 2000);
      const message = `${method} ${this.origin}${path} returned ${response.status}, expected ${expected.join(' or ')}:\n${text}`;
      throw new HttpStatusError(message, response.status);
    }
    return response;
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Runs `worker` on every item with at most `concurrency` calls at once, in item order.
 * After `deadline` (a `performance.now()` value) no new item starts. Returns how many
 * items completed. The first error stops the pool and is thrown once the running calls end.
 */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  worker: (item: T, index: number) => Promise<void>,
  deadline = Infinity,
): Promise<number> {
  let next = 0;
  let completed = 0;
  let failure: unknown;
  async function lane(): Promise<void> {
    while (failure === undefined && next < items.length && performance.now() < deadline) {
      const index = next++;
      try {
        await worker(items[index], index);
        completed++;
      } catch (error) {
        failure ??= error;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, () => lane()));
  if (failure !== undefined) throw failure;
  return completed;
}

/** Counts the DAV:response elements of a multistatus, whatever prefix the server uses. */
export function countResponses(body: Buffer | string): number {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  return (text.match(/<(?:[A-Za-z_][\w.-]*:)?response[\s>]/g) ?? []).length;
}

/** Reads DAV:sync-token from a sync-collection response. */
export function parseSyncToken(body: Buffer): string | undefined {
  const match = /<(?:[A-Za-z_][\w.-]*:)?sync-token(?:\s[^>]*)?>([^<]*)</.exec(body.toString('utf8'));
  if (!match) return undefined;
  return match[1]
    .trim()
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}
