import { BusError } from './errors.js';

/**
 * A byte pipe to one physical bus: a local serial port or a serial-over-Ethernet converter. Knows bytes, not frames.
 *
 * Events: `data` for every chunk received; `lost` once when the port closes or fails without `close()` being
 * called (adapter unplugged, EIO, connection reset). After `lost` the transport is closed and may be opened again.
 */
export interface ByteTransport {
  /** What a technician would look for: `/dev/ttyUSB0 2400 8E1` or `tcp://10.0.0.7:8899`. */
  readonly description: string;
  readonly isOpen: boolean;
  /** Opens the port; rejects with `PORT_OPEN_FAILED` (missing, locked, refused, …) or `ABORTED`. */
  open(signal?: AbortSignal): Promise<void>;
  /** Resolves once the bytes have left the gateway (serial: after tcdrain; TCP: handed to the kernel). */
  write(bytes: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** Closes the port; never rejects, safe to call twice or when not open. */
  close(): Promise<void>;
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'lost', listener: (error: Error) => void): this;
  off(event: 'data', listener: (chunk: Buffer) => void): this;
  off(event: 'lost', listener: (error: Error) => void): this;
}

export type PortSpec = { kind: 'serial'; path: string } | { kind: 'tcp'; host: string; port: number };

/**
 * Reads a port as written in the config or on the command line: a device path (`/dev/ttyUSB0`,
 * `/dev/serial/by-id/…`, `COM3`) or `tcp://host:port` for a serial-over-Ethernet converter.
 *
 * @example
 * parsePortSpec('tcp://10.0.0.7:8899'); // { kind: 'tcp', host: '10.0.0.7', port: 8899 }
 * parsePortSpec('/dev/ttyUSB0');        // { kind: 'serial', path: '/dev/ttyUSB0' }
 */
export function parsePortSpec(spec: string): PortSpec {
  const text = spec.trim();
  if (text === '') throw invalid(spec, 'it is empty; give a device path like /dev/ttyUSB0 or tcp://host:port');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (scheme) {
    if (scheme[1]!.toLowerCase() !== 'tcp')
      throw invalid(spec, `the scheme "${scheme[1]}" is not supported; use tcp://host:port for a serial-over-Ethernet converter`);
    return parseTcp(spec, text);
  }
  if (/^[^/\\]+:\d+$/.test(text)) throw invalid(spec, `it looks like a network address; write tcp://${text}`);
  return { kind: 'serial', path: text };
}

function parseTcp(spec: string, text: string): PortSpec {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const port = /:(\d+)\/?$/.exec(text)?.[1];
    if (port !== undefined && Number(port) > 65535) throw invalid(spec, `the port ${port} is outside 1–65535`);
    throw invalid(spec, 'it is not a valid tcp://host:port address');
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw invalid(spec, 'the host is missing; write tcp://10.0.0.7:8899');
  if (url.port === '')
    throw invalid(spec, `the port number is missing; write tcp://${url.host}:<port> (the converter's TCP server port, often 8899 or 4001)`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw invalid(spec, 'only tcp://host:port is allowed, without a path, user or query');
  }
  const port = Number(url.port);
  if (port < 1 || port > 65535) throw invalid(spec, `the port ${url.port} is outside 1–65535`);
  return { kind: 'tcp', host, port };
}

function invalid(spec: string, why: string): BusError {
  return new BusError('PORT_SPEC_INVALID', `port "${spec}" is not usable: ${why}`);
}
