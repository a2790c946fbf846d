/**
 * Deterministic generator of invented contacts for the benchmark. The same seed and count
 * always give the same cards, byte for byte, so every server gets identical input and runs
 * can be compared across commits.
 *
 * Each card is vCard 3.0 or 4.0 with what real address books contain. That is several EMAIL,
 * TEL and ADR properties with TYPE parameters, and Apple-style grouped properties
 * (`item1.EMAIL` with `item1.X-ABLabel`). Text comes in Latin, Cyrillic, Greek, Arabic, Hebrew,
 * Devanagari, Han, Kana, Hangul and Thai script, and one card in ten has a PHOTO of 2 to 6 KB.
 * The names are random combinations of common given and family names, not real people.
 */

/** One generated card, ready to upload. */
export interface BenchCard {
  uid: string;
  /** The last URL segment of the card, `<uid>.vcf`. */
  name: string;
  version: '3.0' | '4.0';
  /** Formatted name, the FN value. */
  fn: string;
  familyName: string;
  emails: string[];
  /** The card text with CRLF line ends, folded at 75 octets. */
  text: string;
}

/** Mulberry32: a small, fast 32-bit generator whose sequence is fixed by its seed. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  hex(digits: number): string {
    let text = '';
    for (let i = 0; i < digits; i++) text += Math.floor(this.next() * 16).toString(16);
    return text;
  }

  bytes(count: number): Buffer {
    const buffer = Buffer.alloc(count);
    for (let i = 0; i < count; i++) buffer[i] = Math.floor(this.next() * 256);
    return buffer;
  }
}

/** A name in its own script with the ASCII spelling used for e-mail addresses. */
type Name = readonly [native: string, ascii: string];

interface Locale {
  given: readonly Name[];
  family: readonly Name[];
  /** True where the family name comes first in the formatted name (Chinese, Japanese, Korean). */
  familyFirst: boolean;
  /** Separator between the two names in FN. */
  separator: string;
  cities: readonly string[];
  streets: readonly string[];
  country: string;
  /** International dialling code, without the plus sign. */
  dialCode: string;
  organizations: readonly string[];
  titles: readonly string[];
}

