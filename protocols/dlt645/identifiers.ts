import type { Edition } from './control.js';
import type { ValueFormat } from './formats.js';

/** One data identifier: what it is, how its bytes read, and the canonical point name the station sees. */
export interface DataItem {
  /** 8 hex digits for 2007 (DI3DI2DI1DI0), 4 for 1997 (DI1DI0), most significant first. */
  readonly di: string;
  readonly name: string;
  readonly format: ValueFormat;
  readonly unit?: string;
  /** Canonical point name shared with Modbus meters (device-profiles/README.md). */
  readonly point?: string;
}

const bcd = (bytes: number, decimals: number, signed = false): ValueFormat => ({ kind: 'bcd', bytes, decimals, signed });
const ENERGY = bcd(4, 2);
const ENERGY_SIGNED = bcd(4, 2, true);
const MONEY = bcd(4, 2);
const COUNT3 = bcd(3, 0);
const WORD2: ValueFormat = { kind: 'word', bytes: 2 };
const repeat = (item: ValueFormat): ValueFormat => ({ kind: 'repeat', item });
const ascii = (bytes: number): ValueFormat => ({ kind: 'ascii', bytes });
const digits = (bytes: number): ValueFormat => ({ kind: 'digits', bytes });
const time = (layout: Extract<ValueFormat, { kind: 'time' }>['layout']): ValueFormat => ({ kind: 'time', layout });

const PHASES = ['a', 'b', 'c'] as const;

