// @ts-check
/**
 * A fake DNS-over-HTTPS resolver (host cloudflare-dns.com) speaking Cloudflare's JSON API:
 * `GET /dns-query?name=<host>&type=A|AAAA` → `{Status, TC, Answer?: [{name, type, TTL, data}]}`,
 * type 1 = A, 28 = AAAA, 5 = CNAME. CNAMEs are followed as a recursive resolver does: the answer
 * lists the chain's CNAME records, then the final name's addresses. Names come from this table:
 *
 *   hooks.example.com, receiver.test    A 93.184.215.14, AAAA 2606:2800:21f:cb07:6820:80da:af6b:8b2c
 *   v4-only.example.com                 A 93.184.215.14 (AAAA: no records)
 *   127.0.0.1.nip.io                    A 127.0.0.1
 *   169.254.169.254.nip.io              A 169.254.169.254
 *   10.0.0.8.nip.io                     A 10.0.0.8
 *   mixed.example.com                   A 93.184.215.14 and 10.0.0.8 (one public, one private)
 *   v6-ula.example.com                  A 93.184.215.14, AAAA fd00::8 (a private IPv6 answer)
 *   v6-teredo.example.com               AAAA 2001:0:4136:e378:8000:63bf:3fff:fdd2
 *   chain-public.example.com            CNAME alias-public.example.com → CNAME hooks.example.com
 *   chain-private.example.com           CNAME alias-private.example.net → CNAME 169.254.169.254.nip.io
 *   chain-dangling.example.com          CNAME nowhere.example.com (which does not exist)
 *   servfail.example.com                Status 2 (SERVFAIL)
 *   truncated.example.com               TC: true
 *   http-500.example.com                the resolver answers HTTP 500
 *   garbage.example.com                 the resolver answers 200 with a body that is not JSON
 *   bad-data.example.com                A "not-an-address"
 *   slow.example.com                    the resolver answers after 2 s
 *   any other name                      Status 3 (NXDOMAIN)
 *
 * `POST /_fake/records` {name, A?: string[], AAAA?: string[]} adds or replaces a name's addresses,
 * e.g. to point a name elsewhere after an endpoint was saved (DNS rebinding).
 */

const PUBLIC_V4 = "93.184.215.14";
const PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c";
const A = 1;
const CNAME = 5;
const AAAA = 28;

/** @typedef {{ A?: string[], AAAA?: string[], CNAME?: string, status?: number, truncated?: boolean, http?: number, garbage?: boolean, delayMs?: number }} FakeRecord */

/** @type {Map<string, FakeRecord>} */
const records = new Map(
  Object.entries({
    "hooks.example.com": { A: [PUBLIC_V4], AAAA: [PUBLIC_V6] },
    "receiver.test": { A: [PUBLIC_V4], AAAA: [PUBLIC_V6] },
    "v4-only.example.com": { A: [PUBLIC_V4] },
    "127.0.0.1.nip.io": { A: ["127.0.0.1"] },
    "169.254.169.254.nip.io": { A: ["169.254.169.254"] },
    "10.0.0.8.nip.io": { A: ["10.0.0.8"] },
    "mixed.example.com": { A: [PUBLIC_V4, "10.0.0.8"] },
    "v6-ula.example.com": { A: [PUBLIC_V4], AAAA: ["fd00::8"] },
    "v6-teredo.example.com": { AAAA: ["2001:0:4136:e378:8000:63bf:3fff:fdd2"] },
    "chain-public.example.com": { CNAME: "alias-public.example.com" },
    "alias-public.example.com": { CNAME: "hooks.example.com" },
    "chain-private.example.com": { CNAME: "alias-private.example.net" },
    "alias-private.example.net": { CNAME: "169.254.169.254.nip.io" },
    "chain-dangling.example.com": { CNAME: "nowhere.example.com" },
    "servfail.example.com": { status: 2 },
    "truncated.example.com": { A: [PUBLIC_V4], truncated: true },
    "http-500.example.com": { http: 500 },
    "garbage.example.com": { garbage: true },
    "bad-data.example.com": { A: ["not-an-address"] },
    "slow.example.com": { A: [PUBLIC_V4], delayMs: 2000 },
  }),
);

/** @param {Request} request */
export async function dns(request) {
  const url = new URL(request.url);
  if (request.method === "POST" && url.pathname === "/_fake/records") {
    /** @type {{ name: string, A?: string[], AAAA?: string[] }} */
    const body = await request.json();
    records.set(body.name.toLowerCase(), { A: body.A, AAAA: body.AAAA });
    return new Response(null, { status: 204 });
  }
  if (request.method !== "GET" || url.pathname !== "/dns-query") return new Response("not found", { status: 404 });
  const name = (url.searchParams.get("name") ?? "").toLowerCase().replace(/\.$/, "");
  const type = url.searchParams.get("type") === "AAAA" ? AAAA : A;
  if (request.headers.get("accept") !== "application/dns-json") return new Response("Bad Request", { status: 400 });

  const record = records.get(name);
  if (record?.delayMs) await new Promise((resolve) => setTimeout(resolve, record.delayMs));
  if (record?.http) return new Response("resolver error", { status: record.http });
  if (record?.garbage) return new Response("<html>not json</html>", { headers: { "content-type": "application/dns-json" } });

  const answer = [];
  let current = name;
  let found = records.get(current);
  // Follow the chain (bounded, like a resolver's own limit).
  for (let hop = 0; found?.CNAME && hop < 8; hop += 1) {
    answer.push({ name: `${current}.`, type: CNAME, TTL: 300, data: `${found.CNAME}.` });
    current = found.CNAME;
    found = records.get(current);
  }
  const status = found ? (found.status ?? 0) : 3;
  for (const data of (type === A ? found?.A : found?.AAAA) ?? []) answer.push({ name: `${current}.`, type, TTL: 300, data });
  const body = {
    Status: status,
    TC: found?.truncated ?? false,
    RD: true,
    RA: true,
    AD: false,
    CD: false,
    Question: [{ name: `${name}.`, type }],
    ...(answer.length > 0 ? { Answer: answer } : {}),
  };
  return Response.json(body, { headers: { "content-type": "application/dns-json" } });
}
