import type { Command } from 'commander';
import { formatIssue } from '../../config/yaml-source.js';
import { parseProfile } from '../../profiles/load.js';
import { BUILTIN_PROFILES_DIR, loadProfiles } from '../../profiles/registry.js';
import { readFileSync } from 'node:fs';
import { CliError } from '../errors.js';
import { formatDuration } from '../../config/duration.js';

export function registerProfileCommand(program: Command, io: { out: (line: string) => void }): void {
  const profile = program.command('profile').description('meter models as data: check a profile file, list the loaded ones');
  profile
    .command('check')
    .description('validate a device profile file; every problem is printed as file:line: field: what was expected')
    .argument('<file...>', 'profile YAML files')
    .addHelpText('after', '\nExample:\n  meterd profile check device-profiles/eastron-sdm630.yaml my-profiles/*.yaml\n')
    .action((files: string[]) => {
      let bad = 0;
      for (const file of files) {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (err) {
          throw new CliError('FILE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`);
        }
        const r = parseProfile(text, file);
        if (r.ok) {
          io.out(
            `${file}: ok (${r.profile.id}, ${r.profile.protocol}, ${r.profile.points.size} points, groups ${r.profile.groups.map((g) => g.name).join(', ')})`,
          );
        } else {
          bad++;
          for (const i of r.issues) io.out(formatIssue(i));
        }
      }
      if (bad > 0) throw new CliError('PROFILE_INVALID', `${bad} of ${files.length} profile file(s) have problems`);
    });
  profile
    .command('list')
    .description('list the loaded device profiles with protocol, points and group intervals')
    .option('--dir <folder...>', 'extra profile folders (later folders override by id)')
    .option('--json', 'print JSON')
    .action((opts: { dir?: string[]; json?: boolean }) => {
      const profiles = [...loadProfiles([BUILTIN_PROFILES_DIR, ...(opts.dir ?? [])]).values()];
      if (opts.json) {
        io.out(
          JSON.stringify(
            profiles.map((p) => ({
              id: p.id,
              name: p.name,
              protocol: p.protocol,
              points: [...p.points.keys()],
              groups: p.groups.map((g) => ({ name: g.name, interval: formatDuration(g.intervalMs) })),
            })),
          ),
        );
        return;
      }
      for (const p of profiles) {
        io.out(
          `${p.id.padEnd(40)} ${p.protocol.padEnd(12)} ${String(p.points.size).padStart(3)} points  ${p.groups.map((g) => `${g.name}/${formatDuration(g.intervalMs)}`).join(' ')}`,
        );
      }
    });
}
