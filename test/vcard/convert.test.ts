/**
 * vCard 3.0 and 4.0 conversion: round trips over cards in the shapes clients
 * write, compared property by property, and the mappings one at a time.
 */
import ICAL from 'ical.js';
import type { ContentLine } from '../../vcard/contentline';
import { parseContentLine, splitLines, unfoldBytes } from '../../vcard/contentline';
import { ConversionError, convertCard } from '../../vcard/convert';
import { normalize } from './compare';
import { CARDS_30, CARDS_40, JPEG_BASE64, PARAMS_40_ONLY, PNG_BASE64 } from './corpus';

function parse(text: string | Buffer): ContentLine[] {
  const data = typeof text === 'string' ? Buffer.from(text) : text;
  return splitLines(unfoldBytes(data).toString('utf8')).map(parseContentLine);
}

function convert(text: string, target: '3.0' | '4.0'): string {
  return convertCard(Buffer.from(text), target).toString('utf8');
}

/** Unfolded content lines of a card, for assertions on single lines. */
function lines(text: string): string[] {
  return splitLines(unfoldBytes(Buffer.from(text)).toString('utf8'));
}

describe('round trip 3.0 to 4.0 to 3.0', () => {
  test.each(CARDS_30)('$client', ({ text }) => {
    const there = convert(text, '4.0');
    const back = convert(there, '3.0');
    expect(normalize(parse(back))).toEqual(normalize(parse(text)));
    expect(lines(there)).toContain('VERSION:4.0');
    expect(lines(back)).toContain('VERSION:3.0');
  });
});

describe('round trip 4.0 to 3.0 to 4.0', () => {
  test.each(CARDS_40)('$client', ({ text }) => {
    const there = convert(text, '3.0');
    const back = convert(there, '4.0');
    expect(normalize(parse(back))).toEqual(normalize(parse(text)));
  });
});

