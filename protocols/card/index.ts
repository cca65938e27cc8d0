export * from './commands.js';
export * from './framing.js';
export * from './layout.js';
export * from './result.js';
export * from './sle4442.js';
export * from './star.js';
export * from './stx.js';
