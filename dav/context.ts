import type Koa from 'koa';
import type { Logger } from 'pino';
import type { Storage, User } from '../storage/types';
import type { Resource } from './resource';

export interface DavLimits {
  /** Largest vCard accepted by PUT, in bytes; advertised as CARDDAV:max-resource-size. */
  maxResourceSize: number;
  /** Largest XML request body (PROPFIND, PROPPATCH, REPORT, MKCOL), in bytes. */
  maxXmlBody: number;
}

/** Everything a DAV method handler needs for one request. */
export interface DavContext {
  ctx: Koa.Context;
  storage: Storage;
  user: User;
  resource: Resource;
  limits: DavLimits;
  log: Logger;
}
