/**
 * What a value parser returns: the typed value, or why the input is not one. `reason` is written to follow the name of
 * the field or option it is about (`--kwh must be at most 10000 kWh`, `energyKwh must be above 0`), so every door
 * words a refusal the same way.
 */
export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

export function ok<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

export function refused<T = never>(reason: string): Parsed<T> {
  return { ok: false, reason };
}
