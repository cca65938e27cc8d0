import { decodeMeterTime, type Frame, type MeterTime } from '../../../../protocols/dlt645/index.js';
import { authorised, clockMs, ERR, errReply, okReply, type MeterState } from '../meter-state.js';
import { epochOf } from '../time.js';

/**
 * 0x1C remote control: trip, close allowed, close, alarm on/off, keep power on/off. Carried out only before its
 * valid-until time by the meter's clock (docs/reference/dlt645.md § Remote control 0x1C); a meter without credit
 * refuses to close, and keep-power refuses a trip.
 */
export function remoteControl(m: MeterState, req: Frame): Frame {
  const refused = authorised(m, req, 16);
  if (refused) return refused;
  const until = decodeMeterTime('YYMMDDhhmmss', req.data.subarray(10, 16));
  if (!until.ok || epochOf(until.value as MeterTime) <= clockMs(m)) return errReply(m, req, ERR.other);
  const noCredit = m.wallet?.exhausted ?? false;
  switch (req.data[8]) {
    case 0x1a:
      if (m.relay.keepPower) return errReply(m, req, ERR.other);
      m.relay.trip('remote');
      m.relay.heard('trip', clockMs(m));
      break;
    case 0x1b:
      if (noCredit) return errReply(m, req, ERR.other);
      m.relay.allowClose();
      m.relay.heard('close-allowed', clockMs(m));
      break;
    case 0x1c:
      if (noCredit) return errReply(m, req, ERR.other);
      m.relay.close();
      m.relay.heard('close', clockMs(m));
      break;
    case 0x2a:
      m.relay.alarm = true;
      break;
    case 0x2b:
      m.relay.alarm = false;
      break;
    case 0x3a:
      m.relay.keepPower = true;
      break;
    case 0x3b:
      m.relay.keepPower = false;
      break;
    default:
      return errReply(m, req, ERR.other);
  }
  return okReply(m, req);
}
