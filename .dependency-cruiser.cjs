// The layer rules of docs/architecture.md, checked by `npm run depcruise` and by .ci/run.
// A rule here and a rule in the document change together.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'protocols-are-pure',
      comment: 'Codecs are bytes in, typed values out: protocols/ imports nothing of meterd and no I/O module.',
      severity: 'error',
      from: { path: '^protocols/' },
      to: {
        pathNot: '^protocols/',
        dependencyTypesNot: ['type-only'],
        path: '^(src|scripts|bin|test)/|(^|/)node_modules/|^(node:)?(fs|net|dgram|child_process|timers|worker_threads|http|https)$',
      },
    },
    {
      name: 'only-store-touches-sqlite',
      comment: 'Only src/store opens SQLite; everything else goes through the Store interface.',
      severity: 'error',
      from: { path: '^(src|protocols|bin)/', pathNot: '^src/store/' },
      to: { path: '(^|/)node_modules/better-sqlite3/' },
    },
    {
      name: 'only-uplink-publishes',
      comment: 'Only src/uplink speaks MQTT.',
      severity: 'error',
      from: { path: '^(src|protocols|bin)/', pathNot: '^src/uplink/' },
      to: { path: '(^|/)node_modules/mqtt/' },
    },
    {
      name: 'nothing-depends-on-the-simulators',
      comment: 'Production code never imports the simulators; only the CLI commands that start them (sim, demo) do.',
      severity: 'error',
      from: { path: '^(src|protocols)/', pathNot: '^src/sim/|^src/cli/commands/(sim|sim-modbus|sim-encoder|demo)\\.[jt]s$' },
      to: { path: '^src/sim/' },
    },
    {
      name: 'services-do-not-publish',
      comment: 'Services know meanings; they hand messages to the store outbox and never import the uplink.',
      severity: 'error',
      from: { path: '^src/services/' },
      to: { path: '^src/uplink/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'web-calls-services-not-sql',
      comment: 'The web console calls services; it never touches the store or SQLite directly.',
      severity: 'error',
      from: { path: '^src/web/' },
      to: { path: '^src/store/|(^|/)node_modules/better-sqlite3/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'control-is-a-door',
      comment:
        'The control socket is a door like MQTT: it hands frames to the command router the daemon gives it, and touches no bus, store or service itself.',
      severity: 'error',
      from: { path: '^src/control/' },
      to: {
        path: '^src/(bus|devices|store|services|cards|daemon|cli|sim|web|uplink|profiles)/|(^|/)node_modules/(better-sqlite3|mqtt|serialport)/',
        dependencyTypesNot: ['type-only'],
      },
    },
    {
      name: 'no-circular',
      comment: 'A cycle between modules hides which one owns a rule.',
      severity: 'warn',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
