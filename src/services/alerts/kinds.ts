// The kinds are shared data (src/values): profiles name them too.
export * from '../../values/alert-kinds.js';
