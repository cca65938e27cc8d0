export type { CardEncoder, CardStatus, ReaderInfo } from './encoder.js';
export { CardError, hexAddr, isCardError, type CardErrorCode, type CardErrorDetails } from './errors.js';
export { SerialCardEncoder, type SerialCardEncoderOptions } from './serial-encoder.js';
