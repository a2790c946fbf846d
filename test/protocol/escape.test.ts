/**
 * Escaping of element content: the shortcut for text whose only special
 * character is CR gives what the full escaping gives.
 */
import fc from 'fast-check';
import { byteString, escapeXml, escapeXmlBytes } from '../../vcard/xmltext';

describe('escapeXml', () => {
  test.each([
    ['plain text', 'Ada Lovelace', 'Ada Lovelace'],
    ['CR only', 'BEGIN:VCARD\r\nFN:Ada\r\nEND:VCARD\r\n', 'BEGIN:VCARD&#13;\nFN:Ada&#13;\nEND:VCARD&#13;\n'],
    ['CR and markup', 'NOTE:a<b & c>d\r\n', 'NOTE:a&lt;b &amp; c&gt;d&#13;\n'],
    ['markup without CR', 'x & y', 'x &amp; y'],
    ['forbidden characters dropped', 'a\u0001b\r\n\uFFFEc', 'ab&#13;\nc'],
    ['non-ASCII with CR', 'FN:Zoë 日本\r\n', 'FN:Zoë 日本&#13;\n'],
  ])('%s', (_label, input, expected) => {
    expect(escapeXml(input)).toBe(expected);
  });
});

describe('escapeXmlBytes', () => {
  /** The bytes escapeXml gives for the text that data decodes to. */
  const expected = (data: Buffer) => Buffer.from(escapeXml(data.toString('utf8')), 'utf8');
  const actual = (data: Buffer) => Buffer.from(escapeXmlBytes(data), 'latin1');

  test.each([
    ['CR only', 'BEGIN:VCARD\r\nFN:Ada\r\nEND:VCARD\r\n'],
    ['Apple label', 'item1.X-ABLabel:_$!<HomePage>!$_\r\n'],
    ['ampersand', 'ORG:Smith & Sons\r\n'],
    ['non-ASCII', 'FN:Zoë 日本 Ελένη 🎉\r\n'],
    ['forbidden characters', 'NOTE:a\u0001b\u001fc\uFFFEd\uFFFF\r\n'],
    ['U+FFFE alone', 'NOTE:a\uFFFEb & c\r\n'],
    ['U+FFFF alone', 'NOTE:a\uFFFFb & c\r\n'],
    ['a C0 control alone', 'NOTE:a\u000Bb & c\r\n'],
    ['empty', ''],
  ])('%s', (_label, input) => {
    const data = Buffer.from(input, 'utf8');
    expect(actual(data)).toEqual(expected(data));
  });

  test('invalid UTF-8 decoded as escapeXml would', () => {
    const data = Buffer.from([0x46, 0x4e, 0x3a, 0xc3, 0x28, 0xff, 0x0d, 0x0a]);
    expect(actual(data)).toEqual(expected(data));
  });

  test('any text gives the bytes of escapeXml', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const data = Buffer.from(text, 'utf8');
        expect(actual(data)).toEqual(expected(data));
      }),
      { seed: 6352, numRuns: 2000 },
    );
  });

  test('any bytes give the bytes of escapeXml', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const data = Buffer.from(bytes);
        expect(actual(data)).toEqual(expected(data));
      }),
      { seed: 6352, numRuns: 2000 },
    );
  });

  test('byteString keeps the UTF-8 bytes of any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        expect(Buffer.from(byteString(text), 'latin1')).toEqual(Buffer.from(text, 'utf8'));
      }),
      { seed: 6352, numRuns: 2000 },
    );
  });
});
