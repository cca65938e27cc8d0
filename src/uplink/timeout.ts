import { UplinkError } from './errors.js';

/**
 * Settles like `promise`, or rejects with UPLINK_TIMEOUT after `ms`. The promise itself keeps running: the caller
 * decides what to do with work that missed its deadline.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new UplinkError('UPLINK_TIMEOUT', `${what} did not finish within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
