/** What the meter was last told to do with its relay; status word 3 bit 6 (docs/reference/dlt645.md § Status words). */
export type RelayCommand = 'close' | 'trip';
/** Who opened the relay: a 0x1C trip, or the meter itself when credit ran out. */
export type TripCause = 'remote' | 'credit';
/** A 0x1C switching command the meter carried out, by the meter's clock: what a crash test counts to prove "sent once". */
export interface RelayCommandHeard {
  readonly action: 'trip' | 'close-allowed' | 'close';
  readonly atMs: number;
}

/** The record keeps the newest commands only: a long benchmark must not grow it without bound. */
const COMMANDS_KEPT = 64;

/**
 * The load relay of a prepaid meter. Command state and actual state are separate, as on real meters: a
 * "close allowed" command leaves the relay open until the customer presses the button.
 */
export class Relay {
  open: boolean;
  command: RelayCommand;
  keepPower: boolean;
  alarm = false;
  tripCause: TripCause | undefined;
  tripCount = 0;
  closeCount = 0;
  /** The switching commands carried out, oldest first (a trip of an open relay is one too: the meter heard it). */
  readonly commands: RelayCommandHeard[] = [];

  constructor(open: boolean, keepPower: boolean) {
    this.open = open;
    this.command = open ? 'trip' : 'close';
    this.tripCause = open ? 'remote' : undefined;
    this.keepPower = keepPower;
  }

  trip(cause: TripCause): void {
    this.command = 'trip';
    this.tripCause = cause;
    if (!this.open) {
      this.open = true;
      this.tripCount++;
    }
  }

  /** Close allowed (N1 = 1B): the command changes, the relay waits for the button. */
  allowClose(): void {
    this.command = 'close';
  }

  close(): void {
    this.command = 'close';
    this.tripCause = undefined;
    if (this.open) {
      this.open = false;
      this.closeCount++;
    }
  }

  /** Notes a 0x1C switching command the meter carried out. */
  heard(action: RelayCommandHeard['action'], atMs: number): void {
    this.commands.push({ action, atMs });
    if (this.commands.length > COMMANDS_KEPT) this.commands.shift();
  }

  /** The customer's button: closes only a relay that is open with a close-allowed command. */
  pressButton(): boolean {
    if (!this.open || this.command !== 'close') return false;
    this.close();
    return true;
  }
}
