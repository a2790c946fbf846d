/**
 * The 3.0 rendering of a 4.0 card read by python3-vobject, the parser khard
 * uses. vobject 0.9.6.1 reads a 4.0 `PHOTO:data:...` value only up to its
 * first comma, so khard needs the `ENCODING=b` form. The tests are skipped
 * where Debian's python3 has no vobject module (CI installs it with khard).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { convertCard } from '../../vcard/convert';
import { CARDS_40, JPEG_BASE64, PNG_BASE64 } from './corpus';

const PYTHON = '/usr/bin/python3';

function hasVobject(): boolean {
  if (!existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import vobject'], { timeout: 20_000 }).status === 0;
}

/** Parses a card with vobject and returns what khard would read from it. */
function readWithVobject(text: string): { fn: string; photo: string; emails: string[] } {
  const script = [
    'import base64, json, sys, vobject',
    'card = vobject.readOne(sys.stdin.read())',
    'photo = card.photo.value if hasattr(card, "photo") else b""',
    'photo = photo if isinstance(photo, bytes) else photo.encode()',
    'emails = [e.value for e in card.contents.get("email", [])]',
    'print(json.dumps({"fn": card.fn.value, "photo": base64.b64encode(photo).decode(), "emails": emails}))',
  ].join('\n');
  const result = spawnSync(PYTHON, ['-c', script], { input: text, encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) throw new Error(`vobject failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as { fn: string; photo: string; emails: string[] };
}

const describeIfVobject = hasVobject() ? describe : describe.skip;

describeIfVobject('python3-vobject', () => {
  test('reads a converted PNG photo', () => {
    const thunderbird = convertCard(Buffer.from(CARDS_40[2].text), '3.0').toString('utf8');
    const read = readWithVobject(thunderbird);
    expect(read.photo).toBe(PNG_BASE64);
    expect(read.fn).toBe('Lukas Brenner');
  });

  test('reads a converted JPEG photo', () => {
    const davx5 = convertCard(Buffer.from(CARDS_40[0].text), '3.0').toString('utf8');
    const read = readWithVobject(davx5);
    expect(read.photo).toBe(JPEG_BASE64);
    expect(read.emails).toEqual(['amara@example.sn', 'amara.diallo@example.com']);
  });

  test('every 4.0 sample parses as 3.0', () => {
    for (const { text } of CARDS_40) expect(() => readWithVobject(convertCard(Buffer.from(text), '3.0').toString('utf8'))).not.toThrow();
  });
});
