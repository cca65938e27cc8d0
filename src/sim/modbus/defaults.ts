/**
 * Plausible readings for a meter that nobody has configured: a lightly loaded single- or three-phase supply. Values
 * differ per phase so a reader that mixes up phases is caught; powers follow from voltage × current × power factor.
 */

const PHASE_VOLTAGE = { a: 230.1, b: 229.8, c: 230.4 } as const;
const LINE_VOLTAGE = { ab: 398.6, bc: 398.1, ca: 399.0 } as const;
const PHASE_CURRENT = { a: 5.12, b: 4.87, c: 5.03 } as const;
const POWER_FACTOR = 0.98;
const IMPORT_KWH = 4321.5;
const EXPORT_KWH = 12.3;

type Phase = 'a' | 'b' | 'c';
const PHASES: readonly Phase[] = ['a', 'b', 'c'];

/** Active power of one phase in kW, rounded to whole watts as a meter would show it. */
function phaseKw(p: Phase): number {
  return Math.round(PHASE_VOLTAGE[p] * PHASE_CURRENT[p] * POWER_FACTOR) / 1000;
}

function phaseKva(p: Phase): number {
  return Math.round(PHASE_VOLTAGE[p] * PHASE_CURRENT[p]) / 1000;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * The default engineering value of a canonical point (device-profiles/README.md), or 0 for counts, status words and
 * anything unknown. `threePhase` decides whether totals sum three phases or are phase A alone.
 */
export function defaultValue(point: string, threePhase: boolean): number {
  const phases = threePhase ? PHASES : (['a'] as const);
  const suffix = /\.([abc])$/.exec(point)?.[1] as Phase | undefined;
  const base = suffix ? point.slice(0, -2) : point;
  switch (base) {
    case 'voltage':
      return PHASE_VOLTAGE[suffix ?? 'a'];
    case 'current':
      return PHASE_CURRENT[suffix ?? 'a'];
    case 'power.active':
      return suffix ? phaseKw(suffix) : round3(phases.reduce((kw, p) => kw + phaseKw(p), 0));
    case 'power.apparent':
      return suffix ? phaseKva(suffix) : round3(phases.reduce((kva, p) => kva + phaseKva(p), 0));
    case 'power.reactive': {
      const one = (p: Phase) => Math.round(Math.sqrt(phaseKva(p) ** 2 - phaseKw(p) ** 2) * 1000) / 1000;
      return suffix ? one(suffix) : round3(phases.reduce((kvar, p) => kvar + one(p), 0));
    }
    case 'power.factor':
      return POWER_FACTOR;
    case 'energy.active.import':
      return suffix ? Math.round((IMPORT_KWH / phases.length) * 10) / 10 : IMPORT_KWH;
    case 'energy.active.export':
      return suffix ? Math.round((EXPORT_KWH / phases.length) * 10) / 10 : EXPORT_KWH;
    case 'thd.voltage':
      return suffix ? { a: 2.0, b: 2.2, c: 2.1 }[suffix] : 2.1;
    default:
      break;
  }
  switch (point) {
    case 'voltage.ab':
    case 'voltage.bc':
    case 'voltage.ca':
      return LINE_VOLTAGE[point.slice(-2) as keyof typeof LINE_VOLTAGE];
    case 'current.n':
      return 0.21;
    case 'frequency':
      return 50;
    case 'energy.active.total':
      return round3(IMPORT_KWH + EXPORT_KWH);
    case 'energy.reactive.import':
      return 812.4;
    case 'energy.reactive.export':
      return 3.1;
    case 'credit.balance.energy':
      return 50;
    case 'credit.balance.money':
      return 100;
    case 'price.current':
      return 0.56;
    case 'ct.ratio':
    case 'pt.ratio':
      return 1;
    default:
      return 0;
  }
}
