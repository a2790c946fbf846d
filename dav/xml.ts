import { SaxesParser, SaxesTagNS } from 'saxes';
import { parseSimpleXml } from './fastxml';
import { escapeXml } from '../vcard/xmltext';

export { escapeXml, isXmlSafe } from '../vcard/xmltext';

export const NS = {
  DAV: 'DAV:',
  CARDDAV: 'urn:ietf:params:xml:ns:carddav',
  CS: 'http://calendarserver.org/ns/',
  CARDINAL: 'urn:x-cardinal:ns',
} as const;

/** Prefixes used in every response; other namespaces get a local declaration. */
const PREFIXES: Record<string, string> = {
  [NS.DAV]: 'd',
  [NS.CARDDAV]: 'card',
  [NS.CS]: 'cs',
  [NS.CARDINAL]: 'cardinal',
};

export const XMLNS_DECLARATIONS = Object.entries(PREFIXES)
  .map(([uri, prefix]) => `xmlns:${prefix}="${uri}"`)
  .join(' ');

export interface XmlElement {
  ns: string;
  local: string;
  /** Attribute values by name: `{namespace}local` for a namespaced attribute, the plain local name otherwise. */
  attrs: Record<string, string>;
  /** Child elements in document order. */
  children: XmlElement[];
  /** Text directly inside this element, with all its text nodes joined. */
  text: string;
  /**
   * Child elements and text nodes in document order, for content that must
   * be kept as sent (dead properties). Empty when the element has no child
   * elements, because its content is then `text`: contentNodes covers both.
   */
  nodes: XmlNode[];
  /** Texts of the children that the parser packed instead of adding them to children (see PackRule). */
  packed?: PackedTexts;
}

/**
 * Children that the streaming parser keeps as text alone: the children named
 * `child` of a root element named `root` (both in Clark notation). In a
 * multiget of 100,000 hrefs, their elements and the texts that still pointed
 * into the pieces of the body raised the server's peak RSS by about 18 MiB.
 */
export interface PackRule {
  root: string;
  child: string;
  /** Texts per group. */
  groupSize: number;
}

/** Texts of packed children in document order, in groups of PackRule.groupSize joined by PACK_SEPARATOR. */
export interface PackedTexts {
  child: string;
  groupSize: number;
  count: number;
  groups: string[];
}

/** Joins the texts of a packed group. XML text cannot contain U+0000, so no text is split apart. */
export const PACK_SEPARATOR = '\u0000';

/** An entry of XmlElement.nodes: a string for a text node, the element itself for a child element. */
export type XmlNode = string | XmlElement;

export class XmlError extends Error {}

/** Nesting deeper than this is no DAV request body. */
export const MAX_DEPTH = 64;
/**
 * Elements accepted in one body. A multiget of 100,000 hrefs has about
 * 200,000, and the cap stops a body of millions of empty elements early
 * instead of building the whole tree.
 */
export const MAX_ELEMENTS = 1_000_000;
/**
 * Attributes, namespace declarations included, accepted on one element and in
 * one body. DAV bodies carry a few per element, and the largest filter an
 * addressbook-query accepts has about 800 in all. Without the caps, a 20 MB
 * body of 1.6 million attributes on one element blocked the event loop for
 * 6 to 10 s (2-core virtual machine shared with other test runs). The caps
 * are checked as each attribute is read, before the element is complete.
 */
export const MAX_ATTRIBUTES_PER_ELEMENT = 256;
export const MAX_ATTRIBUTES = 100_000;

/**
 * Shared, frozen values for elements without attributes, children or text,
 * which most elements of a large body (hrefs, empty properties) are. The
 * tree of a multiget of 100,000 hrefs measured 31 MB instead of 40 MB.
 */
export const NO_ATTRIBUTES: Record<string, string> = Object.freeze({}) as Record<string, string>;
export const NO_CHILDREN: XmlElement[] = Object.freeze([]) as unknown as XmlElement[];
export const NO_NODES: XmlNode[] = Object.freeze([]) as unknown as XmlNode[];

/**
 * Maximum length, in characters, of a body buffered whole until close, so that
 * parseSimpleXml can build its tree without saxes. That is a multiget of
 * about 11,000 hrefs of 90 characters. A larger body goes to saxes piece by
 * piece, so it is still never held whole.
 */
const MAX_BUFFERED_CHARACTERS = 1_000_000;

