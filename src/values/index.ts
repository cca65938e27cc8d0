// Values that come in from outside (a CLI option, an MQTT field, a counter form), parsed by one set of rules and
// limits whichever door they came through. Pure: no I/O, no clock.
export {
  centiKwhFromNumber,
  fenFromNumber,
  MAX_AMOUNT_FEN,
  MAX_AMOUNT_YUAN,
  MAX_ENERGY_CENTI_KWH,
  MAX_ENERGY_KWH,
  parseKwhText,
  parseYuanText,
} from './credit.js';
export {
  MAX_CUSTOMER_NO_DIGITS,
  MAX_OPERATOR_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  parseCustomerNo,
  parseOperatorName,
  parseRequestId,
} from './ids.js';
export {
  type MeterAddressKind,
  meterAddressKind,
  MODBUS_UNIT_MAX,
  MODBUS_UNIT_MIN,
  parseMeterAddress,
} from './meter-address.js';
export { ok, type Parsed, refused } from './result.js';
export { csvField } from './csv.js';
export {
  checkParameterLimits,
  limitFromNumber,
  type LimitUnit,
  MAX_PRICE_YUAN_PER_KWH,
  type ParameterLimits,
  parseLimitText,
  parsePriceText,
  PRICE_UNITS_PER_YUAN,
  priceFromNumber,
} from './parameters.js';
