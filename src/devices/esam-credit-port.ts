import {
  abnormalOf,
  checkReply,
  decodeIdentityReply,
  encodeDigits,
  encodeIdentityRequest,
  encodeLoadPayload,
  fromHex,
  IDENTITY_DI,
  meterDiversifier,
  OPENING_DI,
  RECHARGE_DI,
  securityAuth,
  toHex,
  type Frame,
  type Password,
} from '../../protocols/dlt645/index.js';
import { realTimers, type Timers } from '../clock.js';
import { MeterdError } from '../errors.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { EncryptionMachine, IdentityData } from './encryption-machine.js';
import { NO_REPLY, SERR_CODES, walletOf, type CreditLoad, type CreditPort, type LoadOutcome, type LoadRefusalCode } from './credit-port.js';
import type { Dlt645Meter, Priority } from './dlt645-meter.js';
import { pointReaderOf } from './dlt645-points.js';
import { MeterError } from './errors.js';

export interface EsamCreditPortOptions {
  /**
   * How long one encryption-machine answer may take. It must fit well inside the meter's authentication window
   * (5 minutes by default, docs/reference/prepaid.md § The ESAM handshake). Default 60 s.
   */
  readonly hsmTimeoutMs?: number;
  /** Runs the encryption-machine deadline; default Node's timers. */
  readonly timers?: Timers;
}

/** At most one automatic re-authentication per load: repeated MAC failures lock the meter's security channel (docs/reference/prepaid.md § Security error word SERR). */
const MAX_AUTHENTICATIONS = 2;

/** The encryption machine did not give a usable answer: HSM_TIMEOUT (too late) or HSM_FAILED (an error, a bad reply). */
class HsmFailure extends MeterdError<'HSM_TIMEOUT' | 'HSM_FAILED'> {
  override readonly name = 'HsmFailure';
}

/** The encryption machine's hex, checked here at the edge: a wrong answer is the machine's failure, not the meter's. */
const bytes = (hex: string, n: number, what: string): Uint8Array => {
  const b = new RegExp(`^[0-9A-Fa-f]{${n * 2}}$`).test(hex) ? fromHex(hex) : undefined;
  if (!b) throw new HsmFailure('HSM_FAILED', `the ${what} for identity authentication or recharge is not ${n} bytes of hex: "${hex}"`);
  return b;
};

/**
 * The credit port of a DL/T 645 ESAM meter (credit method dlt645-esam). A load is one exchange, run while the credit
 * service holds the meter: identity authentication (0x03 070000FF) with ciphertext1 from the station (the topup's
 * `esam`, or the encryption machine), the meter's random2 and ESAM serial to the encryption machine for MAC1/MAC2,
 * then the recharge (0x03 070102FF). When the meter answers authentication-failed or mac-failed the exchange is run
 * once more from a fresh authentication, never twice (lock-out). An encryption machine that does not answer in time
 * ends the load `refused` HSM_TIMEOUT (or HSM_FAILED for an error): it is only asked before a recharge frame or after
 * the meter definitely refused one, so nothing can have loaded; the credit service still decides by reading the meter.
 */
