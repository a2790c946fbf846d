/**
 * The tree of a request body: text and child elements in document order,
 * whether an element contains text alone or text mixed with elements.
 */
import { childTextGroups, contentNodes, parseXml, serializeNodes, XmlError, XmlTreeParser, type XmlElement } from '../../dav/xml';

const DAV = 'xmlns:D="DAV:"';

/** Shows content nodes as strings, and elements by their local name in brackets. */
function shape(element: XmlElement): string[] {
  return contentNodes(element).map((node) => (typeof node === 'string' ? node : `[${node.local}]`));
}

test.each([
  ['text alone', `<D:x ${DAV}>hello</D:x>`, ['hello']],
  ['empty element', `<D:x ${DAV}/>`, []],
  ['text around a child', `<D:x ${DAV}>a<D:y/>b</D:x>`, ['a', '[y]', 'b']],
  ['child first', `<D:x ${DAV}><D:y/>b<D:z/></D:x>`, ['[y]', 'b', '[z]']],
  ['text and CDATA as one node', `<D:x ${DAV}>a<![CDATA[<b>]]>c<D:y/>d<![CDATA[e]]></D:x>`, ['a<b>c', '[y]', 'de']],
  ['whitespace between children', `<D:x ${DAV}>\n  <D:y/>\n</D:x>`, ['\n  ', '[y]', '\n']],
])('%s', (_label, body, expected) => {
  const root = parseXml(body);
  expect(shape(root)).toEqual(expected);
  expect(root.text).toBe(expected.filter((node) => !node.startsWith('[')).join(''));
});

test('text split over writes stays one node', () => {
  const parser = new XmlTreeParser();
  for (const piece of [`<D:x ${DAV}>ab`, 'cd<D:y/>e', 'f</D:x>']) parser.write(piece);
  expect(shape(parser.close())).toEqual(['abcd', '[y]', 'ef']);
});

test('serialized content keeps text and elements in order', () => {
  const root = parseXml(`<D:x ${DAV}>a &amp; b<D:y>c</D:y>d</D:x>`);
  expect(serializeNodes(contentNodes(root))).toBe('a &amp; b<d:y>c</d:y>d');
});

test('text-only children keep no node list', () => {
  const root = parseXml(`<D:x ${DAV}><D:href>a</D:href><D:href>b</D:href></D:x>`);
  expect(root.children.map((child) => child.local)).toEqual(['href', 'href']);
  expect(root.children.every((child) => child.nodes.length === 0)).toBe(true);
});

describe('packed children', () => {
  const MULTIGET = '{urn:ietf:params:xml:ns:carddav}addressbook-multiget';
  const rule = { root: MULTIGET, child: '{DAV:}href', groupSize: 2 };
  const body =
    `<C:addressbook-multiget ${DAV} xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:href>in prop</D:href></D:prop>` +
    '<D:href> a </D:href><!-- note --><D:href>b &amp; &lt;c&gt;</D:href>\n<D:href><![CDATA[d<e>]]>f</D:href>' +
    '<D:href>g<D:x>inner</D:x>h</D:href><X:href xmlns:X="urn:other">other</X:href></C:addressbook-multiget>';
  const texts = [' a ', 'b & <c>', 'd<e>f', 'gh'];

  /** Parses `text` in pieces of `size` characters. */
  function parseInPieces(text: string, size: number, maxBuffered: number, pack?: typeof rule): XmlElement {
    const parser = new XmlTreeParser(maxBuffered, pack);
    for (let start = 0; start < text.length; start += size) parser.write(text.slice(start, start + size));
    return parser.close();
  }

  function allTexts(root: XmlElement): string[] {
    const groups = childTextGroups(root, 'DAV:', 'href', 2);
    expect(groups.count).toBe(texts.length);
    return Array.from({ length: groups.groups }, (_, index) => groups.group(index)).flat();
  }

  test('saxes body packs hrefs in groups', () => {
    const root = parseInPieces(body, 7, 0, rule);
    expect(root.children.map((c) => `{${c.ns}}${c.local}`)).toEqual(['{DAV:}prop', '{urn:other}href']);
    expect(root.packed?.groups).toEqual([texts.slice(0, 2).join('\u0000'), texts.slice(2).join('\u0000')]);
    expect(root.children[0].children[0].text).toBe('in prop');
    expect(allTexts(root)).toEqual(texts);
  });

  test('buffered body keeps its tree', () => {
    // The fast parser declines CDATA sections, so such a body goes to saxes.
    const simple = body.replace('<!-- note -->', '').replace('<![CDATA[d<e>]]>', 'd&lt;e&gt;');
    const buffered = parseInPieces(simple, 7, 1_000_000, rule);
    expect(buffered.packed).toBeUndefined();
    expect(buffered.children.filter((c) => c.local === 'href' && c.ns === 'DAV:')).toHaveLength(4);
    expect(allTexts(buffered)).toEqual(texts);
    expect(parseInPieces(body, 7, 1_000_000, rule).packed?.count).toBe(4);
  });

  test('packed root drops its text', () => {
    const indent = '\n' + ' '.repeat(16);
    const spaced = body.replace(/<D:href>/g, `${indent}<D:href>`).replace('<D:prop>', `${indent}<D:prop>`);
    const root = parseInPieces(spaced, 7, 0, rule);
    expect(root.packed?.count).toBe(4);
    expect(root.text).toBe('');
    expect(root.nodes.filter((node) => typeof node === 'string')).toEqual([]);
    expect(allTexts(root)).toEqual(texts);
  });

  test('other root keeps its children', () => {
    const other = body.replace(/addressbook-multiget/g, 'addressbook-query');
    const root = parseInPieces(other, 7, 0, rule);
    expect(root.packed).toBeUndefined();
    expect(root.children.filter((c) => c.local === 'href' && c.ns === 'DAV:')).toHaveLength(4);
  });

  test('NUL character is rejected', () => {
    const withNul = body.replace('b &amp;', 'b &#0;');
    expect(() => parseInPieces(withNul, 7, 0, rule)).toThrow(XmlError);
  });

  test('other group size is rejected', () => {
    const root = parseInPieces(body, 7, 0, rule);
    expect(() => childTextGroups(root, 'DAV:', 'href', 3)).toThrow('invalid group size 3: the texts were packed in groups of 2');
  });
});