/** Adds an element to its parent's children and nodes, as both parsers build them. */
export function appendElement(parent: XmlElement, element: XmlElement): void {
  // A literal has room for one element, where a push onto an empty array reserves 17.
  if (parent.children === NO_CHILDREN) parent.children = [element];
  else parent.children.push(element);
  if (parent.nodes === NO_NODES) parent.nodes = parent.text === '' ? [element] : [parent.text, element];
  else parent.nodes.push(element);
}

/** Parses a request body with namespaces resolved. DOCTYPE declarations are refused outright, so no entity is ever expanded. */
export function parseXml(body: string): XmlElement {
  const parser = new XmlTreeParser();
  parser.write(body);
  return parser.close();
}

/**
 * Builds the tree of a body that arrives in pieces, so that a large body is
 * never held whole as bytes or as one string. Errors are XmlError, thrown by
 * the write or close that finds them. A body of up to maxBufferedCharacters is
 * buffered until close and parsed by parseSimpleXml, and by saxes only when that
 * declines, so its errors are all thrown by close.
 * NOTE: when such a body has an XML error and, further on, bytes invalid in
 * its encoding, readXmlBody reports the encoding error, because decoding
 * runs as the pieces arrive.
 */
export class XmlTreeParser {
  private readonly parser = new SaxesParser({ xmlns: true });
  /** The pieces written so far, until their total passes maxBufferedCharacters and they go to saxes. */
  private bufferedPieces: string[] | undefined;
  private bufferedCharacters = 0;
  private readonly stack: XmlElement[] = [];
  /** One string per distinct local name, so that the elements of a large body share them. */
  private readonly localNames = new Map<string, string>();
  private root: XmlElement | undefined;
  private elementCount = 0;
  private attributeCount = 0;
  private elementAttributeCount = 0;
  /** The child being packed, while it is open. */
  private packing: XmlElement | undefined;
  /** Texts of packed children not yet joined into a group. */
  private pending: string[] = [];
  private readonly pack?: { rule: PackRule; root: { ns: string; local: string }; child: { ns: string; local: string } };
  /** Whether the root is the pack rule's root. */
  private packsRoot = false;

  /**
   * @param maxBufferedCharacters 0 sends every piece to saxes as it is written.
   * @param pack children to keep as text when the body goes to saxes. A body
   * buffered whole gets its full tree, which is small.
   */
  constructor(
    private readonly maxBufferedCharacters = MAX_BUFFERED_CHARACTERS,
    pack?: PackRule,
  ) {
    if (pack) this.pack = { rule: pack, root: splitClark(pack.root), child: splitClark(pack.child) };
    if (maxBufferedCharacters > 0) this.bufferedPieces = [];
    const parser = this.parser;
    parser.on('doctype', () => {
      throw new XmlError('DOCTYPE declarations are not allowed');
    });
    parser.on('opentagstart', () => {
      this.elementAttributeCount = 0;
    });
    parser.on('attribute', () => {
      if (++this.elementAttributeCount > MAX_ATTRIBUTES_PER_ELEMENT) {
        throw new XmlError(`an element of the XML body has more than ${MAX_ATTRIBUTES_PER_ELEMENT} attributes`);
      }
      if (++this.attributeCount > MAX_ATTRIBUTES) throw new XmlError(`the XML body has more than ${MAX_ATTRIBUTES} attributes`);
    });
    parser.on('opentag', (tag) => this.openElement(tag));
    const onText = (text: string) => this.addText(text);
    parser.on('text', onText);
    parser.on('cdata', onText);
    parser.on('closetag', () => {
      const element = this.stack.pop();
      if (element !== undefined && element === this.packing) this.packText(element.text);
    });
  }

  /** True when `element`, about to be added under `parent`, is a child that the pack rule keeps as text. */
  private packs(parent: XmlElement, element: XmlElement): boolean {
    const pack = this.pack;
    if (pack === undefined || !this.packsRoot || parent !== this.root) return false;
    return element.local === pack.child.local && element.ns === pack.child.ns;
  }

  /** Adds the text of a packed child to the pending group, and joins the group once it is full. */
  private packText(text: string): void {
    this.packing = undefined;
    this.pending.push(text);
    const groupSize = this.pack?.rule.groupSize;
    if (groupSize !== undefined && this.pending.length >= groupSize) this.flushPacked();
  }

  /**
   * Joins the pending texts into one group. The joined string is a copy, so
   * the pieces of the body that the texts pointed into can be freed.
   */
  private flushPacked(): void {
    const root = this.root;
    const rule = this.pack?.rule;
    if (this.pending.length === 0 || root === undefined || rule === undefined) return;
    const packed = (root.packed ??= { child: rule.child, groupSize: rule.groupSize, count: 0, groups: [] });
    packed.groups.push(this.pending.join(PACK_SEPARATOR));
    packed.count += this.pending.length;
    this.pending = [];
  }

