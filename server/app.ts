import { randomUUID } from 'node:crypto';
import http, { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Koa from 'koa';
import type { Logger } from 'pino';
import type { DavLimits } from '../dav/context';
import { DavError } from '../dav/errors';
import { DAV_HEADER, dispatch } from '../dav/handler';
import { DAV_ROOT, resolveResource } from '../dav/resource';
import { clark, errorBody, NS } from '../dav/xml';
import { isBusy } from '../storage';
import type { Storage, User } from '../storage/types';
import type { Config } from './config';
import { LoginGuard } from './login-guard';
import { LoginCache } from './passwords';

export interface AppOptions {
  storage: Storage;
  logger: Logger;
  limits: DavLimits;
  trustProxy?: boolean;
  /** Supplies the directory login and failed-login limits (auth and ldap sections); defaults apply without it. */
  config?: Config;
}

const REALM = 'Basic realm="Cardinal", charset="UTF-8"';

function parseBasic(header: string): { name: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function sendError(ctx: Koa.Context, error: DavError): void {
  ctx.status = error.status;
  ctx.type = 'application/xml; charset=utf-8';
  if (error.condition) {
    ctx.body = errorBody(error.condition, error.inner, error.description, error.extraConditions);
  } else {
    ctx.body = errorBody('{urn:x-cardinal:ns}error', '', error.description ?? ctx.message);
  }
}

/** Seconds a client is asked to wait before it repeats a request that found the database locked. */
const BUSY_RETRY_AFTER_SECONDS = 5;

/** Statuses for the errors of Node's HTTP parser that need one other than 400. */
const CLIENT_ERROR_STATUS: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};

/** Time a rejected connection gets to take its error reply before it is destroyed, in milliseconds. */
const CLIENT_ERROR_CLOSE_MS = 5000;

/**
 * Returns a listener for the HTTP server's `clientError` event, which Node
 * emits when its parser rejects a request before koa receives it. The listener
 * replies with a DAV:error body and 431 for oversized headers, 413 for
 * oversized chunk extensions, 408 for a request timeout or 400, then closes
 * the connection. A connection that was reset, or whose response has
 * started, is closed without a reply.
 */
export function clientErrorHandler(logger: Logger): (error: NodeJS.ErrnoException, socket: Duplex) => void {
  return (error, socket) => {
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const status = CLIENT_ERROR_STATUS[error.code ?? ''] ?? 400;
    logger.debug({ code: error.code, status, ip: (socket as Duplex & { remoteAddress?: string }).remoteAddress }, 'malformed HTTP request rejected');
    const description =
      status === 431 ? 'the request line and headers are larger than the server accepts' : `the HTTP request is malformed: ${error.message}`;
    const body = Buffer.from(errorBody('{urn:x-cardinal:ns}error', '', description));
    const head =
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      'Content-Type: application/xml; charset=utf-8\r\n' +
      `Content-Length: ${body.length}\r\n` +
      'Connection: close\r\n\r\n';
    socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
    // Closing while the client still sends (the rest of a 1 MB header, say) would make the kernel
    // reset the connection, which can drop the reply before the client reads it. So the rest of
    // the request is read and discarded until the client closes its side.
    socket.on('data', () => undefined);
    socket.once('end', () => socket.destroy());
    socket.resume();
    // A client that reads nothing could keep the reply unsent, and the socket open, for ever.
    setTimeout(() => socket.destroy(), CLIENT_ERROR_CLOSE_MS).unref();
  };
}

/**
 * Returns the options for http.createServer and https.createServer that
 * enforce the configured timeouts. Node checks the headers and request
 * timeouts every connectionsCheckingInterval (30 s by default), so short
 * timeouts get a shorter interval and act within half a headers timeout of
 * their configured time.
 */
export function serverOptions(timeouts: Config['timeouts']): http.ServerOptions {
  const headersTimeout = Math.round(timeouts.headersSeconds * 1000);
  const requestTimeout = Math.round(timeouts.requestSeconds * 1000);
  return {
    headersTimeout,
    requestTimeout,
    keepAliveTimeout: Math.round(timeouts.keepAliveSeconds * 1000),
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(headersTimeout / 2))),
  };
}

/** The RFC 4331 precondition of a 507 reply: there is no space to record the resource's new state. */
const SUFFICIENT_DISK_SPACE = clark(NS.DAV, 'sufficient-disk-space');