const LOCALES: readonly Locale[] = [
  {
    given: [['Emma', 'emma'], ['Oliver', 'oliver'], ['Grace', 'grace'], ['Henry', 'henry'], ['Ruby', 'ruby'], ['Arthur', 'arthur']],
    family: [['Thornbury', 'thornbury'], ['Ashcroft', 'ashcroft'], ['Whitlock', 'whitlock'], ['Pemberton', 'pemberton'], ['Hargreaves', 'hargreaves'], ['Caldwell', 'caldwell']],
    familyFirst: false,
    separator: ' ',
    cities: ['Bristol', 'Leeds', 'Norwich', 'York'],
    streets: ['Mill Lane', 'Church Street', 'Station Road', 'Queen’s Parade'],
    country: 'United Kingdom',
    dialCode: '44',
    organizations: ['Thornbury & Sons Ltd.', 'Northgate Analytics', 'Blue Heron Press'],
    titles: ['Engineer', 'Accountant', 'Head of Sales'],
  },
  {
    given: [['Jürgen', 'juergen'], ['Lena', 'lena'], ['Maximilian', 'maximilian'], ['Sophie', 'sophie'], ['Jörg', 'joerg'], ['Käthe', 'kaethe']],
    family: [['Müller', 'mueller'], ['Schröder', 'schroeder'], ['Weißgerber', 'weissgerber'], ['Krämer', 'kraemer'], ['Lindqvist', 'lindqvist'], ['Großmann', 'grossmann']],
    familyFirst: false,
    separator: ' ',
    cities: ['München', 'Köln', 'Düsseldorf', 'Würzburg'],
    streets: ['Hauptstraße', 'Schloßallee', 'Gartenweg', 'Am Bärenplatz'],
    country: 'Deutschland',
    dialCode: '49',
    organizations: ['Bäckerei Krämer GmbH', 'Weißgerber & Söhne KG', 'Stadtwerke Süd'],
    titles: ['Geschäftsführerin', 'Ingenieur', 'Prüferin'],
  },
  {
    given: [['Élodie', 'elodie'], ['François', 'francois'], ['Hélène', 'helene'], ['Loïc', 'loic'], ['Maëlle', 'maelle'], ['Théo', 'theo']],
    family: [['Lefèvre', 'lefevre'], ['Bérenger', 'berenger'], ['Dubois-Caron', 'dubois-caron'], ['Garçon', 'garcon'], ['Rousseau', 'rousseau'], ['Méliès', 'melies']],
    familyFirst: false,
    separator: ' ',
    cities: ['Lyon', 'Nîmes', 'Besançon', 'Orléans'],
    streets: ['Rue de l’Église', 'Boulevard Saint-Michel', 'Allée des Tilleuls', 'Quai Voltaire'],
    country: 'France',
    dialCode: '33',
    organizations: ['Crêperie Bérenger SARL', 'Éditions du Quai', 'Société Générale de Fret'],
    titles: ['Directrice', 'Comptable', 'Chef de projet'],
  },
  {
    given: [['Zofia', 'zofia'], ['Łukasz', 'lukasz'], ['Małgorzata', 'malgorzata'], ['Wojciech', 'wojciech'], ['Agnieszka', 'agnieszka'], ['Paweł', 'pawel']],
    family: [['Kowalczyk', 'kowalczyk'], ['Wiśniewska', 'wisniewska'], ['Zieliński', 'zielinski'], ['Szymańska', 'szymanska'], ['Woźniak', 'wozniak'], ['Dąbrowski', 'dabrowski']],
    familyFirst: false,
    separator: ' ',
    cities: ['Kraków', 'Gdańsk', 'Łódź', 'Wrocław'],
    streets: ['ulica Długa', 'aleja Róż', 'ulica Żeromskiego', 'plac Świętego Ducha'],
    country: 'Polska',
    dialCode: '48',
    organizations: ['Zakład Usług Śląsk', 'Wydawnictwo Żuraw', 'Piekarnia Dąb'],
    titles: ['Kierowniczka', 'Programista', 'Księgowa'],
  },
  {
    given: [['Ayşe', 'ayse'], ['Mehmet', 'mehmet'], ['Çağla', 'cagla'], ['Oğuz', 'oguz'], ['Şebnem', 'sebnem'], ['İlker', 'ilker']],
    family: [['Yıldırım', 'yildirim'], ['Öztürk', 'ozturk'], ['Çelik', 'celik'], ['Şahin', 'sahin'], ['Güneş', 'gunes'], ['Aydın', 'aydin']],
    familyFirst: false,
    separator: ' ',
    cities: ['İstanbul', 'İzmir', 'Eskişehir', 'Muğla'],
    streets: ['Atatürk Caddesi', 'Çiçek Sokağı', 'Gül Sokak', 'İstiklal Caddesi'],
    country: 'Türkiye',
    dialCode: '90',
    organizations: ['Öztürk Tekstil A.Ş.', 'Güneş Yazılım', 'Çınar Lojistik'],
    titles: ['Mühendis', 'Satış Müdürü', 'Avukat'],
  },
  {
    given: [['Nguyễn Thị', 'thi'], ['Minh', 'minh'], ['Phương', 'phuong'], ['Đức', 'duc'], ['Hương', 'huong'], ['Quốc', 'quoc']],
    family: [['Trần', 'tran'], ['Phạm', 'pham'], ['Lê', 'le'], ['Hoàng', 'hoang'], ['Võ', 'vo'], ['Đặng', 'dang']],
    familyFirst: true,
    separator: ' ',
    cities: ['Hà Nội', 'Đà Nẵng', 'Huế', 'Cần Thơ'],
    streets: ['Đường Lê Lợi', 'Phố Hàng Bạc', 'Đường Trần Hưng Đạo', 'Ngõ Huế'],
    country: 'Việt Nam',
    dialCode: '84',
    organizations: ['Công ty Sông Hồng', 'Nhà sách Phương Nam', 'Cà phê Đặng'],
    titles: ['Kỹ sư', 'Giám đốc', 'Kế toán'],
  },
  {
    given: [['Анастасия', 'anastasia'], ['Дмитрий', 'dmitry'], ['Екатерина', 'ekaterina'], ['Сергей', 'sergey'], ['Юлия', 'yulia'], ['Олег', 'oleg']],
    family: [['Воронцова', 'vorontsova'], ['Кузнецов', 'kuznetsov'], ['Соколова', 'sokolova'], ['Лебедев', 'lebedev'], ['Жукова', 'zhukova'], ['Щербаков', 'shcherbakov']],
    familyFirst: false,
    separator: ' ',
    cities: ['Новосибирск', 'Казань', 'Ярославль', 'Самара'],
    streets: ['улица Ленина', 'Невский проспект', 'Садовая улица', 'переулок Чехова'],
    country: 'Россия',
    dialCode: '7',
    organizations: ['ООО «Северный ветер»', 'Издательство «Жук»', 'Завод «Сокол»'],
    titles: ['Инженер', 'Бухгалтер', 'Руководитель отдела'],
  },
  {
    given: [['Олена', 'olena'], ['Тарас', 'taras'], ['Ірина', 'iryna'], ['Богдан', 'bohdan'], ['Ганна', 'hanna'], ['Євген', 'yevhen']],
    family: [['Шевчук', 'shevchuk'], ['Коваленко', 'kovalenko'], ['Ґудзь', 'gudz'], ['Їжакевич', 'yizhakevych'], ['Мельник', 'melnyk'], ['Бондар', 'bondar']],
    familyFirst: false,
    separator: ' ',
    cities: ['Київ', 'Львів', 'Харків', 'Одеса'],
    streets: ['вулиця Хрещатик', 'проспект Свободи', 'вулиця Франка', 'бульвар Шевченка'],
    country: 'Україна',
    dialCode: '380',
    organizations: ['ТОВ «Ґанок»', 'Видавництво «Їжак»', 'Пекарня «Колос»'],
    titles: ['Інженерка', 'Юрист', 'Менеджер'],
  },
  {
    given: [['Ελένη', 'eleni'], ['Γιώργος', 'giorgos'], ['Δήμητρα', 'dimitra'], ['Νίκος', 'nikos'], ['Σοφία', 'sofia'], ['Κώστας', 'kostas']],
    family: [['Παπαδοπούλου', 'papadopoulou'], ['Οικονόμου', 'oikonomou'], ['Γεωργίου', 'georgiou'], ['Αλεξίου', 'alexiou'], ['Νικολάου', 'nikolaou'], ['Σταθόπουλος', 'stathopoulos']],
    familyFirst: false,
    separator: ' ',
    cities: ['Αθήνα', 'Θεσσαλονίκη', 'Πάτρα', 'Ηράκλειο'],
    streets: ['Οδός Ερμού', 'Λεωφόρος Αλεξάνδρας', 'Οδός Αιόλου', 'Πλατεία Συντάγματος'],
    country: 'Ελλάδα',
    dialCode: '30',
    organizations: ['Ναυτιλιακή Αιγαίου Α.Ε.', 'Εκδόσεις Ωμέγα', 'Φούρνος Σοφίας'],
    titles: ['Μηχανικός', 'Λογίστρια', 'Διευθυντής'],
  },
  {
    given: [['ليلى', 'layla'], ['عمر', 'omar'], ['فاطمة', 'fatima'], ['يوسف', 'yusuf'], ['نور', 'nour'], ['خالد', 'khalid']],
    family: [['الحسيني', 'alhusseini'], ['المصري', 'almasri'], ['العطار', 'alattar'], ['الخطيب', 'alkhatib'], ['النجار', 'alnajjar'], ['الشامي', 'alshami']],
    familyFirst: false,
    separator: ' ',
    cities: ['عمّان', 'الإسكندرية', 'تونس', 'الدار البيضاء'],
    streets: ['شارع الملك فيصل', 'شارع الجامعة', 'طريق البحر', 'حي الزيتون'],
    country: 'الأردن',
    dialCode: '962',
    organizations: ['شركة النخيل للتجارة', 'مكتبة الزيتونة', 'مخبز الشام'],
    titles: ['مهندسة', 'محاسب', 'مديرة المبيعات'],
  },
  {
    given: [['נועה', 'noa'], ['איתי', 'itai'], ['מיכל', 'michal'], ['יונתן', 'yonatan'], ['תמר', 'tamar'], ['אורי', 'uri']],
    family: [['לוינסון', 'levinson'], ['ברקוביץ', 'berkovich'], ['שפירא', 'shapira'], ['אלמוג', 'almog'], ['רוזנטל', 'rosenthal'], ['גולדברג', 'goldberg']],
    familyFirst: false,
    separator: ' ',
    cities: ['חיפה', 'ירושלים', 'באר שבע', 'תל אביב–יפו'],
    streets: ['רחוב הרצל', 'שדרות רוטשילד', 'רחוב הנביאים', 'דרך השלום'],
    country: 'ישראל',
    dialCode: '972',
    organizations: ['אלמוג טכנולוגיות בע״מ', 'הוצאת שפירא', 'מאפיית תמר'],
    titles: ['מהנדסת', 'רואה חשבון', 'מנהל מוצר'],
  },
  {
    given: [['प्रिया', 'priya'], ['अर्जुन', 'arjun'], ['अनन्या', 'ananya'], ['विक्रम', 'vikram'], ['दीपिका', 'deepika'], ['राहुल', 'rahul']],
    family: [['शर्मा', 'sharma'], ['वर्मा', 'verma'], ['चतुर्वेदी', 'chaturvedi'], ['देशपांडे', 'deshpande'], ['त्रिपाठी', 'tripathi'], ['मल्होत्रा', 'malhotra']],
    familyFirst: false,
    separator: ' ',
    cities: ['पुणे', 'जयपुर', 'लखनऊ', 'भोपाल'],
    streets: ['महात्मा गांधी मार्ग', 'नेहरू नगर', 'स्टेशन रोड', 'गली नंबर ४'],
    country: 'भारत',
    dialCode: '91',
    organizations: ['शर्मा एंड संस', 'गंगा सॉफ्टवेयर', 'देशपांडे प्रकाशन'],
    titles: ['अभियंता', 'लेखाकार', 'प्रबंधक'],
  },
  {
    given: [['伟', 'wei'], ['静', 'jing'], ['磊', 'lei'], ['秀英', 'xiuying'], ['建华', 'jianhua'], ['晓明', 'xiaoming']],
    family: [['王', 'wang'], ['李', 'li'], ['张', 'zhang'], ['欧阳', 'ouyang'], ['陈', 'chen'], ['赵', 'zhao']],
    familyFirst: true,
    separator: '',
    cities: ['上海', '成都', '杭州', '西安'],
    streets: ['南京东路', '人民大道', '长安街', '解放路'],
    country: '中国',
    dialCode: '86',
    organizations: ['长江贸易有限公司', '青松软件', '东方书店'],
    titles: ['工程师', '会计', '销售经理'],
  },
  {
    given: [['さくら', 'sakura'], ['翔太', 'shota'], ['陽菜', 'hina'], ['健一', 'kenichi'], ['美咲', 'misaki'], ['拓海', 'takumi']],
    family: [['佐藤', 'sato'], ['鈴木', 'suzuki'], ['高橋', 'takahashi'], ['渡辺', 'watanabe'], ['伊藤', 'ito'], ['山本', 'yamamoto']],
    familyFirst: true,
    separator: ' ',
    cities: ['札幌', '京都', '福岡', '仙台'],
    streets: ['中央通り', '桜町', '本町二丁目', '駅前通り'],
    country: '日本',
    dialCode: '81',
    organizations: ['株式会社サクラ電機', 'ひかり出版', '山本商店'],
    titles: ['エンジニア', '経理', '営業部長'],
  },
  {
    given: [['지민', 'jimin'], ['서연', 'seoyeon'], ['민준', 'minjun'], ['하은', 'haeun'], ['도윤', 'doyun'], ['수아', 'sua']],
    family: [['김', 'kim'], ['이', 'lee'], ['박', 'park'], ['최', 'choi'], ['정', 'jung'], ['강', 'kang']],
    familyFirst: true,
    separator: ' ',
    cities: ['서울', '부산', '대구', '광주'],
    streets: ['세종대로', '해운대로', '동성로', '금남로'],
    country: '대한민국',
    dialCode: '82',
    organizations: ['한빛전자 주식회사', '푸른출판사', '바다물산'],
    titles: ['개발자', '회계사', '영업팀장'],
  },
  {
    given: [['สมชาย', 'somchai'], ['มาลี', 'malee'], ['ประเสริฐ', 'prasert'], ['วิไล', 'wilai'], ['ธนา', 'thana'], ['อรุณี', 'arunee']],
    family: [['ศรีสุข', 'srisuk'], ['วงศ์ใหญ่', 'wongyai'], ['บุญมา', 'boonma'], ['แก้วมณี', 'kaewmanee'], ['ทองดี', 'thongdee'], ['จันทร์เพ็ญ', 'chanpen']],
    familyFirst: false,
    separator: ' ',
    cities: ['เชียงใหม่', 'ภูเก็ต', 'ขอนแก่น', 'หาดใหญ่'],
    streets: ['ถนนสุขุมวิท', 'ถนนนิมมานเหมินท์', 'ซอยงามวงศ์วาน', 'ถนนพระราม ๔'],
    country: 'ประเทศไทย',
    dialCode: '66',
    organizations: ['บริษัท ทองดี จำกัด', 'สำนักพิมพ์มาลี', 'ร้านกาแฟดอย'],
    titles: ['วิศวกร', 'นักบัญชี', 'ผู้จัดการ'],
  },
];

