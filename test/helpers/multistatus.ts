/**
 * Parses DAV response bodies with a strict, namespace-aware XML parser, so a
 * test reads a body as a client would, and a body that is not well-formed XML
 * 1.0 fails the test.
 */
import { SaxesParser } from 'saxes';

export const DAV = 'DAV:';
export const CARDDAV = 'urn:ietf:params:xml:ns:carddav';
export const CS = 'http://calendarserver.org/ns/';

/** An element with its name in Clark notation (`{DAV:}href`). */
export interface XmlNode {
  name: string;
  /** Attributes by local name (no namespace) or Clark name. */
  attrs: Record<string, string>;
  /** Text directly inside this element, entities and character references resolved. */
  text: string;
  children: XmlNode[];
}

export interface PropValue {
  text: string;
  children: XmlNode[];
}

export interface PropStat {
  /** The status code from the status line. */
  status: number;
  /** The status line exactly as sent, for example `HTTP/1.1 200 OK`. */
  statusLine: string;
  /** Properties keyed by Clark name, in document order. */
  props: Map<string, PropValue>;
  /** The DAV:error element of this propstat, when present. */
  error?: XmlNode;
}

export interface MultistatusResponse {
  href: string;
  /** The response-level status code, present for responses without propstats. */
  status?: number;
  statusLine?: string;
  propstats: PropStat[];
  /** The response-level DAV:error element, when present. */
  error?: XmlNode;
}

export interface Multistatus {
  responses: MultistatusResponse[];
  /** The DAV:sync-token child of DAV:multistatus (RFC 6578), when present. */
  syncToken?: string;
}

export function clark(ns: string, local: string): string {
  return `{${ns}}${local}`;
}

/** Parses a whole XML document into a tree; throws on anything that is not well-formed XML 1.0 with valid namespaces. */
export function parseXmlTree(body: string): XmlNode {
  const parser = new SaxesParser({ xmlns: true });
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  parser.on('opentag', (tag) => {
    const attrs: Record<string, string> = {};
    for (const attr of Object.values(tag.attributes)) {
      if (typeof attr === 'string') continue;
      if (attr.prefix === 'xmlns' || attr.name === 'xmlns') continue;
      attrs[attr.uri ? clark(attr.uri, attr.local) : attr.local] = attr.value;
    }
    const node: XmlNode = { name: clark(tag.uri ?? '', tag.local ?? tag.name), attrs, text: '', children: [] };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(node);
    else root = node;
    stack.push(node);
  });
  const onText = (text: string) => {
    const current = stack[stack.length - 1];
    if (current) current.text += text;
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', () => {
    stack.pop();
  });
  parser.write(body).close();
  if (!root) throw new Error('the body contains no XML element');
  return root;
}

function childNamed(node: XmlNode, name: string): XmlNode | undefined {
  return node.children.find((c) => c.name === name);
}

function statusCode(line: string): number {
  const match = /^HTTP\/\d\.\d (\d{3})/.exec(line.trim());
  if (!match) throw new Error(`invalid status line: ${JSON.stringify(line)}`);
  return Number(match[1]);
}

function parsePropstat(node: XmlNode): PropStat {
  const statusLine = childNamed(node, clark(DAV, 'status'))?.text;
  if (statusLine === undefined) throw new Error('a propstat has no status');
  const props = new Map<string, PropValue>();
  const prop = childNamed(node, clark(DAV, 'prop'));
  for (const element of prop?.children ?? []) props.set(element.name, { text: element.text, children: element.children });
  return { status: statusCode(statusLine), statusLine, props, error: childNamed(node, clark(DAV, 'error')) };
}

function parseResponse(node: XmlNode): MultistatusResponse {
  const href = childNamed(node, clark(DAV, 'href'));
  if (!href) throw new Error('a response has no href');
  const statusLine = childNamed(node, clark(DAV, 'status'))?.text;
  const propstats = node.children.filter((c) => c.name === clark(DAV, 'propstat')).map(parsePropstat);
  if (statusLine === undefined && propstats.length === 0) throw new Error(`the response for ${href.text} has neither a status nor a propstat`);
  return {
    href: href.text,
    status: statusLine === undefined ? undefined : statusCode(statusLine),
    statusLine,
    propstats,
    error: childNamed(node, clark(DAV, 'error')),
  };
}

/** Parses a 207 body with its multistatus-level sync-token. */
export function parseMultistatusDocument(body: string): Multistatus {
  const root = parseXmlTree(body);
  if (root.name !== clark(DAV, 'multistatus')) throw new Error(`expected DAV:multistatus, got ${root.name}`);
  const responses = root.children.filter((c) => c.name === clark(DAV, 'response')).map(parseResponse);
  return { responses, syncToken: childNamed(root, clark(DAV, 'sync-token'))?.text };
}

/** Parses a 207 body into its responses. */
export function parseMultistatus(body: string): MultistatusResponse[] {
  return parseMultistatusDocument(body).responses;
}

/** Finds the response for an href; throws with the hrefs present when it is missing. */
export function responseFor(responses: MultistatusResponse[], href: string): MultistatusResponse {
  const found = responses.find((r) => r.href === href);
  if (!found) throw new Error(`no response for ${href}; hrefs: ${responses.map((r) => r.href).join(', ')}`);
  return found;
}

/** Returns a property from the 200 propstat of a response, or undefined. */
export function okProp(response: MultistatusResponse, name: string): PropValue | undefined {
  return response.propstats.find((p) => p.status === 200)?.props.get(name);
}

/** Returns the Clark names of the properties in the propstat with this status. */
export function propNamesWithStatus(response: MultistatusResponse, status: number): string[] {
  return response.propstats.filter((p) => p.status === status).flatMap((p) => [...p.props.keys()]);
}

/** Returns the Clark names of an element's children, for resourcetype and similar values. */
export function childNames(value: PropValue | XmlNode | undefined): string[] {
  return (value?.children ?? []).map((c) => c.name);
}

/** Returns the DAV:href texts inside a property value. */
export function hrefsIn(value: PropValue | undefined): string[] {
  return (value?.children ?? []).filter((c) => c.name === clark(DAV, 'href')).map((c) => c.text);
}

/**
 * Reads the precondition or postcondition of a DAV:error body (RFC 4918
 * section 16): the first child element of the DAV:error root. Throws when the
 * root is not DAV:error.
 */
export function parseDavError(body: string): { condition: string; element: XmlNode; root: XmlNode } {
  const root = parseXmlTree(body);
  if (root.name !== clark(DAV, 'error')) throw new Error(`expected a DAV:error body, got ${root.name}`);
  const element = root.children[0];
  if (!element) throw new Error('the DAV:error body has no condition element');
  return { condition: element.name, element, root };
}

/** Returns the Clark name of the condition in a DAV:error body. */
export function errorCondition(body: string): string {
  return parseDavError(body).condition;
}
