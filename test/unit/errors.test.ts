import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { BusError, type BusErrorCode } from '../../src/bus/index.js';
import { ModbusError } from '../../src/bus/modbus-link.js';
import { CliError, errorLine, usageError } from '../../src/cli/errors.js';
import { DataDirError } from '../../src/config/data-dir.js';
import { ConfigError } from '../../src/config/index.js';
import { CardError, type CardErrorCode } from '../../src/devices/card-encoder/index.js';
import { MeterError } from '../../src/devices/errors.js';
import { isMeterdError, MeterdError } from '../../src/errors.js';
import { ProfileFileMissing } from '../../src/profiles/encoder-profile.js';
import { ProfileError } from '../../src/profiles/load.js';
import { BooksError } from '../../src/services/books/index.js';
import { CreditError } from '../../src/services/credit.js';
import { RefundError } from '../../src/services/refunds.js';
import { SimUsageError } from '../../src/sim/cli-support.js';
import { StoreError, type StoreErrorCode } from '../../src/store/index.js';
import { EncryptionMachineError } from '../../src/uplink/hsm.js';
import { UplinkError } from '../../src/uplink/index.js';

const issue = { file: 'meterd.yaml', line: 3, path: 'bus.port', message: 'required' };

describe('every meterd error has one shape: a typed code, a message, optional details and cause', () => {
  it('the base class carries code, message, details and cause, and no details property when there are none', () => {
    const cause = new Error('disk full');
    const err = new MeterdError('SOMETHING_FAILED', 'it failed', { details: { tries: 3 }, cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('SOMETHING_FAILED');
    expect(err.message).toBe('it failed');
    expect(err.details).toEqual({ tries: 3 });
    expect(err.cause).toBe(cause);
    const bare = new MeterdError('X', 'y');
    expect('details' in bare).toBe(false);
    expect('cause' in bare).toBe(false);
  });

  it.each([
    ['BusError', new BusError('BUS_DOWN', 'port lost', { cause: 'unplugged' }), 'BUS_DOWN'],
    ['StoreError', new StoreError('STORE_CLOSED', 'closed'), 'STORE_CLOSED'],
    ['UplinkError', new UplinkError('UPLINK_TIMEOUT', 'late'), 'UPLINK_TIMEOUT'],
    ['MeterError', new MeterError('DLT645_ABNORMAL', 'refused', ['password-error']), 'DLT645_ABNORMAL'],
    ['ModbusError', new ModbusError('MODBUS_EXCEPTION', 'refused', { unit: 1, functionCode: 3 }), 'MODBUS_EXCEPTION'],
    ['CardError', new CardError('PSC_REJECTED', 'wrong PSC', { attemptsLeft: 2 }), 'PSC_REJECTED'],
    ['CliError', new CliError('NO_METER', 'no meter', 1), 'NO_METER'],
    ['ConfigError', new ConfigError([issue]), 'CONFIG_INVALID'],
    ['ProfileError', new ProfileError([issue]), 'PROFILE_INVALID'],
    ['ProfileFileMissing', new ProfileFileMissing('no profile "x"'), 'PROFILE_NOT_FOUND'],
    ['CreditError', new CreditError('UNIT_MISMATCH', 'kWh wallet'), 'UNIT_MISMATCH'],
    ['RefundError', new RefundError('REFUND_INVALID', 'no reason'), 'REFUND_INVALID'],
    ['BooksError', new BooksError('BOOKS_DAY_OPEN', 'not over'), 'BOOKS_DAY_OPEN'],
    ['EncryptionMachineError', new EncryptionMachineError('HSM_TIMEOUT', 'late'), 'HSM_TIMEOUT'],
    ['DataDirError', new DataDirError('/proc/x', 'is under /proc'), 'DATA_DIR_UNUSABLE'],
    ['SimUsageError', new SimUsageError('give --pty or --tcp'), 'SIM_USAGE'],
  ] as const)('%s is a MeterdError with its own name and code', (name, err, code) => {
    expect(err).toBeInstanceOf(MeterdError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(isMeterdError(err)).toBe(true);
    expect(isMeterdError(err, code)).toBe(true);
    expect(isMeterdError(err, 'SOME_OTHER_CODE')).toBe(false);
    expect(err.stack).toContain(name);
  });

  it('keeps the fields each class had before', () => {
    const bus = new BusError('BUS_DOWN', 'port lost', { cause: 'unplugged' });
    expect(bus).toBeInstanceOf(BusError);
    expect(bus.cause).toBe('unplugged');
    expect(new MeterError('DLT645_ABNORMAL', 'refused', ['password-error']).errors).toEqual(['password-error']);
    expect(new MeterError('DLT645_BAD_REPLY', 'short').errors).toEqual([]);
    const modbus = new ModbusError('MODBUS_EXCEPTION', 'refused', {
      unit: 7,
      functionCode: 6,
      exception: 'ILLEGAL_DATA_ADDRESS',
      exceptionCode: 2,
    });
    expect(modbus).toMatchObject({ unit: 7, functionCode: 6, exception: 'ILLEGAL_DATA_ADDRESS', exceptionCode: 2 });
    const card = new CardError('WRITE_VERIFY_FAILED', 'byte 41H', { addr: 0x41, readerCode: 0xd5 });
    expect(card).toMatchObject({ addr: 0x41, readerCode: 0xd5 });
    expect(card.details).toEqual({ addr: 0x41, readerCode: 0xd5 });
    expect(new CardError('NO_CARD', 'insert it').details).toBeUndefined();
    expect(new ConfigError([issue]).issues).toEqual([issue]);
    expect(new ConfigError([issue]).message).toContain('bus.port');
    expect(usageError('bad flag').exitCode).toBe(2);
    expect(new CliError('X', 'y').exitCode).toBe(1);
  });

  it('narrows the code to the layer’s own union', () => {
    expectTypeOf(new BusError('BUS_TIMEOUT', 'late').code).toEqualTypeOf<BusErrorCode>();
    expectTypeOf(new StoreError('STORE_CLOSED', 'closed').code).toEqualTypeOf<StoreErrorCode>();
    expectTypeOf(new CardError('NO_CARD', 'none').code).toEqualTypeOf<CardErrorCode>();
    expectTypeOf(new ConfigError([]).code).toEqualTypeOf<'CONFIG_INVALID'>();
    const err: unknown = new StoreError('STORE_TOO_NEW', 'newer');
    if (isMeterdError(err, 'STORE_TOO_NEW')) expectTypeOf(err.code).toEqualTypeOf<'STORE_TOO_NEW'>();
    expect(isMeterdError(err, 'STORE_TOO_NEW')).toBe(true);
    expect(isMeterdError(new Error('plain'))).toBe(false);
    expect(isMeterdError({ code: 'BUS_DOWN', message: 'a look-alike' })).toBe(false);
  });
});

describe('the CLI prints every error as one line, code first and once', () => {
  it('a meterd error: meterd: CODE: message', () => {
    expect(errorLine(new CardError('NO_CARD', 'no card in encoder counter; insert the customer’s card'))).toBe(
      'meterd: NO_CARD: no card in encoder counter; insert the customer’s card',
    );
    expect(errorLine(new ConfigError([issue]))).toMatch(/^meterd: CONFIG_INVALID: meterd\.yaml/);
  });

  it('a Node error whose message already starts with its code names the code once', () => {
    let err: unknown;
    try {
      readFileSync('/nonexistent/meterd-test/meterd.yaml');
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toMatch(/^ENOENT: /);
    const line = errorLine(err);
    expect(line).toBe("meterd: ENOENT: no such file or directory, open '/nonexistent/meterd-test/meterd.yaml'");
    const denied = Object.assign(new Error("EACCES: permission denied, open '/dev/ttyUSB0'"), { code: 'EACCES' });
    expect(errorLine(denied)).toBe("meterd: EACCES: permission denied, open '/dev/ttyUSB0'");
  });

  it('an error without a code, and something thrown that is not an error', () => {
    expect(errorLine(new Error('something broke'))).toBe('meterd: something broke');
    expect(errorLine('a string')).toBe('meterd: a string');
    expect(errorLine(new MeterdError('', 'empty code'))).toBe('meterd: empty code');
  });
});