/** Reserved example domains (RFC 2606), so no generated address can reach a real mailbox. */
const DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com', 'corp.example.org'];
const EMAIL_TYPES = ['work', 'home', 'other'] as const;
const TEL_TYPES = [['cell'], ['work', 'voice'], ['home', 'voice'], ['work', 'fax']] as const;
const ADR_TYPES = ['home', 'work'] as const;
const AB_LABELS = ['_$!<Other>!$_', 'Schule', 'Büro Süd', 'Частный', '私用', 'blog'];
const CATEGORIES = ['Family', 'Work', 'Freunde', 'Коллеги', '同事', 'Ομάδα', 'VIP'];

/** Share of cards that carry a PHOTO, and its size range in bytes before base64. */
const PHOTO_SHARE = 0.1;
const PHOTO_MIN_BYTES = 2_000;
const PHOTO_MAX_BYTES = 6_000;
const VCARD4_SHARE = 0.4;
/** Maximum content line length in octets, without the CRLF (RFC 6350 section 3.2). */
const FOLD_OCTETS = 75;

/** Escapes a TEXT value (RFC 6350 section 3.4). */
function escapeText(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/,/g, '\\,').replace(/;/g, '\\;').replace(/\r?\n/g, '\\n');
}

function structured(components: string[]): string {
  return components.map(escapeText).join(';');
}