function items2007(): DataItem[] {
  const items: DataItem[] = [];
  const add = (di: string, name: string, format: ValueFormat, unit?: string, point?: string): void => {
    items.push({ di, name, format, unit, point });
  };

  // Energy (DI3 = 00), DL/T 645-2007 Appendix A Table A.1. Combined registers are signed.
  const energy: [string, string, string, string, boolean][] = [
    ['00', 'combined active energy', 'energy.active.total', 'kWh', true],
    ['01', 'forward active energy', 'energy.active.import', 'kWh', false],
    ['02', 'reverse active energy', 'energy.active.export', 'kWh', false],
    ['03', 'combined reactive energy 1', 'energy.reactive.import', 'kvarh', true],
    ['04', 'combined reactive energy 2', 'energy.reactive.export', 'kvarh', true],
    ['05', 'quadrant I reactive energy', 'energy.reactive.q1', 'kvarh', false],
    ['06', 'quadrant II reactive energy', 'energy.reactive.q2', 'kvarh', false],
    ['07', 'quadrant III reactive energy', 'energy.reactive.q3', 'kvarh', false],
    ['08', 'quadrant IV reactive energy', 'energy.reactive.q4', 'kvarh', false],
    ['09', 'forward apparent energy', 'energy.apparent.import', 'kVAh', false],
    ['0A', 'reverse apparent energy', 'energy.apparent.export', 'kVAh', false],
  ];
  for (const [di2, name, point, unit, signed] of energy) {
    const f = signed ? ENERGY_SIGNED : ENERGY;
    add(`00${di2}0000`, `${name}, total`, f, unit, point);
    for (let t = 1; t <= 4; t++) add(`00${di2}0${t}00`, `${name}, tariff ${t}`, f, unit, `${point}.t${t}`);
    add(`00${di2}FF00`, `${name}, block (total and tariffs)`, repeat(f), unit);
  }
  add('00150000', 'phase A forward active energy', ENERGY, 'kWh', 'energy.active.import.a');
  add('00290000', 'phase B forward active energy', ENERGY, 'kWh', 'energy.active.import.b');
  add('003D0000', 'phase C forward active energy', ENERGY, 'kWh', 'energy.active.import.c');

  // Prepaid balances (State Grid extension of DI3 = 00). Remaining and overdraft are separate unsigned registers.
  add('00900100', 'remaining energy', ENERGY, 'kWh', 'credit.balance.energy');
  add('00900101', 'overdraft energy', ENERGY, 'kWh', 'credit.overdraft.energy');
  add('00900200', 'remaining money', MONEY, 'CNY', 'credit.balance.money');
  add('00900201', 'overdraft money', MONEY, 'CNY', 'credit.overdraft');

  // Max demand (DI3 = 01): value then time of occurrence.
  const demand = (unit: string): ValueFormat => ({
    kind: 'record',
    fields: [
      { name: 'value', format: bcd(3, 4), unit },
      { name: 'at', format: time('YYMMDDhhmm') },
    ],
  });
  add('01010000', 'forward active max demand', demand('kW'), undefined, 'demand.active.import.max');
  add('01020000', 'reverse active max demand', demand('kW'), undefined, 'demand.active.export.max');

  // Instantaneous variables (DI3 = 02), Table A.3. Current, power and PF carry a direction bit.
  const perPhase: [string, string, string, ValueFormat, string][] = [
    ['0201', 'voltage', 'voltage', bcd(2, 1), 'V'],
    ['0202', 'current', 'current', bcd(3, 3, true), 'A'],
    ['0207', 'phase angle', 'angle', bcd(2, 1), 'deg'],
    ['0208', 'voltage distortion', 'thd.voltage', bcd(2, 2), '%'],
    ['0209', 'current distortion', 'thd.current', bcd(2, 2), '%'],
  ];
  for (const [head, name, point, f, unit] of perPhase) {
    for (const [k, ph] of PHASES.entries()) add(`${head}0${k + 1}00`, `phase ${ph.toUpperCase()} ${name}`, f, unit, `${point}.${ph}`);
    add(`${head}FF00`, `${name} block (A, B, C)`, repeat(f), unit);
  }
  const powers: [string, string, string, ValueFormat, string][] = [
    ['0203', 'active power', 'power.active', bcd(3, 4, true), 'kW'],
    ['0204', 'reactive power', 'power.reactive', bcd(3, 4, true), 'kvar'],
    ['0205', 'apparent power', 'power.apparent', bcd(3, 4), 'kVA'],
    ['0206', 'power factor', 'power.factor', bcd(2, 3, true), ''],
  ];
  for (const [head, name, point, f, unit] of powers) {
    add(`${head}0000`, `total ${name}`, f, unit, point);
    for (const [k, ph] of PHASES.entries()) add(`${head}0${k + 1}00`, `phase ${ph.toUpperCase()} ${name}`, f, unit, `${point}.${ph}`);
    add(`${head}FF00`, `${name} block (total, A, B, C)`, repeat(f), unit);
  }
  add('02800001', 'neutral current', bcd(3, 3, true), 'A', 'current.n');
  add('02800002', 'grid frequency', bcd(2, 2), 'Hz', 'frequency');
  add('02800003', 'one-minute average active power', bcd(3, 4, true), 'kW', 'power.active.avg1m');
  add('02800004', 'current active demand', bcd(3, 4, true), 'kW', 'demand.active');
  add('02800005', 'current reactive demand', bcd(3, 4, true), 'kvar', 'demand.reactive');
  add('02800006', 'current apparent demand', bcd(3, 4, true), 'kVA', 'demand.apparent');
  add('02800007', 'meter temperature', bcd(2, 1, true), 'degC', 'temperature');
  add('02800008', 'clock battery voltage', bcd(2, 2), 'V', 'battery.clock');
  add('02800009', 'meter-reading battery voltage', bcd(2, 2), 'V', 'battery.reading');
  add('0280000A', 'internal battery running time', bcd(4, 0), 'min', 'battery.runtime');
  add('0280000B', 'current ladder price', bcd(4, 4), 'CNY/kWh', 'price.ladder');
  add('02800020', 'current price', bcd(4, 4), 'CNY/kWh', 'price.current');
  add('02800021', 'current tariff price', bcd(4, 4), 'CNY/kWh', 'price.tariff');

  // Events (DI3 = 03) and State Grid relay events (1D/1E). Counts are sized by the length byte (meters disagree).
  const lossRecord: ValueFormat = {
    kind: 'record',
    fields: [
      { name: 'count', format: COUNT3 },
      { name: 'minutes', format: COUNT3, unit: 'min' },
    ],
  };
  add('03010000', 'voltage loss count and cumulative time, phases A B C', repeat(lossRecord), undefined, 'events.voltage-loss');
  add('03110000', 'power-down count', COUNT3, '', 'events.power-down.count');
  add('03300000', 'programming count', COUNT3, '', 'events.programming.count');
  add('03300100', 'meter-clear count', COUNT3, '', 'events.meter-clear.count');
  add('03300200', 'demand-clear count', COUNT3, '', 'events.demand-clear.count');
  add('03300300', 'event-clear count', COUNT3, '', 'events.event-clear.count');
  add('03300400', 'time-set count', COUNT3, '', 'events.time-set.count');
  add('03300D00', 'meter cover open count', COUNT3, '', 'events.cover-open.count');
  add('03300E00', 'terminal cover open count', COUNT3, '', 'events.terminal-cover-open.count');
  add('1D000001', 'relay trip count', COUNT3, '', 'events.relay-trip.count');
  add('1E000001', 'relay close count', COUNT3, '', 'events.relay-close.count');

  // Parameters (DI3 = 04), Table A.5.
  add('04000101', 'date and weekday', time('YYMMDDWW'), undefined, 'clock.date');
  add('04000102', 'time', time('hhmmss'), undefined, 'clock.time');
  add('0400010C', 'date, weekday and time', time('YYMMDDWWhhmmss'), undefined, 'clock');
  add('04000103', 'demand period', bcd(1, 0), 'min');
  add('04000401', 'communication address', digits(6), undefined, 'meter.address');
  add('04000402', 'meter number', digits(6), undefined, 'meter.number');
  add('04000403', 'asset number', ascii(32), undefined, 'meter.asset');
  add('04000404', 'rated voltage', ascii(6), undefined, 'meter.rated-voltage');
  add('04000405', 'rated current', ascii(6), undefined, 'meter.rated-current');
  add('04000406', 'maximum current', ascii(6), undefined, 'meter.max-current');
  add('04000407', 'active accuracy class', ascii(4), undefined, 'meter.accuracy');
  add('04000409', 'active constant', bcd(3, 0), 'imp/kWh', 'meter.constant');
  add('0400040B', 'meter model', ascii(10), undefined, 'meter.model');
  add('0400040C', 'production date', ascii(10), undefined, 'meter.production-date');
  add('0400040D', 'protocol version', ascii(16), undefined, 'meter.protocol');
  add('0400040E', 'customer number', digits(6), undefined, 'customer.number');
  for (let w = 1; w <= 7; w++) add(`0400050${w}`, `meter running status word ${w}`, WORD2, undefined, `status.word${w}`);
  add('040005FF', 'meter running status words 1-7', repeat(WORD2));
  for (let port = 1; port <= 5; port++) add(`0400070${port}`, `baud-rate word, port ${port}`, { kind: 'word', bytes: 1 });
  for (const [k, name] of ['alarm energy 1', 'alarm energy 2', 'hoarding energy limit', 'overdraft energy limit'].entries())
    add(`04000F0${k + 1}`, name, ENERGY, 'kWh', `credit.limit.energy.${k + 1}`);
  const moneyLimits: [string, string][] = [
    ['alarm amount 1', 'credit.limit.alarm1'],
    ['alarm amount 2', 'credit.limit.alarm2'],
    ['overdraft amount limit', 'credit.limit.overdraft'],
    ['hoarding amount limit', 'credit.limit.hoarding'],
    ['close-allowed amount', 'credit.limit.close'],
  ];
  for (const [k, [name, point]] of moneyLimits.entries()) add(`0400100${k + 1}`, name, MONEY, 'CNY', point);
  add('04001401', 'trip delay', bcd(2, 0), 'min');
  return items;
}