export function dlt645EsamCreditPort(
  meter: Dlt645Meter,
  profile: DeviceProfile,
  auth: { password: Password; operator: string },
  machine: EncryptionMachine,
  options: EsamCreditPortOptions = {},
): CreditPort {
  const credit = profile.credit;
  if (credit?.method !== 'dlt645-esam')
    throw new MeterError('CREDIT_UNSUPPORTED', `profile ${profile.id} has no dlt645-esam credit method`);
  const reader = pointReaderOf(meter, profile);
  const points = [credit.readBack.count, credit.readBack.balance, ...(credit.readBack.overdraft ? [credit.readBack.overdraft] : [])];
  const hsmTimeoutMs = options.hsmTimeoutMs ?? 60_000;
  const timers = options.timers ?? realTimers;

  /** One encryption-machine call with its own deadline; the caller's abort still wins. */
  async function ask<T>(call: (signal: AbortSignal) => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let timer: unknown;
    try {
      return await Promise.race([
        call(ctl.signal),
        new Promise<never>((_, reject) => {
          timer = timers.setTimeout(() => {
            const timeout = new HsmFailure('HSM_TIMEOUT', `the encryption machine did not answer within ${hsmTimeoutMs} ms`);
            ctl.abort(timeout);
            reject(timeout);
          }, hsmTimeoutMs);
        }),
      ]);
    } catch (err) {
      if (err instanceof HsmFailure || signal?.aborted) throw err;
      const code = (err as { code?: string }).code === 'HSM_TIMEOUT' ? 'HSM_TIMEOUT' : 'HSM_FAILED';
      throw new HsmFailure(code, `the encryption machine gave no usable answer: ${(err as Error).message}`);
    } finally {
      if (timer !== undefined) timers.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Send one 0x03 frame: the reply, or an outcome when there is none or the meter refused. */
  async function send(
    frame: Frame,
    opts: { priority: Priority; signal?: AbortSignal },
    label: string,
  ): Promise<{ data: Uint8Array } | LoadOutcome> {
    let reply: Frame;
    try {
      reply = await meter.command(frame, { ...opts, label });
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERROR';
      if (NO_REPLY.has(code)) return { kind: 'unknown', code, message: (err as Error).message };
      throw err;
    }
    const r = checkReply(reply, frame.control);
    if (r.ok) return { data: r.value.data };
    if (r.error.code !== 'DLT645_ABNORMAL') return { kind: 'unknown', code: r.error.code, message: r.error.message };
    const code: LoadRefusalCode =
      abnormalOf(reply)
        .errors.map((n) => SERR_CODES[n])
        .find((c) => c !== undefined) ?? 'METER_REFUSED';
    return { kind: 'refused', code, message: r.error.message };
  }

  return {
    unit: credit.unit,
    async readWallet(opts) {
      return walletOf(await reader.read(points, opts), credit.readBack, meter.address);
    },
    async load(l: CreditLoad, opts) {
      const customerNo = l.customerNo ?? '0';
      const customer = encodeDigits(customerNo, 6);
      if (!customer.ok) return { kind: 'refused', code: 'CUSTOMER_MISMATCH', message: customer.error.message };
      // The load's other fields are checked before the encryption machine is asked (zero MACs stand in for its answer).
      const none = new Uint8Array(4);
      const check = encodeLoadPayload({
        operator: auth.operator,
        amount: l.amount,
        purchaseCount: l.purchaseCount,
        mac1: none,
        customerNo,
        mac2: none,
      });
      if (!check.ok) return { kind: 'refused', code: 'METER_REFUSED', message: `cannot build the recharge: ${check.error.message}` };
      let rechargeSent = false;
      let last: LoadOutcome | undefined;
      for (let attempt = 0; attempt < MAX_AUTHENTICATIONS; attempt++) {
        try {
          // 1. Identity authentication: the station's ciphertext for the first try, the encryption machine's after.
          const id: IdentityData =
            attempt === 0 && l.esam
              ? { ...l.esam, diversifier: l.esam.diversifier ?? toHex(meterDiversifier(meter.address)) }
              : await ask((s) => machine.identity({ address: meter.address, meterNumber: meter.address }, s), opts.signal);
          const idPayload = encodeIdentityRequest({
            operator: auth.operator,
            ciphertext: bytes(id.ciphertext, 8, 'ciphertext'),
            random1: bytes(id.random, 8, 'random1'),
            diversifier: bytes(id.diversifier, 8, 'diversifier'),
          });
          if (!idPayload.ok)
            return { kind: 'refused', code: 'METER_REFUSED', message: `cannot build identity authentication: ${idPayload.error.message}` };
          const authReply = await send(
            securityAuth(meter.address, IDENTITY_DI, idPayload.value),
            opts,
            `identity authentication (try ${attempt + 1})`,
          );
          if ('kind' in authReply) {
            last = authReply;
            if (authReply.kind === 'refused' && authReply.code === 'AUTHENTICATION_FAILED') continue;
            // No reply to an authentication: nothing can have loaded, but only a read of the meter says so for sure.
            return authReply;
          }
          const identity = decodeIdentityReply(authReply.data.subarray(4));
          if (!identity.ok) return { kind: 'refused', code: 'METER_REFUSED', message: identity.error.message };
          const random2 = toHex(identity.value.random2);
          const esamSerial = toHex(identity.value.esamSerial);

          // 2. MAC1/MAC2 from the encryption machine over the meter's fresh random number.
          const macs = await ask(
            (s) =>
              machine.rechargeMacs(
                {
                  address: meter.address,
                  random2,
                  esamSerial,
                  amount: l.amount,
                  count: l.purchaseCount,
                  customerNo,
                  ...(l.opening ? { opening: true } : {}),
                },
                s,
              ),
            opts.signal,
          );

          // 3. Recharge with the machine's MACs.
          const payload = encodeLoadPayload({
            operator: auth.operator,
            amount: l.amount,
            purchaseCount: l.purchaseCount,
            mac1: bytes(macs.mac1, 4, 'MAC1'),
            customerNo,
            mac2: bytes(macs.mac2, 4, 'MAC2'),
          });
          if (!payload.ok)
            return { kind: 'refused', code: 'METER_REFUSED', message: `cannot build the recharge: ${payload.error.message}` };
          rechargeSent = true;
          const r = await send(
            securityAuth(meter.address, l.opening ? OPENING_DI : RECHARGE_DI, payload.value),
            opts,
            `${l.opening ? 'account opening' : 'load'} count ${l.purchaseCount}`,
          );
          if (!('kind' in r)) return { kind: 'accepted' };
          last = r;
          if (r.kind === 'refused' && (r.code === 'MAC_FAILED' || r.code === 'AUTHENTICATION_FAILED')) continue;
          return r;
        } catch (err) {
          if (!(err instanceof HsmFailure)) throw err;
          // The encryption machine is only asked before a recharge frame, or after the meter definitely refused one
          // (a recharge without a definite answer returns at once, as `unknown`). So nothing can have loaded here:
          // `refused`, not `unknown`, which would make the credit service run the exchange again and risk more MAC
          // failures (lock-out). The credit service still decides by reading the meter's counter.
          return {
            kind: 'refused',
            code: err.code,
            message:
              rechargeSent && last && last.kind !== 'accepted'
                ? `${err.message}, re-authenticating after the meter refused the load (${last.message}); nothing was loaded`
                : `${err.message}; nothing was sent to the meter that could load it`,
          };
        }
      }
      // Both tries refused for authentication or MAC: stop here (lock-out risk); the meter's code says why.
      return last!.kind === 'refused' ? { ...last!, message: `${last!.message} (after one re-authentication)` } : last!;
    },
  };
}
