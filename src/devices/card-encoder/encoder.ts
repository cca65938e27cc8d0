import type { CardFamily, CardKind, MemoryZone } from '../../../protocols/card/index.js';
import type { EncoderProfile } from '../../profiles/encoder-profile.js';

export interface ReaderInfo {
  readonly model: string;
  readonly firmware: string;
  readonly serial: string;
  readonly framing: CardFamily;
  /** Where it answers: `/dev/ttyUSB0 9600 8N1` or `tcp://…`. */
  readonly port: string;
}

export interface CardStatus {
  readonly present: boolean;
  readonly powered: boolean;
  readonly kind?: CardKind;
}

/**
 * One counter encoder, whatever its framing (docs/reference/cards.md § The encoder driver contract). Safety rules live here, not in the manual:
 * a PSC is never presented when fewer than 3 attempts remain (unless forced) and never presented twice by the
 * driver; protection bits are written only with `confirm: true`; every write is read back.
 */
export interface CardEncoder {
  readonly id: string;
  readonly profile: EncoderProfile;
  /** Opens the port and checks an encoder of the profile's family answers there. */
  open(signal?: AbortSignal): Promise<ReaderInfo>;
  cardStatus(): Promise<CardStatus>;
  /** Resolves with the card's kind once one is in; NO_CARD after `timeoutMs`, ABORTED on `signal`. */
  waitForCard(timeoutMs: number, signal?: AbortSignal): Promise<CardKind>;
  /** Powers the card up (selecting its type where the reader needs it); WRONG_CARD_KIND if it is not `kind`. */
  powerUp(kind?: CardKind): Promise<{ atr: Uint8Array; kind: CardKind }>;
  powerDown(): Promise<void>;
  read(zone: MemoryZone, addr: number, len: number): Promise<Uint8Array>;
  /** Writes main memory and reads every byte back: WRITE_VERIFY_FAILED names the first address that differs. */
  write(addr: number, data: Uint8Array): Promise<void>;
  /** Reads the error counter; never consumes an attempt. */
  pscAttemptsLeft(): Promise<number>;
  /** Presents the PSC once. Refuses (PSC_ATTEMPTS_LOW) when fewer than 3 attempts remain, unless `force`. */
  verifyPsc(psc: Uint8Array, opts?: { force?: boolean }): Promise<void>;
  /** Needs the current PSC presented first in this power-up; reads the new PSC back. */
  changePsc(newPsc: Uint8Array): Promise<void>;
  /** Irreversible: write-protects main bytes addr..addr+len-1 (within 00H–1FH). Refused without `confirm: true`. */
  protect(addr: number, len: number, opts: { confirm: boolean }): Promise<void>;
  /** One APDU to a CPU card; 61xx (GET RESPONSE) and 6Cxx (resend with the right Le) are handled here. */
  transmit(apdu: Uint8Array): Promise<{ data: Uint8Array; sw: number }>;
  /** Sounds the buzzer where the encoder has one; a no-op otherwise. */
  beep(ms: number): Promise<void>;
  readonly canEject: boolean;
  /** Pushes the card out (motorised encoders only; NOT_SUPPORTED otherwise). */
  eject(): Promise<void>;
  close(): Promise<void>;
}
