export * from './crc.js';
export * from './exceptions.js';
export * from './plan.js';
export * from './result.js';
export * from './types.js';
export * from './values.js';
