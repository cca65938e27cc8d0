import { read as fsRead, realpath } from 'node:fs';
import { promisify } from 'node:util';
import { SerialPort } from 'serialport';

const readAsync = promisify(fsRead);

/**
 * The device a configured serial path names right now. `/dev/serial/by-id/usb-FTDI_…` is a symlink udev moves to
 * `/dev/ttyUSB1` when the adapter comes back in another socket, so it is resolved again on every open rather than
 * once at start. Rejects with the system error (ENOENT while the adapter is out).
 */
export function resolveSerialPath(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    realpath(path, (err, resolved) => (err ? reject(err) : resolve(resolved)));
  });
}

type Binding = typeof SerialPort.binding;
type OpenedPort = Awaited<ReturnType<Binding['open']>>;
type ReadResult = { buffer: Buffer; bytesRead: number };

/** What the Linux and macOS bindings have and Windows' has not: a file descriptor and a poller to wait on. */
interface UnixPort {
  readonly isOpen: boolean;
  readonly fd: number | null;
  readonly poller: { once(event: 'readable', cb: (err: Error | null) => void): unknown };
  read(buffer: Buffer, offset: number, length: number): Promise<ReadResult>;
}

/**
 * serialport's binding with one change: a read that returns 0 bytes is a hangup. After a USB adapter is unplugged,
 * or the far end of a pty closes, the kernel hangs the tty up and every read returns 0 at once; serialport reads
 * again in a loop (a core at 100 %) and never reports the port lost, so the bus would stay "up" until a write
 * failed. As an error the read goes the way of every other read error: serialport closes the port as disconnected,
 * and the bus reopens it.
 *
 * @example
 * new SerialPort({ path, baudRate: 2400, binding: hangupAwareBinding } as SerialPortOpenOptions);
 */
export const hangupAwareBinding: Binding = {
  list: () => SerialPort.binding.list(),
  async open(options: Parameters<Binding['open']>[0]): Promise<OpenedPort> {
    // The options were made for this platform's binding; the union of the three bindings' types cannot say so.
    const port = await (SerialPort.binding.open as (o: typeof options) => Promise<OpenedPort>)(options);
    if (isUnixPort(port)) {
      // Only this instance's read is replaced: the rest of the binding (writes, drain, locking, close) is serialport's own.
      port.read = (buffer, offset, length) => readOrHangup(port, buffer, offset, length);
    }
    return port;
  },
} as Binding;

function isUnixPort(port: unknown): port is UnixPort {
  const p = port as Partial<UnixPort>;
  return typeof p.fd === 'number' && typeof p.poller?.once === 'function';
}

async function readOrHangup(port: UnixPort, buffer: Buffer, offset: number, length: number): Promise<ReadResult> {
  for (;;) {
    const fd = port.fd;
    // serialport ignores read errors marked canceled: they mean "closed on purpose".
    if (!port.isOpen || fd === null) throw Object.assign(new Error('Port is not open'), { canceled: true });
    let bytesRead: number;
    try {
      ({ bytesRead } = await readAsync(fd, buffer, offset, length, null));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw err;
      await new Promise<void>((resolve, reject) => port.poller.once('readable', (e) => (e ? reject(e) : resolve())));
      continue;
    }
    if (bytesRead > 0) return { buffer, bytesRead };
    throw Object.assign(new Error('EOF: the device hung up (USB adapter unplugged, or the other end of the pty closed)'), {
      code: 'EOF',
    });
  }
}
