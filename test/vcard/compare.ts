/** Property-by-property comparison of cards for round-trip tests. */
import type { ContentLine } from '../../vcard/contentline';
import { toBasicDate } from '../../vcard/convert';

/** 4.0 parameters with no 3.0 meaning, which a 4.0 to 3.0 to 4.0 round trip drops by design. */
const DROPPED_40_PARAMS = new Set(['ALTID', 'PID', 'SORT-AS', 'JSCOMPS', 'CALSCALE', 'INDEX', 'LEVEL', 'CC', 'DERIVED', 'PHONETIC', 'SCRIPT']);
const DATE_PROPERTIES = new Set(['BDAY', 'ANNIVERSARY', 'DEATHDATE', 'REV']);
/** VALUE types that only restate a property's default, and a VALUE that no version defines (Thunderbird's URL). */
const DEFAULT_VALUE_TYPES: Record<string, string[]> = {
  TEL: ['text'],
  BDAY: ['date', 'date-time', 'date-and-or-time'],
  ANNIVERSARY: ['date', 'date-time', 'date-and-or-time'],
  URL: ['url', 'uri'],
};

/**
 * Turns each property into one comparable string. Equivalent spellings compare equal:
 * parameter order and repetition, TYPE case, a VALUE that restates the
 * default, basic or extended dates, a `tel:` URI or plain number, and `\n`
 * or a line break in a LABEL parameter.
 */
export function normalize(lines: ContentLine[]): string[] {
  return lines
    .filter((line) => !['BEGIN', 'END', 'VERSION', 'CLIENTPIDMAP'].includes(line.name))
    .map((line) => {
      const params = new Map<string, string[]>();
      for (const param of line.params) {
        if (DROPPED_40_PARAMS.has(param.name)) continue;
        for (const value of param.values.flatMap((v) => (param.name === 'TYPE' ? v.split(',') : [v]))) {
          let normalized = param.name === 'TYPE' ? value.toLowerCase() : value;
          if (param.name === 'LABEL') normalized = normalized.replace(/\\n/g, '\n');
          if (param.name === 'VALUE' && DEFAULT_VALUE_TYPES[line.name]?.includes(value.toLowerCase())) continue;
          if (param.name === 'PREF' && value !== '1') continue;
          params.set(param.name, [...(params.get(param.name) ?? []), normalized]);
        }
      }
      let value = line.value;
      if (line.name === 'TEL' && params.get('VALUE')?.[0]?.toLowerCase() === 'uri' && /^tel:/i.test(value)) {
        params.delete('VALUE');
        value = value.slice(4);
      }
      if (DATE_PROPERTIES.has(line.name) && !params.get('VALUE')?.includes('text')) value = toBasicDate(value);
      const paramText = [...params]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, list]) => `${name}=${[...new Set(list)].sort().join(',')}`)
        .join(';');
      return `${line.group?.toUpperCase() ?? ''}.${line.name};${paramText}:${value}`;
    })
    .sort();
}
