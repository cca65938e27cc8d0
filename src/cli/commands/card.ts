import type { Command } from 'commander';
import { fromHex } from '../../../protocols/card/index.js';
import { CardCounter, type CardProvisioning, type CardReading, type SaleBooks, type SaleRecorder } from '../../cards/index.js';
import type { Clock } from '../../clock.js';
import { SerialCardEncoder, type CardEncoder } from '../../devices/card-encoder/index.js';
import { silentLogger, type Logger } from '../../log.js';
import { loadCardLayout, BUILTIN_CARD_LAYOUTS_DIR, type AmountUnit, type CardLayout } from '../../profiles/card-layout.js';
import { BUILTIN_ENCODER_PROFILES_DIR, loadEncoderProfile } from '../../profiles/encoder-profile.js';
import { randomUUID } from 'node:crypto';
import {
  checkParameterLimits,
  parseCustomerNo,
  parseKwhText,
  parseLimitText,
  parsePriceText,
  parseYuanText,
  PRICE_UNITS_PER_YUAN,
} from '../../values/index.js';
import type { ParameterCardRecord } from '../../store/index.js';
import { resultOf, sendToDaemon } from '../daemon-client.js';
import { DIRECT_HELP, routeCommand, type CommandRoute } from '../daemon-route.js';
import { CliError, usageError } from '../errors.js';

/** What `meterd card` needs from the rest of meterd: the books (the ledger owner supplies them), and optional context. */
export interface CardCommandDeps {
  /** Where a verified card sale is recorded (channel `card`). */
  readonly recorder: SaleRecorder;
  /** The last purchase per meter, for the next count and for re-issue. */
  readonly books: SaleBooks;
  /** The archive's side (open, replace, health, lost cards, first-visit adoption); absent: those commands refuse. */
  readonly provisioning?: CardProvisioning;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Extra folders searched (after the shipped ones) for `--encoder ID` and `--layout ID`. */
  readonly encoderDirs?: readonly string[];
  readonly layoutDirs?: readonly string[];
  /** Where METERD_CARD_PSC is read from. Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

interface CommonOptions {
  port?: string;
  config?: string;
  counter?: string;
  direct?: boolean;
  encoder: string;
  layout: string;
  psc?: string;
  force?: boolean;
  wait: string;
  eject?: boolean;
}

/**
 * Adds `meterd card read|sell|reissue|check|clear` to `program`. The encoder is opened for one command and closed after
 * it; every failure is one line with its typed code (NO_CARD, PURCHASE_PENDING, PSC_REJECTED, …).
 */
export function registerCardCommand(program: Command, io: { out: (line: string) => void }, deps: CardCommandDeps): Command {
  const counter = new CardCounter({
    recorder: deps.recorder,
    books: deps.books,
    ...(deps.provisioning ? { provisioning: deps.provisioning } : {}),
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.logger ? { logger: deps.logger } : {}),
  });
  const card = program
    .command('card')
    .description("the counter's IC-card encoder: read a customer's card, sell energy onto it, re-issue, make check and clear cards")
    .addHelpText(
      'after',
      `
Examples:
  meterd card read -c /etc/meterd/meterd.yaml                  # the config's encoder, through the running daemon
  meterd card sell -c /etc/meterd/meterd.yaml --meter room-101 --kwh 20 --operator alice
  meterd card read --port /dev/ttyUSB0
  meterd card sell --port /dev/ttyUSB0 --meter 000012345678 --kwh 20 --operator alice
  meterd card reissue --port /dev/ttyUSB0 --meter 000012345678
  meterd card rewrite --port /dev/ttyUSB0 --operator alice     # a damaged card, from the books
  meterd card param --port /dev/ttyUSB0 --price 0.5283 --alarm1 20 --alarm2 10 --overdraft 5 --hoarding 500 --operator alice
  meterd card check --port tcp://10.0.0.9:4001 --encoder generic-stx --any-meter
  meterd card clear --port /dev/ttyUSB0 --meter 000012345678 --yes

card read and card sell with a config (-c or METERD_CONFIG) whose daemon runs go through the daemon: its encoder
(--counter ID of the config's encoders, default the first), its books, the same checks as the station's card-sell.
The PSC comes from --psc, else METERD_CARD_PSC, else the layout. meterd never presents a PSC twice on its own, and
refuses when the card has fewer than 3 attempts left unless --force is given.`,
    );

