/** The broker URL schemes the gateway connects with (mqtt.js): plain and TLS TCP, plain and TLS WebSocket. */
export const BROKER_PROTOCOLS = ['mqtt:', 'mqtts:', 'ws:', 'wss:'] as const;

/** What a broker URL holds once it checked out. */
export interface BrokerAddress {
  readonly protocol: (typeof BROKER_PROTOCOLS)[number];
  /** Host name or address; an IPv6 address keeps its brackets. */
  readonly host: string;
  readonly port: number;
}

const EXAMPLE = 'e.g. mqtt://broker.example.com:1883 or mqtts://broker.example.com:8883';

/**
 * Checks a broker URL the way the gateway will use it: parsed by `new URL()`, one of the schemes of
 * `BROKER_PROTOCOLS`, a host, and an explicit port from 1 to 65535. A URL mqtt.js would quietly complete (an empty
 * host or a missing port both become localhost:1883) is refused, so a typo never connects to someone else's broker.
 * Messages never repeat the URL, which may hold a password.
 */
export function parseBrokerUrl(text: string): { ok: true; value: BrokerAddress } | { ok: false; message: string } {
  const fail = (message: string) => ({ ok: false as const, message });
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (scheme === null) return fail(`the broker url starts with mqtt://, mqtts://, ws:// or wss:// (${EXAMPLE})`);
  const protocol = `${scheme[1]!.toLowerCase()}:`;
  if (!(BROKER_PROTOCOLS as readonly string[]).includes(protocol)) {
    return fail(`${scheme[1]}:// is not a broker scheme; use mqtt://, mqtts://, ws:// or wss:// (${EXAMPLE})`);
  }
  const { host, port } = authorityOf(text);
  if (host === '') return fail(`the broker url has no host (${EXAMPLE})`);
  if (/\s/.test(host)) return fail(`the broker url's host holds a space (${EXAMPLE})`);
  if (port === undefined || port === '') {
    return fail(
      `the broker url has no port: write it out, ${protocol === 'mqtts:' || protocol === 'wss:' ? 'often 8883 or 443' : 'often 1883'} (${EXAMPLE})`,
    );
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65_535) {
    return fail(`the broker url's port ${port.length > 8 ? `${port.slice(0, 8)}…` : port} is not a number from 1 to 65535`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`the broker url is not a valid URL (${EXAMPLE})`);
  }
  if ((protocol === 'mqtt:' || protocol === 'mqtts:') && !(url.pathname === '' || url.pathname === '/')) {
    return fail(`an ${protocol}// broker url has no path (only ws:// and wss:// take one, e.g. ws://broker:8080/mqtt)`);
  }
  if (url.search !== '' || url.hash !== '') return fail('the broker url takes no ?query or #fragment');
  return { ok: true, value: { protocol: protocol as BrokerAddress['protocol'], host: url.hostname, port: Number(port) } };
}

/**
 * The URL with its password (the part of the user info after `:`) replaced by `***`, for every place a URL is shown:
 * `config check`, logs, `doctor`, error messages. The rest is kept as written, so the operator recognises it.
 *
 * ```ts
 * redactUrl('mqtt://meterd:s3cret@10.0.0.5:1883'); // 'mqtt://meterd:***@10.0.0.5:1883'
 * ```
 */
export function redactUrl(url: string): string {
  const start = url.indexOf('://');
  if (start < 0) return url;
  const from = start + 3;
  const rest = url.slice(from);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  // The user info ends at the last "@" of the authority (a password may hold an unescaped "@").
  const at = authority.lastIndexOf('@');
  if (at < 0) return url;
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(':');
  const masked = colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:***`;
  return `${url.slice(0, from)}${masked}${authority.slice(at)}${end < 0 ? '' : rest.slice(end)}`;
}

/** Host and port as written (no defaults filled in), from the authority after `scheme://`. */
function authorityOf(text: string): { host: string; port: string | undefined } {
  const rest = text.slice(text.indexOf('://') + 3);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0) return { host: hostPort, port: undefined };
    const after = hostPort.slice(close + 1);
    return { host: hostPort.slice(0, close + 1), port: after.startsWith(':') ? after.slice(1) : undefined };
  }
  const colon = hostPort.lastIndexOf(':');
  return colon < 0 ? { host: hostPort, port: undefined } : { host: hostPort.slice(0, colon), port: hostPort.slice(colon + 1) };
}
