/**
 * parseSimpleXml against saxes: for any body, it either declines or returns
 * the tree XmlTreeParser builds with saxes, and the bodies DAV clients send
 * take the fast path. The reference tree comes from an XmlTreeParser that keeps no
 * characters, so that every piece goes to saxes.
 */
import { isDeepStrictEqual } from 'node:util';
import * as fastxml from '../../dav/fastxml';
import { parseSimpleXml } from '../../dav/fastxml';
import {
  MAX_ATTRIBUTES,
  MAX_ATTRIBUTES_PER_ELEMENT,
  MAX_DEPTH,
  MAX_ELEMENTS,
  NO_ATTRIBUTES,
  NO_CHILDREN,
  NO_NODES,
  parseXml,
  XmlTreeParser,
  type XmlElement,
} from '../../dav/xml';

type Outcome = { tree: XmlElement } | { error: string };

/** Parses with saxes alone, piece by piece. */
function parseWithSaxes(pieces: string | string[]): Outcome {
  const parser = new XmlTreeParser(0);
  try {
    for (const piece of typeof pieces === 'string' ? [pieces] : pieces) parser.write(piece);
    return { tree: parser.close() };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/** Parses through the default XmlTreeParser, which tries parseSimpleXml first. */
function parseWithDefault(pieces: string | string[], maxBufferedCharacters?: number): Outcome {
  const parser = new XmlTreeParser(maxBufferedCharacters);
  try {
    for (const piece of typeof pieces === 'string' ? [pieces] : pieces) parser.write(piece);
    return { tree: parser.close() };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * Returns where two trees differ, or undefined when they are equal and share
 * the same frozen values. Elements are compared through children alone,
 * because each is also in its parent's nodes, and following both doubles the
 * work at every level. The elements in nodes must be the children, in order.
 */
function treeDifference(actual: XmlElement, expected: XmlElement, path = ''): string | undefined {
  const elementPath = `${path}/${expected.local}`;
  if (actual.ns !== expected.ns || actual.local !== expected.local) return `${elementPath}: name {${actual.ns}}${actual.local}`;
  if (!isDeepStrictEqual(actual.attrs, expected.attrs)) return `${elementPath}: attrs ${JSON.stringify(actual.attrs)}`;
  if (actual.text !== expected.text) return `${elementPath}: text ${JSON.stringify(actual.text)}`;
  if ((actual.attrs === NO_ATTRIBUTES) !== (expected.attrs === NO_ATTRIBUTES)) return `${elementPath}: attrs shared differently`;
  if ((actual.children === NO_CHILDREN) !== (expected.children === NO_CHILDREN)) return `${elementPath}: children shared differently`;
  if ((actual.nodes === NO_NODES) !== (expected.nodes === NO_NODES)) return `${elementPath}: nodes shared differently`;
  if (actual.children.length !== expected.children.length) return `${elementPath}: ${actual.children.length} children`;
  if (actual.nodes.length !== expected.nodes.length) return `${elementPath}: ${actual.nodes.length} nodes`;
  for (const element of [actual, expected]) {
    const elementNodes = element.nodes.filter((node) => typeof node !== 'string');
    if (elementNodes.length > 0 && !elementNodes.every((node, i) => node === element.children[i])) return `${elementPath}: nodes do not list the children`;
  }
  for (let i = 0; i < expected.nodes.length; i++) {
    const actualNode = actual.nodes[i];
    const expectedNode = expected.nodes[i];
    if (typeof expectedNode === 'string' ? actualNode !== expectedNode : typeof actualNode === 'string') return `${elementPath}: node ${i}`;
  }
  for (let i = 0; i < expected.children.length; i++) {
    const difference = treeDifference(actual.children[i], expected.children[i], elementPath);
    if (difference !== undefined) return difference;
  }
  return undefined;
}

/** Returns why the fast result breaks the contract, or undefined when it keeps it. */
function contractBreach(body: string): string | undefined {
  const fast = parseSimpleXml(body);
  const reference = parseWithSaxes(body);
  if ('error' in reference) return fast === undefined ? undefined : `saxes raised "${reference.error}" but the fast path returned a tree`;
  if (fast === undefined) return undefined;
  return treeDifference(fast, reference.tree);
}

/** mulberry32: a small seeded generator, so that every run tests the same bodies. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class BodyGenerator {
  constructor(private readonly random: () => number) {}

  integer(max: number): number {
    return Math.floor(this.random() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.integer(items.length)];
  }

  chance(probability: number): boolean {
    return this.random() < probability;
  }

  /** Generates a body in the subset: a DAV request as clients write it, with their variations. */
  davBody(): string {
    const davPrefix = this.pick(['D', 'd', 'a', 'dav', '']);
    const cardPrefix = this.pick(['C', 'card', 'c', 'x1']);
    const quote = this.pick(['"', "'"]);
    const newline = this.pick(['', '', '\n', '\n  ', ' ', '\n\t']);
    const declaration = this.pick([
      '',
      '<?xml version="1.0" encoding="utf-8"?>',
      "<?xml version='1.0' encoding='UTF-8'?>\n",
      '<?xml version="1.0"?>\n',
      '<?xml version="1.0" encoding="utf-8" standalone="yes" ?>',
    ]);
    const q = (name: string) => (name === 'dav' ? davPrefix : cardPrefix);
    const tag = (ns: 'dav' | 'card', local: string) => (q(ns) === '' ? local : `${q(ns)}:${local}`);
    const davDeclaration = davPrefix === '' ? `xmlns=${quote}DAV:${quote}` : `xmlns:${davPrefix}=${quote}DAV:${quote}`;
    const cardDeclaration = `xmlns:${cardPrefix}=${quote}urn:ietf:params:xml:ns:carddav${quote}`;
    const empty = (ns: 'dav' | 'card', local: string, attributes = '') => `<${tag(ns, local)}${attributes}${this.pick(['/>', ' />', `></${tag(ns, local)}>`])}`;
    const element = (ns: 'dav' | 'card', local: string, content: string, attributes = '') =>
      `<${tag(ns, local)}${attributes}>${content}</${tag(ns, local)}${this.pick(['', '', ' '])}>`;
    const attribute = (name: string, value: string) => ` ${name}=${quote}${value.replace(new RegExp(quote, 'g'), quote === '"' ? '&quot;' : '&apos;')}${quote}`;
    const comment = () => (this.chance(0.1) ? this.pick(['<!-- note -->', '<!---->', '<!-- a - b -->', '<!--->-->']) : '');
    // Without a declaration on the root, address-data declares the CardDAV namespace itself.
    const props = (cardDeclared: boolean) => {
      const addressDataAttributes = (cardDeclared ? '' : ` ${cardDeclaration}`) + (this.chance(0.5) ? attribute('content-type', 'text/vcard') + attribute('version', '4.0') : '');
      const chosen = [
        empty('dav', 'getetag'),
        this.chance(0.5) ? empty('card', 'address-data', addressDataAttributes) : '',
        this.chance(0.3) ? empty('dav', 'displayname') : '',
      ];
      return element('dav', 'prop', newline + chosen.filter((p) => p).join(newline) + newline);
    };
    const roots = [
      () => {
        const hrefs = Array.from({ length: this.integer(12) }, () => element('dav', 'href', this.href()) + comment());
        return element('card', 'addressbook-multiget', newline + props(true) + newline + hrefs.join(newline) + newline, ` ${davDeclaration} ${cardDeclaration}`);
      },
      () => {
        const token = this.chance(0.3) ? empty('dav', 'sync-token') : element('dav', 'sync-token', `http://example.com/sync/${this.integer(1000)}`);
        const limit = this.chance(0.3) ? element('dav', 'limit', element('dav', 'nresults', String(this.integer(500)))) : '';
        return element('dav', 'sync-collection', newline + [token, element('dav', 'sync-level', '1'), limit, props(false)].join(newline) + newline, ` ${davDeclaration}`);
      },
      () => {
        const cardDeclared = this.chance(0.3);
        const content = this.pick([
          () => empty('dav', 'allprop'),
          () => empty('dav', 'propname'),
          () => props(cardDeclared),
          () => empty('dav', 'allprop') + element('dav', 'include', empty('dav', 'supported-report-set')),
        ])();
        return element('dav', 'propfind', newline + content + newline, ` ${davDeclaration}${cardDeclared ? ` ${cardDeclaration}` : ''}`);
      },
      () => {
        const textMatch = element(
          'card',
          'text-match',
          this.text(),
          attribute('collation', this.pick(['i;unicode-casemap', 'i;ascii-casemap'])) + attribute('match-type', this.pick(['contains', 'equals', 'starts-with'])) + (this.chance(0.3) ? attribute('negate-condition', 'yes') : ''),
        );
        const propFilter = element('card', 'prop-filter', newline + textMatch + newline, attribute('name', this.pick(['FN', 'EMAIL', 'TEL'])) + (this.chance(0.5) ? attribute('test', 'allof') : ''));
        const notDefined = this.chance(0.3) ? element('card', 'prop-filter', empty('card', 'is-not-defined'), attribute('name', 'NICKNAME')) : '';
        const filter = element('card', 'filter', newline + propFilter + notDefined + newline, this.chance(0.5) ? attribute('test', 'anyof') : '');
        const limit = this.chance(0.3) ? element('card', 'limit', element('card', 'nresults', '10')) : '';
        return element('card', 'addressbook-query', newline + props(true) + newline + filter + limit + newline, ` ${davDeclaration} ${cardDeclaration}`);
      },
      () => {
        const dead = `<x:color xmlns:x=${quote}http://example.com/ns/${quote}>${this.text()}<x:shade${attribute('x:depth', '2')}>dark</x:shade>${this.text()}</x:color>`;
        const reset = `<note xmlns=${quote}${quote}>${this.text()}</note>`;
        const set = element('dav', 'set', element('dav', 'prop', element('dav', 'displayname', this.text()) + dead + (this.chance(0.3) ? reset : '')));
        const remove = this.chance(0.5) ? element('dav', 'remove', element('dav', 'prop', empty('dav', 'displayname'))) : '';
        return element('dav', 'propertyupdate', newline + set + remove + newline, ` ${davDeclaration}`);
      },
    ];
    return `${declaration}${comment()}${this.pick(roots)()}${this.pick(['', '\n', '  \n'])}${comment()}`;
  }

  href(): string {
    const name = this.pick([
      '4b78cb04-078d-45b8-961e-c01089d16f81.vcf',
      'anna%20maria.vcf',
      'a&amp;b.vcf',
      'caf&#xE9;.vcf',
      'zo\u00eb.vcf',
      '&#66;ob.vcf',
      'x&gt;y&lt;z.vcf',
      'card[1].vcf',
      '\u{1F389}.vcf',
    ]);
    return `${this.pick(['', 'https://example.com'])}/dav/addressbooks/bench/contacts/${name}`;
  }

  text(): string {
    return this.pick(['Smith', '', 'Ελένη & 日本'.replace('&', '&amp;'), ' a  b ', 'x&#10;y', 'tab\tand\nnewline', '&quot;q&apos;', ']]&gt;', 'a]b>c', '\u00a0\u2028\u0085']);
  }

  /** Applies one change of the kinds that take a body out of the subset or make it malformed. */
  mutate(body: string): string {
    const at = this.integer(body.length + 1);
    const insert = (text: string) => body.slice(0, at) + text + body.slice(at);
    const replaceOne = (from: string, to: string) => {
      const positions: number[] = [];
      for (let i = body.indexOf(from); i !== -1; i = body.indexOf(from, i + 1)) positions.push(i);
      if (positions.length === 0) return insert(to);
      const i = this.pick(positions);
      return body.slice(0, i) + to + body.slice(i + from.length);
    };
    const mutations: (() => string)[] = [
      () => body.slice(0, at),
      () => body.slice(at),
      () => replaceOne('"', "'"),
      () => replaceOne("'", '"'),
      () => replaceOne('"', ''),
      () => insert('&'),
      () => insert(this.pick(['&amp', '&nbsp;', '&#X41;', '&#0;', '&#xD800;', '&#x10FFFF;', '&#1114112;', '&#;', '&#x;', '&AMP;', '&#65'])),
      () => insert('<'),
      () => insert('>'),
      () => insert(']]>'),
      () => insert(']]'),
      () => replaceOne('D:', 'Z:'),
      () => replaceOne('C:', 'Q:'),
      () => replaceOne(':', ''),
      () => replaceOne(':', '::'),
      () => replaceOne('<D:', '<xml:'),
      () => replaceOne('<D:', '<xmlns:'),
      () => replaceOne(' xmlns:', ' xmlns:xml='),
      () => replaceOne('"DAV:"', '""'),
      () => replaceOne('"DAV:"', '" DAV:"'),
      () => replaceOne('"DAV:"', '"http://www.w3.org/XML/1998/namespace"'),
      () => replaceOne('"DAV:"', '"http://www.w3.org/2000/xmlns/"'),
      () => replaceOne('xmlns=', 'xmlns:xmlns='),
      () => replaceOne('/>', ' a="1" a="2"/>'),
      () => replaceOne('/>', ' D:a="1" d:a="2" xmlns:d="DAV:"/>'),
      () => replaceOne('/>', ' xml:lang="en"/>'),
      () => replaceOne('/>', ' a="1"b="2"/>'),
      () => replaceOne('/>', ' a = "x\ty"/>'),
      () => replaceOne('/>', ' a="x\ny"/>'),
      () => replaceOne('/>', ' a="&#9;&#10;"/>'),
      () => replaceOne('/>', ' a="<"/>'),
      () => replaceOne('/>', ' a/>'),
      () => replaceOne('/>', ' a=b/>'),
      () => replaceOne('/>', ' / >'),
      () => replaceOne('/>', ' __proto__="p"/>'),
      () => replaceOne('/>', ' xmlns:e="urn:e" e:x="1"/>'),
      () => insert(String.fromCharCode(this.pick([0, 1, 8, 0x0b, 0x0c, 0x0e, 0x1f, 0x7f, 0xfffe, 0xffff, 0xd800, 0xdc00, 0xfeff]))),
      () => insert('\r'),
      () => insert('\r\n'),
      () => body.replace(/\n/g, '\r\n'),
      () => insert(this.pick(['é', '日本', '\u{1F389}', '\u00a0', '\u2028', '\u0085'])),
      () => replaceOne('<D:', '<D:é'),
      () => replaceOne('<D:', '<é:'),
      () => replaceOne('href', 'hr\u00e9f'),
      () => replaceOne('href', 'h\u00b7ref'),
      () => replaceOne('<D:', '<D:1'),
      () => replaceOne('<D:', '<D:-'),
      () => replaceOne('<D:', '<:'),
      () => insert('<![CDATA[x]]>'),
      () => insert('<![CDATA[<a>]]>'),
      () => insert('<!-- c -->'),
      () => insert('<!-- a -- b -->'),
      () => insert('<!--->'),
      () => insert('<!---->'),
      () => insert('<!-- a --->'),
      () => insert('<?pi data?>'),
      () => insert('<?xml version="1.0"?>'),
      () => insert('<!DOCTYPE x>'),
      () => insert('<!ELEMENT x ANY>'),
      () => ' ' + body,
      () => '\ufeff' + body,
      () => body + 'text',
      () => body + '<extra/>',
      () => body + '&amp;',
      () => replaceOne('version="1.0"', 'version="1.1"'),
      () => replaceOne('version="1.0"', 'version="1.00"'),
      () => replaceOne('encoding="utf-8"', 'encoding="utf 8"'),
      () => replaceOne('?>', ' ?>'),
      () => replaceOne('?>', '?>?>'),
      () => replaceOne('</', '< /'),
      () => replaceOne('</', '</ '),
      () => replaceOne('>', ' >'),
      () => replaceOne('>', '/>'),
      () => {
        // Nesting around the limit: the root plus the added levels.
        const depth = MAX_DEPTH - 3 + this.integer(6);
        const start = body.indexOf('>', body.indexOf('<', body.startsWith('<?') ? 2 : 0) + 1) + 1;
        const end = body.lastIndexOf('</');
        if (start <= 0 || end < start) return body;
        return body.slice(0, start) + '<n>'.repeat(depth) + '</n>'.repeat(depth) + body.slice(end);
      },
      () => {
        const from = this.integer(body.length);
        const length = this.integer(20);
        return insert(body.slice(from, from + length));
      },
      () => body.slice(0, at) + body.slice(at + 1 + this.integer(4)),
      () => insert(this.pick(['<', '>', '&', ';', ':', '/', '"', "'", '=', '!', '?', '-', '[', ']', ' ', '\t', '\n', '#', 'x', 'é'])),
    ];
    return this.pick(mutations)();
  }

  /**
   * Generates a small random tree with namespace declarations, prefixes,
   * attributes, references, comments and CDATA sections drawn from short
   * lists, for combinations the DAV shapes do not reach.
   */
  randomTreeBody(): string {
    const names = ['a', 'b', 'D:c', 'e:f', 'g.h-1', '_i'];
    const attributes = [
      ' x="1"', " y='2'", ' D:z="3"', ' e:z="4"', ' xmlns:D="DAV:"', ' xmlns:e="urn:e"', ' xmlns:e="DAV:"', ' xmlns="urn:d"', ' xmlns=""',
      ' e:w="&amp;&#x3C;"', ' __proto__="p"', ' x="&quot;>"',
    ];
    const texts = ['text', ' ', '\n', '&amp;', '&#x20;', '&#13;', '&lt;', ']]', ']', '>', '<!--c-->', '<![CDATA[d]]>', '\u00e9', '\u{1F389}'];
    const element = (depth: number): string => {
      const name = this.pick(names);
      let start = `<${name}`;
      const attributeCount = this.integer(depth === 0 ? 4 : 3);
      for (let i = 0; i < attributeCount; i++) start += this.pick(attributes);
      if (depth === 0 && this.chance(0.8)) start += ' xmlns:D="DAV:" xmlns:e="urn:e"';
      if (this.chance(0.2)) return `${start}/>`;
      let content = '';
      const count = this.integer(5);
      for (let i = 0; i < count; i++) content += depth < 4 && this.chance(0.4) ? element(depth + 1) : this.pick(texts);
      return `${start}>${content}</${name}>`;
    };
    return `${this.chance(0.2) ? '<?xml version="1.0"?>' : ''}${element(0)}`;
  }
}

describe('parseSimpleXml against saxes', () => {
  test('fuzzed DAV bodies keep the contract', () => {
    const generator = new BodyGenerator(seededRandom(0x5eed));
    const breaches: { body: string; breach: string }[] = [];
    let valid = 0;
    let validAccepted = 0;
    let mutated = 0;
    let mutatedRejectedBySaxes = 0;
    for (let i = 0; i < 4000; i++) {
      let body = generator.davBody();
      const mutations = i % 4 === 0 ? 0 : 1 + generator.integer(3);
      for (let m = 0; m < mutations; m++) body = generator.mutate(body);
      const breach = contractBreach(body);
      if (breach !== undefined && breaches.length < 5) breaches.push({ body, breach });
      if (mutations === 0) {
        valid++;
        if (parseSimpleXml(body) !== undefined) validAccepted++;
      } else {
        mutated++;
        if ('error' in parseWithSaxes(body)) mutatedRejectedBySaxes++;
      }
    }
    expect(breaches).toEqual([]);
    // Every unchanged body is in the subset, and the mutations reach saxes errors often enough to test something.
    expect(validAccepted).toBe(valid);
    expect(mutatedRejectedBySaxes).toBeGreaterThan(mutated / 4);
  });

  test('fuzzed random trees keep the contract', () => {
    const generator = new BodyGenerator(seededRandom(0xc0ffee));
    const breaches: { body: string; breach: string }[] = [];
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      let body = generator.randomTreeBody();
      if (generator.chance(0.3)) body = generator.mutate(body);
      const breach = contractBreach(body);
      if (breach !== undefined && breaches.length < 5) breaches.push({ body, breach });
      if (parseSimpleXml(body) !== undefined) accepted++;
    }
    expect(breaches).toEqual([]);
    expect(accepted).toBeGreaterThan(1000);
  });

  test.each([
    ['a CDATA section', '<a><![CDATA[x]]></a>'],
    ['a processing instruction', '<a><?pi x?></a>'],
    ['a DOCTYPE', '<!DOCTYPE a><a/>'],
    ['a CR', '<a>x\ry</a>'],
    ['a tab in an attribute value', '<a b="x\ty"/>'],
    ['an XML 1.1 declaration', '<?xml version="1.1"?><a/>'],
    ['the xml prefix', '<a xml:lang="en"/>'],
    ['a non-ASCII name', '<caf\u00e9/>'],
    ['a byte order mark', '\ufeff<a/>'],
    ['leading white space', ' <a/>'],
    ['a lone high surrogate', '<a>\ud800</a>'],
    ['an untrimmed namespace URI', '<a xmlns=" DAV:"/>'],
  ])('declines a body with %s', (_label, body) => {
    expect(parseSimpleXml(body)).toBeUndefined();
  });
});

const XMLNS = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"';

/** Builds an addressbook-multiget of 500 hrefs (45 KB), the request the benchmark profiles. */
function benchmarkMultiget(): string {
  const hrefs = Array.from(
    { length: 500 },
    (_, i) => `<D:href>/dav/addressbooks/bench/contacts/4b78cb04-078d-45b8-961e-${String(i).padStart(12, '0')}.vcf</D:href>`,
  ).join('');
  return `<?xml version="1.0" encoding="utf-8"?><C:addressbook-multiget ${XMLNS}><D:prop><D:getetag/><C:address-data/></D:prop>${hrefs}</C:addressbook-multiget>`;
}

describe('DAV bodies take the fast path', () => {
  const bodies: [string, string][] = [
    ['multiget of 500 hrefs', benchmarkMultiget()],
    [
      'indented multiget with address-data attributes',
      `<?xml version="1.0" encoding="UTF-8"?>
<C:addressbook-multiget ${XMLNS}>
  <D:prop>
    <D:getetag/>
    <C:address-data content-type="text/vcard" version="4.0"/>
  </D:prop>
  <D:href>/dav/addressbooks/alice/contacts/anna%20maria%40home.vcf</D:href>
  <D:href>/dav/addressbooks/alice/contacts/a&amp;b&#x2E;vcf</D:href>
  <D:href>/dav/addressbooks/alice/contacts/zo\u00eb.vcf</D:href>
</C:addressbook-multiget>
`,
    ],
    [
      'default-namespace multiget with single quotes',
      "<addressbook-multiget xmlns='urn:ietf:params:xml:ns:carddav' xmlns:d='DAV:'><d:prop><d:getetag /><address-data /></d:prop><d:href>/a.vcf</d:href></addressbook-multiget>",
    ],
    [
      'sync-collection',
      '<?xml version="1.0" encoding="utf-8" ?><d:sync-collection xmlns:d="DAV:"><d:sync-token>http://example.com/sync/17</d:sync-token><d:sync-level>1</d:sync-level><d:limit><d:nresults>100</d:nresults></d:limit><d:prop><d:getetag/></d:prop></d:sync-collection>',
    ],
    ['initial sync-collection', '<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>'],
    ['propfind allprop', '<?xml version="1.0"?>\n<propfind xmlns="DAV:"><allprop/></propfind>'],
    ['propfind propname', '<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'],
    [
      'propfind of a macOS client',
      '<?xml version="1.0" encoding="UTF-8"?>\n<A:propfind xmlns:A="DAV:">\n  <A:prop>\n    <A:current-user-principal/>\n    <B:getctag xmlns:B="http://calendarserver.org/ns/"/>\n    <A:resourcetype/>\n  </A:prop>\n</A:propfind>\n',
    ],
    [
      'addressbook-query with a filter',
      `<C:addressbook-query ${XMLNS}>
  <D:prop><D:getetag/><C:address-data><C:prop name="FN"/><C:prop name="EMAIL"/></C:address-data></D:prop>
  <C:filter test="anyof">
    <C:prop-filter name="FN" test="allof">
      <C:text-match collation="i;unicode-casemap" match-type="contains" negate-condition="no">Smith &amp; Sons</C:text-match>
    </C:prop-filter>
    <C:prop-filter name="TEL"><C:param-filter name="TYPE"><C:is-not-defined/></C:param-filter></C:prop-filter>
  </C:filter>
  <C:limit><C:nresults>10</C:nresults></C:limit>
</C:addressbook-query>`,
    ],
    [
      'proppatch with a dead property',
      '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Fr\u00e4nk\u2019s &lt;book&gt;</d:displayname><x:color xmlns:x="http://example.com/ns/">dark <x:shade x:depth="2">blue</x:shade> mostly</x:color></d:prop></d:set></d:propertyupdate>',
    ],
    ['body with comments', '<!-- query --><D:propfind xmlns:D="DAV:"><!-- all --><D:allprop/></D:propfind>\n<!-- end -->'],
  ];

  test.each(bodies)('%s', (_label, body) => {
    const fast = parseSimpleXml(body);
    expect(fast).toBeDefined();
    expect(contractBreach(body)).toBeUndefined();
  });

  test('parseXml uses the fast path', () => {
    const spy = jest.spyOn(fastxml, 'parseSimpleXml');
    try {
      const root = parseXml(benchmarkMultiget());
      expect(spy).toHaveBeenCalledTimes(1);
      expect(spy.mock.results[0].value).toBe(root);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('XmlTreeParser with buffered pieces', () => {
  const body = benchmarkMultiget();
  const pieces = Array.from({ length: Math.ceil(body.length / 4096) }, (_, i) => body.slice(i * 4096, (i + 1) * 4096));

  /** Returns the tree of an outcome, failing the test on an error. */
  function treeOf(outcome: Outcome): XmlElement {
    if ('error' in outcome) throw new Error(outcome.error);
    return outcome.tree;
  }

  test('pieces within the cap build the saxes tree', () => {
    expect(treeDifference(treeOf(parseWithDefault(pieces)), treeOf(parseWithSaxes(pieces)))).toBeUndefined();
  });

  test('pieces past the cap go to saxes and build the same tree', () => {
    const spy = jest.spyOn(fastxml, 'parseSimpleXml');
    try {
      const streamed = parseWithDefault(pieces, 10_000);
      expect(spy).not.toHaveBeenCalled();
      expect(treeDifference(treeOf(streamed), treeOf(parseWithSaxes(pieces)))).toBeUndefined();
    } finally {
      spy.mockRestore();
    }
  });

  test.each([
    ['unclosed element', ['<D:x xmlns:D="DAV:">', '<D:y>']],
    ['DOCTYPE', ['<!DOCTYPE x [<!ENTITY a "b">]>', '<x>&a;</x>']],
    ['undeclared prefix', ['<D:x xmlns:D="DAV:">', '<Q:y/></D:x>']],
    ['CR in a split CR LF', ['<x>a\r', '\nb</x>']],
    ['empty body', ['']],
  ])('a declined %s raises the saxes error', (_label, malformed) => {
    expect(parseWithDefault(malformed)).toEqual(parseWithSaxes(malformed));
  });
});

describe('limits through both paths', () => {
  /** Nests `depth` elements, the root included. */
  function nested(depth: number): string {
    return `<D:n xmlns:D="DAV:">${'<D:n>'.repeat(depth - 1)}${'</D:n>'.repeat(depth - 1)}</D:n>`;
  }

  /** Puts `count` attributes, the namespace declaration included, on the root element. */
  function attributesOnRoot(count: number): string {
    const attributes = Array.from({ length: count - 1 }, (_, i) => ` a${i}=""`).join('');
    return `<D:x xmlns:D="DAV:"${attributes}/>`;
  }

  /** Spreads `count` attributes, the namespace declaration included, over elements of at most MAX_ATTRIBUTES_PER_ELEMENT. */
  function attributesAcrossElements(count: number): string {
    let children = '';
    for (let left = count - 1; left > 0; left -= MAX_ATTRIBUTES_PER_ELEMENT) {
      const n = Math.min(left, MAX_ATTRIBUTES_PER_ELEMENT);
      children += `<a${Array.from({ length: n }, (_, i) => ` a${i}=""`).join('')}/>`;
    }
    return `<D:x xmlns:D="DAV:">${children}</D:x>`;
  }

  test.each([
    ['depth', nested(MAX_DEPTH), nested(MAX_DEPTH + 1), 'the XML body is nested too deeply'],
    [
      'attributes on one element',
      attributesOnRoot(MAX_ATTRIBUTES_PER_ELEMENT),
      attributesOnRoot(MAX_ATTRIBUTES_PER_ELEMENT + 1),
      `an element of the XML body has more than ${MAX_ATTRIBUTES_PER_ELEMENT} attributes`,
    ],
    ['attributes in the body', attributesAcrossElements(MAX_ATTRIBUTES), attributesAcrossElements(MAX_ATTRIBUTES + 1), `the XML body has more than ${MAX_ATTRIBUTES} attributes`],
  ])('%s limit', (_label, atLimit, overLimit, message) => {
    expect(atLimit.length).toBeLessThan(1_000_000);
    expect(overLimit.length).toBeLessThan(1_000_000);
    expect(parseSimpleXml(atLimit)).toBeDefined();
    expect(contractBreach(atLimit)).toBeUndefined();
    expect(parseSimpleXml(overLimit)).toBeUndefined();
    expect(parseWithSaxes(overLimit)).toEqual({ error: message });
    expect(parseWithDefault(overLimit)).toEqual({ error: message });
  });

  test('element limit', () => {
    const body = (count: number) => `<D:x xmlns:D="DAV:">${'<a/>'.repeat(count - 1)}</D:x>`;
    expect(parseSimpleXml(body(MAX_ELEMENTS))?.children.length).toBe(MAX_ELEMENTS - 1);
    const overLimit = body(MAX_ELEMENTS + 1);
    expect(parseSimpleXml(overLimit)).toBeUndefined();
    // The body has 4 million characters, so only a raised cap keeps it for the fast path, which declines before saxes raises the error.
    expect(parseWithDefault(overLimit, 5_000_000)).toEqual({ error: `the XML body has more than ${MAX_ELEMENTS} elements` });
  });
});
