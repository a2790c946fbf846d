/**
 * Cards in the shapes that common clients write, with invented people. The
 * shapes follow what each client is known to put in a card: grouped labels
 * and year-less birthdays from Apple, Google's item labels, Outlook's LABEL
 * and X-MS- properties, ez-vcard output from DAVx5, Thunderbird's data: URI
 * photos, khard's and Evolution's properties.
 */

/** A 1x1 PNG and the first bytes of a JPEG, as base64. */
export const PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
export const JPEG_BASE64 = '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==';

export interface Sample {
  client: string;
  text: string;
}

function card(lines: string[]): string {
  return lines.join('\r\n') + '\r\n';
}

export const CARDS_30: Sample[] = [
  {
    client: 'iOS contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'PRODID:-//Apple Inc.//iPhone OS 17.4//EN',
      'N:Lindqvist;Maja;Elin;;',
      'FN:Maja Elin Lindqvist',
      'ORG:Nordic Example AB;Research',
      'TITLE:Chemist',
      'item1.EMAIL;type=INTERNET;type=HOME;type=pref:maja@example.se',
      'item1.X-ABLabel:_$!<Other>!$_',
      'EMAIL;type=INTERNET;type=WORK:maja.lindqvist@example.com',
      'TEL;type=CELL;type=VOICE;type=pref:+46 70 555 01 01',
      'TEL;type=WORK;type=VOICE:+46 8 555 01 02',
      'item2.ADR;type=HOME;type=pref:;;Exempelgatan 4;Uppsala;;753 10;Sweden',
      'item2.X-ABADR:se',
      'BDAY;X-APPLE-OMIT-YEAR=1604:1604-03-15',
      'item3.X-ABDATE;type=pref:2015-06-20',
      'item3.X-ABLabel:_$!<Anniversary>!$_',
      'item4.X-ABRELATEDNAMES;type=pref:Sven Lindqvist',
      'item4.X-ABLabel:_$!<Spouse>!$_',
      'NOTE:Prefers e-mail\\, not calls.\\nBack in May.',
      `PHOTO;ENCODING=b;TYPE=JPEG;X-ABCROP-RECTANGLE=ABClipRect_1&0&0&1&1&1Mz9sV0Jx:${JPEG_BASE64}`,
      'CATEGORIES:Work,Lab',
      'X-ABUID:6F3C1B2A-0001-4C2B-9C1D-000000000001:ABPerson',
      'UID:6f3c1b2a-0001-4c2b-9c1d-000000000001',
      'REV:2024-04-01T10:20:30Z',
      'END:VCARD',
    ]),
  },
  {
    client: 'macOS group',
    text: card([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'PRODID:-//Apple Inc.//Mac OS X 14.4//EN',
      'N:Choir;;;;',
      'FN:Choir',
      'X-ADDRESSBOOKSERVER-KIND:group',
      'X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:6f3c1b2a-0001-4c2b-9c1d-000000000001',
      'X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:6f3c1b2a-0003-4c2b-9c1d-000000000003',
      'UID:6f3c1b2a-0002-4c2b-9c1d-000000000002',
      'REV:2024-04-02T08:00:00Z',
      'END:VCARD',
    ]),
  },
  {
    client: 'Google contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'FN:Tomás Ferreira',
      'N:Ferreira;Tomás;;;',
      'EMAIL;TYPE=INTERNET;TYPE=HOME:tomas.ferreira@example.pt',
      'TEL;TYPE=CELL:+351 91 555 0103',
      'ADR;TYPE=WORK:;;Rua Exemplo 12;Lisboa;;1100-001;Portugal',
      'ORG:Exemplo Lda',
      'TITLE:Engineer',
      'BDAY:1990-11-05',
      'item1.URL:https\\://www.example.pt/tomas',
      'item1.X-ABLabel:PROFILE',
      'CATEGORIES:myContacts,Starred in Android',
      'NOTE:Met at the conference',
      'UID:3e7b0c1d-0003-4d2a-8a1b-000000000003',
      'END:VCARD',
    ]),
  },
  {
    client: 'Outlook contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'N:Okafor;Chidi;;Dr.;',
      'FN:Dr. Chidi Okafor',
      'ORG:Example Clinic',
      'EMAIL;TYPE=INTERNET;TYPE=WORK;TYPE=PREF:chidi.okafor@example.ng',
      'TEL;TYPE=WORK;TYPE=VOICE:+234 1 555 0104',
      'TEL;TYPE=WORK;TYPE=FAX:+234 1 555 0105',
      'ADR;TYPE=WORK:;;12 Example Close;Lagos;;100001;Nigeria',
      'LABEL;TYPE=WORK:12 Example Close\\nLagos 100001\\nNigeria',
      'X-MS-OL-DEFAULT-POSTAL-ADDRESS:2',
      'X-MS-IMADDRESS:chidi@example.ng',
      'X-ANNIVERSARY:2012-09-01',
      `PHOTO;TYPE=PNG;ENCODING=b:${PNG_BASE64}`,
      'UID:0c1d2e3f-0004-4e5f-8a9b-000000000004',
      'REV:20240405T091500Z',
      'END:VCARD',
    ]),
  },
  {
    client: 'khard contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'PRODID:-//PIMUTILS.ORG//NONSGML khard Version 0.18.0//EN',
      'UID:k7h8a9r0d1k2h3a4r5d6k7h8a9r0d1k2',
      'N:Nakamura;Yui;;;',
      'FN:Yui Nakamura',
      'NICKNAME:Yu',
      'EMAIL;TYPE=HOME:yui@example.jp',
      'TEL;TYPE=CELL:+81 90 5550 0106',
      'BDAY:--04-12',
      'ORG:例示株式会社',
      'X-JABBER:yui@example.jp',
      'END:VCARD',
    ]),
  },
  {
    client: 'Evolution list',
    text: card([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'UID:pas-id-0007',
      'FN:Reading group',
      'N:Reading group;;;;',
      'X-EVOLUTION-LIST:TRUE',
      'X-EVOLUTION-LIST-SHOW-ADDRESSES:TRUE',
      'EMAIL;X-EVOLUTION-DEST-CONTACT-UID=pas-id-0008;X-EVOLUTION-DEST-EMAIL-NUM=0;X-EVOLUTION-DEST-HTML-MAIL=FALSE:Ola Nordmann <ola@example.no>',
      'X-EVOLUTION-FILE-AS:Reading group',
      'REV:2024-04-07T12:00:00Z',
      'END:VCARD',
    ]),
  },
  {
    client: 'CardBook contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'PRODID:-//Thunderbird CardBook//EN',
      'UID:cb000008-0000-4000-8000-000000000008',
      'N:Kowalska;Zofia;;;',
      'FN:Zofia Kowalska',
      'EMAIL;TYPE=WORK:zofia@example.pl',
      'TEL;TYPE=HOME:+48 22 555 0108',
      'GEO:52.2297;21.0122',
      'TZ:+01:00',
      'CATEGORIES:Clients',
      'END:VCARD',
    ]),
  },
];

