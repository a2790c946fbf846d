/**
 * Escaping of element content: the shortcut for text whose only special
 * character is CR gives what the full escaping gives.
 */
import { escapeXml } from '../../dav/xml';

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
