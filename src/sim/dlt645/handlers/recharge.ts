import {
  decodeLayout,
  decodeLoadPayload,
  diFromBytes,
  diToBytes,
  IDENTITY_DI,
  LOAD_PAYLOAD_BYTES,
  OPENING_DI,
  RECHARGE_DI,
  type Frame,
} from '../../../../protocols/dlt645/index.js';
import { clockMs, ERR, errReply, okReply, SERR_BIT, type MeterState } from '../meter-state.js';
import { meterTimeAt } from '../time.js';
import type { LoadRefusal } from '../wallet.js';

/**
 * 0x03 security commands: identity authentication (ESAM meters), account opening and recharge
 * (docs/reference/prepaid.md § Security commands 0x03). A refusal carries the SERR bit that says why.
 */
export function securityAuth(m: MeterState, req: Frame): Frame {
  const serr = (name: keyof typeof SERR_BIT) => errReply(m, req, SERR_BIT[name]);
  if (req.data.length < 8 || !m.wallet) return serr('other-error');
  const di = diFromBytes(req.data.subarray(0, 4));
  if (di === IDENTITY_DI) {
    // Identity authentication: only an ESAM meter has it; it answers random2 + ESAM serial after the DI.
    if (!m.security.authenticate) return serr('other-error');
    const r = m.security.authenticate(m.address, req.data.subarray(8), m.clock.now);
    if (!r.ok) return serr('authentication-failed');
    return okReply(m, req, new Uint8Array([...diToBytes(di), ...r.reply]));
  }
  if ((di !== OPENING_DI && di !== RECHARGE_DI) || req.data.length !== 4 + LOAD_PAYLOAD_BYTES) return serr('other-error');
  // An ESAM meter takes a load only inside an authenticated session (docs/reference/prepaid.md § The ESAM handshake).
  if (m.security.sessionOpen && !m.security.sessionOpen(m.clock.now)) return serr('authentication-failed');
  // Amount and count are one 4-byte field each: a money meter counts fen, an energy meter 0.01 kWh, one layout for both.
  const decoded = decodeLoadPayload(req.data.subarray(4));
  if (!decoded.ok) return serr('other-error');
  const { amount, purchaseCount: count, customerNo: customerNumber } = decoded.value;
  const opening = di === OPENING_DI;
  // Opening is for a meter not yet in service, recharge for one that is (docs/reference/prepaid.md § Purchase counter).
  if (opening === m.opened) return serr('other-error');
  if (!opening && customerNumber !== m.customerNumber) return serr('customer-number-mismatch');
  const refusal = m.wallet.check(amount, count);
  if (refusal) return serr(refusal);
  const load = {
    kind: opening ? 'opening' : 'recharge',
    meter: m.address,
    operator: decoded.value.operator,
    amount,
    purchaseCount: count,
    customerNumber,
    mac1: decoded.value.mac1,
    mac2: decoded.value.mac2,
  } as const;
  if (!m.security.verifyLoad(load)) return serr('mac-failed');
  if (opening) {
    m.customerNumber = customerNumber;
    m.opened = true;
  }
  m.lastOperatorCode = load.operator;
  m.wallet.load(amount, count, meterTimeAt(clockMs(m)));
  // After a remote load the relay stays open (SY03A "远程充值后仍然拉闸"), but the button now works.
  if (m.relay.open && m.relay.tripCause === 'credit' && !m.wallet.exhausted) m.relay.allowClose();
  return okReply(m, req, diToBytes(di));
}

/** A vendor credit write (0x14 to the profile's identifier): same purchase-count rule as 0x03, but the meter can only answer "other error" (ERR bit0). */
export function vendorLoad(m: MeterState, req: Frame, payload: Uint8Array): Frame {
  const fields = decodeLayout(m.vendorCredit!.layout, payload);
  if (!fields.ok || !m.wallet) return errReply(m, req, ERR.other);
  const count = Number(fields.value.purchaseCount);
  const amount = Number(fields.value.amount);
  const customer = fields.value.customerNumber;
  if (customer !== undefined && String(customer).padStart(12, '0') !== m.customerNumber) return errReply(m, req, ERR.other);
  if (!Number.isInteger(amount) || amount <= 0 || m.wallet.check(amount, count)) return errReply(m, req, ERR.other);
  m.wallet.load(amount, count, meterTimeAt(clockMs(m)));
  return okReply(m, req);
}

/** A user card inserted at the meter: the same load rules as any load; says why not otherwise. */
export function cardLoad(m: MeterState, count: number, amount: number): 'loaded' | LoadRefusal | 'no-wallet' {
  if (!m.wallet) return 'no-wallet';
  const refusal = m.wallet.check(amount, count);
  if (refusal) return refusal;
  m.wallet.load(amount, count, meterTimeAt(clockMs(m)));
  return 'loaded';
}