  private openElement(tag: SaxesTagNS): void {
    let attrs = NO_ATTRIBUTES;
    for (const attr of Object.values(tag.attributes)) {
      if (attr.prefix === 'xmlns' || attr.name === 'xmlns') continue;
      if (attrs === NO_ATTRIBUTES) attrs = {};
      attrs[attr.uri ? `{${attr.uri}}${attr.local}` : attr.local] = attr.value;
    }
    if (++this.elementCount > MAX_ELEMENTS) throw new XmlError(`the XML body has more than ${MAX_ELEMENTS} elements`);
    const name = tag.local ?? tag.name;
    let local = this.localNames.get(name);
    if (local === undefined) {
      local = name;
      this.localNames.set(name, name);
    }
    const element: XmlElement = { ns: tag.uri ?? '', local, attrs, children: NO_CHILDREN, text: '', nodes: NO_NODES };
    const stack = this.stack;
    const parent = stack[stack.length - 1];
    if (parent === undefined) {
      this.root = element;
      this.packsRoot = this.pack !== undefined && element.local === this.pack.root.local && element.ns === this.pack.root.ns;
    } else if (this.packs(parent, element)) this.packing = element;
    else appendElement(parent, element);
    stack.push(element);
    if (stack.length > MAX_DEPTH) throw new XmlError('the XML body is nested too deeply');
  }

  private addText(text: string): void {
    const current = this.stack[this.stack.length - 1];
    if (!current) return;
    // The pack rule's root keeps no text. The white space between 100,000 hrefs became one chain of pieces,
    // and white space of 13 characters or more also kept the piece of the body it came from in memory.
    if (current === this.root && this.packsRoot) return;
    current.text += text;
    // Until a child element arrives, the text is the whole content and nodes stays empty.
    if (current.nodes === NO_NODES) return;
    // Adjacent text and CDATA sections form one text node.
    const last = current.nodes.length - 1;
    if (typeof current.nodes[last] === 'string') current.nodes[last] += text;
    else current.nodes.push(text);
  }

  write(text: string): void {
    const buffered = this.bufferedPieces;
    if (buffered !== undefined) {
      if (this.bufferedCharacters + text.length <= this.maxBufferedCharacters) {
        buffered.push(text);
        this.bufferedCharacters += text.length;
        return;
      }
      this.bufferedPieces = undefined;
      for (const piece of buffered) this.writeToSaxes(piece);
    }
    this.writeToSaxes(text);
  }

  close(): XmlElement {
    const buffered = this.bufferedPieces;
    if (buffered !== undefined) {
      this.bufferedPieces = undefined;
      const tree = parseSimpleXml(buffered.length === 1 ? buffered[0] : buffered.join(''));
      if (tree !== undefined) return tree;
      // saxes gets the same pieces as without the fast path, so its errors do not change.
      for (const piece of buffered) this.writeToSaxes(piece);
    }
    this.guard(() => this.parser.close());
    if (!this.root) throw new XmlError('the body contains no XML element');
    this.flushPacked();
    return this.root;
  }

  private writeToSaxes(text: string): void {
    this.guard(() => this.parser.write(text));
  }

  private guard(step: () => void): void {
    try {
      step();
    } catch (error) {
      if (error instanceof XmlError) throw error;
      throw new XmlError(`malformed XML: ${(error as Error).message}`);
    }
  }
}

export function is(element: XmlElement | undefined, ns: string, local: string): boolean {
  return element !== undefined && element.ns === ns && element.local === local;
}

export function child(element: XmlElement, ns: string, local: string): XmlElement | undefined {
  return element.children.find((c) => c.ns === ns && c.local === local);
}

export function childrenNamed(element: XmlElement, ns: string, local: string): XmlElement[] {
  return element.children.filter((c) => c.ns === ns && c.local === local);
}

/** Texts of an element's children of one name, in document order, read a group at a time. */
export interface TextGroups {
  count: number;
  groups: number;
  /** Returns the texts of group `index` (0 to groups - 1) as sent, without trimming. */
  group(index: number): string[];
}

/**
 * Returns the texts of `element`'s children named `ns` and `local`, in
 * groups of `groupSize`: from the texts packed by the parser when a pack
 * rule with that child and group size applied, from the children otherwise.
 */