function items1997(): DataItem[] {
  const items: DataItem[] = [];
  const add = (di: string, name: string, format: ValueFormat, unit?: string, point?: string): void => {
    items.push({ di, name, format, unit, point });
  };
  // DL/T 645-1997 Appendix A. Voltages are whole volts and currents two decimals, unlike 2007.
  add('9010', 'forward active energy, total', ENERGY, 'kWh', 'energy.active.import');
  for (let t = 1; t <= 4; t++) add(`901${t}`, `forward active energy, tariff ${t}`, ENERGY, 'kWh', `energy.active.import.t${t}`);
  add('901F', 'forward active energy, block', repeat(ENERGY), 'kWh');
  add('9020', 'reverse active energy, total', ENERGY, 'kWh', 'energy.active.export');
  add('902F', 'reverse active energy, block', repeat(ENERGY), 'kWh');
  add('9110', 'forward reactive energy, total', ENERGY, 'kvarh', 'energy.reactive.import');
  add('9120', 'reverse reactive energy, total', ENERGY, 'kvarh', 'energy.reactive.export');
  PHASES.forEach((ph, k) => {
    const P = ph.toUpperCase();
    add(`B61${k + 1}`, `phase ${P} voltage`, bcd(2, 0), 'V', `voltage.${ph}`);
    add(`B62${k + 1}`, `phase ${P} current`, bcd(2, 2), 'A', `current.${ph}`);
    add(`B63${k + 1}`, `phase ${P} active power`, bcd(3, 4), 'kW', `power.active.${ph}`);
  });
  add('B630', 'total active power', bcd(3, 4), 'kW', 'power.active');
  add('B640', 'total reactive power', bcd(2, 2), 'kvar', 'power.reactive');
  add('B650', 'total power factor', bcd(2, 3), '', 'power.factor');
  add('C010', 'date and weekday', time('YYMMDDWW'), undefined, 'clock.date');
  add('C011', 'time', time('hhmmss'), undefined, 'clock.time');
  add('C020', 'meter status word', { kind: 'word', bytes: 1 }, undefined, 'status.word1');
  add('C030', 'active constant', bcd(3, 0), 'imp/kWh', 'meter.constant');
  add('C032', 'meter number', digits(6), undefined, 'meter.number');
  add('C033', 'customer number', digits(6), undefined, 'customer.number');
  add('C034', 'device code', digits(6), undefined, 'meter.device-code');
  return items;
}