describe('3.0 renderings', () => {
  const rendered = [...CARDS_40.map(({ client, text }) => ({ client, text: convert(text, '3.0') })), ...CARDS_30];

  test.each(rendered)('$client has no quoted TYPE', ({ text }) => {
    for (const line of lines(text)) expect(line).not.toMatch(/TYPE="/i);
  });

  test.each(rendered)('$client has only 3.0 parameters', ({ text }) => {
    for (const line of parse(text)) {
      for (const param of line.params) expect(['TYPE', 'VALUE', 'ENCODING', 'LANGUAGE', 'CHARSET'].includes(param.name) || param.name.startsWith('X-')).toBe(true);
    }
  });

  test.each(rendered)('$client parses with ical.js', ({ text }) => {
    const jcard = ICAL.parse(text) as unknown[];
    expect(jcard[0]).toBe('vcard');
  });
});

describe('4.0 renderings', () => {
  test.each(CARDS_30)('$client parses with ical.js', ({ text }) => {
    const jcard = ICAL.parse(convert(text, '4.0')) as [string, [string, Record<string, unknown>, string, unknown][]];
    expect(jcard[1].find((property) => property[0] === 'version')?.[3]).toBe('4.0');
  });
});

describe('downgrade of 4.0-only parameters', () => {
  const output = lines(convert(PARAMS_40_ONLY, '3.0'));

  test('writes VERSION 3.0', () => {
    expect(output).toContain('VERSION:3.0');
  });

  test('drops JSCOMPS and SORT-AS', () => {
    expect(output).toContain('N:示例;张;;;');
  });

  test('maps PREF and drops PID', () => {
    expect(output).toContain('EMAIL;TYPE=pref:zhang@example.com');
  });

  test('keeps FN in UTF-8', () => {
    expect(output).toContain('FN:张 示例');
  });
});

describe('3.0 to 4.0 mappings', () => {
  const card30 = (...body: string[]) => ['BEGIN:VCARD', 'VERSION:3.0', 'FN:Test Person', ...body, 'END:VCARD'].join('\r\n') + '\r\n';
  const to40 = (...body: string[]) => lines(convert(card30(...body), '4.0'));

  test('TYPE=pref becomes PREF=1', () => {
    expect(to40('item1.EMAIL;type=INTERNET;type=pref:a@example.com')).toContain('item1.EMAIL;TYPE=INTERNET;PREF=1:a@example.com');
  });

  test('inline photo becomes a data: URI', () => {
    expect(to40(`PHOTO;ENCODING=b;TYPE=JPEG:${JPEG_BASE64}`)).toContain(`PHOTO:data:image/jpeg;base64,${JPEG_BASE64}`);
  });

  test('photo without TYPE is sniffed', () => {
    expect(to40(`PHOTO;ENCODING=BASE64:${PNG_BASE64}`)).toContain(`PHOTO:data:image/png;base64,${PNG_BASE64}`);
  });

  test('Apple year-less birthday', () => {
    expect(to40('BDAY;X-APPLE-OMIT-YEAR=1604:1604-03-15')).toContain('BDAY;X-APPLE-OMIT-YEAR=1604:--0315');
  });

  test('year-less birthday with dashes', () => {
    expect(to40('BDAY:--03-15')).toContain('BDAY:--0315');
  });

  test('full birthday', () => {
    expect(to40('BDAY:1985-03-15')).toContain('BDAY:19850315');
  });

  test('Apple group kind and members', () => {
    const output = to40('X-ADDRESSBOOKSERVER-KIND:group', 'X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:abc');
    expect(output).toContain('KIND:group');
    expect(output).toContain('MEMBER:urn:uuid:abc');
  });

  test('organisation kind', () => {
    expect(to40('X-ADDRESSBOOKSERVER-KIND:org')).toContain('KIND:org');
  });

  test('LABEL joins its ADR', () => {
    const output = to40('ADR;TYPE=WORK:;;1 Road;Town;;1;Land', 'LABEL;TYPE=WORK:1 Road\\nTown');
    expect(output).toContain('ADR;TYPE=WORK;LABEL=1 Road^nTown:;;1 Road;Town;;1;Land');
    expect(output.some((line) => line.startsWith('LABEL'))).toBe(false);
  });

  test('LABEL without ADR stays', () => {
    expect(to40('LABEL;TYPE=HOME:Somewhere')).toContain('LABEL;TYPE=HOME:Somewhere');
  });

  test('X- properties and groups are kept', () => {
    const output = to40('item5.X-ABLabel:_$!<Other>!$_', 'X-CUSTOM;X-PARAM=1:value\\, more');
    expect(output).toContain('item5.X-ABLabel:_$!<Other>!$_');
    expect(output).toContain('X-CUSTOM;X-PARAM=1:value\\, more');
  });

  test('CHARSET is dropped', () => {
    expect(to40('NOTE;CHARSET=UTF-8:Hi')).toContain('NOTE:Hi');
  });

  test('same version returns stored bytes', () => {
    const text = card30('EMAIL;type=INTERNET;type=HOME:a@example.com');
    expect(convert(text, '3.0')).toBe(text);
  });
});

describe('4.0 to 3.0 mappings', () => {
  const card40 = (...body: string[]) => ['BEGIN:VCARD', 'VERSION:4.0', 'FN:Test Person', ...body, 'END:VCARD'].join('\r\n') + '\r\n';
  const to30 = (...body: string[]) => lines(convert(card40(...body), '3.0'));

  test('data: photo becomes ENCODING=b', () => {
    expect(to30(`PHOTO:data:image/png;base64,${PNG_BASE64}`)).toContain(`PHOTO;ENCODING=b;TYPE=PNG:${PNG_BASE64}`);
  });

  test('photo URL keeps VALUE=uri', () => {
    expect(to30('PHOTO;MEDIATYPE=image/jpeg:https://example.com/a.jpg')).toContain('PHOTO;VALUE=uri;TYPE=JPEG:https://example.com/a.jpg');
  });

  test('percent-encoded data: URI is base64-encoded', () => {
    expect(to30('KEY:data:text/plain,hello%20key')).toContain(`KEY;ENCODING=b;TYPE=PLAIN:${Buffer.from('hello key').toString('base64')}`);
  });

  test('data: URI without comma cannot convert', () => {
    expect(() => convert(card40('PHOTO:data:image/png;base64'), '3.0')).toThrow(ConversionError);
  });

  test('quoted TYPE list is split', () => {
    expect(to30('TEL;TYPE="voice,home":+1 555 0100')).toContain('TEL;TYPE=voice,home:+1 555 0100');
  });

  test('tel: URI becomes text', () => {
    expect(to30('TEL;VALUE=uri;TYPE=cell:tel:+1-555-0100')).toContain('TEL;TYPE=cell:+1-555-0100');
  });

  test('PREF=1 joins TYPE', () => {
    expect(to30('EMAIL;TYPE=work;PREF=1:a@example.com')).toContain('EMAIL;TYPE=work,pref:a@example.com');
  });

  test('other PREF values are dropped', () => {
    expect(to30('EMAIL;PREF=2:a@example.com')).toContain('EMAIL:a@example.com');
  });

  test('year-less birthday', () => {
    expect(to30('BDAY:--0412')).toContain('BDAY:--04-12');
  });

  test('year-less birthday for Apple', () => {
    expect(to30('BDAY;X-APPLE-OMIT-YEAR=1604:--0412')).toContain('BDAY;X-APPLE-OMIT-YEAR=1604:1604-04-12');
  });

  test('anniversary date', () => {
    expect(to30('ANNIVERSARY:20100901')).toContain('ANNIVERSARY:2010-09-01');
  });

  test('date-time birthday', () => {
    expect(to30('BDAY:19531015T231000Z')).toContain('BDAY:1953-10-15T23:10:00Z');
  });

  test('text birthday keeps VALUE=text', () => {
    expect(to30('BDAY;VALUE=text:circa 1800')).toContain('BDAY;VALUE=text:circa 1800');
  });

  test('KIND and MEMBER', () => {
    const output = to30('KIND:group', 'MEMBER:urn:uuid:abc');
    expect(output).toContain('X-ADDRESSBOOKSERVER-KIND:group');
    expect(output).toContain('X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:abc');
  });

  test('ADR LABEL becomes a LABEL property', () => {
    const output = to30('item2.ADR;TYPE=home;LABEL="1 Road\\nTown":;;1 Road;Town;;1;Land');
    expect(output).toContain('item2.ADR;TYPE=home:;;1 Road;Town;;1;Land');
    expect(output).toContain('item2.LABEL;TYPE=home:1 Road\\nTown');
  });

  test('ALTID and CLIENTPIDMAP are dropped', () => {
    const output = to30('CLIENTPIDMAP:1;urn:uuid:x', 'TITLE;ALTID=1;LANGUAGE=en:Boss');
    expect(output).toContain('TITLE;LANGUAGE=en:Boss');
    expect(output.some((line) => line.startsWith('CLIENTPIDMAP'))).toBe(false);
  });

  test('non-TYPE parameter with a separator is quoted', () => {
    expect(to30('NOTE;X-SOURCE="a;b":Hi')).toContain('NOTE;X-SOURCE="a;b":Hi');
  });

  test('TZ text and offset', () => {
    expect(to30('TZ:Europe/Rome')).toContain('TZ;VALUE=text:Europe/Rome');
    expect(to30('TZ;VALUE=utc-offset:-0500')).toContain('TZ:-05:00');
  });

  test('GEO URI', () => {
    expect(to30('GEO:geo:41.9,12.5')).toContain('GEO:41.9;12.5');
  });

  test('long lines are folded at 75 octets', () => {
    const output = convertCard(Buffer.from(card40(`PHOTO:data:image/jpeg;base64,${JPEG_BASE64}`)), '3.0').toString('utf8');
    for (const physical of output.split('\r\n')) expect(Buffer.byteLength(physical)).toBeLessThanOrEqual(75);
    expect(lines(output)).toContain(`PHOTO;ENCODING=b;TYPE=JPEG:${JPEG_BASE64}`);
  });
});
