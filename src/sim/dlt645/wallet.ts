import type { MeterTime } from '../../../protocols/dlt645/index.js';

/** One accepted load as purchase record 0333xxNN keeps it (docs/reference/dlt645.md § Prepaid identifiers: fields of 5, 2, 4, 4, 4, 4 bytes). */
export interface PurchaseRecord {
  readonly at: MeterTime;
  readonly countAfter: number;
  readonly amount: number;
  readonly balanceBefore: number;
  readonly balanceAfter: number;
  readonly cumulative: number;
}

/** Why a load was refused, named after its SERR bit (docs/reference/prepaid.md § Purchase counter, § Security error word SERR). */
export type LoadRefusal = 'repeat-recharge' | 'purchase-count-error' | 'over-hoarding-limit';

export interface WalletState {
  /** In the meter's credit unit: fen (money meters) or 0.01 kWh (energy meters). */
  balance: number;
  overdraft: number;
  overdraftLimit: number;
  /** 0 = no hoarding limit. */
  hoardingLimit: number;
  purchaseCount: number;
}

const MAX_RECORDS = 10;

/**
 * The prepaid wallet of a local fee-control meter, in whole credit units (fen or 0.01 kWh) so money never goes
 * through floats. Spending runs the balance down to zero, then into overdraft up to the overdraft limit.
 */
export class Wallet {
  balance: number;
  overdraft: number;
  overdraftLimit: number;
  hoardingLimit: number;
  purchaseCount: number;
  cumulative = 0;
  /** Most recent first. */
  readonly records: PurchaseRecord[] = [];
  // Consumption arrives in fractions of a unit; the meter deducts whole units and carries the rest.
  private carry = 0;

  constructor(init: WalletState) {
    this.balance = init.balance;
    this.overdraft = init.overdraft;
    this.overdraftLimit = init.overdraftLimit;
    this.hoardingLimit = init.hoardingLimit;
    this.purchaseCount = init.purchaseCount;
  }

  /** No balance left and the overdraft allowance used up: a prepaid meter trips here. */
  get exhausted(): boolean {
    return this.balance === 0 && this.overdraft >= this.overdraftLimit;
  }

  /** Credit still spendable, overdraft allowance included. */
  get available(): number {
    return Math.max(0, this.balance + Math.max(0, this.overdraftLimit - this.overdraft) - this.carry);
  }

  /** Deduct consumption worth `units` (fractional), from the balance first, then into overdraft. */
  spend(units: number): void {
    if (units <= 0) return;
    this.carry += units;
    const whole = Math.floor(this.carry);
    this.carry -= whole;
    const fromBalance = Math.min(this.balance, whole);
    this.balance -= fromBalance;
    this.overdraft = Math.min(this.overdraftLimit, this.overdraft + whole - fromBalance);
  }

  /** Use up every unit, balance and overdraft allowance (the consumption that reaches the trip point exactly). */
  spendAll(): void {
    this.balance = 0;
    this.overdraft = Math.max(this.overdraft, this.overdraftLimit);
    this.carry = 0;
  }

  /** The purchase-count and hoarding rules, in the firmware's order; undefined when the load may go ahead. */
  check(amount: number, count: number): LoadRefusal | undefined {
    if (count === this.purchaseCount) return 'repeat-recharge';
    if (count !== this.purchaseCount + 1) return 'purchase-count-error';
    if (this.hoardingLimit > 0 && this.balanceAfter(amount) > this.hoardingLimit) return 'over-hoarding-limit';
    return undefined;
  }

  /** Load `amount` with purchase count `count` (already checked): repay the overdraft first, then add to the balance. */
  load(amount: number, count: number, at: MeterTime): PurchaseRecord {
    const before = this.balance;
    const repaid = Math.min(this.overdraft, amount);
    this.overdraft -= repaid;
    this.balance += amount - repaid;
    this.purchaseCount = count;
    this.cumulative += amount;
    const record: PurchaseRecord = {
      at,
      countAfter: count,
      amount,
      balanceBefore: before,
      balanceAfter: this.balance,
      cumulative: this.cumulative,
    };
    this.records.unshift(record);
    if (this.records.length > MAX_RECORDS) this.records.length = MAX_RECORDS;
    return record;
  }

  private balanceAfter(amount: number): number {
    return this.balance + amount - Math.min(this.overdraft, amount);
  }
}
