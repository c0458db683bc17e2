/**
 * Which URLs may receive webhooks. Checked when an endpoint is saved and again before every
 * delivery, so a receiver cannot be pointed at this platform's own network or a cloud metadata
 * service. Host names are judged as the WHATWG URL parser normalizes them: `http://2130706433/`,
 * `http://0x7f.1/` and `http://017700000001/` all become 127.0.0.1 before these rules run.
 */

export type UrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

export const MAX_WEBHOOK_URL_LENGTH = 2048;

const BLOCKED_HOST_SUFFIXES = [".localhost", ".local", ".localdomain", ".internal", ".home.arpa"];

/** [network, prefix length, what it is] */
const BLOCKED_IPV4: ReadonlyArray<readonly [string, number, string]> = [
  ["0.0.0.0", 8, "a “this network” address"],
  ["10.0.0.0", 8, "a private address"],
  ["100.64.0.0", 10, "a carrier-grade NAT address"],
  ["127.0.0.0", 8, "a loopback address"],
  ["169.254.0.0", 16, "a link-local address"],
  ["172.16.0.0", 12, "a private address"],
  ["192.0.0.0", 24, "a reserved address"],
  ["192.0.2.0", 24, "a documentation address"],
  ["192.168.0.0", 16, "a private address"],
  ["198.18.0.0", 15, "a benchmarking address"],
  ["198.51.100.0", 24, "a documentation address"],
  ["203.0.113.0", 24, "a documentation address"],
  ["224.0.0.0", 4, "a multicast address"],
  // Includes the broadcast address 255.255.255.255.
  ["240.0.0.0", 4, "a reserved address"],
];

export function checkWebhookUrl(input: string, allowPrivate: boolean): UrlCheck {
  if (input.length > MAX_WEBHOOK_URL_LENGTH) return refuse(`the URL is longer than ${MAX_WEBHOOK_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return refuse("not a valid absolute URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return refuse("the scheme must be http or https");
  if (url.username !== "" || url.password !== "") return refuse("the URL must not contain a username or password");
  if (allowPrivate) return { ok: true, url };

  if (url.protocol !== "https:") return refuse("the URL must use https");
  // The parser drops a default port, so any port left below 1024 is not 443.
  if (url.port !== "" && Number(url.port) < 1024) return refuse(`port ${url.port} is not allowed; use 443 or a port from 1024 up`);
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  const problem = hostProblem(host);
  return problem ? refuse(`${url.hostname} is ${problem}`) : { ok: true, url };
}

function refuse(reason: string): UrlCheck {
  return { ok: false, reason };
}

/** Why a (normalized) host may not receive webhooks in production, or null. */
function hostProblem(host: string): string | null {
  if (host.startsWith("[") && host.endsWith("]")) return ipv6Problem(host.slice(1, -1));
  const ipv4 = parseIpv4(host);
  if (ipv4 !== null) return ipv4Problem(ipv4);
  if (host === "localhost" || BLOCKED_HOST_SUFFIXES.some((suffix) => host.endsWith(suffix))) return "a local or internal host name";
  if (!host.includes(".")) return "not a fully qualified public host name";
  return null;
}

function parseIpv4(host: string): number | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!match) return null;
  const octets = match.slice(1).map(Number);
  if (octets.some((octet) => octet > 255)) return null;
  return octets.reduce((value, octet) => value * 256 + octet, 0);
}

function ipv4Problem(address: number): string | null {
  for (const [network, prefix, label] of BLOCKED_IPV4) {
    const base = parseIpv4(network)!;
    const size = 2 ** (32 - prefix);
    if (address >= base && address < base + size) return label;
  }
  return null;
}

/** The eight 16-bit groups of an IPv6 address in the parser's serialization (hex groups, `::`). */
function parseIpv6(text: string): number[] | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((group) => (/^[0-9a-f]{1,4}$/.test(group) ? parseInt(group, 16) : Number.NaN)));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if ([...head, ...tail].some(Number.isNaN)) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const zeros = 8 - head.length - tail.length;
  if (zeros < 1) return null;
  return [...head, ...new Array<number>(zeros).fill(0), ...tail];
}

function ipv6Problem(text: string): string | null {
  const g = parseIpv6(text);
  // Fail closed on a form we do not understand.
  if (!g) return "an unrecognized IPv6 address";
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number];
  const embeddedIpv4 = g6 * 65536 + g7;
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0) {
    if (g5 === 0xffff) return ipv4Problem(embeddedIpv4);
    if (g5 === 0) {
      if (embeddedIpv4 === 0) return "the unspecified address";
      if (embeddedIpv4 === 1) return "a loopback address";
      return "a deprecated IPv4-compatible address";
    }
  }
  // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return ipv4Problem(embeddedIpv4);
  if ((g0 & 0xfe00) === 0xfc00) return "a unique local address";
  if ((g0 & 0xffc0) === 0xfe80) return "a link-local address";
  if ((g0 & 0xffc0) === 0xfec0) return "a site-local address";
  if ((g0 & 0xff00) === 0xff00) return "a multicast address";
  if (g0 === 0x2001 && g1 === 0x0db8) return "a documentation address";
  return null;
}
