import { encodeValue, removeScale } from '../../protocols/modbus/index.js';
import type { DeviceProfile, ModbusPoint, SubsidySpec } from '../profiles/types.js';
import { NO_REPLY, type LoadOutcome } from './credit-port.js';
import type { Priority } from './dlt645-meter.js';
import { MeterError } from './errors.js';
import type { ModbusMeter } from './modbus-meter.js';
import type { PointValue } from './point-value.js';

/** The meter's free-energy registers and its import register, in ledger units (0.01 kWh). */
export interface SubsidyReading {
  /** One value per register, in the profile's order. */
  readonly registers: readonly number[];
  /** The import energy register: free energy can only have gone down by what it went up. */
  readonly consumed: number;
}

/** One register to set to an absolute value (ledger units), by its index in the profile's list. */
export interface SubsidyWrite {
  readonly index: number;
  readonly value: number;
}

/**
 * How the credit service writes and checks a meter's free-energy registers (credit method modbus-subsidy). The port
 * writes absolute values, never increments: the same write sent twice leaves the register where the first left it.
 * Deciding whether a write landed is the credit service's (services/credit.ts), from the values it committed.
 */
export interface SubsidyPort {
  readonly unit: 'energy';
  /** The register points, in the profile's order (for messages). */
  readonly names: readonly string[];
  /** An amount split over the registers by the profile's shares, in whole ledger units; the rounding rest goes to the first. */
  split(amount: number): number[];
  read(opts: { priority: Priority; signal?: AbortSignal }): Promise<SubsidyReading>;
  /** One FC16 request per register, in order; stops at the first that gets no answer. */
  write(writes: readonly SubsidyWrite[], opts: { priority: Priority; signal?: AbortSignal }): Promise<LoadOutcome>;
}

/** Split `amount` by integer shares: each gets floor(amount × share / total), the first also the rest. */
export function splitByShares(amount: number, shares: readonly number[]): number[] {
  const total = shares.reduce((a, b) => a + b, 0);
  const parts = shares.map((s) => Math.floor((amount * s) / total));
  parts[0]! += amount - parts.reduce((a, b) => a + b, 0);
  return parts;
}

/** The free-energy port of a Modbus meter whose profile has a modbus-subsidy method. */
export function modbusSubsidyPort(meter: ModbusMeter, profile: DeviceProfile): SubsidyPort {
  const spec: SubsidySpec | undefined = profile.subsidy;
  if (!spec) throw new MeterError('CREDIT_UNSUPPORTED', `profile ${profile.id} has no free-energy (modbus-subsidy) method`);
  const point = (name: string): ModbusPoint => {
    const p = profile.points.get(name);
    // The profile loader checked this; a profile built by hand might not have been.
    if (p?.kind !== 'modbus') throw new MeterError('CREDIT_UNSUPPORTED', `profile ${profile.id}: ${name} is not a Modbus register`);
    return p;
  };
  const registers = spec.registers.map((r) => point(r.point));
  const names = spec.registers.map((r) => r.point);
  const shares = spec.registers.map((r) => r.share);
  const all = [...names, spec.consumed];
  const hundredths = (values: Map<string, PointValue>, name: string): number => {
    const v = values.get(name);
    if (!v || !('v' in v) || typeof v.v !== 'number')
      throw new MeterError(
        'CREDIT_READBACK_FAILED',
        `meter ${profile.id}: cannot read ${name} for the free-energy check (${v && 'error' in v ? v.error : 'no value'})`,
      );
    return Math.round(v.v * 100);
  };
  return {
    unit: 'energy',
    names,
    split: (amount) => splitByShares(amount, shares),
    async read(opts) {
      const values = await meter.read(all, opts);
      return { registers: names.map((n) => hundredths(values, n)), consumed: hundredths(values, spec.consumed) };
    },
    async write(writes, opts) {
      for (const w of writes) {
        const p = registers[w.index]!;
        const raw = removeScale(w.value / 100, { scale: p.scale, offset: p.offset });
        if (!raw.ok) return { kind: 'refused', code: 'METER_REFUSED', message: `${p.name}: ${raw.error.message}` };
        const words = encodeValue(raw.value, p.type, p.order);
        if (!words.ok) return { kind: 'refused', code: 'METER_REFUSED', message: `${p.name}: ${words.error.message}` };
        try {
          await meter.writeRegisters(opts.priority, p.address, words.value, { signal: opts.signal });
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'ERROR';
          if (NO_REPLY.has(code)) return { kind: 'unknown', code, message: (err as Error).message };
          if (code === 'MODBUS_EXCEPTION')
            return { kind: 'refused', code: 'METER_REFUSED', message: `${p.name}: ${(err as Error).message}` };
          throw err;
        }
      }
      return { kind: 'accepted' };
    },
  };
}
