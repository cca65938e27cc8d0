/** One meter of a simulated campus: a dormitory room or an office, on one of its buses. */
export interface CampusMeter {
  readonly id: string;
  readonly bus: number;
  readonly address: string;
  readonly customerNo: string;
  readonly dorm: boolean;
  /** Silent at the start: every tenth room of a bus, a tenth of the dormitory. */
  readonly silent: boolean;
}

/** The campus of issue 10's "must show": per bus, `officesPerBus` offices first, then dormitory rooms. */
export function campusMeters(buses: number, perBus: number, officesPerBus: number): CampusMeter[] {
  const meters: CampusMeter[] = [];
  for (let b = 0; b < buses; b++)
    for (let i = 0; i < perBus; i++) {
      const n = b * 1000 + i + 1;
      const dorm = i >= officesPerBus;
      meters.push({
        id: `${dorm ? 'room' : 'office'}-${n}`,
        bus: b,
        address: String(n).padStart(12, '0'),
        customerNo: String(880000000000 + n),
        dorm,
        silent: dorm && i % 10 === 5,
      });
    }
  return meters;
}
