import { describe, expect, it } from "vitest";
import { DEFAULT_DNS_RESOLVER_URL } from "../../src/env";
import { checkWebhookUrl } from "../../src/webhooks/url-guard";

// Names resolve through the fake resolver (test/fakes/dns.mjs); its table says what each name is.
const PRODUCTION = { allowPrivateUrls: false, dnsResolverUrl: DEFAULT_DNS_RESOLVER_URL };
const DEVELOPMENT = { allowPrivateUrls: true, dnsResolverUrl: DEFAULT_DNS_RESOLVER_URL };

async function reasonRefused(url: string, rules = PRODUCTION, dnsTimeoutMs?: number): Promise<string> {
  const check = await checkWebhookUrl(url, rules, dnsTimeoutMs);
  expect(check.ok, `${url} should be refused`).toBe(false);
  return check.ok ? "" : check.reason;
}

describe("checkWebhookUrl in production", () => {
  it.each([
    "https://hooks.example.com/webhooks/echo",
    "https://hooks.example.com:8443/echo?token=abc",
    "https://hooks.example.com:443/echo",
    "https://HOOKS.example.com./echo",
    "https://v4-only.example.com/echo",
    "https://8.8.8.8/echo",
    "https://[2606:4700:4700::1111]/echo",
  ])("allows %s", async (url) => {
    expect(await checkWebhookUrl(url, PRODUCTION)).toMatchObject({ ok: true });
  });

  it.each([
    ["not a url", "not a valid absolute URL"],
    ["/relative/path", "not a valid absolute URL"],
    ["ftp://example.com/x", "scheme must be http or https"],
    ["javascript:alert(1)", "scheme must be http or https"],
    ["https://user:pass@example.com/x", "username or password"],
    ["https://user@example.com/x", "username or password"],
    [`https://example.com/${"a".repeat(2048)}`, "longer than 2048"],
    ["http://example.com/x", "must use https"],
    ["https://example.com:80/x", "port 80"],
    ["https://example.com:22/x", "port 22"],
    ["https://localhost/x", "local or internal host name"],
    ["https://LOCALHOST./x", "local or internal host name"],
    ["https://api.localhost/x", "local or internal host name"],
    ["https://printer.local/x", "local or internal host name"],
    ["https://metadata.google.internal/x", "local or internal host name"],
    ["https://intranet/x", "not a fully qualified public host name"],
    ["https://127.0.0.1/x", "loopback"],
    ["https://127.1.2.3/x", "loopback"],
    ["https://0.0.0.0/x", "“this network”"],
    ["https://10.1.2.3/x", "private"],
    ["https://172.16.0.1/x", "private"],
    ["https://172.31.255.255/x", "private"],
    ["https://192.168.1.1/x", "private"],
    ["https://169.254.169.254/latest/meta-data/", "link-local"],
    ["https://100.64.0.1/x", "carrier-grade NAT"],
    ["https://224.0.0.1/x", "multicast"],
    ["https://240.0.0.1/x", "reserved"],
    ["https://255.255.255.255/x", "broadcast"],
    // Other spellings of IPv4 addresses, as the URL parser normalizes them.
    ["https://2130706433/x", "127.0.0.1 is a loopback address"],
    ["https://0x7f000001/x", "127.0.0.1 is a loopback address"],
    ["https://0x7f.1/x", "127.0.0.1 is a loopback address"],
    ["https://017700000001/x", "127.0.0.1 is a loopback address"],
    ["https://0177.0.0.1/x", "127.0.0.1 is a loopback address"],
    ["https://127.1/x", "127.0.0.1 is a loopback address"],
    ["https://2852039166/x", "169.254.169.254 is a link-local address"],
    ["https://0xa9fea9fe/x", "169.254.169.254 is a link-local address"],
    ["https://[::1]/x", "loopback"],
    ["https://[0:0:0:0:0:0:0:1]/x", "loopback"],
    ["https://[::]/x", "unspecified"],
    ["https://[fc00::1]/x", "unique local"],
    ["https://[fd12:3456::1]/x", "unique local"],
    ["https://[fe80::1]/x", "link-local"],
    ["https://[ff02::1]/x", "multicast"],
    ["https://[::ffff:127.0.0.1]/x", "IPv4-mapped"],
    ["https://[::ffff:7f00:1]/x", "IPv4-mapped"],
    ["https://[::ffff:169.254.169.254]/x", "IPv4-mapped"],
    ["https://[::ffff:10.0.0.1]/x", "IPv4-mapped"],
    ["https://[64:ff9b::10.0.0.1]/x", "NAT64"],
    ["https://[::127.0.0.1]/x", "IPv4-compatible"],
  ])("refuses %s (%s)", async (url, reason) => {
    expect(await reasonRefused(url)).toContain(reason);
  });

  // Each special-purpose range, at its first and last address where that tells the bounds apart.
  it.each([
    ["0.255.255.255", "“this network”"],
    ["10.255.255.255", "a private address"],
    ["100.127.255.255", "carrier-grade NAT"],
    ["127.255.255.254", "loopback"],
    ["169.254.0.1", "link-local"],
    ["172.31.0.1", "a private address"],
    ["192.168.255.255", "a private address"],
    ["192.0.0.8", "reserved"],
    ["192.0.2.1", "reserved"],
    ["192.88.99.1", "reserved"],
    ["198.18.0.1", "reserved"],
    ["198.19.255.255", "reserved"],
    ["198.51.100.7", "reserved"],
    ["203.0.113.7", "reserved"],
    ["192.31.196.1", "AS112"],
    ["192.52.193.1", "AMT"],
    ["239.255.255.255", "multicast"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.254", "reserved"],
    ["255.255.255.255", "broadcast"],
  ])("refuses IPv4 %s (%s)", async (address, label) => {
    const reason = await reasonRefused(`https://${address}/x`);
    expect(reason).toContain(`${address} is `);
    expect(reason).toContain(label);
  });

  it.each([
    ["::", "the unspecified address"],
    ["::1", "a loopback address"],
    ["::8.8.8.8", "an IPv4-compatible address"],
    ["::ffff:8.8.8.8", "an IPv4-mapped address"],
    // IPv4-translated (RFC 6145, ::ffff:0:0:0/96), the form the issue found accepted.
    ["::ffff:0:127.0.0.1", "an IPv4-translated address"],
    ["::ffff:0:8.8.8.8", "an IPv4-translated address"],
    // NAT64: the well-known prefix (RFC 6052) and local use (RFC 8215), whatever IPv4 they carry.
    ["64:ff9b::8.8.8.8", "a NAT64 address"],
    ["64:ff9b:1::a9fe:a9fe", "a NAT64 address"],
    ["64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "a NAT64 address"],
    ["100::1", "a discard-only address"],
    // Teredo (2001::/32) and 6to4 (2002::/16).
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo address"],
    ["2001:0:ffff::1", "a Teredo address"],
    ["2002:a9fe:a9fe::", "a 6to4 address"],
    ["2002:808:808::1", "a 6to4 address"],
    ["2001:2::1", "a benchmarking address"],
    ["2001:db8::1", "a reserved address"],
    ["3fff::1", "a reserved address"],
    ["2001:100::1", "a reserved address"],
    ["fc00::1", "a unique local address"],
    ["fdff:ffff::1", "a unique local address"],
    ["fe80::1", "a link-local address"],
    ["febf::1", "a link-local address"],
    ["fec0::1", "a site-local address"],
    ["ff0e::1", "a multicast address"],
    ["5f00::1", "a segment routing (SRv6) address"],
    ["4000::1", "outside global unicast space"],
    ["1234::1", "outside global unicast space"],
  ])("refuses IPv6 %s (%s)", async (address, label) => {
    const reason = await reasonRefused(`https://[${address}]/x`);
    expect(reason).toContain(" is ");
    expect(reason).toContain(label);
  });

  it.each(["2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "3ffe::1", "2001:4860:4860::8888"])("allows global unicast IPv6 %s", async (address) => {
    expect(await checkWebhookUrl(`https://[${address}]/x`, PRODUCTION)).toMatchObject({ ok: true });
  });

  it("relies on the URL parser to normalize numeric hosts", () => {
    expect(new URL("http://[::ffff:0:127.0.0.1]/").hostname).toBe("[::ffff:0:7f00:1]");
    expect(new URL("http://2130706433/").hostname).toBe("127.0.0.1");
    expect(new URL("http://0x7f.1/").hostname).toBe("127.0.0.1");
    expect(new URL("http://[::ffff:127.0.0.1]/").hostname).toBe("[::ffff:7f00:1]");
    expect(() => new URL("http://127.0.0.256/")).toThrow();
  });
});

describe("checkWebhookUrl in production, resolving host names", () => {
  it.each([
    ["127.0.0.1.nip.io", "127.0.0.1.nip.io resolves to 127.0.0.1, a loopback address"],
    ["169.254.169.254.nip.io", "169.254.169.254.nip.io resolves to 169.254.169.254, a link-local address"],
    ["10.0.0.8.nip.io", "10.0.0.8.nip.io resolves to 10.0.0.8, a private address"],
    // Any refused address refuses the name: fetch may connect to any of them.
    ["mixed.example.com", "mixed.example.com resolves to 10.0.0.8, a private address"],
    ["v6-ula.example.com", "v6-ula.example.com resolves to fd00::8, a unique local address"],
    ["v6-teredo.example.com", "v6-teredo.example.com resolves to 2001:0:4136:e378:8000:63bf:3fff:fdd2, a Teredo address"],
    // A CNAME chain is judged by the addresses it ends at.
    ["chain-private.example.com", "chain-private.example.com resolves to 169.254.169.254, a link-local address"],
  ])("refuses %s", async (host, reason) => {
    expect(await reasonRefused(`https://${host}/x`)).toBe(reason);
  });

  it("allows a CNAME chain that ends at public addresses", async () => {
    expect(await checkWebhookUrl("https://chain-public.example.com/x", PRODUCTION)).toMatchObject({ ok: true });
  });

  it.each([
    ["no-such-host.example.com", "no-such-host.example.com does not resolve to any address"],
    ["chain-dangling.example.com", "chain-dangling.example.com does not resolve to any address"],
  ])("refuses %s, which does not resolve", async (host, reason) => {
    expect(await reasonRefused(`https://${host}/x`)).toBe(reason);
  });

  // Fail closed: what a failed lookup would have returned could be a private address.
  it.each([
    ["servfail.example.com", "servfail.example.com could not be resolved: the resolver answered SERVFAIL to the A lookup"],
    ["truncated.example.com", "truncated.example.com could not be resolved: the resolver's answer to the A lookup was truncated"],
    ["http-500.example.com", "http-500.example.com could not be resolved: the resolver answered HTTP 500 to the A lookup"],
    ["garbage.example.com", "garbage.example.com could not be resolved: the A lookup failed"],
    ["bad-data.example.com", 'bad-data.example.com could not be resolved: the resolver returned "not-an-address", not an IPv4 address'],
  ])("refuses %s when the lookup fails", async (host, reason) => {
    expect(await reasonRefused(`https://${host}/x`)).toContain(reason);
  });

  it("refuses a name when the resolver does not answer in time", async () => {
    expect(await reasonRefused("https://slow.example.com/x", PRODUCTION, 200)).toBe("slow.example.com could not be resolved: the A lookup timed out after 200 ms");
  });

  it("asks the configured resolver, and refuses when it cannot be reached", async () => {
    const unreachable = { ...PRODUCTION, dnsResolverUrl: "https://resolver.invalid.test/dns-query" };
    expect(await reasonRefused("https://hooks.example.com/x", unreachable)).toBe("hooks.example.com could not be resolved: the resolver answered HTTP 502 to the A lookup");
  });
});

describe("checkWebhookUrl in development", () => {
  it.each([
    "http://localhost:4000/webhooks/echo",
    "http://127.0.0.1:8787/x",
    "http://receiver.test/inbox",
    "https://example.com/x",
    "http://[::1]:3000/x",
    "http://192.168.1.20/x",
    "https://[::ffff:0:127.0.0.1]/x",
    "https://169.254.169.254.nip.io/x",
    // Nothing is resolved: a name whose lookup would fail is allowed.
    "https://servfail.example.com/x",
  ])("allows %s", async (url) => {
    expect(await checkWebhookUrl(url, DEVELOPMENT)).toMatchObject({ ok: true });
  });

  it.each([
    ["not a url", "not a valid absolute URL"],
    ["ftp://localhost/x", "scheme must be http or https"],
    ["http://user:pass@localhost:4000/x", "username or password"],
    [`http://localhost/${"a".repeat(2048)}`, "longer than 2048"],
  ])("still refuses %s", async (url, reason) => {
    expect(await reasonRefused(url, DEVELOPMENT)).toContain(reason);
  });

  it("returns the parsed URL", async () => {
    const check = await checkWebhookUrl("http://localhost:4000/webhooks/echo", DEVELOPMENT);
    expect(check.ok && check.url.port).toBe("4000");
  });
});
