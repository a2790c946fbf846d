/**
 * Quoted-printable values in prepareCard, and the content-line serializer
 * that writes the decoded properties back: charsets, parameters that need
 * quotes or caret escapes, and values that must not reach the store.
 */
import { formatContentLine, parseContentLine, splitLines, unfoldBytes, type ContentLine } from '../../vcard/contentline';
import { prepareCard, type CardRejection, type PreparedCard } from '../../vcard/pipeline';

function card(lines: string[]): Buffer {
  return Buffer.from(['BEGIN:VCARD', 'VERSION:3.0', 'UID:qp', 'FN:Ada Lovelace', ...lines, 'END:VCARD'].join('\r\n') + '\r\n');
}

function stored(lines: string[]): string[] {
  const result = prepareCard(card(lines));
  if (!result.ok) throw new Error(`the card was rejected: ${result.message}`);
  return splitLines(unfoldBytes(result.data).toString('utf8'));
}

function rejection(lines: string[]): CardRejection {
  const result: PreparedCard | CardRejection = prepareCard(card(lines));
  if (result.ok) throw new Error(`the card was stored: ${result.data.toString('utf8')}`);
  return result;
}

describe('formatContentLine', () => {
  const lines: [string, ContentLine][] = [
    ['plain parameter', { name: 'TEL', params: [{ name: 'TYPE', values: ['cell', 'voice'] }], value: '+1 555 0100' }],
    ['separators in a value', { name: 'NOTE', params: [{ name: 'X-LABEL', values: ['a;b c', 'd:e', 'f,g'] }], value: 'x' }],
    ['double quote', { name: 'NOTE', params: [{ name: 'X-LABEL', values: ['say "hi"'] }], value: 'x' }],
    ['line break and caret', { name: 'NOTE', params: [{ name: 'X-LABEL', values: ['x\nB:v^n'] }], value: 'x' }],
    ['group', { group: 'item1', name: 'EMAIL', params: [], value: 'ada@example.com' }],
  ];

  test.each(lines)('%s round-trips', (_name, line) => {
    const text = formatContentLine(line);
    expect(text).not.toMatch(/[\r\n]/);
    expect(parseContentLine(text)).toEqual(line);
  });

  test('quotes only values that need it', () => {
    const line: ContentLine = { name: 'NOTE', params: [{ name: 'X-LABEL', values: ['a;b c'] }, { name: 'TYPE', values: ['home'] }], value: 'hello' };
    expect(formatContentLine(line)).toBe('NOTE;X-LABEL="a;b c";TYPE=home:hello');
  });
});

describe('prepareCard with quoted-printable', () => {
  test('Latin-1 charset is decoded', () => {
    expect(stored(['NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:caf=E9'])).toContain('NOTE:caf\u00e9');
  });

  test('literal non-ASCII text is kept', () => {
    expect(stored(['NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:\u{1f600} caf=E9'])).toContain('NOTE:\u{1f600} caf\u00e9');
    expect(stored(['NOTE;ENCODING=QUOTED-PRINTABLE:\u{1f600} =F0=9F=98=80'])).toContain('NOTE:\u{1f600} \u{1f600}');
  });

  test('invalid UTF-8 is rejected', () => {
    const result = rejection(['NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:caf=E9']);
    expect(result.condition).toBe('valid-address-data');
    expect(result.message).toMatch(/not valid UTF-8/);
  });

  test('unknown charset is rejected', () => {
    const result = rejection(['NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=X-NO-SUCH-CHARSET:a=41']);
    expect(result.condition).toBe('valid-address-data');
    expect(result.message).toMatch(/X-NO-SUCH-CHARSET/);
  });

  test('line breaks become escapes', () => {
    expect(stored(['NOTE;ENCODING=QUOTED-PRINTABLE:a=0Db=0Ac=0D=0Ad'])).toContain('NOTE:a\\nb\\nc\\nd');
  });

  test('characters XML forbids are dropped', () => {
    expect(stored(['NOTE;ENCODING=QUOTED-PRINTABLE:a=00b=1Bc=EF=BF=BEd'])).toContain('NOTE:abcd');
  });

  test('soft break after a quoted colon', () => {
    expect(stored(['NOTE;X-LABEL="a:b";ENCODING=QUOTED-PRINTABLE:one =', 'two'])).toContain('NOTE;X-LABEL="a:b":one two');
  });

  test('blank UID is rejected', () => {
    const body = Buffer.from(['BEGIN:VCARD', 'VERSION:3.0', 'UID;ENCODING=QUOTED-PRINTABLE:=20', 'FN:Ada', 'END:VCARD', ''].join('\r\n'));
    const result = prepareCard(body);
    expect(result).toEqual({ ok: false, condition: 'valid-address-data', message: 'the card has an empty UID' });
  });

  test('decoded FN is indexed', () => {
    const body = Buffer.from(['BEGIN:VCARD', 'VERSION:3.0', 'UID:x', 'FN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Ren=C3=A9', 'END:VCARD', ''].join('\r\n'));
    const result = prepareCard(body);
    if (!result.ok) throw new Error(result.message);
    expect(result.properties.find((property) => property.name === 'FN')?.value).toBe('Ren\u00e9');
  });
});
