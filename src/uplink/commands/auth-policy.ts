import type { CommandName } from './schema.js';

/**
 * Commands whose only effect is to read: a forged one costs a slot on the bus, never money, energy or supply. Every
 * other command (top-up, relay trip/close, card sale, time-sync, and any command added later) changes a meter or the
 * books, and is run unsigned only when the config says so. A list of the harmless ones rather than of the dangerous
 * ones, so a new command is refused unsigned until someone decides otherwise. `recall` reads too, but one forged
 * request can make the gateway send 10,000 messages: it is signed like the rest.
 */
export const READ_ONLY_COMMANDS: readonly CommandName[] = ['read', 'card-read'];

/** The part of `config.commands` that decides which requests must be signed. */
export interface CommandAuthSettings {
  /** HMAC-SHA256 key shared with the station; when set, every request must be signed with it. */
  readonly hmacKey?: string;
  /** Without a key: run unsigned requests that move money or cut power anyway (demo, test bench). */
  readonly allowUnsigned: boolean;
}

/**
 * How the gateway authenticates station commands:
 * - `signed`: `commands.hmacKey` is set; every request must carry a valid signature and a fresh `ts`.
 * - `unsigned-refused` (the default without a key): read-only commands run unsigned; every command that moves
 *   money or cuts power is refused with `UNSIGNED`.
 * - `unsigned-allowed`: no key and `commands.allowUnsigned: true`; anyone who can publish to `cmd/` can top up and
 *   trip relays.
 */
export type CommandAuthPolicy =
  | { readonly mode: 'signed'; readonly key: string }
  | { readonly mode: 'unsigned-refused' }
  | { readonly mode: 'unsigned-allowed' };

export function commandAuthPolicy(settings: CommandAuthSettings): CommandAuthPolicy {
  if (settings.hmacKey !== undefined) return { mode: 'signed', key: settings.hmacKey };
  return settings.allowUnsigned ? { mode: 'unsigned-allowed' } : { mode: 'unsigned-refused' };
}

/** True when `command` changes a meter or the books (everything but the read-only commands). */
export function movesMoneyOrPower(command: CommandName): boolean {
  return !READ_ONLY_COMMANDS.includes(command);
}

/**
 * Why an unsigned request for `command` is refused under `policy`, or undefined when it may run unsigned. Only for
 * the modes without a key: in `signed` mode the router checks the signature itself.
 */
export function unsignedRefusal(policy: CommandAuthPolicy, command: CommandName): string | undefined {
  if (policy.mode !== 'unsigned-refused' || !movesMoneyOrPower(command)) return undefined;
  return (
    `${command} moves money or cuts power and this gateway accepts it only signed: set commands.hmacKey and sign ` +
    'requests with it (docs/mqtt-api.md), or set commands.allowUnsigned: true on a test bench'
  );
}

/**
 * The warning `meterd run` logs at start and `meterd doctor` prints, or undefined when commands are safe: the risk of
 * `allowUnsigned`, named so an operator cannot miss it.
 */
export function unsignedCommandsRisk(settings: CommandAuthSettings): string | undefined {
  const policy = commandAuthPolicy(settings);
  if (policy.mode !== 'unsigned-allowed') return undefined;
  return (
    "commands.allowUnsigned is on and commands.hmacKey is not set: anyone who can publish to this gateway's cmd/ " +
    'topics can top up meters, sell cards and trip or close relays. Set commands.hmacKey (docs/mqtt-api.md) and ' +
    'remove allowUnsigned outside a test bench'
  );
}
