/**
 * The template that builds card responses of listings and reports gives the
 * same XML as building each response on its own, for every shape of request,
 * and so does the layout that the storage fills for requests of stored values.
 */
import { ByteChunks, PIECE_LIMIT, statusResponseXml } from '../../dav/multistatus';
import { cardResponse, cardsLayout, cardWriter, changeLayout, memberHrefs, type CardWriter, type PropRequest } from '../../dav/propfind';
import type { PropertyContext } from '../../dav/props';
import { pathSegment } from '../../storage/segment';
import type { CardLayout, CardMeta, User } from '../../storage/types';
import { escapeXml } from '../../dav/xml';

const DAV = 'DAV:';
const CARDDAV = 'urn:ietf:params:xml:ns:carddav';
const name = (ns: string, local: string) => `{${ns}}${local}`;

const alice: User = { id: 1, name: 'alice', passwordHash: null, createdAt: 0 };
const cards: CardMeta[] = [
  { id: 1, bookId: 1, name: 'a.vcf', uid: 'a', etag: '0123abcd', size: 312, modifiedAt: 1_700_000_000_000, seq: 4 },
  { id: 2, bookId: 1, name: 'b & c.vcf', uid: 'b', etag: 'ffee', size: 9, modifiedAt: 1_600_000_000_000, seq: 9 },
];

const requests: [string, PropRequest][] = [
  ['getetag', { kind: 'prop', names: [name(DAV, 'getetag')] }],
  [
    'found, unknown and repeated',
    {
      kind: 'prop',
      names: [name(DAV, 'getcontenttype'), name('urn:x-example', 'colour'), name(DAV, 'getetag'), name(DAV, 'getetag'), name(DAV, 'getlastmodified')],
    },
  ],
  ['unknown only', { kind: 'prop', names: [name('urn:x-example', 'colour')] }],
  ['empty prop', { kind: 'prop', names: [] }],
  ['address-data', { kind: 'prop', names: [name(DAV, 'getetag'), name(CARDDAV, 'address-data')] }],
  ['allprop', { kind: 'allprop', include: [] }],
  ['allprop with include', { kind: 'allprop', include: [name(DAV, 'current-user-privilege-set'), name(DAV, 'owner')] }],
  ['propname', { kind: 'propname' }],
];

/** Runs a card writer on one card and returns the bytes it wrote. */
function written(write: CardWriter, href: string, card: CardMeta, addressData?: string | Buffer): Buffer {
  const out = new ByteChunks();
  write(out, href, card, addressData);
  return out.take() ?? Buffer.alloc(0);
}

describe.each(requests)('%s', (_label, request) => {
  const context: PropertyContext = { user: alice, maxResourceSize: 1_000_000, access: 'read' };

  test.each([false, true])('minimal %s, with and without address data', (minimal) => {
    const write = cardWriter(context, alice, request, minimal, 'encoded');
    for (const card of cards) {
      const href = `/dav/addressbooks/alice/contacts/${encodeURIComponent(card.name)}`;
      expect(written(write, href, card)).toEqual(Buffer.from(cardResponse(context, alice, href, card, request, minimal)));
      const data = 'BEGIN:VCARD&#13;\nEND:VCARD';
      expect(written(write, href, card, data)).toEqual(Buffer.from(cardResponse(context, alice, href, card, request, minimal, data)));
    }
  });
});

describe.each(requests)('%s, href as sent', (_label, request) => {
  const context: PropertyContext = { user: alice, maxResourceSize: 1_000_000, access: 'read' };

  test.each([false, true])('minimal %s, with and without address data', (minimal) => {
    const write = cardWriter(context, alice, request, minimal);
    for (const card of cards) {
      // A client may send an href that is not percent-encoded.
      const href = `/dav/addressbooks/alice/contacts/Zoë ${card.name}`;
      expect(written(write, href, card)).toEqual(Buffer.from(cardResponse(context, alice, href, card, request, minimal)));
      const data = 'BEGIN:VCARD&#13;\nFN:Zoë 日本&#13;\nEND:VCARD';
      const expected = Buffer.from(cardResponse(context, alice, href, card, request, minimal, data));
      expect(written(write, href, card, data)).toEqual(expected);
      expect(written(write, href, card, Buffer.from(data))).toEqual(expected);
    }
  });
});

