/**
 * The tree of a request body: text and child elements in document order,
 * whether an element contains text alone or text mixed with elements.
 */
import { contentNodes, parseXml, serializeNodes, XmlTreeParser, type XmlElement } from '../../dav/xml';

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