export function childTextGroups(element: XmlElement, ns: string, local: string, groupSize: number): TextGroups {
  const packed = element.packed;
  if (packed !== undefined && packed.child === clark(ns, local)) {
    const { count, groups } = packed;
    if (packed.groupSize !== groupSize) throw new Error(`invalid group size ${groupSize}: the texts were packed in groups of ${packed.groupSize}`);
    return { count, groups: groups.length, group: (index) => groups[index].split(PACK_SEPARATOR) };
  }
  const texts = childrenNamed(element, ns, local).map((c) => c.text);
  return { count: texts.length, groups: Math.ceil(texts.length / groupSize), group: (index) => texts.slice(index * groupSize, (index + 1) * groupSize) };
}

/** Clark notation, `{namespace}local`, the key for properties everywhere. */
export function clark(ns: string, local: string): string {
  return `{${ns}}${local}`;
}

/** Splits a Clark name at its last `}`, because a namespace URI may contain `}` but an XML local name cannot. */
export function splitClark(name: string): { ns: string; local: string } {
  const end = name.lastIndexOf('}');
  return { ns: name.slice(1, end), local: name.slice(end + 1) };
}

export function escapeAttribute(text: string): string {
  return escapeXml(text).replace(/"/g, '&quot;');
}

/** Builds a start tag (or an empty element) for a Clark name, declaring its namespace when it has no fixed prefix. */
export function tag(name: string, content?: string): string {
  const { ns, local } = splitClark(name);
  const prefix = PREFIXES[ns];
  if (prefix) {
    const qname = `${prefix}:${local}`;
    return content === undefined || content === '' ? `<${qname}/>` : `<${qname}>${content}</${qname}>`;
  }
  const decl = ns === '' ? 'xmlns=""' : `xmlns="${escapeAttribute(ns)}"`;
  return content === undefined || content === '' ? `<${local} ${decl}/>` : `<${local} ${decl}>${content}</${local}>`;
}

/** The namespace the `xml` prefix is bound to; no other prefix may be declared for it (Namespaces in XML 1.0 section 3). */
const XML_NAMESPACE = 'http://www.w3.org/XML/1998/namespace';

/** Builds the attributes of an element, declaring a local prefix for each namespaced attribute. */
function attributesXml(attrs: Record<string, string>): string {
  let declarations = '';
  let attributes = '';
  const prefixes = new Map<string, string>();
  for (const [name, value] of Object.entries(attrs)) {
    if (!name.startsWith('{')) {
      attributes += ` ${name}="${escapeAttribute(value)}"`;
      continue;
    }
    const { ns, local } = splitClark(name);
    let prefix = ns === XML_NAMESPACE ? 'xml' : prefixes.get(ns);
    if (prefix === undefined) {
      prefix = `a${prefixes.size}`;
      prefixes.set(ns, prefix);
      declarations += ` xmlns:${prefix}="${escapeAttribute(ns)}"`;
    }
    attributes += ` ${prefix}:${local}="${escapeAttribute(value)}"`;
  }
  return declarations + attributes;
}

/**
 * Serializes an element with its namespace, attributes and content in
 * document order, declaring namespaces locally so the result can be placed
 * inside any other document.
 */
export function serializeElement(element: XmlElement): string {
  const content = serializeNodes(contentNodes(element));
  const prefix = PREFIXES[element.ns];
  let qname: string;
  let declaration: string;
  if (prefix) {
    qname = `${prefix}:${element.local}`;
    declaration = '';
  } else {
    qname = element.local;
    declaration = ` xmlns="${escapeAttribute(element.ns)}"`;
  }
  const start = `${qname}${declaration}${attributesXml(element.attrs)}`;
  return content === '' ? `<${start}/>` : `<${start}>${content}</${qname}>`;
}

/** Returns the content of an element as text and element nodes in document order. */
export function contentNodes(element: XmlElement): XmlNode[] {
  if (element.nodes.length > 0) return element.nodes;
  return element.text === '' ? [] : [element.text];
}

/** Serializes text and element nodes in order, escaping the text. */
export function serializeNodes(nodes: XmlNode[]): string {
  return nodes.map((node) => (typeof node === 'string' ? escapeXml(node) : serializeElement(node))).join('');
}

export const XML_HEADER = '<?xml version="1.0" encoding="utf-8"?>\n';

/** Builds a DAV:error body naming a precondition or postcondition, plus any further empty condition elements. */
export function errorBody(condition: string, inner = '', description?: string, extraConditions: string[] = []): string {
  const descriptionElement = description ? `<cardinal:description>${escapeXml(description)}</cardinal:description>` : '';
  const extra = extraConditions.map((name) => tag(name)).join('');
  return `${XML_HEADER}<d:error ${XMLNS_DECLARATIONS}>${tag(condition, inner)}${extra}${descriptionElement}</d:error>`;
}
