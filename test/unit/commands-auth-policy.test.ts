import { describe, expect, it } from 'vitest';
import { commandAuthPolicy, movesMoneyOrPower, unsignedCommandsRisk, unsignedRefusal } from '../../src/uplink/commands/auth-policy.js';
import { COMMAND_NAMES } from '../../src/uplink/commands/schema.js';

describe('the command authentication policy', () => {
  it('is signed with a key, refuses unsigned money and power commands without one, and allows them only when told', () => {
    expect(commandAuthPolicy({ hmacKey: 'k', allowUnsigned: false })).toEqual({ mode: 'signed', key: 'k' });
    expect(commandAuthPolicy({ hmacKey: 'k', allowUnsigned: true })).toEqual({ mode: 'signed', key: 'k' });
    expect(commandAuthPolicy({ allowUnsigned: false })).toEqual({ mode: 'unsigned-refused' });
    expect(commandAuthPolicy({ allowUnsigned: true })).toEqual({ mode: 'unsigned-allowed' });
  });

  it('lets only the read-only commands through unsigned by default', () => {
    const policy = commandAuthPolicy({ allowUnsigned: false });
    const free = COMMAND_NAMES.filter((name) => unsignedRefusal(policy, name) === undefined);
    expect(free).toEqual(['read', 'card-read']);
    // Everything but the reads needs a signature: a forged alert-ack would hide a tamper alert.
    expect(COMMAND_NAMES.filter(movesMoneyOrPower)).toEqual([
      'topup',
      'relay',
      'time-sync',
      'card-sell',
      'alert-ack',
      'allowance-run',
      'allowance-resolve',
      'card-open',
      'card-replace',
      'recall',
      'card-rewrite',
      'card-param',
      'supply-notice',
      'supply-approve',
      'supply-cancel',
      'supply-restore',
      'meter-replace',
      'account-open',
    ]);
    expect(unsignedRefusal(policy, 'topup')).toMatch(/commands\.hmacKey.*commands\.allowUnsigned/);
    expect(COMMAND_NAMES.map((name) => unsignedRefusal(commandAuthPolicy({ allowUnsigned: true }), name))).toEqual(
      COMMAND_NAMES.map(() => undefined),
    );
  });

  it('names the risk only when unsigned commands that move money run', () => {
    expect(unsignedCommandsRisk({ allowUnsigned: true })).toMatch(/anyone who can publish .* top up meters/);
    expect(unsignedCommandsRisk({ allowUnsigned: false })).toBeUndefined();
    expect(unsignedCommandsRisk({ hmacKey: 'k', allowUnsigned: true })).toBeUndefined();
  });
});
