import type { GatewayConfig, MeterConfig } from '../config/index.js';
import type { CreditPort } from '../devices/credit-port.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import { MeterError } from '../devices/errors.js';
import type { RelayPort } from '../devices/relay-port.js';
import type { SubsidyPort } from '../devices/subsidy-port.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { MeterReader } from '../services/poller.js';
import type { MeterDrivers } from './meters.js';

/**
 * One service point's drivers, which a meter replacement swaps for the new meter's while the poller, the credit and
 * relay services and the commands keep holding the same objects (docs/lifecycle.md). A read that was on the wire when
 * the meter changed is refused (METER_REPLACED) rather than stored as the new meter's.
 */
export class PointDrivers {
  #drivers: MeterDrivers;
  #generation = 0;
  #meter: MeterConfig;
  readonly reader: MeterReader;
  readonly credit?: CreditPort;
  readonly relay?: RelayPort;
  /** Modbus free-energy registers; not swapped: replacing a Modbus meter is not supported yet (docs/lifecycle.md). */
  readonly subsidy?: SubsidyPort;

  constructor(
    meter: MeterConfig,
    private readonly build: (meter: MeterConfig) => MeterDrivers,
  ) {
    this.#meter = meter;
    this.#drivers = build(meter);
    this.subsidy = this.#drivers.subsidy;
    this.reader = {
      read: async (names, opts) => {
        const generation = this.#generation;
        const values = await this.#drivers.reader.read(names, opts);
        if (generation !== this.#generation) throw this.replaced();
        return values;
      },
    };
    if (this.#drivers.credit) {
      const self = this;
      this.credit = {
        get unit() {
          return self.#drivers.credit!.unit;
        },
        readWallet: async (opts) => {
          const generation = this.#generation;
          const wallet = await this.port('credit').readWallet(opts);
          if (generation !== this.#generation) throw this.replaced();
          return wallet;
        },
        load: (load, opts) => this.port('credit').load(load, opts),
      };
    }
    if (this.#drivers.relay) {
      const self = this;
      this.relay = {
        get closeMode() {
          return self.#drivers.relay!.closeMode;
        },
        command: (action, opts) => this.port('relay').command(action, opts),
        readState: (opts) => this.port('relay').readState(opts),
      };
    }
  }

  get meter(): MeterConfig {
    return this.#meter;
  }

  get dlt645(): Dlt645Meter | undefined {
    return this.#drivers.dlt645;
  }

  /** The same point polled and loaded at another address (and profile) from now on. */
  rebind(address: string, profile: DeviceProfile): void {
    this.#meter = { ...this.#meter, address, profile };
    this.#drivers = this.build(this.#meter);
    this.#generation++;
  }

  /** Drivers for another meter on the point's bus (the new meter, before it is bound), without swapping. */
  probe(address: string, profile: DeviceProfile): MeterDrivers {
    return this.build({ ...this.#meter, address, profile });
  }

  private port<K extends 'credit' | 'relay'>(kind: K): NonNullable<MeterDrivers[K]> {
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