/** Folds one content line at 75 octets, never inside a UTF-8 sequence. */
export function foldLine(line: string): string {
  if (Buffer.byteLength(line) <= FOLD_OCTETS) return line;
  const parts: string[] = [];
  let current = '';
  let octets = 0;
  // A continuation line starts with a space, which counts towards its 75 octets.
  let limit = FOLD_OCTETS;
  for (const ch of line) {
    const size = Buffer.byteLength(ch);
    if (octets + size > limit) {
      parts.push(current);
      current = '';
      octets = 0;
      limit = FOLD_OCTETS - 1;
    }
    current += ch;
    octets += size;
  }
  parts.push(current);
  return parts.join('\r\n ');
}

/** Builds a stand-in JPEG: the file markers around random bytes, which a CardDAV server stores as is. */
function photoBytes(random: Random): Buffer {
  const body = random.bytes(random.int(PHOTO_MIN_BYTES, PHOTO_MAX_BYTES));
  return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), body, Buffer.from([0xff, 0xd9])]);
}

function uuid(random: Random): string {
  const variant = '89ab'[random.int(0, 3)];
  return `${random.hex(8)}-${random.hex(4)}-4${random.hex(3)}-${variant}${random.hex(3)}-${random.hex(12)}`;
}

function pad(value: number, width = 2): string {
  return String(value).padStart(width, '0');
}

