/** jCard (RFC 7095) output and input, checked against ical.js as an independent reader. */
import ICAL from 'ical.js';
import { parseContentLine, splitLines, unfoldBytes } from '../../vcard/contentline';
import { convertCard, convertLines, formatLine, parseCardLines } from '../../vcard/convert';
import { JcardError, jcardToLines, linesToJcard } from '../../vcard/jcard';
import { normalize } from './compare';
import { CARDS_30, CARDS_40, JPEG_BASE64 } from './corpus';

type Property = [string, Record<string, string | string[]>, string, ...unknown[]];

function toJcard(text: string): ['vcard', Property[]] {
  const lines = convertLines(parseCardLines(Buffer.from(text)), '4.0').map((entry) => entry.line);
  return linesToJcard(lines) as ['vcard', Property[]];
}

function fromJcard(jcard: unknown): string {
  return jcardToLines(JSON.stringify(jcard))
    .map((line) => formatLine(line, '4.0'))
    .join('\r\n');
}

function property(jcard: ['vcard', Property[]], name: string): Property {
  const found = jcard[1].find((entry) => entry[0] === name);
  if (!found) throw new Error(`no ${name} in ${JSON.stringify(jcard)}`);
  return found;
}

const SAMPLES = [...CARDS_40, ...CARDS_30];

describe('jCard round trip', () => {
  test.each(SAMPLES)('$client', ({ text }) => {
    const as40 = convertCard(Buffer.from(text), '4.0').toString('utf8');
    const back = fromJcard(toJcard(text));
    const parse = (card: string) => splitLines(unfoldBytes(Buffer.from(card)).toString('utf8')).map(parseContentLine);
    expect(normalize(parse(back))).toEqual(normalize(parse(as40)));
  });
});

describe('jCard read by ical.js', () => {
  test.each(SAMPLES)('$client', ({ text }) => {
    const jcard = toJcard(text);
    const component = new ICAL.Component(jcard as unknown as unknown[]);
    const fn = parseCardLines(Buffer.from(text)).find((line) => line.name === 'FN')!.value;
    expect(component.getFirstPropertyValue('fn')).toBe(fn);
    expect(jcard[1][0][0]).toBe('version');
  });
});

describe('jCard values', () => {
  const jcard = toJcard(CARDS_40[0].text);

  test('structured N is an array', () => {
    expect(property(jcard, 'n')[3]).toEqual(['Diallo', 'Amara', '', '', '']);
  });

  test('dates use the extended format', () => {
    expect(property(jcard, 'bday').slice(2)).toEqual(['date-and-or-time', '--04-12']);
    expect(property(jcard, 'anniversary')[3]).toBe('2010-09-01');
    expect(property(jcard, 'rev').slice(2)).toEqual(['timestamp', '2024-04-08T12:00:00Z']);
  });

  test('photo keeps its data: URI', () => {
    expect(property(jcard, 'photo').slice(2)).toEqual(['uri', `data:image/jpeg;base64,${JPEG_BASE64}`]);
  });

  test('parameters are lower-case keys', () => {
    expect(property(jcard, 'email')[1]).toEqual({ type: 'home', pref: '1' });
  });

  test('LABEL parameter has a line break', () => {
    expect(property(jcard, 'adr')[1].label).toBe('Avenue Exemple 3\nDakar');
  });

  test('X- property is unknown', () => {
    expect(property(jcard, 'x-phonetic-first-name').slice(2)).toEqual(['unknown', 'Ah-ma-ra']);
  });

  test('group is a parameter', () => {
    const grouped = toJcard(CARDS_30[0].text);
    expect(property(grouped, 'x-ablabel')[1]).toEqual({ group: 'item1' });
  });

  test('text lists are separate values', () => {
    const listed = toJcard(CARDS_30[0].text);
    expect(property(listed, 'categories').slice(3)).toEqual(['Work', 'Lab']);
  });

  test('escaped comma in text', () => {
    const noted = toJcard(CARDS_30[0].text);
    expect(property(noted, 'note')[3]).toBe('Prefers e-mail, not calls.\nBack in May.');
  });
});

describe('jCard input', () => {
  test('text needs escaping', () => {
    const text = fromJcard(['vcard', [['version', {}, 'text', '4.0'], ['note', {}, 'text', 'a, b; c\nd']]]);
    expect(text).toContain('NOTE:a\\, b\\; c\\nd');
  });

  test('non-default type adds VALUE', () => {
    const text = fromJcard(['vcard', [['version', {}, 'text', '4.0'], ['bday', {}, 'text', 'circa 1800'], ['tel', {}, 'uri', 'tel:+1']]]);
    expect(text).toContain('BDAY;VALUE=text:circa 1800');
    expect(text).toContain('TEL;VALUE=uri:tel:+1');
  });

  test('group parameter becomes a prefix', () => {
    const text = fromJcard(['vcard', [['version', {}, 'text', '4.0'], ['email', { group: 'item1', type: ['work', 'voice'] }, 'text', 'a@example.com']]]);
    expect(text).toContain('item1.EMAIL;TYPE=work,voice:a@example.com');
  });

  test('invalid JSON', () => {
    expect(() => jcardToLines('["vcard", [')).toThrow(JcardError);
  });

  test('not a vcard array', () => {
    expect(() => jcardToLines('{"fn": "x"}')).toThrow(JcardError);
  });

  test('property without a value', () => {
    expect(() => jcardToLines('["vcard", [["fn", {}, "text"]]]')).toThrow(JcardError);
  });

  test('invalid parameter value', () => {
    expect(() => jcardToLines('["vcard", [["fn", {"x-a": {"b": 1}}, "text", "A"]]]')).toThrow(JcardError);
  });
});
