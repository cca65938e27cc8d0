// Live state from the server-sent events: the overview and the meters' rows, shared by every page.
import { useEffect, useState } from 'preact/hooks';

const state = { overview: null, rows: new Map(), connected: true };
const listeners = new Set();
let source = null;

function changed() {
  for (const l of listeners) l();
}

/** Opens the stream (once); rows loaded by a page are kept and updated by the stream's `meters` events. */
export function connectLive() {
  if (source) return;
  source = new EventSource('/api/events');
  source.addEventListener('overview', (e) => {
    state.overview = JSON.parse(e.data);
    changed();
  });
  source.addEventListener('meters', (e) => {
    for (const row of JSON.parse(e.data)) state.rows.set(row.id, row);
    changed();
  });
  source.addEventListener('signed-out', () => {
    disconnectLive();
    window.dispatchEvent(new Event('meterd:signed-out'));
  });
  source.onopen = () => {
    state.connected = true;
    changed();
  };
  source.onerror = () => {
    state.connected = false;
    changed();
  };
}

export function disconnectLive() {
  source?.close();
  source = null;
}

export function setRows(rows) {
  for (const row of rows) state.rows.set(row.id, row);
  changed();
}

export function setOverview(o) {
  state.overview = o;
  changed();
}

/** Re-renders the calling component whenever the live state changes. */
export function useLive() {
  const [, bump] = useState(0);
  useEffect(() => {
    const l = () => bump((n) => n + 1);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return state;
}
