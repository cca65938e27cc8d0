/**
 * What modbus-serial really rejects with, produced by real servers on loopback, and how classifyModbusError reads it:
 * an exception response, a transaction timeout, a CRC error, a closed port, a refused connection.
 */
import net from 'node:net';
import ModbusSerial, { ServerTCP } from 'modbus-serial';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyModbusError, decodeRtuFrame, decodeValue, encodeRtuFrame } from '../../protocols/modbus/index.js';

const ModbusRTU = ModbusSerial.default;
type Client = InstanceType<typeof ModbusRTU>;

/** A port nobody listens on. Port 0 cannot be handed to ServerTCP: it treats 0 as "unset" and binds 502. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function rejection(request: Promise<unknown>): Promise<unknown> {
  try {
    await request;
  } catch (err) {
    return err;
  }
  throw new Error('the request succeeded but a failure was expected');
}

function close(client: Client): Promise<void> {
  return new Promise((resolve) => (client.isOpen ? client.close(() => resolve()) : resolve()));
}

describe('modbus-serial over Modbus TCP against its own ServerTCP', () => {
  let server: InstanceType<typeof ServerTCP>;
  let port: number;
  const clients: Client[] = [];

  beforeAll(async () => {
    port = await freePort();
    const illegalAddress = () => {
      throw { modbusErrorCode: 2 };
    };
    server = new ServerTCP(
      { getInputRegister: illegalAddress, getMultipleInputRegisters: illegalAddress, getHoldingRegister: () => 7 },
      { host: '127.0.0.1', port, unitID: 1 },
    );
    await new Promise<void>((resolve, reject) => {
      server.on('initialized', () => resolve());
      server.on('serverError', reject);
    });
  });

  afterAll(async () => {
    for (const c of clients) await close(c);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function connect(unit: number): Promise<Client> {
    const client = new ModbusRTU();
    clients.push(client);
    await client.connectTCP('127.0.0.1', { port });
    client.setTimeout(300);
    client.setID(unit);
    return client;
  }

  it('an exception response is an Error with modbusCode, classified as that exception', async () => {
    const client = await connect(1);
    const err = await rejection(client.readInputRegisters(0, 2));
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ modbusCode: 2, message: 'Modbus exception 2: Illegal data address (register not supported by device)' });
    expect(Object.keys(err as object)).toEqual(['modbusCode']);
    expect(classifyModbusError(err)).toEqual({
      kind: 'exception',
      code: 2,
      name: 'ILLEGAL_DATA_ADDRESS',
      message:
        'the meter has no register at this address, or the request runs into an unmapped register (check 0- vs 1-based addresses and the bridged gaps)',
    });
    expect(await client.readHoldingRegisters(0, 2)).toMatchObject({ data: [7, 7] });
  });

  it('no answer within setTimeout is a TransactionTimedOutError (not an Error, errno ETIMEDOUT), classified as a timeout', async () => {
    const client = await connect(9);
    const err = await rejection(client.readInputRegisters(0, 2));
    expect(err).not.toBeInstanceOf(Error);
    expect({ ...(err as object) }).toEqual({ name: 'TransactionTimedOutError', message: 'Timed out', errno: 'ETIMEDOUT' });
    expect(err).not.toHaveProperty('modbusCode');
    const failure = classifyModbusError(err);
    expect(failure.kind).toBe('timeout');
  });

  it('a request on a closed client is a PortNotOpenError, classified as transport: nothing was sent', async () => {
    const client = await connect(1);
    await close(client);
    const err = await rejection(client.readHoldingRegisters(0, 1));
    expect({ ...(err as object) }).toEqual({ name: 'PortNotOpenError', message: 'Port Not Open', errno: 'ECONNREFUSED' });
    expect(classifyModbusError(err)).toMatchObject({ kind: 'transport', code: 'PORT_NOT_OPEN' });
  });

  it("connecting to a port nobody listens on rejects with Node's ECONNREFUSED, classified as transport", async () => {
    const client = new ModbusRTU();
    const err = await rejection(client.connectTCP('127.0.0.1', { port: await freePort() }));
    expect(err).toMatchObject({ code: 'ECONNREFUSED', errno: -111 });
    expect(classifyModbusError(err)).toMatchObject({ kind: 'transport', code: 'ECONNREFUSED' });
  });
});

describe('modbus-serial RTU framing over a raw TCP socket (connectTelnet) against a scripted meter', () => {
  let meter: net.Server;
  let port: number;
  const requests: Uint8Array[] = [];
  let answer: (request: Uint8Array) => Uint8Array = () => new Uint8Array();

  beforeAll(async () => {
    port = await freePort();
    meter = net.createServer((socket) =>
      socket.on('data', (chunk) => {
        requests.push(new Uint8Array(chunk));
        socket.write(answer(new Uint8Array(chunk)));
      }),
    );
    await new Promise<void>((resolve) => meter.listen(port, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => meter.close(() => resolve()));
  });

  async function client(): Promise<Client> {
    const c = new ModbusRTU();
    await c.connectTelnet('127.0.0.1', { port });
    c.setTimeout(300);
    c.setID(1);
    return c;
  }

  it('the request modbus-serial sends decodes as an FC03 read, and a reply framed by encodeRtuFrame is accepted', async () => {
    answer = () => encodeRtuFrame(1, 3, [4, 0x43, 0x66, 0x00, 0x00]);
    const c = await client();
    try {
      const reply = await c.readHoldingRegisters(0x2000, 2);
      expect(decodeValue(reply.data, 'float32', 'ABCD')).toEqual({ ok: true, value: 230 });
      expect(decodeRtuFrame(requests.at(-1)!)).toEqual({
        ok: true,
        value: { unit: 1, functionCode: 3, pdu: { kind: 'read-request', start: 0x2000, quantity: 2 } },
      });
    } finally {
      await close(c);
    }
  });

  it('a reply with a bad CRC is a plain Error "CRC error", classified as transport CRC_ERROR (not a timeout, not an exception)', async () => {
    answer = () => Uint8Array.from([0x01, 0x03, 0x04, 0x00, 0x01, 0x00, 0x02, 0xde, 0xad]);
    const c = await client();
    try {
      const err = await rejection(c.readHoldingRegisters(0, 2));
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toBe('CRC error');
      expect(Object.keys(err as object)).toEqual([]);
      expect(classifyModbusError(err)).toMatchObject({ kind: 'transport', code: 'CRC_ERROR' });
    } finally {
      await close(c);
    }
  });

  it('an RTU exception frame from a gateway is classified by its code', async () => {
    answer = () => encodeRtuFrame(1, 0x83, [0x0b]);
    const c = await client();
    try {
      const err = await rejection(c.readHoldingRegisters(0, 2));
      expect(err).toMatchObject({ modbusCode: 11 });
      expect(classifyModbusError(err)).toMatchObject({ kind: 'exception', code: 11, name: 'GATEWAY_TARGET_FAILED_TO_RESPOND' });
    } finally {
      await close(c);
    }
  });
});