  const common = (cmd: Command): Command =>
    cmd
      .option('--port <path>', 'encoder serial port (/dev/ttyUSB0) or tcp://host:port')
      .option('--encoder <profile>', 'encoder profile id (device-profiles/encoders) or YAML path', 'star-st102')
      .option('--layout <layout>', 'card layout id (device-profiles/cards) or YAML path', 'sle4442-dorm')
      .option('--psc <hex>', "the cards' PSC, 6 hex digits (default: METERD_CARD_PSC, else the layout's)")
      .option('--force', 'present the PSC even when the card has fewer than 3 attempts left')
      .option('--wait <seconds>', 'wait this long for a card to be inserted', '0')
      .option('--eject', 'push the card out afterwards (motorised encoders)');

  common(card.command('read').description('show what a card carries: role, meter and customer, purchase, the meter write-back'))
    .option('--json', 'print JSON')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): read through its running daemon')
    .option('--counter <id>', "the config's encoder (encoders[].id) the daemon reads with")
    .option('--direct', DIRECT_HELP)
    .addHelpText(
      'after',
      '\nExample:\n  meterd card read --port /dev/ttyUSB0 --json\n  meterd card read -c /etc/meterd/meterd.yaml --counter counter-1\n',
    )
    .action(async (opts: CommonOptions & { json?: boolean }) => {
      const route = await daemonRoute(opts);
      if (route !== undefined) {
        const reply = await sendToDaemon(route.config, 'card-read', {
          requestId: `cli-card-read-${randomUUID()}`,
          ...(opts.counter === undefined ? {} : { encoder: opts.counter }),
        });
        const reading = resultOf('card-read', reply) as unknown as CardReading;
        if (opts.json) io.out(JSON.stringify(reading));
        else {
          const layout = loadCardLayout(reading.layout, [BUILTIN_CARD_LAYOUTS_DIR, ...(deps.layoutDirs ?? [])]);
          for (const line of describeReading(reading, layout)) io.out(line);
        }
        return;
      }
      await withEncoder(opts, deps, async (encoder, layout) => {
        const reading = await counter.read(encoder, layout);
        if (opts.json) io.out(JSON.stringify(readingJson(reading)));
        else for (const line of describeReading(reading, layout)) io.out(line);
      });
    });

  common(
    card
      .command('sell')
      .description('sell energy onto a customer card: checks, writes count = books + 1, verifies every byte, then records the sale'),
  )
    .requiredOption('--meter <id>', 'the meter the card belongs to, 12 digits (through the daemon: its id or number in the config)')
    .option('--kwh <kWh>', 'energy to sell (layouts in 0.01 kWh), e.g. 20 or 12.5')
    .option('--amount <yuan>', 'money to load (layouts in fen), e.g. 50 or 12.30')
    .requiredOption('--operator <name>', 'the cashier taking the money')
    .option('--adopt', "confirm: a meter the books have never seen is adopted from its card's count (its first visit)")
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): sell through its running daemon')
    .option('--counter <id>', "the config's encoder (encoders[].id) the daemon sells with")
    .option('--direct', DIRECT_HELP)
    .addHelpText(
      'after',
      '\nExamples:\n  meterd card sell --port /dev/ttyUSB0 --meter 000012345678 --kwh 20 --operator alice\n  meterd card sell --port /dev/ttyUSB0 --layout my-money-card --meter 000012345678 --amount 50 --operator bob\n',
    )
    .action(async (opts: CommonOptions & { meter: string; kwh?: string; amount?: string; operator: string; adopt?: boolean }) => {
      const route = await daemonRoute(opts);
      if (route !== undefined) {
        const meter = route.config.meters.find(
          (m) => m.id === opts.meter || (/^\d{1,12}$/.test(opts.meter) && m.address === opts.meter.padStart(12, '0')),
        );
        if (meter === undefined) throw usageError(`no meter "${opts.meter}" in ${route.configPath} (give its id or its 12-digit number)`);
        if ((opts.kwh === undefined) === (opts.amount === undefined)) throw usageError('give exactly one of --kwh N or --amount Y');
        const parsed = opts.kwh !== undefined ? parseKwhText(opts.kwh) : parseYuanText(opts.amount!);
        if (!parsed.ok) throw usageError(`${opts.kwh !== undefined ? '--kwh' : '--amount'} ${parsed.reason}`);
        const reply = await sendToDaemon(
          route.config,
          'card-sell',
          {
            requestId: `cli-card-sell-${randomUUID()}`,
            meter: meter.id,
            ...(opts.counter === undefined ? {} : { encoder: opts.counter }),
            ...(opts.kwh !== undefined ? { energyKwh: parsed.value / 100 } : { amountFen: parsed.value }),
            operator: opts.operator,
            ...(opts.adopt ? { adopt: true } : {}),
          },
          { operator: opts.operator },
        );
        const sale = resultOf('card-sell', reply) as {
          amount: number;
          unit: AmountUnit;
          meterNumber: string;
          purchaseCount: number;
          operator: string;
        };
        io.out(
          `sold ${formatAmount(sale.amount, sale.unit)} to meter ${sale.meterNumber}: purchase count ${sale.purchaseCount}, card verified, recorded for ${sale.operator} (through the daemon)`,
        );
        return;
      }
      const meterNumber = meterOption(opts.meter);
      await withEncoder(opts, deps, async (encoder, layout, psc) => {
        const amount = amountOption(opts, layout.amountUnit);
        const sale = await counter.sell(encoder, layout, {
          meterNumber,
          amount,
          operator: opts.operator,
          psc,
          ...(opts.force ? { forcePsc: true } : {}),
          ...(opts.adopt ? { adopt: true } : {}),
        });
        io.out(
          `sold ${formatAmount(sale.amount, sale.unit)} to meter ${sale.meterNumber}: purchase count ${sale.purchaseCount}, card verified, recorded for ${sale.operator}`,
        );
      });
    });

  common(
    card
      .command('reissue')
      .description("write the books' last purchase again (same count, same amount) onto the customer's card; not a new sale"),
  )
    .requiredOption('--meter <id>', 'the meter, 12 digits')
    .addHelpText('after', '\nExample:\n  meterd card reissue --port /dev/ttyUSB0 --meter 000012345678\n')
    .action(async (opts: CommonOptions & { meter: string }) => {
      const meterNumber = meterOption(opts.meter);
      await withEncoder(opts, deps, async (encoder, layout, psc) => {
        const r = await counter.reissue(encoder, layout, { meterNumber, psc, ...(opts.force ? { forcePsc: true } : {}) });
        io.out(
          `re-issued purchase ${r.count} (${formatAmount(r.amount, layout.amountUnit)}) for meter ${meterNumber}; not a new sale, nothing recorded`,
        );
      });
    });

  common(
    card
      .command('check')
      .description('make a check (query) card: the meter writes its balance, count and events onto it; read it back with card read'),
  )
    .option('--any-meter', 'the check card works in every meter of the system')
    .addHelpText('after', '\nExample:\n  meterd card check --port /dev/ttyUSB0 --any-meter\n')
    .action(async (opts: CommonOptions & { anyMeter?: boolean }) => {
      await withEncoder(opts, deps, async (encoder, layout, psc) => {
        const r = await counter.makeCheckCard(encoder, layout, {
          psc,
          ...(opts.force ? { forcePsc: true } : {}),
          ...(opts.anyMeter ? { anyMeter: true } : {}),
        });
        io.out(
          `check card ready for ${opts.anyMeter ? 'any meter' : `meter ${r.meterNumber}`}: insert it in the meter, then run card read`,
        );
      });
    });

  common(card.command('clear').description("make a clear card for one meter: inserted, the meter's balance is erased (needs --yes)"))
    .requiredOption('--meter <id>', 'the one meter it clears, 12 digits')
    .option('--yes', 'confirm: the meter balance will be erased when the card is inserted')
    .addHelpText('after', '\nExample:\n  meterd card clear --port /dev/ttyUSB0 --meter 000012345678 --yes\n')
    .action(async (opts: CommonOptions & { meter: string; yes?: boolean }) => {
      const meterNumber = meterOption(opts.meter);
      await withEncoder(opts, deps, async (encoder, layout, psc) => {
        await counter.makeClearCard(encoder, layout, {
          psc,
          meterNumber,
          confirm: opts.yes === true,
          ...(opts.force ? { forcePsc: true } : {}),
        });
        io.out(`clear card ready for meter ${meterNumber}: inserting it erases that meter's balance`);
      });
    });

  const provisioning = (): CardProvisioning => {
    if (!deps.provisioning) throw usageError('this command needs the gateway books: set METERD_CONFIG (or METERD_DATA_DIR)');
    return deps.provisioning;
  };

  common(card.command('open').description('open an account on a blank card (开户): meter, customer, serial, optionally a first purchase'))
    .requiredOption('--meter <number>', 'the meter the card is for, 12 digits')
    .requiredOption('--customer <number>', 'customer number, up to 12 digits')
    .option('--name <name>', 'the customer name, when the customer is not in the archive yet')
    .option('--room <room>', 'the room or address, when the customer is not in the archive yet')
    .option('--serial <n>', 'card serial (default: the next free one)')
    .option('--kwh <kWh>', 'a first purchase of energy (layouts in 0.01 kWh)')
    .option('--amount <yuan>', 'a first purchase of money (layouts in fen)')
    .requiredOption('--operator <name>', 'who opens the card (and takes the money of a first purchase)')
    .option('--json', 'print JSON')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): open through its running daemon')
    .option('--counter <id>', "the config's encoder (encoders[].id) the daemon writes with")
    .option('--direct', DIRECT_HELP)
    .addHelpText(
      'after',
      '\nExamples:\n  meterd card open --port /dev/ttyUSB0 --meter 000012345678 --customer 880000000042 --operator alice\n  meterd card open --port /dev/ttyUSB0 --meter 000012345679 --customer 880000000043 --name "Wang Li" --room 3-201 --kwh 20 --operator alice\n',
    )
    .action(
      async (
        opts: CommonOptions & {
          meter: string;
          customer: string;
          name?: string;
          room?: string;
          serial?: string;
          kwh?: string;
          amount?: string;
          operator: string;
          json?: boolean;
        },
      ) => {
        const customerNo = customerOption(opts.customer);
        const serial = serialOption(opts.serial);
        const route = await daemonRoute(opts);
        if (route !== undefined) {
          const meter = configMeter(route, opts.meter);
          const first = daemonAmount(opts);
          const reply = await sendToDaemon(
            route.config,
            'card-open',
            {
              requestId: `cli-card-open-${randomUUID()}`,
              meter: meter.id,
              customerNo,
              ...(opts.counter === undefined ? {} : { encoder: opts.counter }),
              ...(opts.name !== undefined ? { name: opts.name } : {}),
              ...(opts.room !== undefined ? { room: opts.room } : {}),
              ...(serial !== undefined ? { cardSerial: serial } : {}),
              ...first,
              operator: opts.operator,
            },
            { operator: opts.operator },
          );
          const r = resultOf('card-open', reply);
          io.out(
            opts.json
              ? JSON.stringify(r)
              : `card ${String(r.cardSerial)} opened for customer ${String(r.customerNo)} on meter ${String(r.meterNumber)}: purchase count ${String(r.purchaseCount)}${r.sale ? ', first purchase sold and recorded' : ', no money taken'}; card verified (through the daemon)`,
          );
          return;
        }
        const meterNumber = meterOption(opts.meter);
        await withEncoder(opts, deps, async (encoder, layout, psc) => {
          const first = opts.kwh === undefined && opts.amount === undefined ? undefined : amountOption(opts, layout.amountUnit);
          const r = await provisioning().openCard(encoder, layout, {
            meterNumber,
            customerNo,
            ...(opts.name !== undefined ? { name: opts.name } : {}),
            ...(opts.room !== undefined ? { room: opts.room } : {}),
            ...(serial !== undefined ? { cardSerial: serial } : {}),
            ...(first !== undefined ? { firstAmount: first } : {}),
            operator: opts.operator,
            psc,
            ...(opts.force ? { forcePsc: true } : {}),
          });
          if (opts.json) return io.out(JSON.stringify(r));
          io.out(
            `card ${r.cardSerial} opened for customer ${r.customerNo} on meter ${r.meterNumber}: ${r.sale ? `first purchase ${r.purchaseCount} of ${formatAmount(r.amount, layout.amountUnit)} sold and recorded for ${opts.operator}` : 'no purchase on it (no money taken)'}; card verified`,
          );
        });
      },
    );

  common(
    card.command('replace').description('replace a lost or broken card (补卡) on a blank card: the last purchase again, never a new sale'),
  )
    .requiredOption('--customer <number>', 'the customer whose card is replaced')
    .option('--reason <reason>', 'lost or broken', 'lost')
    .option('--serial <n>', 'the new card serial (default: the next free one)')
    .requiredOption('--operator <name>', 'who replaces it')
    .option('--json', 'print JSON')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): replace through its running daemon')
    .option('--counter <id>', "the config's encoder (encoders[].id) the daemon writes with")
    .option('--direct', DIRECT_HELP)
    .addHelpText('after', '\nExample:\n  meterd card replace --port /dev/ttyUSB0 --customer 880000000042 --reason lost --operator alice\n')
    .action(async (opts: CommonOptions & { customer: string; reason: string; serial?: string; operator: string; json?: boolean }) => {
      const customerNo = customerOption(opts.customer);
      if (opts.reason !== 'lost' && opts.reason !== 'broken') throw usageError('--reason is lost or broken');
      const serial = serialOption(opts.serial);
      const route = await daemonRoute(opts);
      if (route !== undefined) {
        const reply = await sendToDaemon(
          route.config,
          'card-replace',
          {
            requestId: `cli-card-replace-${randomUUID()}`,
            customerNo,
            reason: opts.reason as 'lost' | 'broken',
            ...(opts.counter === undefined ? {} : { encoder: opts.counter }),
            ...(serial !== undefined ? { cardSerial: serial } : {}),
            operator: opts.operator,
          },
          { operator: opts.operator },
        );
        const r = resultOf('card-replace', reply);
        io.out(
          opts.json
            ? JSON.stringify(r)
            : `card ${String(r.cardSerial)} replaces ${String(r.oldSerial ?? '(no card on record)')} for customer ${String(r.customerNo)}: purchase ${String(r.purchaseCount)} again, not a new sale (through the daemon)`,
        );
        return;
      }
      await withEncoder(opts, deps, async (encoder, layout, psc) => {
        const r = await provisioning().replaceCard(encoder, layout, {
          customerNo,
          reason: opts.reason as 'lost' | 'broken',
          ...(serial !== undefined ? { cardSerial: serial } : {}),
          operator: opts.operator,
          psc,
          ...(opts.force ? { forcePsc: true } : {}),
        });
        if (opts.json) return io.out(JSON.stringify(r));
        io.out(
          `card ${r.cardSerial} replaces ${r.oldSerial ?? '(no card on record)'} for customer ${r.customerNo} on meter ${r.meterNumber}: purchase ${r.purchaseCount} (${formatAmount(r.amount, layout.amountUnit)}) again, not a new sale${r.oldSerial ? `; card ${r.oldSerial} is refused from now on` : ''}`,
        );
      });
    });

  common(
    card
      .command('rewrite')
      .description("rewrite a damaged card from the books: the archive's identity and the books' last purchase, never a new sale"),
  )
    .option('--customer <number>', 'whose card it is, when its serial cannot be read or the archive does not know it')
    .option('--meter <id>', 'or the meter whose active customer it is (12 digits; through the daemon: its id or number)')
    .requiredOption('--operator <name>', 'who rewrites it')
    .option('--json', 'print JSON')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): rewrite through its running daemon')
    .option('--counter <id>', "the config's encoder (encoders[].id) the daemon writes with")
    .option('--direct', DIRECT_HELP)
    .addHelpText(
      'after',
      `
Examples:
  meterd card rewrite --port /dev/ttyUSB0 --operator alice                  # the card's serial names the customer
  meterd card rewrite --port /dev/ttyUSB0 --customer 880000000042 --operator alice
  meterd card rewrite -c /etc/meterd/meterd.yaml --meter room-101 --operator alice

card health tells when a card needs it. The card gets the customer's meter, number and card serial from the archive
and the books' last purchase for the meter (same count, same amount) as a replacement card; nothing is sold and the
customer's history notes the rewrite. Refused when the books do not know the card (CARD_UNKNOWN).
`,
    )
    .action(async (opts: CommonOptions & { customer?: string; meter?: string; operator: string; json?: boolean }) => {
      const customerNo = opts.customer === undefined ? undefined : customerOption(opts.customer);
      const route = await daemonRoute(opts);
      if (route !== undefined) {
        const meter = opts.meter === undefined ? undefined : configMeter(route, opts.meter);
        const reply = await sendToDaemon(
          route.config,
          'card-rewrite',
          {
            requestId: `cli-card-rewrite-${randomUUID()}`,
            ...(opts.counter === undefined ? {} : { encoder: opts.counter }),
            ...(customerNo !== undefined ? { customerNo } : {}),
            ...(meter !== undefined ? { meter: meter.id } : {}),
            operator: opts.operator,
          },
          { operator: opts.operator },
        );
        const r = resultOf('card-rewrite', reply);
        io.out(
          opts.json
            ? JSON.stringify(r)
            : `card ${String(r.cardSerial)} of customer ${String(r.customerNo)} rewritten from the books: meter ${String(r.meterNumber)}, purchase ${String(r.purchaseCount)} again, not a new sale; card verified (through the daemon)`,
        );
        return;
      }
      const meterNumber = opts.meter === undefined ? undefined : meterOption(opts.meter);
      await withEncoder(opts, deps, async (encoder, layout, psc) => {
        const r = await provisioning().rewriteCard(encoder, layout, {
          ...(customerNo !== undefined ? { customerNo } : {}),
          ...(meterNumber !== undefined ? { meterNumber } : {}),
          operator: opts.operator,
          psc,
          ...(opts.force ? { forcePsc: true } : {}),
        });
        if (opts.json) return io.out(JSON.stringify(r));
        io.out(
          `card ${r.cardSerial} of customer ${r.customerNo} rewritten from the books: meter ${r.meterNumber}, purchase ${r.purchaseCount} (${formatAmount(r.amount, layout.amountUnit)}) again, not a new sale; card verified${r.problems.length > 0 ? ` (was: ${r.problems.join('; ')})` : ''}`,
        );
      });
    });

  common(
    card
      .command('param')
      .description(
        'write a parameter card (参数卡): price, alarm thresholds 1 and 2, overdraft and hoarding limits; read back and recorded',
      ),
  )
    .option('--meter <id>', 'the one meter the card is for (12 digits; through the daemon: its id or number); default every meter')
    .requiredOption('--price <yuan>', 'price in yuan per kWh, up to 4 decimals, e.g. 0.5283')
    .requiredOption('--alarm1 <n>', "first low-credit warning, in the layout's unit (kWh for energy cards, yuan for money cards)")
    .requiredOption('--alarm2 <n>', 'second warning, at or below --alarm1')
    .requiredOption('--overdraft <n>', 'how far below zero the meter lets the customer go (0: not at all)')
    .requiredOption('--hoarding <n>', 'the most the meter may hold (0: no limit); above --alarm1')
    .requiredOption('--operator <name>', 'who writes the card')
    .option('--json', 'print JSON')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): write through its running daemon')
    .option('--counter <id>', "the config's encoder (encoders[].id) the daemon writes with")
    .option('--direct', DIRECT_HELP)
    .addHelpText(
      'after',
      `
Examples:
  meterd card param -c /etc/meterd/meterd.yaml --price 0.5283 --alarm1 20 --alarm2 10 --overdraft 5 --hoarding 500 --operator alice
  meterd card param --port /dev/ttyUSB0 --meter 000012345678 --price 0.6 --alarm1 30 --alarm2 15 --overdraft 0 --hoarding 0 --operator alice

On a blank card or a service card (never a customer's card). The card is read back and every value compared, then
recorded with the operator (meterd archive show N lists it for the customer of a one-meter card).
`,
    )
    .action(
      async (
        opts: CommonOptions & {
          meter?: string;
          price: string;
          alarm1: string;
          alarm2: string;
          overdraft: string;
          hoarding: string;
          operator: string;
          json?: boolean;
        },
      ) => {
        const price = parsePriceText(opts.price);
        if (!price.ok) throw usageError(`--price ${price.reason}`);
        const limitsIn = (unit: AmountUnit) => {
          const out = { alarm1: 0, alarm2: 0, overdraft: 0, hoarding: 0 };
          for (const key of ['alarm1', 'alarm2', 'overdraft', 'hoarding'] as const) {
            const v = parseLimitText(opts[key], unit);
            if (!v.ok) throw usageError(`--${key} ${v.reason}`);
            out[key] = v.value;
          }
          const bad = checkParameterLimits(out);
          if (bad) throw usageError(`--${bad.field} ${bad.reason}`);
          return out;
        };
        const route = await daemonRoute(opts);
        if (route !== undefined) {
          const meter = opts.meter === undefined ? undefined : configMeter(route, opts.meter);
          // Checked as money (the wider cap) here; the daemon's encoder layout decides the unit and its cap.
          const l = limitsIn('fen');
          const reply = await sendToDaemon(
            route.config,
            'card-param',
            {
              requestId: `cli-card-param-${randomUUID()}`,
              ...(opts.counter === undefined ? {} : { encoder: opts.counter }),
              ...(meter !== undefined ? { meter: meter.id } : {}),
              priceYuan: price.value / PRICE_UNITS_PER_YUAN,
              alarm1: l.alarm1 / 100,
              alarm2: l.alarm2 / 100,
              overdraft: l.overdraft / 100,
              hoarding: l.hoarding / 100,
              operator: opts.operator,
            },
            { operator: opts.operator },
          );
          const r = resultOf('card-param', reply) as unknown as ParameterCardRecord;
          io.out(opts.json ? JSON.stringify(r) : describeParameterCard(r, ' (through the daemon)'));
          return;
        }
        const meterNumber = opts.meter === undefined ? undefined : meterOption(opts.meter);
        await withEncoder(opts, deps, async (encoder, layout, psc) => {
          const r = await provisioning().writeParameterCard(encoder, layout, {
            values: { price: price.value, ...limitsIn(layout.amountUnit) },
            ...(meterNumber !== undefined ? { meterNumber } : {}),
            operator: opts.operator,
            psc,
            ...(opts.force ? { forcePsc: true } : {}),
          });
          io.out(opts.json ? JSON.stringify(r) : describeParameterCard(r, ''));
        });
      },
    );

  common(
    card
      .command('health')
      .description('card maintenance: ATR, PSC attempts left, layout, and whether it agrees with the archive and the books'),
  )
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExample:\n  meterd card health --port /dev/ttyUSB0\n\nExit code 0 when healthy; 1 with the findings, each saying what to do.\n',
    )
    .action(async (opts: CommonOptions & { json?: boolean }) => {
      await withEncoder(opts, deps, async (encoder, layout) => {
        const h = await provisioning().health(encoder, layout);
        if (opts.json) io.out(JSON.stringify(h));
        else {
          io.out(
            `card: ${h.kind} (ATR ${h.atr}), PSC attempts left ${h.pscAttemptsLeft}${h.blank ? ', blank' : `, meter ${h.meterNumber}, serial ${h.cardSerial ?? '-'}, purchase ${h.purchaseCount}${h.booksCount !== undefined ? ` (books ${h.booksCount})` : ''}`}`,
          );
          for (const f of h.findings) io.out(`finding: ${f}`);
          if (h.ok) io.out('healthy: the card, the archive and the books agree');
        }
        if (!h.ok) throw new CliError('CARD_UNHEALTHY', `${h.findings.length} finding(s) on this card: see above`);
      });
    });

  return card;
}