/** A person with every value a card needs, independent of the vCard version. */
interface Person {
  index: number;
  uid: string;
  version: '3.0' | '4.0';
  locale: Locale;
  given: Name;
  family: Name;
  fn: string;
  emails: { address: string; type: string; grouped: boolean }[];
  phones: { number: string; types: readonly string[] }[];
  addresses: { street: string; city: string; postcode: string; type: string }[];
  organization?: string;
  title?: string;
  nickname?: string;
  birthday?: { year: number; month: number; day: number };
  note?: string;
  categories: string[];
  url?: string;
  label: string;
  photo?: Buffer;
  revision: Date;
}

function formattedName(locale: Locale, given: string, family: string): string {
  return locale.familyFirst ? `${family}${locale.separator}${given}` : `${given}${locale.separator}${family}`;
}

function phoneNumber(random: Random, locale: Locale): string {
  return `+${locale.dialCode} ${random.int(20, 99)} ${random.int(100, 999)} ${random.int(1000, 9999)}`;
}

function makePerson(random: Random, index: number): Person {
  const locale = random.pick(LOCALES);
  const given = random.pick(locale.given);
  const family = random.pick(locale.family);

  const emailCount = random.int(1, 3);
  const emails = [];
  for (let i = 0; i < emailCount; i++) {
    // The index makes every address unique, so a query for one address has exactly one match.
    const local = i === 0 ? `${given[1]}.${family[1]}.${index}` : `${given[1][0]}${family[1]}${index}.${i}`;
    emails.push({ address: `${local}@${random.pick(DOMAINS)}`, type: EMAIL_TYPES[i % 3], grouped: i === 2 || random.chance(0.25) });
  }

  const phones = [];
  for (let i = random.int(1, 3); i > 0; i--) phones.push({ number: phoneNumber(random, locale), types: random.pick(TEL_TYPES) });

  const addresses = [];
  for (let i = random.int(1, 2); i > 0; i--) {
    addresses.push({
      street: `${random.pick(locale.streets)} ${random.int(1, 240)}`,
      city: random.pick(locale.cities),
      postcode: String(random.int(10000, 99999)),
      type: ADR_TYPES[i % 2],
    });
  }

  const year = random.int(1950, 2005);
  const revision = new Date(Date.UTC(2024, 0, 1) + random.int(0, 365 * 24 * 3600) * 1000);
  return {
    index,
    uid: uuid(random),
    version: random.chance(VCARD4_SHARE) ? '4.0' : '3.0',
    locale,
    given,
    family,
    fn: formattedName(locale, given[0], family[0]),
    emails,
    phones,
    addresses,
    organization: random.chance(0.6) ? random.pick(locale.organizations) : undefined,
    title: random.chance(0.4) ? random.pick(locale.titles) : undefined,
    nickname: random.chance(0.15) ? given[1] : undefined,
    birthday: random.chance(0.5) ? { year, month: random.int(1, 12), day: random.int(1, 28) } : undefined,
    note: random.chance(0.3) ? `Met at ${random.pick(locale.cities)}, ${year + 20}; likes tea\nCall after 18:00` : undefined,
    categories: random.chance(0.5) ? [random.pick(CATEGORIES), random.pick(CATEGORIES)] : [],
    url: random.chance(0.3) ? `https://www.example.com/~${given[1]}${index}` : undefined,
    label: random.pick(AB_LABELS),
    photo: random.chance(PHOTO_SHARE) ? photoBytes(random) : undefined,
    revision,
  };
}

