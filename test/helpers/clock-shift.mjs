// Preloaded with `node --import` into a daemon under test: shifts the process's wall clock (Date.now(), new Date())
// by the milliseconds written in the file named by CLOCK_SHIFT_FILE, read at start and again on SIGUSR2. Timers and
// performance.now() are left alone, so the process sees exactly what an NTP step or `date -s` does to it, while the
// machine's clock, and every other process on it, stay untouched.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.CLOCK_SHIFT_FILE;
const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);
let offsetMs = 0;

function load() {
  if (!file) return;
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    if (Number.isFinite(n)) offsetMs = n;
  } catch {
    // No file yet: no shift.
  }
}
load();
process.on('SIGUSR2', load);

class ShiftedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(realNow() + offsetMs);
    else super(...args);
  }

  static now() {
    return realNow() + offsetMs;
  }
}
globalThis.Date = ShiftedDate;

// With LOOP_GAP_FILE set, the longest time the event loop went without running a 100 ms timer since the last SIGUSR2,
// in ms, is kept in that file: how long a clock step (and not the start-up before it) blocked the process.
const gapFile = process.env.LOOP_GAP_FILE;
if (gapFile) {
  let last = performance.now();
  let longest = 0;
  process.on('SIGUSR2', () => {
    longest = 0;
    writeFileSync(gapFile, '0');
  });
  setInterval(() => {
    const now = performance.now();
    if (now - last > longest) {
      longest = now - last;
      writeFileSync(gapFile, String(Math.round(longest)));
    }
    last = now;
  }, 100).unref();
}
