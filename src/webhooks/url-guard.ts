import ipaddr from "ipaddr.js";
import type { Config } from "../env";
import { DNS_TIMEOUT_MS, resolveHost } from "./resolve-host";

/**
 * Which URLs may receive webhooks. Checked when an endpoint is saved and again before every
 * delivery attempt, so a receiver cannot be pointed at this platform's own network or a cloud
 * metadata service. In production a receiver must be https, on port 443 or ≥ 1024, and its host a
 * public address: a literal one, or a name every A and AAAA record of which is one (resolved with
 * DNS over HTTPS; a name that does not resolve, or whose lookup fails, is refused). Host names are
 * judged as the WHATWG URL parser normalizes them: `http://2130706433/`, `http://0x7f.1/` and
 * `http://017700000001/` all become 127.0.0.1 before these rules run.
 *
 * Public means an allow-list: IPv4 outside every special-purpose range, IPv6 inside global unicast
 * (2000::/3) and outside every special-purpose range. Addresses that carry or reach IPv4 through a
 * transition mechanism (IPv4-mapped, IPv4-translated, IPv4-compatible, NAT64, 6to4, Teredo) are
 * refused outright rather than judged by the IPv4 address inside: where they lead depends on
 * gateways we do not know.
 */

export type UrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

/** Development allows http:// and private receivers and resolves nothing. */
export type WebhookUrlRules = Pick<Config["webhooks"], "allowPrivateUrls" | "dnsResolverUrl">;

export const MAX_WEBHOOK_URL_LENGTH = 2048;

const BLOCKED_HOST_SUFFIXES = [".localhost", ".local", ".localdomain", ".internal", ".home.arpa"];

/** ipaddr.js's names for the IPv4 special-purpose ranges (IANA registry), as people read them. */
const IPV4_RANGE_LABELS: Record<string, string> = {
  unspecified: "a “this network” address",
  broadcast: "the broadcast address",
  multicast: "a multicast address",
  linkLocal: "a link-local address",
  loopback: "a loopback address",
  carrierGradeNat: "a carrier-grade NAT address",
  private: "a private address",
  reserved: "a reserved address (special use, documentation, benchmarking or future use)",
  as112: "an AS112 DNS sink address",
  amt: "an AMT relay address",
};

/** The same for IPv6. ipaddr.js's `reserved` is 2001::/23 (IETF protocol assignments) and the documentation ranges. */
const IPV6_RANGE_LABELS: Record<string, string> = {
  unspecified: "the unspecified address",
  linkLocal: "a link-local address",
  multicast: "a multicast address",
  loopback: "a loopback address",
  uniqueLocal: "a unique local address",
  ipv4Mapped: "an IPv4-mapped address",
  rfc6145: "an IPv4-translated address",
  rfc6052: "a NAT64 address",
  "6to4": "a 6to4 address",
  teredo: "a Teredo address",
  deprecatedSiteLocal: "a site-local address",
  discard: "a discard-only address",
  benchmarking: "a benchmarking address",
  amt: "an AMT relay address",
  as112v6: "an AS112 DNS sink address",
  deprecatedOrchid: "an ORCHID address",
  orchid2: "an ORCHID address",
  droneRemoteIdProtocolEntityTags: "a drone remote ID address",
  segmentRouting: "a segment routing (SRv6) address",
  reserved: "a reserved address (IETF protocol assignment or documentation)",
};

/** Special-purpose IPv6 ranges ipaddr.js has no name for. */
const EXTRA_IPV6_RANGES: ReadonlyArray<readonly [ipaddr.IPv6, number, string]> = [
  // ::a.b.c.d (RFC 4291 2.5.5.1, deprecated); :: and ::1 inside it are named by ipaddr.js first.
  [ipaddr.IPv6.parse("::"), 96, "an IPv4-compatible address"],
];

const GLOBAL_UNICAST: [ipaddr.IPv6, number] = [ipaddr.IPv6.parse("2000::"), 3];

export async function checkWebhookUrl(input: string, rules: WebhookUrlRules, dnsTimeoutMs: number = DNS_TIMEOUT_MS): Promise<UrlCheck> {
  if (input.length > MAX_WEBHOOK_URL_LENGTH) return refuse(`the URL is longer than ${MAX_WEBHOOK_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return refuse("not a valid absolute URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return refuse("the scheme must be http or https");
  if (url.username !== "" || url.password !== "") return refuse("the URL must not contain a username or password");
  if (rules.allowPrivateUrls) return { ok: true, url };

  if (url.protocol !== "https:") return refuse("the URL must use https");
  // The parser drops a default port, so any port left below 1024 is not 443.
  if (url.port !== "" && Number(url.port) < 1024) return refuse(`port ${url.port} is not allowed; use 443 or a port from 1024 up`);
  const host = url.hostname.toLowerCase().replace(/\.$/, "");

  const literal = ipLiteral(host);
  if (literal === "unparsable") return refuse(`${url.hostname} is an unrecognized IP address`);
  if (literal) {
    const problem = addressProblem(literal);
    return problem ? refuse(`${url.hostname} is ${problem}`) : { ok: true, url };
  }
  if (host === "localhost" || BLOCKED_HOST_SUFFIXES.some((suffix) => host.endsWith(suffix))) return refuse(`${url.hostname} is a local or internal host name`);
  if (!host.includes(".")) return refuse(`${url.hostname} is not a fully qualified public host name`);

  const resolution = await resolveHost(host, rules.dnsResolverUrl, dnsTimeoutMs);
  if (!resolution.ok) return refuse(`${host} could not be resolved: ${resolution.reason}`);
  if (resolution.addresses.length === 0) return refuse(`${host} does not resolve to any address`);
  // Every address: fetch may connect to any of them.
  for (const address of resolution.addresses) {
    const problem = addressProblem(ipaddr.parse(address));
    if (problem) return refuse(`${host} resolves to ${address}, ${problem}`);
  }
  return { ok: true, url };
}

function refuse(reason: string): UrlCheck {
  return { ok: false, reason };
}

/** The address a normalized host spells, null for a name; "unparsable" fails closed on a form the library does not read. */
function ipLiteral(host: string): ipaddr.IPv4 | ipaddr.IPv6 | "unparsable" | null {
  if (host.startsWith("[") && host.endsWith("]")) {
    const inner = host.slice(1, -1);
    return ipaddr.IPv6.isValid(inner) ? ipaddr.IPv6.parse(inner) : "unparsable";
  }
  return ipaddr.IPv4.isValidFourPartDecimal(host) ? ipaddr.IPv4.parse(host) : null;
}

/** Why an address may not receive webhooks in production, or null for a public one. */
export function addressProblem(address: ipaddr.IPv4 | ipaddr.IPv6): string | null {
  if (address.kind() === "ipv4") {
    const range = address.range();
    return range === "unicast" ? null : (IPV4_RANGE_LABELS[range] ?? `a special-purpose address (${range})`);
  }
  const ipv6 = address as ipaddr.IPv6;
  const range = ipv6.range();
  if (range !== "unicast") return IPV6_RANGE_LABELS[range] ?? `a special-purpose address (${range})`;
  const extra = EXTRA_IPV6_RANGES.find(([network, bits]) => ipv6.match(network, bits));
  if (extra) return extra[2];
  if (!ipv6.match(GLOBAL_UNICAST)) return "outside global unicast space (2000::/3)";
  return null;
}