function revisionText(date: Date, version: '3.0' | '4.0'): string {
  const iso = date.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return version === '4.0' ? iso.replace(/[-:]/g, '') : iso;
}

/** Content lines of a vCard 3.0 rendering (RFC 2426). */
function lines30(person: Person): string[] {
  const lines = ['BEGIN:VCARD', 'VERSION:3.0', 'PRODID:-//Cardinal//benchmark//EN', `UID:${person.uid}`];
  lines.push(`FN:${escapeText(person.fn)}`);
  lines.push(`N:${structured([person.family[0], person.given[0], '', '', ''])}`);
  if (person.nickname) lines.push(`NICKNAME:${escapeText(person.nickname)}`);

  let group = 1;
  for (const email of person.emails) {
    if (email.grouped) {
      lines.push(`item${group}.EMAIL;TYPE=INTERNET:${email.address}`);
      lines.push(`item${group}.X-ABLabel:${escapeText(person.label)}`);
      group++;
    } else {
      lines.push(`EMAIL;TYPE=INTERNET,${email.type.toUpperCase()}:${email.address}`);
    }
  }
  for (const phone of person.phones) lines.push(`TEL;TYPE=${phone.types.map((t) => t.toUpperCase()).join(',')}:${phone.number}`);
  for (const address of person.addresses) {
    const value = structured(['', '', address.street, address.city, '', address.postcode, person.locale.country]);
    lines.push(`ADR;TYPE=${address.type.toUpperCase()}:${value}`);
  }

  if (person.organization) lines.push(`ORG:${structured([person.organization])}`);
  if (person.title) lines.push(`TITLE:${escapeText(person.title)}`);
  if (person.birthday) {
    const { year, month, day } = person.birthday;
    lines.push(`BDAY:${year}-${pad(month)}-${pad(day)}`);
  }

  if (person.url) {
    lines.push(`item${group}.URL:${person.url}`);
    lines.push(`item${group}.X-ABLabel:_$!<HomePage>!$_`);
  }
  if (person.categories.length > 0) lines.push(`CATEGORIES:${person.categories.map(escapeText).join(',')}`);
  if (person.note) lines.push(`NOTE:${escapeText(person.note)}`);
  if (person.photo) lines.push(`PHOTO;ENCODING=b;TYPE=JPEG:${person.photo.toString('base64')}`);

  lines.push(`REV:${revisionText(person.revision, '3.0')}`);
  lines.push('END:VCARD');
  return lines;
}