/** Fills a layout in JavaScript, as the storage fills it in SQL. */
function filled(layout: CardLayout, href: string, card: CardMeta, xml = ''): string {
  let text = layout.texts[0] + href + layout.texts[1];
  const values = { etag: card.etag, size: String(card.size), xml };
  layout.fields.forEach((field, i) => {
    text += values[field] + layout.texts[i + 2];
  });
  return text;
}

const LAYOUT_REQUESTS: [string, PropRequest, boolean][] = [
  ['getetag', { kind: 'prop', names: [name(DAV, 'getetag')] }, true],
  ['getetag and size', { kind: 'prop', names: [name(DAV, 'getcontentlength'), name(DAV, 'getetag'), name(DAV, 'resourcetype')] }, true],
  ['fixed values only', { kind: 'prop', names: [name(DAV, 'getcontenttype'), name('urn:x-example', 'colour')] }, true],
  ['getlastmodified', { kind: 'prop', names: [name(DAV, 'getetag'), name(DAV, 'getlastmodified')] }, false],
  ['allprop', { kind: 'allprop', include: [] }, false],
  ['propname', { kind: 'propname' }, false],
];

describe.each(LAYOUT_REQUESTS)('stored layout, %s', (_label, request, stored) => {
  const context: PropertyContext = { user: alice, maxResourceSize: 1_000_000, access: 'read' };
  const base = '/dav/addressbooks/alice/contacts/';

  test.each([false, true])('minimal %s gives the template bytes', (minimal) => {
    const layout = changeLayout(context, alice, request, minimal, base);
    if (!stored) {
      expect(layout).toBeUndefined();
      return;
    }
    expect(layout).toBeDefined();
    const write = cardWriter(context, alice, request, minimal, 'encoded');
    for (const card of [...cards, { ...cards[0], name: 'Zoë <1>.vcf' }]) {
      expect(Buffer.from(filled(layout!.card, pathSegment(card.name), card))).toEqual(written(write, base + pathSegment(card.name), card));
    }
    const [before, after] = layout!.removed;
    expect(before + pathSegment(cards[1].name) + after).toBe(statusResponseXml(base + pathSegment(cards[1].name), 404));
  });
});

const REPORT_LAYOUT_REQUESTS: [string, PropRequest, boolean][] = [
  ...LAYOUT_REQUESTS,
  ['address data and getetag', { kind: 'prop', names: [name(CARDDAV, 'address-data'), name(DAV, 'getetag')] }, true],
  ['address data alone', { kind: 'prop', names: [name(CARDDAV, 'address-data')] }, true],
  ['address data and getlastmodified', { kind: 'prop', names: [name(CARDDAV, 'address-data'), name(DAV, 'getlastmodified')] }, false],
];

describe.each(REPORT_LAYOUT_REQUESTS)('stored report layout, %s', (_label, request, stored) => {
  const context: PropertyContext = { user: alice, maxResourceSize: 1_000_000, access: 'read' };
  const withData = request.kind === 'prop' && request.names.includes(name(CARDDAV, 'address-data'));
  const xml = 'BEGIN:VCARD&#13;\nFN:Zoë &lt;1&gt; 日本&#13;\nEND:VCARD&#13;\n';

  test.each([false, true])('minimal %s matches the writer', (minimal) => {
    const layout = cardsLayout(context, alice, request, minimal, '', withData);
    if (!stored) {
      expect(layout).toBeUndefined();
      return;
    }
    expect(layout).toBeDefined();
    expect(layout!.card.fields.includes('xml')).toBe(withData);
    const write = cardWriter(context, alice, request, minimal);
    for (const href of ['/dav/addressbooks/alice/contacts/a.vcf', 'http://host/dav/addressbooks/alice/contacts/Zoë <1> & 2.vcf']) {
      const expected = written(write, href, cards[0], withData ? Buffer.from(xml) : undefined);
      expect(Buffer.from(filled(layout!.card, escapeXml(href), cards[0], xml))).toEqual(expected);
      const [before, after] = layout!.missing;
      expect(before + escapeXml(href) + after).toBe(statusResponseXml(href, 404));
    }
  });

  test.each([false, true])('minimal %s with the book href', (minimal) => {
    const base = '/dav/addressbooks/alice/contacts/';
    const layout = cardsLayout(context, alice, request, minimal, base, withData);
    expect(layout === undefined).toBe(!stored);
    if (!layout) return;
    const write = cardWriter(context, alice, request, minimal);
    const expected = written(write, `${base}a.vcf`, cards[0], withData ? Buffer.from(xml) : undefined);
    expect(Buffer.from(filled(layout.card, 'a.vcf', cards[0], xml))).toEqual(expected);
    const [before, after] = layout.missing;
    expect(before + 'a.vcf' + after).toBe(statusResponseXml(`${base}a.vcf`, 404));
  });
});

