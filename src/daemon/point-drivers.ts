import type { GatewayConfig, MeterConfig } from '../config/index.js';
import type { CreditPort } from '../devices/credit-port.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import { MeterError } from '../devices/errors.js';
import type { RelayPort } from '../devices/relay-port.js';
import type { SubsidyPort } from '../devices/subsidy-port.js';
import type { DeviceProfile } from '../profiles/types.js';
import { addressText, unitOf } from '../services/lifecycle/register.js';
import type { MeterReader } from '../services/poller.js';
import type { MeterDrivers } from './meters.js';

/** The ports a point hands out once and a replacement swaps underneath. */
type SwappedPort = 'credit' | 'relay' | 'subsidy';

/**
 * One service point's drivers, which a meter replacement swaps for the new meter's while the poller, the credit,
 * free-energy and relay ports and the commands keep holding the same objects (docs/lifecycle.md). A read that was on
 * the wire when the meter changed is refused (METER_REPLACED) rather than stored as the new meter's.
 */
export class PointDrivers {
  #drivers: MeterDrivers;
  #generation = 0;
  #meter: MeterConfig;
  readonly reader: MeterReader;
  readonly credit?: CreditPort;
  readonly relay?: RelayPort;
  /** Modbus free-energy registers (allowances load there): the new meter's after a replacement, like credit and relay. */
  readonly subsidy?: SubsidyPort;

  constructor(
    meter: MeterConfig,
    private readonly build: (meter: MeterConfig) => MeterDrivers,
  ) {
    this.#meter = meter;
    this.#drivers = build(meter);
    this.reader = {
      read: async (names, opts) => {
        const generation = this.#generation;
        const values = await this.#drivers.reader.read(names, opts);
        if (generation !== this.#generation) throw this.replaced();
        return values;
      },
    };
    // Classes, not object literals with getters and arrow functions: a gateway holds one of each per meter, and an
    // accessor in a literal gives every copy its own property store (1 MB at 2,000 meters, docs/memory.md).
    if (this.#drivers.credit) this.credit = new PointCreditPort(this);
    if (this.#drivers.relay) this.relay = new PointRelayPort(this);
    if (this.#drivers.subsidy) this.subsidy = new PointSubsidyPort(this);
  }

  /** The current meter's port of that kind, or METER_REPLACED when the new meter's profile has none. */
  current<K extends SwappedPort>(kind: K): NonNullable<MeterDrivers[K]> {
    return this.port(kind);
  }

  /** Counts swaps, so an exchange that spans one is refused rather than taken as the new meter's. */
  get generation(): number {
    return this.#generation;
  }

  /** The error of an exchange that spanned a swap. */
  replacedError(): MeterError {
    return this.replaced();
  }

  get meter(): MeterConfig {
    return this.#meter;
  }

  get dlt645(): Dlt645Meter | undefined {
    return this.#drivers.dlt645;
  }

  /** Where the meter serving the point answers, as the register writes it: the DL/T 645 address, or `unit N`. */
  get address(): string {
    return addressText(this.#meter);
  }

  /**
   * The same point polled, loaded and switched at another address (and profile) from now on. `address` is the
   * register's text: a DL/T 645 address, or `unit N` for a Modbus meter (its unit id on the same bus).
   */
  rebind(address: string, profile: DeviceProfile): void {
    this.#meter = at(this.#meter, address, profile);
    this.#drivers = this.build(this.#meter);
    this.#generation++;
  }

  /** Drivers for another meter on the point's bus (the new meter, before it is bound), without swapping. */
  probe(address: string, profile: DeviceProfile): MeterDrivers {
    return this.build(at(this.#meter, address, profile));
  }

  private port<K extends SwappedPort>(kind: K): NonNullable<MeterDrivers[K]> {
    const port = this.#drivers[kind];
    if (!port) throw new MeterError('METER_REPLACED', `the meter now at ${this.#meter.id} has no ${kind} method in its profile`);
    return port as NonNullable<MeterDrivers[K]>;
  }

  private replaced(): MeterError {
    return new MeterError(
      'METER_REPLACED',
      `meter ${this.#meter.id} was replaced during this exchange; it is read again from ${this.#meter.address ?? ''}`,
    );
  }
}

/** The point's config entry for the meter at `address` (register text): a Modbus meter is named by its unit id. */
function at(meter: MeterConfig, address: string, profile: DeviceProfile): MeterConfig {
  const unit = unitOf(address);
  if (unit === undefined) return { ...meter, address, profile };
  const { address: _dlt645, ...rest } = meter;
  return { ...rest, unit, profile };
}

/** A config's profiles by id: the configured meters' own, else the built-in and configured profile folders. */
export function profileFinder(config: GatewayConfig, load: (dirs: readonly string[]) => ReadonlyMap<string, DeviceProfile>) {
  let all: ReadonlyMap<string, DeviceProfile> | undefined;
  return (id: string): DeviceProfile | undefined => {
    const configured = config.meters.find((m) => m.profile.id === id)?.profile;
    if (configured) return configured;
    all ??= load(config.profileDirs);
    return all.get(id);
  };
}

class PointCreditPort implements CreditPort {
  constructor(private readonly point: PointDrivers) {}

  get unit(): CreditPort['unit'] {
    return this.point.current('credit').unit;
  }

  async readWallet(opts: Parameters<CreditPort['readWallet']>[0]): ReturnType<CreditPort['readWallet']> {
    const generation = this.point.generation;
    const wallet = await this.point.current('credit').readWallet(opts);
    if (generation !== this.point.generation) throw this.point.replacedError();
    return wallet;
  }

  load(load: Parameters<CreditPort['load']>[0], opts: Parameters<CreditPort['load']>[1]): ReturnType<CreditPort['load']> {
    return this.point.current('credit').load(load, opts);
  }
}

class PointRelayPort implements RelayPort {
  constructor(private readonly point: PointDrivers) {}

  get closeMode(): RelayPort['closeMode'] {
    return this.point.current('relay').closeMode;
  }

  command(action: Parameters<RelayPort['command']>[0], opts: Parameters<RelayPort['command']>[1]): ReturnType<RelayPort['command']> {
    return this.point.current('relay').command(action, opts);
  }

  readState(opts: Parameters<RelayPort['readState']>[0]): ReturnType<RelayPort['readState']> {
    return this.point.current('relay').readState(opts);
  }
}

class PointSubsidyPort implements SubsidyPort {
  readonly unit = 'energy';

  constructor(private readonly point: PointDrivers) {}

  get names(): SubsidyPort['names'] {
    return this.point.current('subsidy').names;
  }

  split(amount: number): number[] {
    return this.point.current('subsidy').split(amount);
  }

  // A read that spans a swap is refused, as a wallet read is: the credit service would decide the new meter's
  // registers against the old meter's values.
  async read(opts: Parameters<SubsidyPort['read']>[0]): ReturnType<SubsidyPort['read']> {
    const generation = this.point.generation;
    const reading = await this.point.current('subsidy').read(opts);
    if (generation !== this.point.generation) throw this.point.replacedError();
    return reading;
  }

  write(writes: Parameters<SubsidyPort['write']>[0], opts: Parameters<SubsidyPort['write']>[1]): ReturnType<SubsidyPort['write']> {
    return this.point.current('subsidy').write(writes, opts);
  }
}