/** Content lines of a vCard 4.0 rendering (RFC 6350). */
function lines40(person: Person): string[] {
  const lines = ['BEGIN:VCARD', 'VERSION:4.0', 'PRODID:-//Cardinal//benchmark//EN', `UID:urn:uuid:${person.uid}`, 'KIND:individual'];
  lines.push(`FN:${escapeText(person.fn)}`);
  lines.push(`N:${structured([person.family[0], person.given[0], '', '', ''])}`);
  if (person.nickname) lines.push(`NICKNAME:${escapeText(person.nickname)}`);

  let group = 1;
  person.emails.forEach((email, i) => {
    const pref = i === 0 ? ';PREF=1' : '';
    if (email.grouped) {
      lines.push(`item${group}.EMAIL${pref}:${email.address}`);
      lines.push(`item${group}.X-ABLabel:${escapeText(person.label)}`);
      group++;
    } else {
      lines.push(`EMAIL;TYPE=${email.type}${pref}:${email.address}`);
    }
  });
  for (const phone of person.phones) {
    lines.push(`TEL;VALUE=uri;TYPE="${phone.types.join(',')}":tel:${phone.number.replace(/ /g, '-')}`);
  }
  for (const address of person.addresses) {
    const value = structured(['', '', address.street, address.city, '', address.postcode, person.locale.country]);
    lines.push(`ADR;TYPE=${address.type}:${value}`);
  }

  if (person.organization) lines.push(`ORG:${structured([person.organization])}`);
  if (person.title) lines.push(`TITLE:${escapeText(person.title)}`);
  if (person.birthday) {
    const { year, month, day } = person.birthday;
    lines.push(`BDAY:${year}${pad(month)}${pad(day)}`);
  }

  if (person.url) {
    lines.push(`item${group}.URL:${person.url}`);
    lines.push(`item${group}.X-ABLabel:_$!<HomePage>!$_`);
  }
  if (person.categories.length > 0) lines.push(`CATEGORIES:${person.categories.map(escapeText).join(',')}`);
  if (person.note) lines.push(`NOTE:${escapeText(person.note)}`);
  if (person.photo) lines.push(`PHOTO:data:image/jpeg;base64,${person.photo.toString('base64')}`);

  lines.push(`REV:${revisionText(person.revision, '4.0')}`);
  lines.push('END:VCARD');
  return lines;
}

/**
 * Renders a person as a card. `edit` above 0 marks the card as changed by a client: it adds
 * a NOTE line naming the edit and moves REV, and keeps FN, EMAIL and UID as they were.
 */
function renderPerson(person: Person, edit: number): string {
  const lines = person.version === '4.0' ? lines40(person) : lines30(person);
  if (edit > 0) {
    const revision = new Date(person.revision.getTime() + edit * 60_000);
    lines.splice(lines.length - 2, 1, `NOTE:Edit ${edit}\\, made by the benchmark`, `REV:${revisionText(revision, person.version)}`);
  }
  return lines.map(foldLine).join('\r\n') + '\r\n';
}

/** The deterministic card set: the same `count` and `seed` give the same cards. */
export class CardSet {
  readonly cards: BenchCard[];
  private readonly people: Person[];

  constructor(count: number, seed = 20240601) {
    const random = new Random(seed);
    this.people = [];
    this.cards = [];
    for (let index = 0; index < count; index++) {
      const person = makePerson(random, index);
      this.people.push(person);
      this.cards.push({
        uid: person.version === '4.0' ? `urn:uuid:${person.uid}` : person.uid,
        name: `${person.uid}.vcf`,
        version: person.version,
        fn: person.fn,
        familyName: person.family[0],
        emails: person.emails.map((email) => email.address),
        text: renderPerson(person, 0),
      });
    }
  }

  /** Returns the text of card `index` after client edit number `edit` (1, 2, …). */
  edited(index: number, edit: number): string {
    return renderPerson(this.people[index], edit);
  }
}
