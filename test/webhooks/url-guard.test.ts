import { describe, expect, it } from "vitest";
import { checkWebhookUrl } from "../../src/webhooks/url-guard";

const PRODUCTION = false;
const DEVELOPMENT = true;

describe("checkWebhookUrl in production", () => {
  it.each([
    "https://example.com/webhooks/echo",
    "https://hooks.example.com:8443/echo?token=abc",
    "https://example.com:443/echo",
    "https://8.8.8.8/echo",
    "https://[2606:4700:4700::1111]/echo",
    "https://example.com./echo",
  ])("allows %s", (url) => {
    const check = checkWebhookUrl(url, PRODUCTION);
    expect(check).toMatchObject({ ok: true });
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
    ["https://255.255.255.255/x", "reserved"],
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
    ["https://[::ffff:127.0.0.1]/x", "loopback"],
    ["https://[::ffff:7f00:1]/x", "loopback"],
    ["https://[::ffff:169.254.169.254]/x", "link-local"],
    ["https://[::ffff:10.0.0.1]/x", "private"],
    ["https://[64:ff9b::10.0.0.1]/x", "private"],
    ["https://[::127.0.0.1]/x", "IPv4-compatible"],
  ])("refuses %s (%s)", (url, reason) => {
    const check = checkWebhookUrl(url, PRODUCTION);
    expect(check.ok).toBe(false);
    expect(check.ok ? "" : check.reason).toContain(reason);
  });

  it("allows an IPv4-mapped public address", () => {
    expect(checkWebhookUrl("https://[::ffff:8.8.8.8]/x", PRODUCTION)).toMatchObject({ ok: true });
  });

  it("relies on the URL parser to normalize numeric hosts", () => {
    expect(new URL("http://2130706433/").hostname).toBe("127.0.0.1");
    expect(new URL("http://0x7f.1/").hostname).toBe("127.0.0.1");
    expect(new URL("http://[::ffff:127.0.0.1]/").hostname).toBe("[::ffff:7f00:1]");
    expect(() => new URL("http://127.0.0.256/")).toThrow();
  });
});

describe("checkWebhookUrl in development", () => {
  it.each(["http://localhost:4000/webhooks/echo", "http://127.0.0.1:8787/x", "http://receiver.test/inbox", "https://example.com/x", "http://[::1]:3000/x", "http://192.168.1.20/x"])(
    "allows %s",
    (url) => {
      expect(checkWebhookUrl(url, DEVELOPMENT)).toMatchObject({ ok: true });
    },
  );

  it.each([
    ["not a url", "not a valid absolute URL"],
    ["ftp://localhost/x", "scheme must be http or https"],
    ["http://user:pass@localhost:4000/x", "username or password"],
    [`http://localhost/${"a".repeat(2048)}`, "longer than 2048"],
  ])("still refuses %s", (url, reason) => {
    const check = checkWebhookUrl(url, DEVELOPMENT);
    expect(check.ok ? "" : check.reason).toContain(reason);
  });

  it("returns the parsed URL", () => {
    const check = checkWebhookUrl("http://localhost:4000/webhooks/echo", DEVELOPMENT);
    expect(check.ok && check.url.port).toBe("4000");
  });
});