test('no stored layout under a collection href with markup', () => {
  const context: PropertyContext = { user: alice, maxResourceSize: 1_000_000 };
  expect(changeLayout(context, alice, { kind: 'prop', names: [name(DAV, 'getetag')] }, false, '/dav/addressbooks/alice/a&b/')).toBeUndefined();
});

test('marker character in a user name', () => {
  const odd: User = { ...alice, name: 'al\uE000ice\uE001' };
  const context: PropertyContext = { user: odd, maxResourceSize: 1_000_000 };
  const request: PropRequest = { kind: 'prop', names: [name(DAV, 'owner'), name(DAV, 'getetag'), name(DAV, 'current-user-principal')] };
  const href = '/dav/addressbooks/x/contacts/a.vcf';
  const xml = written(cardWriter(context, odd, request, false), href, cards[0]).toString();
  expect(xml).toBe(cardResponse(context, odd, href, cards[0], request, false));
  expect(xml).toContain('<d:getetag>"0123abcd"</d:getetag>');
  const data = 'FN:Zoë';
  const withData: PropRequest = { ...request, names: [...request.names, name(CARDDAV, 'address-data')] };
  const write = cardWriter(context, odd, withData, false);
  expect(written(write, href, cards[0], Buffer.from(data))).toEqual(Buffer.from(cardResponse(context, odd, href, cards[0], withData, false, data)));
});

test('member hrefs of a plain collection are copied', () => {
  expect(memberHrefs('/dav/addressbooks/alice/contacts/')).toBe('encoded');
});

test('member hrefs of a collection with markup are escaped', () => {
  const base = '/dav/addressbooks/alice/a&b/';
  expect(memberHrefs(base)).toBe('client');
  const context: PropertyContext = { user: alice, maxResourceSize: 1_000_000 };
  const request: PropRequest = { kind: 'prop', names: [name(DAV, 'getetag')] };
  const xml = written(cardWriter(context, alice, request, false, memberHrefs(base)), `${base}a.vcf`, cards[0]).toString();
  expect(xml).toContain('<d:href>/dav/addressbooks/alice/a&amp;b/a.vcf</d:href>');
});

describe('pieces of bytes', () => {
  test('order and UTF-8 across text runs', () => {
    const out = new ByteChunks();
    const expected: Buffer[] = [];
    const add = (value: string | Buffer) => {
      if (typeof value === 'string') out.text(value);
      else out.bytes(value);
      expected.push(typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
    };
    // Runs longer than the text that is collected before encoding, with letters of two, three and four bytes.
    for (let i = 0; i < 3000; i++) add(`<d:href>/dav/ä/${i}/日本/🙂</d:href>`);
    add(Buffer.from('BEGIN:VCARD&#13;\n'));
    add('ü');
    add(Buffer.alloc(0));
    add('');
    const piece = out.take();
    expect(piece).toEqual(Buffer.concat(expected));
    expect(out.take()).toBeUndefined();
  });

  test('full at PIECE_LIMIT bytes', () => {
    const out = new ByteChunks();
    const block = Buffer.alloc(64 * 1024, 0x61);
    let added = 0;
    while (!out.full) {
      out.bytes(block);
      added += block.length;
    }
    expect(added).toBe(PIECE_LIMIT);
    out.text('x');
    const piece = out.take()!;
    expect(piece.length).toBe(PIECE_LIMIT + 1);
    expect(out.full).toBe(false);
  });
});