/** The configured meter a card command names by id or by its 12-digit number. */
function configMeter(route: CommandRoute, text: string): { id: string } {
  const meter = route.config.meters.find((m) => m.id === text || (/^\d{1,12}$/.test(text) && m.address === text.padStart(12, '0')));
  if (meter === undefined) throw usageError(`no meter "${text}" in ${route.configPath} (give its id or its 12-digit number)`);
  return meter;
}

/** --kwh / --amount for the daemon's request (its encoder's layout decides which one fits). */
function daemonAmount(opts: { kwh?: string; amount?: string }): { energyKwh?: number; amountFen?: number } {
  if (opts.kwh !== undefined && opts.amount !== undefined) throw usageError('give at most one of --kwh N or --amount Y');
  if (opts.kwh !== undefined) {
    const p = parseKwhText(opts.kwh);
    if (!p.ok) throw usageError(`--kwh ${p.reason}`);
    return { energyKwh: p.value / 100 };
  }
  if (opts.amount !== undefined) {
    const p = parseYuanText(opts.amount);
    if (!p.ok) throw usageError(`--amount ${p.reason}`);
    return { amountFen: p.value };
  }
  return {};
}

function customerOption(text: string): string {
  const p = parseCustomerNo(text);
  if (!p.ok) throw usageError(`--customer ${p.reason}`);
  return p.value;
}

function serialOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1)
    throw usageError(`--serial must be a card serial number from 1 to 999999999, not "${text}"`);
  return Number(text);
}

/**
 * The running daemon's route for a card command with a config (-c or METERD_CONFIG); undefined for the direct path
 * (no config, no daemon, or a --port the daemon does not hold). The daemon's own encoder port is refused with
 * --port, and --direct while the daemon runs (routeCommand).
 */
async function daemonRoute(opts: CommonOptions): Promise<CommandRoute | undefined> {
  if (opts.config === undefined && !process.env.METERD_CONFIG) return undefined;
  const route = await routeCommand(opts);
  if (route === undefined || route.daemon === null) return undefined;
  if (opts.port === undefined) return route;
  const held = route.config.encoders.find((e) => e.port === opts.port);
  if (held !== undefined)
    throw usageError(
      `the daemon of ${route.configPath} holds ${opts.port} (encoder ${held.id}): leave out --port to go through it (--counter ${held.id})`,
    );
  return undefined;
}

async function withEncoder(
  opts: CommonOptions,
  deps: CardCommandDeps,
  fn: (encoder: CardEncoder, layout: CardLayout, psc: Uint8Array) => Promise<void>,
): Promise<void> {
  const profile = loadEncoderProfile(opts.encoder, [BUILTIN_ENCODER_PROFILES_DIR, ...(deps.encoderDirs ?? [])]);
  const layout = loadCardLayout(opts.layout, [BUILTIN_CARD_LAYOUTS_DIR, ...(deps.layoutDirs ?? [])]);
  const pscText = opts.psc ?? (deps.env ?? process.env).METERD_CARD_PSC;
  const psc = pscText === undefined ? layout.psc : fromHex(pscText);
  if (psc?.length !== 3) throw usageError(`${opts.psc !== undefined ? '--psc' : 'METERD_CARD_PSC'} must be 6 hex digits, e.g. FFFFFF`);
  if (opts.port === undefined) throw usageError('give --port PATH of the encoder, or -c FILE of a running daemon');
  const waitS = Number(opts.wait);
  if (!Number.isFinite(waitS) || waitS < 0 || waitS > 3600) throw usageError('--wait is a number of seconds from 0 to 3600');
  const port = opts.port;
  const encoder = new SerialCardEncoder({ id: 'counter', port, profile, logger: deps.logger ?? silentLogger });
  await encoder.open();
  try {
    if (waitS > 0) await encoder.waitForCard(waitS * 1000);
    await fn(encoder, layout, psc);
    if (opts.eject) await encoder.eject();
  } finally {
    await encoder.close();
  }
}