export const CARDS_40: Sample[] = [
  {
    client: 'DAVx5 contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:4.0',
      'PRODID:ez-vcard 0.12.1',
      'UID:d5a00001-0000-4000-8000-000000000001',
      'FN:Amara Diallo',
      'N:Diallo;Amara;;;',
      'X-PHONETIC-FIRST-NAME:Ah-ma-ra',
      'EMAIL;TYPE=home;PREF=1:amara@example.sn',
      'EMAIL;TYPE=work:amara.diallo@example.com',
      'TEL;TYPE=cell:+221 77 555 0101',
      'ADR;TYPE=work;LABEL="Avenue Exemple 3\\nDakar":;;Avenue Exemple 3;Dakar;;10200;Senegal',
      'IMPP:xmpp:amara@example.sn',
      'BDAY:--0412',
      'ANNIVERSARY:20100901',
      `PHOTO:data:image/jpeg;base64,${JPEG_BASE64}`,
      'REV:20240408T120000Z',
      'END:VCARD',
    ]),
  },
  {
    client: 'DAVx5 group',
    text: card([
      'BEGIN:VCARD',
      'VERSION:4.0',
      'PRODID:ez-vcard 0.12.1',
      'UID:d5a00002-0000-4000-8000-000000000002',
      'KIND:group',
      'FN:Climbing',
      'N:Climbing;;;;',
      'MEMBER:urn:uuid:d5a00001-0000-4000-8000-000000000001',
      'END:VCARD',
    ]),
  },
  {
    client: 'Thunderbird contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:4.0',
      'FN:Lukas Brenner',
      'N:Brenner;Lukas;;;',
      'EMAIL;PREF=1:lukas@example.at',
      'TEL;VALUE=TEXT;TYPE=cell:+43 660 555 0102',
      'BDAY;VALUE=DATE:1985-11-05',
      'NOTE:Line one\\nLine two',
      'URL;VALUE=URL:https://example.at/lukas',
      `PHOTO:data:image/png;base64,${PNG_BASE64}`,
      'X-MOZILLA-HTML:TRUE',
      'UID:7b0c1d2e-0003-4f5a-9b8c-000000000003',
      'END:VCARD',
    ]),
  },
  {
    client: 'Evolution contact',
    text: card([
      'BEGIN:VCARD',
      'VERSION:4.0',
      'UID:pas-id-0009',
      'FN:Ingrid Solberg',
      'N:Solberg;Ingrid;;;',
      'X-EVOLUTION-FILE-AS:Solberg\\, Ingrid',
      'EMAIL;TYPE=work;X-EVOLUTION-UI-SLOT=1:ingrid@example.no',
      'TEL;TYPE=work,voice;X-EVOLUTION-UI-SLOT=1:+47 22 55 50 09',
      'ADR;TYPE=home:;;Eksempelveien 9;Oslo;;0150;Norway',
      'TZ:Europe/Oslo',
      'GEO:geo:59.9139,10.7522',
      'LANG;PREF=1:nb',
      'GENDER:F',
      'REV:20240409T080000Z',
      'END:VCARD',
    ]),
  },
  {
    client: 'server with tel: URIs',
    text: card([
      'BEGIN:VCARD',
      'VERSION:4.0',
      'UID:urn:uuid:0e1f2a3b-0010-4c5d-8e9f-000000000010',
      'KIND:individual',
      'FN:Priya Raman',
      'N:Raman;Priya;;;',
      'item1.EMAIL;TYPE=work:priya@example.in',
      'item1.X-ABLabel:Office',
      'TEL;VALUE=uri;TYPE="voice,home":tel:+91-80-5550-0110',
      'PHOTO;MEDIATYPE=image/jpeg:https://photos.example.in/priya.jpg',
      'CATEGORIES:Family,Close friends',
      'END:VCARD',
    ]),
  },
];

/** A 4.0 card whose N and EMAIL carry JSCOMPS, SORT-AS and PID, which have no meaning in 3.0. */
export const PARAMS_40_ONLY = card([
  'BEGIN:VCARD',
  'VERSION:4.0',
  'UID:urn:uuid:6f1d2c3b-0b03-4a00-9000-00000000b003',
  'FN:张 示例',
  'N;JSCOMPS=";1;0";SORT-AS="Shili":示例;张;;;',
  'EMAIL;PID=1.1;PREF=1:zhang@example.com',
  'END:VCARD',
]);