/**
 * Returns whether an error means that the disk of the database is full:
 * SQLITE_FULL, which SQLite's Unix VFS returns when a write fails with
 * ENOSPC, or ENOSPC and EDQUOT from a Node file system call.
 */
export function isStorageFull(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT';
}

/** Builds the koa application: request logging, errors as DAV:error bodies, Basic authentication, then DAV dispatch. */
export function createApp(options: AppOptions): Koa {
  const { storage, logger, limits } = options;
  const app = new Koa({ proxy: options.trustProxy ?? false });
  const logins = new LoginCache();

  const guard = new LoginGuard(storage, logger, options.config);

  async function authenticate(ctx: Koa.Context): Promise<User | undefined> {
    const credentials = parseBasic(ctx.get('authorization'));
    if (!credentials) return undefined;
    const user = await storage.getUser(credentials.name);
    // Credentials whose password was verified within the cache lifetime pass without the failure limits,
    // so a client that is already syncing keeps working while someone else fails logins from the same address.
    // Each hit renews the entry, so a client that polls more often than the lifetime never needs a new check.
    if (user?.passwordHash && logins.renew(user.name, credentials.password, user.passwordHash)) return user;
    return guard.authenticate(ctx, credentials.name, credentials.password, () => checkLocal(user, credentials.password));
  }

  /** Checks a local user's password: returns the user when it matches, false when it does not, undefined when the name has no local password. */
  async function checkLocal(user: User | undefined, password: string): Promise<User | false | undefined> {
    if (!user || !user.passwordHash) return undefined;
    return (await logins.verify(user.name, password, user.passwordHash)) ? user : false;
  }

  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.log = logger.child({ reqId: requestId });
    try {
      await next();
    } catch (error) {
      if (error instanceof DavError) {
        // The request line names the failed condition; its description may quote card data, so it is not logged.
        ctx.state.condition = error.condition;
        sendError(ctx, error);
      } else if (isStorageFull(error)) {
        ctx.state.log.error({ err: error, user: ctx.state.user?.name, method: ctx.method, path: ctx.path }, 'request failed: the disk is full');
        const full = new DavError(507, SUFFICIENT_DISK_SPACE, `the server's disk is full, so nothing was stored; retry once space is freed (request id ${requestId})`);
        ctx.state.condition = full.condition;
        sendError(ctx, full);
      } else if (isBusy(error)) {
        // Another process (the command line, say) kept the database locked for longer than the storage retries.
        ctx.state.log.error({ err: error, user: ctx.state.user?.name, method: ctx.method, path: ctx.path }, 'request failed: the database stayed locked');
        sendError(ctx, new DavError(503, undefined, `the database is locked by another process, so nothing was stored; retry later (request id ${requestId})`));
        ctx.set('Retry-After', String(BUSY_RETRY_AFTER_SECONDS));
      } else {
        ctx.state.log.error({ err: error, user: ctx.state.user?.name, method: ctx.method, path: ctx.path }, 'request failed');
        // A 5xx body names the request id, so an operator can find the logged error, and nothing else.
        sendError(ctx, new DavError(500, undefined, `internal server error; request id ${requestId}`));
      }
    }
    ctx.res.once('close', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      ctx.state.log.info(
        { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10, user: ctx.state.user?.name, ip: ctx.ip, condition: ctx.state.condition },
        'request',
      );
    });
  });

  app.use(async (ctx) => {
    const path = ctx.path;
    if (path === '/.well-known/carddav' || path === '/.well-known/carddav/') {
      ctx.status = 301;
      ctx.set('Location', DAV_ROOT);
      return;
    }
    if (ctx.method === 'OPTIONS' && !ctx.get('authorization')) {
      // Clients probe capabilities before they log in.
      ctx.set('DAV', DAV_HEADER);
      ctx.set('Allow', 'OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, REPORT, MKCOL, PUT, DELETE');
      ctx.status = 200;
      ctx.body = '';
      return;
    }
    const user = await authenticate(ctx);
    if (!user) {
      ctx.set('WWW-Authenticate', REALM);
      ctx.req.resume();
      throw new DavError(401, undefined, 'authentication required: send HTTP Basic credentials of a Cardinal user');
    }
    ctx.state.user = user;
    const resource = await resolveResource(storage, user, path, ctx.method);
    await dispatch({ ctx, storage, user, resource, limits, log: ctx.state.log });
  });

  app.on('error', (error, ctx) => {
    // Errors after the response started (a broken stream, a client that hung up).
    logger.warn({ err: error, reqId: ctx?.state?.requestId }, 'response error');
  });
  return app;
}
