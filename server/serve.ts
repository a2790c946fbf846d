import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import v8 from 'node:v8';
import pino from 'pino';
import { openStorage } from '../storage';
import { clientErrorHandler, createApp, serverOptions } from './app';
import type { Config } from './config';
import { ConfigError, databasePath } from './config';
import { scheduleDirectorySync } from '../ldap/scheduler';

/** Reads a certificate or key file, naming the setting and the file when it cannot. */
function readTlsFile(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(`cannot read ${setting} ${path} (${code}); check the path in the configuration file`);
  }
}

/** Growth of V8's old generation after a full collection, in percent of its live size. */
const HEAP_GROWING_PERCENT = 20;

/**
 * Keeps V8's heap close to what the server holds. By default, V8 lets the old
 * generation grow to several times its live size before a full collection.
 * Garbage from one large response then stayed resident during the next: a
 * second multiget of 100,000 cards raised the peak from 183 to 224 MB. With
 * a growth of 20%, the second peaked at 198 MB. V8 reads this flag at every
 * full collection, so setting it at run time takes effect.
 */
function limitHeapGrowth(): void {
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/** Starts the HTTP or HTTPS server and stops it cleanly on SIGINT and SIGTERM. */
export async function startServer(config: Config): Promise<void> {
  limitHeapGrowth();
  const logger = pino({
    level: config.logLevel,
    redact: ['req.headers.authorization'],
  });
  const storage = openStorage(config, {
    server: { onCheckpointError: (message) => logger.error({ err: message }, 'checkpoint failed') },
  });
  const app = createApp({ storage, logger, limits: config.limits, trustProxy: config.trustProxy, config });
  const tls = config.tls.cert !== '' ? { cert: readTlsFile('tls.cert', config.tls.cert), key: readTlsFile('tls.key', config.tls.key) } : undefined;
  const options = serverOptions(config.timeouts);
  const server = tls ? https.createServer({ ...options, ...tls }, app.callback()) : http.createServer(options, app.callback());
  server.on('clientError', clientErrorHandler(logger));

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const reasons: Record<string, string> = {
        EADDRINUSE: 'the address is already in use; stop the other server or choose another --port',
        EACCES: 'permission denied; ports below 1024 need privileges, so choose another --port',
        EADDRNOTAVAIL: 'the address does not belong to this machine; check --host',
        ENOTFOUND: 'the host name does not resolve; use an IP address of this machine, such as 127.0.0.1, with --host',
        EAI_AGAIN: 'the host name could not be resolved now; use an IP address of this machine with --host',
      };
      const reason = error.code ? reasons[error.code] : undefined;
      reject(reason ? new ConfigError(`cannot listen on ${config.host}:${config.port}: ${reason}`) : error);
    });
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${tls ? 'https' : 'http'}://${host}:${port}/`;
  logger.info({ url, database: databasePath(config) }, 'listening');
  // A book removal that a stopped process left half done goes on in the background.
  storage.finishRemovals().then(
    (books) => {
      if (books > 0) logger.info({ books }, 'finished removing address books');
    },
    (error: unknown) => logger.error({ err: error }, 'finishing address book removals failed'),
  );
  const directorySync =
    config.ldap.url !== '' && config.ldap.syncIntervalSeconds > 0 ? scheduleDirectorySync(storage, config, logger) : undefined;

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    // pino writes to stdout asynchronously, so the process exits once the last line is written.
    const exit = () => logger.flush(() => process.exit(0));
    server.close(() => {
      void Promise.resolve(directorySync?.stop())
        .then(() => storage.close())
        .then(() => {
          logger.info('stopped');
          exit();
        });
    });
    server.closeIdleConnections();
    setTimeout(() => {
      logger.warn('stopped before every open request had finished, 5 s after the signal');
      exit();
    }, 5000).unref();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}
