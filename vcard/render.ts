import type { ContentLine } from './contentline';
import { cardVersion, ConversionError, convertLines, parseCardLines, serializeCard, VcardVersion } from './convert';
import { JCARD_MEDIA_TYPE, linesToJcard } from './jcard';

/** A property selected by CARDDAV:prop (RFC 6352 section 10.4.2). */
export interface AddressDataProp {
  /** Upper-case group; when absent, the property is selected in any group or none. */
  group?: string;
  /** Upper-case property name. */
  name: string;
  /** Returns the name and parameters with an empty value. */
  novalue: boolean;
}

/** The representation a client requests with CARDDAV:address-data (RFC 6352 section 10.4) or with Accept on GET. */
export interface AddressDataRequest {
  contentType: 'text/vcard' | typeof JCARD_MEDIA_TYPE;
  /** vCard version for text/vcard; undefined keeps the stored version. */
  version?: VcardVersion;
  /** Properties to return; undefined returns every property. */
  props?: AddressDataProp[];
}

export type RenderResult = { ok: true; text: string } | { ok: false; message: string };

/** Lines every partial card keeps, so it is still a vCard a client can read. */
const ALWAYS_KEPT = new Set(['BEGIN', 'END', 'VERSION']);

/** Selects the lines that CARDDAV:prop elements name, and marks the ones returned without a value. */
function selectLines(lines: ContentLine[], props: AddressDataProp[]): { lines: ContentLine[]; novalue: Set<ContentLine> } {
  const selected: ContentLine[] = [];
  const novalue = new Set<ContentLine>();
  for (const line of lines) {
    if (ALWAYS_KEPT.has(line.name)) {
      selected.push(line);
      continue;
    }
    const group = line.group?.toUpperCase();
    const matches = props.filter((prop) => prop.name === line.name && (prop.group === undefined || prop.group === group));
    if (matches.length === 0) continue;
    selected.push(line);
    if (matches.every((prop) => prop.novalue)) novalue.add(line);
  }
  return { lines: selected, novalue };
}

/** Returns whether a request gets every card's stored bytes untouched, whatever the card's version. */
export function keepsStoredBytes(request: AddressDataRequest): boolean {
  return !request.props && request.contentType !== JCARD_MEDIA_TYPE && request.version === undefined;
}

/**
 * Renders the card text for an address-data request. A request for the whole
 * card in its stored version gets the stored bytes untouched. Otherwise the
 * card is parsed, narrowed to the selected properties and converted, and a
 * card that cannot be converted gives `ok: false`.
 */
export function renderAddressData(data: Buffer, request: AddressDataRequest): RenderResult {
  try {
    return { ok: true, text: render(data, request) };
  } catch (error) {
    if (error instanceof ConversionError) return { ok: false, message: error.message };
    throw error;
  }
}

function render(data: Buffer, request: AddressDataRequest): string {
  const jcard = request.contentType === JCARD_MEDIA_TYPE;
  if (keepsStoredBytes(request)) return data.toString('utf8');
  const parsed = parseCardLines(data);
  const stored = cardVersion(parsed);
  const target: VcardVersion = jcard ? '4.0' : (request.version ?? (stored === '4.0' ? '4.0' : '3.0'));
  if (!request.props && !jcard && stored === target) return data.toString('utf8');

  const { lines, novalue } = request.props ? selectLines(parsed, request.props) : { lines: parsed, novalue: new Set<ContentLine>() };
  const converted = convertLines(lines, target).map(({ line, origin }) => (novalue.has(origin) ? { ...line, value: '' } : line));
  if (jcard) return JSON.stringify(linesToJcard(converted));
  return serializeCard(converted, target).toString('utf8');
}
