import { parseContentLine, serializeLines, splitLines, unfoldBytes } from './contentline';

/** What a client asked for in CARDDAV:address-data (RFC 6352 section 10.4). */
export interface AddressDataRequest {
  contentType: string;
  version?: string;
  /** Upper-case property names to return; undefined returns every property. */
  props?: { name: string; novalue: boolean }[];
}

/** Properties every partial card keeps, so it is still a vCard a client can read. */
const ALWAYS_KEPT = new Set(['BEGIN', 'END', 'VERSION']);

/**
 * Returns the card text for an address-data request. The stored bytes are
 * returned untouched unless the client asked for a subset of properties.
 */
export function renderAddressData(data: Buffer, request: AddressDataRequest): string {
  // TODO: convert between vCard 3.0 and 4.0 when `request.version` differs from the stored card; the stored version is returned for now.
  if (!request.props) return data.toString('utf8');
  const wanted = new Map(request.props.map((p) => [p.name, p.novalue]));
  const lines = splitLines(unfoldBytes(data).toString('utf8'));
  const kept: string[] = [];
  for (const line of lines) {
    let parsed;
    try {
      parsed = parseContentLine(line);
    } catch {
      continue;
    }
    if (ALWAYS_KEPT.has(parsed.name)) kept.push(line);
    else if (wanted.has(parsed.name)) {
      kept.push(wanted.get(parsed.name) ? line.slice(0, line.indexOf(':', line.indexOf(parsed.name)) + 1) : line);
    }
  }
  return serializeLines(kept).toString('utf8');
}