function meterOption(text: string): string {
  if (!/^\d{1,12}$/.test(text)) throw usageError(`--meter must be the meter number, up to 12 digits, not "${text}"`);
  return text.padStart(12, '0');
}

/** Exact decimal text → whole units of the layout (no floating point between the cashier and the card). */
function amountOption(opts: { kwh?: string; amount?: string }, unit: AmountUnit): number {
  if ((opts.kwh === undefined) === (opts.amount === undefined)) throw usageError('give exactly one of --kwh N or --amount Y');
  const [flag, text, wanted] =
    opts.kwh !== undefined ? (['--kwh', opts.kwh, '0.01kWh'] as const) : (['--amount', opts.amount!, 'fen'] as const);
  if (unit !== wanted)
    throw usageError(`this card layout carries ${unit === 'fen' ? 'money (fen): use --amount' : 'energy (0.01 kWh): use --kwh'}`);
  // The same rules and caps as a top-up through the CLI or MQTT (src/values).
  const parsed = flag === '--kwh' ? parseKwhText(text) : parseYuanText(text);
  if (!parsed.ok) throw usageError(`${flag} ${parsed.reason}`);
  return parsed.value;
}

function formatAmount(units: number, unit: AmountUnit): string {
  const sign = units < 0 ? '-' : '';
  const abs = Math.abs(units);
  const text = `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
  return unit === 'fen' ? `${text} CNY` : `${text} kWh`;
}

function describeParameterCard(r: ParameterCardRecord, via: string): string {
  const price = `${Math.floor(r.price / PRICE_UNITS_PER_YUAN)}.${String(r.price % PRICE_UNITS_PER_YUAN).padStart(4, '0')}`;
  const f = (n: number) => formatAmount(n, r.unit);
  return `parameter card ${r.cardSerial ?? ''} written for ${r.meterAddress === null ? 'every meter' : `meter ${r.meterAddress}`}: price ${price} yuan/kWh, alarm 1 ${f(r.alarm1)}, alarm 2 ${f(r.alarm2)}, overdraft ${f(r.overdraft)}, hoarding ${r.hoarding === 0 ? 'no limit' : f(r.hoarding)}; read back and recorded for ${r.operator}${via}`;
}

function describeReading(r: CardReading, layout: CardLayout): string[] {
  const lines = [
    `card: ${r.kind} (ATR ${r.atr}), layout ${r.layout}, ${r.valid ? 'valid' : 'NOT VALID for the meter'}`,
    `role: ${r.role}  meter: ${r.meterNumber}${r.customerNumber !== undefined ? `  customer: ${r.customerNumber}` : ''}${r.cardSerial !== undefined ? `  serial: ${r.cardSerial}` : ''}`,
    `purchase on card: count ${r.purchase.count}, ${formatAmount(r.purchase.amount, layout.amountUnit)}`,
    ...(r.parameters
      ? [
          `parameters: price ${(r.parameters.price / PRICE_UNITS_PER_YUAN).toFixed(4)} yuan/kWh, alarm 1 ${formatAmount(r.parameters.alarm1, layout.amountUnit)}, alarm 2 ${formatAmount(r.parameters.alarm2, layout.amountUnit)}, overdraft ${formatAmount(r.parameters.overdraft, layout.amountUnit)}, hoarding ${r.parameters.hoarding === 0 ? 'no limit' : formatAmount(r.parameters.hoarding, layout.amountUnit)}`,
        ]
      : []),
    r.writeBack
      ? `meter write-back: balance ${formatAmount(r.writeBack.balance, layout.amountUnit)}, purchase count ${r.writeBack.purchaseCount}, events ${r.writeBack.events.length > 0 ? r.writeBack.events.join(' ') : 'none'}${r.writeBack.time ? `, at ${r.writeBack.time}` : ''}`
      : 'meter write-back: none (not inserted in a meter since it was written)',
    `PSC attempts left: ${r.pscAttemptsLeft}`,
  ];
  for (const p of r.problems) lines.push(`problem: ${p}`);
  return lines;
}

function readingJson(r: CardReading): Record<string, unknown> {
  const { memory: _memory, ...rest } = r;
  return rest;
}