const TABLE_2007 = new Map<string, DataItem>(items2007().map((i) => [i.di, i]));
const TABLE_1997 = new Map<string, DataItem>(items1997().map((i) => [i.di, i]));

const PURCHASE_FIELDS: [string, string, ValueFormat, string?][] = [
  ['01', 'time', time('YYMMDDhhmm')],
  ['02', 'purchase count after purchase', bcd(2, 0), ''],
  ['03', 'amount', MONEY, 'CNY'],
  ['04', 'balance before', MONEY, 'CNY'],
  ['05', 'balance after', MONEY, 'CNY'],
  ['06', 'cumulative purchased', MONEY, 'CNY'],
];
const PURCHASE_POINTS: Record<string, string> = { '02': 'credit.purchase.count', '03': 'credit.purchase.last.amount' };

/**
 * Look up a data identifier (DL/T 645-2007 Appendix A; 1997 Appendix A). Families with an index byte are
 * generated: settlement periods (000100NN), purchase records (0333xxNN), daily freezes (050600NN, 050601NN, 050602NN),
 * power-down records (031100NN). Unknown identifiers return undefined; callers still decode them as raw bytes.
 */
export function findDataItem(di: string, edition: Edition = '2007'): DataItem | undefined {
  const key = di.toUpperCase();
  if (edition === '1997') return TABLE_1997.get(key);
  const exact = TABLE_2007.get(key);
  if (exact) return exact;
  const head = key.slice(0, 6);
  const n = parseInt(key.slice(6, 8), 16);
  // Energy of earlier settlement periods: the same item with DI0 = 01..0C.
  if (key.startsWith('00') && n >= 1 && n <= 0x0c) {
    const base = TABLE_2007.get(`${head}00`);
    if (base) return { ...base, di: key, name: `${base.name}, ${n} settlement period(s) ago`, point: undefined };
  }
  if (head.startsWith('0333') && n >= 1 && n <= 0x0a) {
    const field = head.slice(4, 6);
    const spec = PURCHASE_FIELDS.find(([id]) => id === field);
    if (spec) {
      const [, name, format, unit] = spec;
      return { di: key, name: `purchase record ${n}: ${name}`, format, unit, point: n === 1 ? PURCHASE_POINTS[field] : undefined };
    }
    if (field === 'FF') {
      const fields = PURCHASE_FIELDS.map(([, name, format, unit]) => ({ name, format, unit }));
      return { di: key, name: `purchase record ${n}`, format: { kind: 'record', fields } };
    }
  }
  if (head === '050600' && n >= 1 && n <= 0x3e) return { di: key, name: `daily freeze ${n}: freeze time`, format: time('YYMMDDhhmm') };
  if (head === '050601' && n >= 1 && n <= 0x3e) {
    return { di: key, name: `daily freeze ${n}: forward active energy (total, tariffs)`, format: repeat(ENERGY), unit: 'kWh' };
  }
  if (head === '050602' && n >= 1 && n <= 0x3e) {
    return { di: key, name: `daily freeze ${n}: reverse active energy (total, tariffs)`, format: repeat(ENERGY), unit: 'kWh' };
  }
  if (head === '031100' && n >= 1 && n <= 0x0a) {
    const fields = [
      { name: 'start', format: time('YYMMDDhhmmss') },
      { name: 'end', format: time('YYMMDDhhmmss') },
    ];
    return { di: key, name: `power-down record ${n}`, format: { kind: 'record', fields } };
  }
  return undefined;
}

