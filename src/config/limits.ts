/**
 * How large one gateway's config may be, from the physics of its lines, so a typo or a generated file gone wrong is
 * refused with a reason instead of starting a daemon that can never poll what it was given.
 */
export const LIMITS = {
  /**
   * An RS-485 driver carries 32 standard unit loads; with 1/8-load transceivers (the most any meter uses) that is 256
   * devices, and at 2400 baud a round of one read per meter (docs/reference/dlt645.md § Timing and retries: about
   * 0.3 to 1 s an exchange) already takes minutes. A bus over TCP ends at a converter on such a line just the same.
   */
  metersPerBus: 256,
  /** 64 buses of 64 meters, or 16 full lines: what one gateway's SQLite store and poller are measured for. */
  metersPerGateway: 4_000,
  /** Serial adapters and converters one gateway talks to. */
  busesPerGateway: 64,
  /** Checked before the file is parsed; a 4,000-meter config is about 500 KB. */
  configBytes: 2 * 1024 * 1024,
} as const;

export const MAX_CONFIG_BYTES = LIMITS.configBytes;

// Modbus RTU unit (slave) addresses: one definition, with the parser of meter addresses.
export { MODBUS_UNIT_MAX, MODBUS_UNIT_MIN } from '../values/meter-address.js';
