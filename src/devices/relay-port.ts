import { meterTimeOf } from '../../protocols/dlt645/index.js';
import { systemClock, type Clock } from '../clock.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { Dlt645Meter, Priority } from './dlt645-meter.js';
import { pointReaderOf } from './dlt645-points.js';
import { MeterError } from './errors.js';
import type { ModbusMeter } from './modbus-meter.js';

export interface RelayState {
  /** The relay's actual state: true = open (power cut). */
  readonly open: boolean;
  /** What the meter was last told: true = trip. Absent when the model does not report it. */
  readonly commandTrip?: boolean;
}

export type RelayAction = 'trip' | 'close';

export type RelayCommandOutcome =
  | { readonly kind: 'accepted' }
  | { readonly kind: 'refused'; readonly code: string; readonly message: string; readonly errors: readonly string[] }
  | { readonly kind: 'unknown'; readonly code: string; readonly message: string };

/** How the relay service switches one meter and reads back its relay, whatever the model. */
export interface RelayPort {
  /** `allowed` when a close only permits the customer to close it with the button. */
  readonly closeMode: 'direct' | 'allowed';
  command(action: RelayAction, opts: { priority: Priority; validForMs: number; signal?: AbortSignal }): Promise<RelayCommandOutcome>;
  readState(opts: { priority: Priority; signal?: AbortSignal }): Promise<RelayState>;
}

const NO_REPLY = new Set(['BUS_TIMEOUT', 'BUS_DOWN']);

function bitOf(v: number, bit: number): boolean {
  return Math.floor(v / 2 ** bit) % 2 === 1;
}

/** DL/T 645 0x1C with the profile's close mode and state bits (docs/reference/dlt645.md § Remote control 0x1C), credentials from the config. */
export function dlt645RelayPort(
  meter: Dlt645Meter,
  profile: DeviceProfile,
  auth: { password: { level: number; code: string }; operator: string },
  /** Wall time the command's validity is counted from; default the machine's clock. */
  clock: Clock = systemClock,
): RelayPort {
  const relay = profile.relay;
  if (relay?.method !== 'dlt645-remote-control')
    throw new MeterError('RELAY_UNSUPPORTED', `profile ${profile.id} has no DL/T 645 relay control`);
  const reader = pointReaderOf(meter, profile);
  return {
    closeMode: relay.close,
    async command(action, opts) {
      const nn = action === 'trip' ? 'trip' : relay.close === 'direct' ? 'close' : 'close-allowed';
      // A short validity: a trip queued behind an outage must die rather than cut off a customer who has since paid.
      const validUntil = meterTimeOf(new Date(clock.now() + opts.validForMs));
      try {
        await meter.remoteControl(
          nn,
          { password: auth.password, operator: auth.operator, validUntil },
          { priority: opts.priority, signal: opts.signal },
        );
        return { kind: 'accepted' };
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ERROR';
        if (NO_REPLY.has(code)) return { kind: 'unknown', code, message: (err as Error).message };
        if (err instanceof MeterError && code === 'DLT645_ABNORMAL')
          return {
            kind: 'refused',
            code: err.errors.includes('password-error') ? 'RELAY_UNAUTHORISED' : 'RELAY_REFUSED',
            message: err.message,
            errors: err.errors,
          };
        throw err;
      }
    },
    async readState(opts) {
      const values = await reader.read([relay.state.point], opts);
      const v = values.get(relay.state.point);
      if (!v || !('v' in v) || typeof v.v !== 'number')
        throw new MeterError('RELAY_STATE_UNREADABLE', `meter ${meter.address}: ${relay.state.point} could not be read`);
      return {
        open: bitOf(v.v, relay.state.actualBit),
        ...(relay.state.commandBit !== undefined ? { commandTrip: bitOf(v.v, relay.state.commandBit) } : {}),
      };
    },
  };
}

/** A Modbus relay on a coil (modbus-coil), its state read from the profile's relay.state point. */
export function modbusRelayPort(meter: ModbusMeter, profile: DeviceProfile): RelayPort {
  const relay = profile.relay;
  if (relay?.method !== 'modbus-coil') throw new MeterError('RELAY_UNSUPPORTED', `profile ${profile.id} has no Modbus relay coil`);
  return {
    closeMode: 'direct',
    async command(action, opts) {
      try {
        await meter.writeCoil(opts.priority, relay.address, action === 'trip' ? relay.openValue : !relay.openValue, {
          signal: opts.signal,
        });
        return { kind: 'accepted' };
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ERROR';
        if (NO_REPLY.has(code)) return { kind: 'unknown', code, message: (err as Error).message };
        if (code === 'MODBUS_EXCEPTION') return { kind: 'refused', code: 'RELAY_REFUSED', message: (err as Error).message, errors: [] };
        throw err;
      }
    },
    async readState(opts) {
      const v = (await meter.read(['relay.state'], opts)).get('relay.state');
      if (!v || !('v' in v) || typeof v.v !== 'number')
        throw new MeterError('RELAY_STATE_UNREADABLE', `${profile.id}: relay.state could not be read`);
      return { open: v.v === 1 };
    },
  };
}
