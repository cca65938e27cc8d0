import { decodeMeterTime, decodeValue, encodeTime, findDataItemByPoint, type TimeLayout } from '../../../protocols/dlt645/index.js';
import { encodeDigitsOrFf, numberBytes, numberOf } from './bytes.js';
import { centi, reactive } from './energy.js';
import { clockMs, COUNTER_POINTS, supports, type LiveFactory, type MeterState } from './meter-state.js';
import { encodeRegisterValue, resolveIdentifier } from './registers.js';
import { epochOf, meterTimeAt } from './time.js';

/** Status word 1 and 3 bits the simulator computes (docs/reference/dlt645.md § Status words); the other bits come from the seeded word. */
const SW1 = { reversePower: 1 << 4, overdraft: 1 << 14 };
const SW3 = {
  relayOpen: 1 << 4,
  commandTrip: 1 << 6,
  alarm: 1 << 7,
  kwhPrepaid: 1 << 8,
  moneyPrepaid: 1 << 9,
  keepPower: 1 << 12,
  notOpened: 1 << 14,
};
const SW1_MANAGED = SW1.reversePower | SW1.overdraft;
const SW3_MANAGED = Object.values(SW3).reduce((a, b) => a | b, 0);

/**
 * Binds the points a meter computes from its state (energy, instantaneous values, credit, clock, status words,
 * event counts) to their identifiers: a read asks the state, a write or a seed sets it. What is not bound here is
 * a plain register.
 */
export function bindPoints(m: MeterState): void {
  const bind = (point: string, factory: LiveFactory): void => {
    const item = findDataItemByPoint(point, m.edition);
    if (item) m.live.set(item.di, factory(item.format));
  };
  const e = m.energy;
  const computed =
    (get: () => number, why: string): LiveFactory =>
    (f) => ({ read: () => numberBytes(f, get()), notSeedable: why });
  const setting =
    (get: () => number, set: (v: number) => void, master = false): LiveFactory =>
    (f) => ({
      read: () => numberBytes(f, get()),
      write: (bytes) => {
        const v = numberOf(f, bytes);
        if (v === undefined) return false;
        set(v);
        return true;
      },
      master,
    });
  const tariffs = ['', '.t1', '.t2', '.t3', '.t4'];
  tariffs.forEach((suffix, k) => {
    const toWh = (kwh: number) => Math.round(kwh * 100) * 10;
    bind(
      `energy.active.import${suffix}`,
      setting(
        () => centi(e.importWh[k]!),
        (v) => (e.importWh[k] = toWh(v)),
      ),
    );
    bind(
      `energy.active.export${suffix}`,
      setting(
        () => centi(e.exportWh[k]!),
        (v) => (e.exportWh[k] = toWh(v)),
      ),
    );
    // Combined active energy = forward + reverse, the State Grid default combination word.
    bind(
      `energy.active.total${suffix}`,
      computed(() => centi(e.importWh[k]!) + centi(e.exportWh[k]!), 'is forward plus reverse energy; seed those'),
    );
  });
  const phases = ['a', 'b', 'c'] as const;
  phases.forEach((ph, k) => {
    bind(
      `voltage.${ph}`,
      setting(
        () => (k < m.phases ? e.voltage[k]! : 0),
        (v) => (e.voltage[k] = v),
      ),
    );
    bind(
      `current.${ph}`,
      computed(() => e.phaseCurrent(k), 'is computed from powerKw, voltage and power factor; set powerKw'),
    );
    const share = () => (k < m.phases ? e.effectivePowerKw() / m.phases : 0);
    bind(`power.active.${ph}`, computed(share, 'is powerKw shared over the phases; set powerKw'));
    bind(
      `power.reactive.${ph}`,
      computed(() => reactive(share(), e.powerFactor), 'follows from powerKw and power factor'),
    );
    bind(
      `power.apparent.${ph}`,
      computed(() => Math.abs(share()) / (e.powerFactor || 1), 'follows from powerKw and power factor'),
    );
    bind(
      `power.factor.${ph}`,
      computed(() => e.powerFactor, 'is the meter power factor; seed power.factor'),
    );
    bind(
      `energy.active.import.${ph}`,
      computed(() => (k < m.phases ? centi(e.importWh[0]! / m.phases) : 0), 'is the forward energy shared over the phases'),
    );
  });
  bind(
    'current.n',
    computed(() => e.phaseCurrent(0) * e.neutralShare, 'follows the live current; inject a mismatch with setNeutralShare'),
  );
  bind(
    'power.active',
    setting(
      () => e.effectivePowerKw(),
      (v) => (e.powerKw = v),
    ),
  );
  bind(
    'power.reactive',
    computed(() => reactive(e.effectivePowerKw(), e.powerFactor), 'follows from powerKw and power factor'),
  );
  bind(
    'power.apparent',
    computed(() => Math.abs(e.effectivePowerKw()) / (e.powerFactor || 1), 'follows from powerKw and power factor'),
  );
  bind(
    'power.factor',
    setting(
      () => e.powerFactor,
      (v) => (e.powerFactor = Math.min(1, Math.abs(v))),
    ),
  );
  bind(
    'frequency',
    setting(
      () => e.frequency,
      (v) => (e.frequency = v),
    ),
  );
  bind(
    'price.current',
    setting(
      () => e.priceE4 / 1e4,
      (v) => (e.priceE4 = Math.round(v * 1e4)),
    ),
  );
  bind(
    'price.tariff',
    setting(
      () => e.priceE4 / 1e4,
      (v) => (e.priceE4 = Math.round(v * 1e4)),
    ),
  );

  const w = m.wallet;
  if (w) {
    const unit = m.kind === 'money' ? '' : '.energy';
    bind(
      `credit.balance.${m.kind === 'money' ? 'money' : 'energy'}`,
      setting(
        () => w.balance / 100,
        (v) => (w.balance = Math.round(v * 100)),
      ),
    );
    bind(
      `credit.overdraft${unit}`,
      setting(
        () => w.overdraft / 100,
        (v) => (w.overdraft = Math.round(v * 100)),
      ),
    );
    const overdraftLimit = m.kind === 'money' ? 'credit.limit.overdraft' : 'credit.limit.energy.4';
    const hoardingLimit = m.kind === 'money' ? 'credit.limit.hoarding' : 'credit.limit.energy.3';
    bind(
      overdraftLimit,
      setting(
        () => w.overdraftLimit / 100,
        (v) => (w.overdraftLimit = Math.round(v * 100)),
        true,
      ),
    );
    bind(
      hoardingLimit,
      setting(
        () => w.hoardingLimit / 100,
        (v) => (w.hoardingLimit = Math.round(v * 100)),
        true,
      ),
    );
  }

  const clock =
    (layout: TimeLayout): LiveFactory =>
    () => ({
      read: () => encodeTime(layout, meterTimeAt(clockMs(m))),
      write: (bytes) => {
        const t = decodeMeterTime(layout, bytes);
        if (!t.ok) return false;
        m.clock.offsetMs = epochOf({ ...meterTimeAt(clockMs(m)), ...t.value }) - m.clock.now;
        m.counters.timeSet++;
        return true;
      },
      master: true,
      notSeedable: 'follows the host clock; set clockOffsetSeconds',
    });
  bind('clock.date', clock('YYMMDDWW'));
  bind('clock.time', clock('hhmmss'));
  bind('clock', clock('YYMMDDWWhhmmss'));
  bind('meter.address', () => ({ read: () => encodeDigitsOrFf(m.address, 6), notSeedable: 'is the meter address' }));
  bind('customer.number', () => ({
    read: () => encodeDigitsOrFf(m.customerNumber, 6),
    write: (bytes) => {
      const v = decodeValue({ kind: 'digits', bytes: 6 }, bytes);
      if (!v.ok || v.value.kind !== 'text') return false;
      m.customerNumber = v.value.value;
      return true;
    },
    master: true,
  }));

  if (m.edition === '2007') {
    const word =
      (di: string, compute: (base: number) => number): LiveFactory =>
      (f) => ({
        read: () => numberBytes(f, compute(m.statusBase.get(di) ?? 0)),
        write: (bytes) => {
          const v = numberOf(f, bytes);
          if (v === undefined) return false;
          m.statusBase.set(di, v);
          return true;
        },
      });
    bind(
      'status.word1',
      word('04000501', (base) => (base & ~SW1_MANAGED) | statusWord1(m)),
    );
    bind(
      'status.word3',
      word('04000503', (base) => (base & ~SW3_MANAGED) | statusWord3(m)),
    );
  }
  bind(
    'events.relay-trip.count',
    setting(
      () => m.relay.tripCount,
      (v) => (m.relay.tripCount = v),
    ),
  );
  bind(
    'events.relay-close.count',
    setting(
      () => m.relay.closeCount,
      (v) => (m.relay.closeCount = v),
    ),
  );
  for (const [point, counter] of Object.entries(COUNTER_POINTS)) {
    bind(
      point,
      setting(
        () => m.counters[counter],
        (v) => (m.counters[counter] = v),
      ),
    );
  }
}

