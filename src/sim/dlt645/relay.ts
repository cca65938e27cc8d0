/** What the meter was last told to do with its relay; status word 3 bit 6 (docs/reference/dlt645.md § Status words). */
export type RelayCommand = 'close' | 'trip';
/** Who opened the relay: a 0x1C trip, or the meter itself when credit ran out. */
export type TripCause = 'remote' | 'credit';

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

  /** The customer's button: closes only a relay that is open with a close-allowed command. */
  pressButton(): boolean {
    if (!this.open || this.command !== 'close') return false;
    this.close();
    return true;
  }
}
