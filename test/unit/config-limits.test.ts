import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, LIMITS, loadGatewayConfig, MAX_CONFIG_BYTES } from '../../src/config/index.js';
import { formatIssue } from '../../src/config/yaml-source.js';

// Item 18 and 19 of issue 17: limits that match the physics of the lines, and config problems reported with file,
// line and field, or, for the file as a whole, without a made-up line 0.

const head = 'gateway: { id: gw-limits, dataDir: ./data }\nmqtt: { url: "mqtt://127.0.0.1:1883" }\n';

function write(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-limits-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(file, text);
  return file;
}

function problems(file: string): string[] {
  try {
    loadGatewayConfig(file, {});
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map(formatIssue);
    throw err;
  }
  throw new Error('expected the config to be refused');
}

/** A config of `meters` DL/T 645 meters spread over `buses` buses, one line per meter. */
function fleet(meters: number, buses: number): string {
  const lines = [head, 'buses:'];
  for (let b = 0; b < buses; b++) lines.push(`  - { id: bus${b}, port: "tcp://127.0.0.1:${20000 + b}" }`);
  lines.push('meters:');
  for (let m = 0; m < meters; m++) {
    lines.push(
      `  - { id: m-${m}, bus: bus${m % buses}, address: "${String(m + 1).padStart(12, '0')}", profile: dlt645-2007-single-phase-prepaid }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

describe('limits of one gateway', () => {
  it('takes the largest allowed config: 4,000 meters on 16 buses of 250', () => {
    const config = loadGatewayConfig(write(fleet(LIMITS.metersPerGateway, 16)), {});
    expect(config.meters).toHaveLength(4000);
    expect(config.buses).toHaveLength(16);
  });

  it('refuses a 257th meter on one bus at its line, naming the bus and the count', () => {
    const file = write(fleet(LIMITS.metersPerBus + 1, 1));
    expect(problems(file)).toEqual([
      `${file}:263: meters.256.bus: bus bus0 has 257 meters; one RS-485 line carries at most 256 (32 unit loads, 1/8-load transceivers): put the rest on another bus`,
    ]);
  });

  it('refuses more than 4,000 meters or 64 buses before the schema walks them (the probe had 60,001 on one bus)', () => {
    const file = write(fleet(4001, 16));
    expect(problems(file)).toEqual([
      `${file}:4022: meters.4000: 4001 meters; one gateway takes at most 4000 meters: split them over more gateways`,
    ]);
    // The probe's file (60,001 meters on one bus, 5.7 MB) is refused by its size before it is parsed at all.
    const probe = write(fleet(60_001, 1));
    expect(problems(probe)).toEqual([
      expect.stringMatching(new RegExp(`^${probe}: the config file is \\d+ bytes; a config is at most 2097152 bytes`)),
    ]);
    const buses = write(fleet(65, 65));
    expect(problems(buses)).toEqual([
      `${buses}:69: buses.64: 65 buses; one gateway takes at most 64 buses (serial adapters and converters): run a second gateway for the rest`,
    ]);
  });

  it('refuses Modbus unit 0 (broadcast) and 248, takes 1 and 247', () => {
    const modbus = (unit: number) =>
      `${head}buses:\n  - { id: b1, port: "tcp://127.0.0.1:502", protocol: modbus-tcp }\nmeters:\n  - { id: e1, bus: b1, unit: ${unit}, profile: eastron-sdm120 }\n`;
    for (const unit of [1, 247]) expect(loadGatewayConfig(write(modbus(unit)), {}).meters[0]?.unit).toBe(unit);
    const zero = write(modbus(0));
    expect(problems(zero)).toEqual([`${zero}:6: meters.0.unit: a Modbus unit id is 1 to 247 (0 is broadcast, which no meter answers)`]);
    expect(problems(write(modbus(248)))[0]).toMatch(/:6: meters\.0\.unit: a Modbus unit id is 1 to 247$/);
  });

  it('refuses a file over 2 MiB before parsing it, naming its size and no line', () => {
    const file = write(`${head}# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
    expect(problems(file)).toEqual([
      `${file}: the config file is ${MAX_CONFIG_BYTES + head.length + 3} bytes; a config is at most 2097152 bytes (2 MiB, far more than 4000 meters need)`,
    ]);
  });
});

describe('config files that are not a config', () => {
  it('a YAML alias bomb is one located problem, not a bare library message', () => {
    const bomb = [
      head.trimEnd(),
      'x1: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'x2: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'x3: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'x4: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'x5: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'x6: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
      'x7: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
      'x8: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]',
      'x9: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]',
      '',
    ].join('\n');
    const file = write(bomb);
    const found = problems(file);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(new RegExp(`^${file}:4: the YAML aliases \\(\\*name\\) here expand to more than the parser allows`));
  });

  it('a file that does not exist, or a directory, is named without a line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-limits-'));
    const missing = join(dir, 'nope.yaml');
    expect(problems(missing)).toEqual([`${missing}: cannot read the config file: ENOENT: no such file or directory, stat '${missing}'`]);
    mkdirSync(join(dir, 'conf.d'));
    expect(problems(join(dir, 'conf.d'))).toEqual([`${join(dir, 'conf.d')}: cannot read the config file: it is a directory`]);
    expect(problems('/dev/zero')).toEqual(['/dev/zero: cannot read the config file: it is not a regular file']);
  });
});
