import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import request from 'supertest';
import type { Server } from 'node:http';
import http from 'node:http';
import { clientErrorHandler, createApp } from '../../server/app';
import { Config, DEFAULT_CONFIG, loadConfig } from '../../server/config';
import { SqliteStorage } from '../../storage/sqlite';
import { addUser } from '../../server/users';
import type { Storage } from '../../storage/types';

export interface TestApp {
  server: Server;
  config: Config;
  storage: Storage;
  dataDir: string;
  /** A supertest agent bound to the server. */
  http: () => request.Agent;
  /** Basic authorization header value for a user created by `addUser`. */
  auth: (name: string) => string;
  addUser: (name: string, password?: string) => Promise<void>;
  close: () => Promise<void>;
}

/**
 * Starts the koa application in-process on a real SQLite file in a fresh
 * temporary folder. `limits` overrides the configured request limits, and
 * `configFile` is loaded like `cardinal serve --config`.
 */
export async function startTestApp(limits: Partial<typeof DEFAULT_CONFIG.limits> = {}, configFile?: string): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cardinal-test-'));
  const config = loadConfig({ data: dataDir, config: configFile });
  const storage = new SqliteStorage(join(dataDir, 'cardinal.sqlite3'));
  const logger = pino({ level: process.env.CARDINAL_TEST_LOG ?? 'silent' });
  const app = createApp({ storage, logger, limits: { ...config.limits, ...limits }, config });
  const server = http.createServer(app.callback());
  server.on('clientError', clientErrorHandler(logger));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const passwords = new Map<string, string>();
  return {
    server,
    config,
    storage,
    dataDir,
    http: () => request.agent(server),
    auth: (name) => 'Basic ' + Buffer.from(`${name}:${passwords.get(name)}`).toString('base64'),
    addUser: async (name, password = `${name}-password`) => {
      passwords.set(name, password);
      await addUser(storage, config, name, password);
    },
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await storage.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
