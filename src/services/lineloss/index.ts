// Line loss per transformer district from the meters' daily freezes (docs/lineloss.md).
export * from './compute.js';
export * from './alerts.js';
export * from './service.js';
export * from './report.js';