/** Sets a register or a bound point from a spec value (`voltage.a: 229.7`, `04000401: "…"`); throws what is wrong. */
export function seedPoint(m: MeterState, key: string, value: number | string): void {
  const di = resolveIdentifier(key, m.edition)!;
  const bytes = encodeRegisterValue(di, value, m.edition);
  if (!bytes.ok) throw new TypeError(`meter ${m.address}: ${bytes.error.message}`);
  if (!supports(m, di)) throw new TypeError(`meter ${m.address}: ${key} is not an item of a ${m.phases}-phase ${m.kind} meter`);
  const live = m.live.get(di);
  if (!live) {
    m.registers.set(di, bytes.value);
    return;
  }
  if (!live.write || live.notSeedable)
    throw new TypeError(`meter ${m.address}: ${key} ${live.notSeedable ?? 'is computed by the simulator'}`);
  live.write(bytes.value);
}

function statusWord1(m: MeterState): number {
  let w = 0;
  if (m.energy.effectivePowerKw() < 0) w |= SW1.reversePower;
  if ((m.wallet?.overdraft ?? 0) > 0) w |= SW1.overdraft;
  return w;
}

function statusWord3(m: MeterState): number {
  let w = 0;
  if (m.relay.open) w |= SW3.relayOpen;
  if (m.relay.command === 'trip') w |= SW3.commandTrip;
  if (m.relay.alarm) w |= SW3.alarm;
  if (m.kind === 'energy') w |= SW3.kwhPrepaid;
  if (m.kind === 'money') w |= SW3.moneyPrepaid;
  if (m.relay.keepPower) w |= SW3.keepPower;
  if (m.wallet && !m.opened) w |= SW3.notOpened;
  return w;
}