/** Find the identifier behind a canonical point name in an edition's table (e.g. `voltage.a` → 02010100). */
export function findDataItemByPoint(point: string, edition: Edition = '2007'): DataItem | undefined {
  const table = edition === '2007' ? TABLE_2007 : TABLE_1997;
  for (const item of table.values()) if (item.point === point) return item;
  if (edition === '2007') {
    if (point === 'credit.purchase.count') return findDataItem('03330201');
    if (point === 'credit.purchase.last.amount') return findDataItem('03330301');
  }
  return undefined;
}

/** Every fixed identifier of an edition, for help texts, docs and tests. */
export function allDataItems(edition: Edition = '2007'): DataItem[] {
  return [...(edition === '2007' ? TABLE_2007 : TABLE_1997).values()];
}

/** Check an identifier's text: 8 hex digits for 2007, 4 for 1997. */
export function isValidDi(di: string, edition: Edition = '2007'): boolean {
  return edition === '2007' ? /^[0-9A-Fa-f]{8}$/.test(di) : /^[0-9A-Fa-f]{4}$/.test(di);
}

/** Identifier text to wire bytes, DI0 first (DL/T 645-2007 §7.4). */
export function diToBytes(di: string): Uint8Array {
  const n = di.length / 2;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = parseInt(di.slice(di.length - 2 - 2 * i, di.length - 2 * i), 16);
  return out;
}

/** Wire bytes (DI0 first) to identifier text, most significant first. */
export function diFromBytes(bytes: Uint8Array): string {
  let s = '';
  for (let i = bytes.length - 1; i >= 0; i--) s += bytes[i]!.toString(16).padStart(2, '0');
  return s.toUpperCase();
}
